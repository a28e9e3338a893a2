import time
from tests.integration.test_delivery_guarantees import Events, settle
from tests.integration.conftest import Stack

def test_probe(stack: Stack) -> None:
    events = Events(stack, audiences=300)
    stack.start_intake()
    stack.start_worker(TTA_RATE_LIMIT_QPS="30")
    stack.start_worker(TTA_RATE_LIMIT_QPS="30")
    stack.redis.config_resetstat()
    t = time.time()
    events.post(events.everyone_enters(range(3)), per_request=200)
    settle(stack, 120)
    el = time.time() - t
    stats = stack.redis.info("commandstats")
    print("elapsed", el, {k: v["calls"] for k, v in stats.items() if v["calls"] > 50})
    print("calls", len(stack.sandbox.calls()))

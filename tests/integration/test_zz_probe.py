import time
from tests.integration.test_delivery_guarantees import *  # noqa
from tests.integration.test_delivery_guarantees import Events, settle, ledger
from tests.integration.conftest import Stack

def test_probe(stack: Stack) -> None:
    events = Events(stack, audiences=2)
    stack.start_intake()
    stack.start_worker(TTA_BATCH_SIZE="10")
    t=time.time()
    events.post(events.everyone_enters(range(15)))
    print("posted", time.time()-t)
    settle(stack)
    print("settled", time.time()-t)
    for c in stack.sandbox.calls(): print(c["time"]-t, c["audience_id"], c["rows"], c["code"])
    print(stack.logs())

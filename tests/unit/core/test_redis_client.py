"""Redis URLs: the forms redis-py takes, and sentinel:// for a Sentinel-managed master (data store and broker)."""

from __future__ import annotations

import pytest
import redis

from core.redis_client import LOCAL, PROBE, SentinelURL, broker_options, display, redis_from_url
from core.settings import Settings


def test_a_sentinel_url_names_its_sentinels_service_db_and_passwords() -> None:
    spec = SentinelURL.parse("sentinel://:s3cret@10.0.0.1:26379,[::1]:26380/mymaster/2?sentinel_password=sp")
    assert spec.sentinels == [("10.0.0.1", 26379), ("::1", 26380)]
    assert (spec.service, spec.db, spec.password, spec.sentinel_password) == ("mymaster", 2, "s3cret", "sp")


def test_the_db_defaults_to_0_and_no_password_is_none() -> None:
    spec = SentinelURL.parse("sentinel://redis-sentinel:26379/tta")
    assert (spec.service, spec.db, spec.password, spec.sentinel_password) == ("tta", 0, None, None)


@pytest.mark.parametrize("url, problem", [
    ("sentinel://host:26379", "names the monitored service"),
    ("sentinel://host/tta", "is not host:port"),
    ("sentinel://host:26379/tta/x", "/SERVICE or /SERVICE/DB"),
])
def test_a_malformed_sentinel_url_says_what_is_wrong(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        SentinelURL.parse(url)


def test_a_sentinel_url_gives_a_client_that_asks_the_sentinels_for_the_master() -> None:
    client = redis_from_url("sentinel://127.0.0.1:1,127.0.0.1:2/tta/3", PROBE)
    pool = client.connection_pool
    assert type(pool).__name__ == "SentinelConnectionPool"
    assert pool.service_name == "tta"
    assert pool.connection_kwargs["db"] == 3
    with pytest.raises(redis.RedisError):  # no sentinel listens there: an error, not a hang
        client.ping()


def test_other_urls_are_redis_pys_own() -> None:
    client = redis_from_url("redis://127.0.0.1:6390/4", LOCAL)
    assert client.connection_pool.connection_kwargs["port"] == 6390
    assert client.connection_pool.connection_kwargs["db"] == 4


def test_the_broker_takes_kombus_sentinel_form_with_the_service_as_master_name() -> None:
    url, options = broker_options("sentinel://:pw@h1:26379,h2:26380/tta/1?sentinel_password=sp")
    assert url == "sentinel://:pw@h1:26379/1;sentinel://:pw@h2:26380/1"
    assert options == {"master_name": "tta", "sentinel_kwargs": {"password": "sp"}}
    assert broker_options("redis://r:6379/0") == ("redis://r:6379/0", {})


def test_the_broker_is_the_data_store_unless_set_apart() -> None:
    assert Settings(REDIS_URL="redis://a:6379/0").broker_url == "redis://a:6379/0"
    assert Settings(REDIS_URL="redis://a:6379/0", TTA_BROKER_URL="redis://b:6379/1").broker_url == "redis://b:6379/1"


def test_celery_is_configured_for_a_sentinel_broker() -> None:
    from worker.celery_app import make_celery

    app = make_celery(Settings(TTA_BROKER_URL="sentinel://h1:26379,h2:26379/tta"))
    assert app.conf.broker_url == "sentinel://h1:26379/0;sentinel://h2:26379/0"
    assert app.conf.broker_transport_options["master_name"] == "tta"


def test_urls_are_shown_without_credentials() -> None:
    assert display("sentinel://:pw@h1:26379,h2:26379/tta") == "sentinel://h1:26379,h2:26379/tta"
    assert display("redis://user:pw@r:6379/0") == "redis://r:6379/0"

"""Write keys (Basic with the key as user name, or Bearer) and Segment webhook signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac

from producer.http.auth import Authenticator, sign
from tests.support.intake import settings


def basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


AUTH = Authenticator(["key-one", "key-two"], "shh")


def test_basic_with_the_write_key_as_user_name() -> None:
    assert AUTH.check_key(basic("key-one"))
    assert AUTH.check_key(basic("key-two"))
    assert not AUTH.check_key(basic("key-three"))
    assert not AUTH.check_key(basic(""))


def test_basic_password_is_ignored_like_segment_does() -> None:
    assert AUTH.check_key(basic("key-one", "anything"))


def test_bearer_token() -> None:
    assert AUTH.check_key("Bearer key-two")
    assert AUTH.check_key("bearer   key-one ")
    assert not AUTH.check_key("Bearer key-on")
    assert not AUTH.check_key("Bearer ")


def test_malformed_or_missing_headers_are_refused() -> None:
    for header in (None, "", "key-one", "Basic !!!notbase64", "Token key-one", "Basic " + "a" * 7):
        assert not AUTH.check_key(header)


def test_keys_come_from_settings_comma_separated() -> None:
    auth = Authenticator.from_settings(settings(write_keys=" a , b,,"))
    assert auth.check_key("Bearer a") and auth.check_key("Bearer b")
    assert not auth.check_key("Bearer ")


def test_webhook_signature_is_hex_hmac_sha1_of_the_raw_body() -> None:
    body = b'{"type":"track","event":"Audience Entered"}'
    expected = hmac.new(b"shh", body, hashlib.sha1).hexdigest()

    assert sign(body, "shh") == expected
    assert AUTH.check_signature(body, expected)
    assert AUTH.check_signature(body, expected.upper())
    assert not AUTH.check_signature(body + b" ", expected)
    assert not AUTH.check_signature(body, sign(body, "other secret"))
    assert not AUTH.check_signature(body, None)


def test_no_secret_means_no_signature_is_valid() -> None:
    auth = Authenticator(["k"])
    assert not auth.check_signature(b"{}", sign(b"{}", ""))


def test_no_auth_allows_everything() -> None:
    auth = Authenticator([], no_auth=True)
    assert auth.check_key(None)
    assert auth.check_signature(b"{}", None)


def test_configured_needs_a_key_or_a_secret() -> None:
    assert not Authenticator([]).configured
    assert Authenticator(["k"]).configured
    assert Authenticator([], "s").configured

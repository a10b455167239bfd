"""Pure functions: hashing, PKCE, scope syntax, throttling, settings, client metadata."""

from __future__ import annotations

import hashlib
import time

import pytest

from asgi_oauth import InvalidScopeError, Settings, crypto, pkce
from asgi_oauth.clients import new_client, validate_origin, validate_redirect_uri
from asgi_oauth.grants.base import new_family_id
from asgi_oauth.scopes import narrow_scope, parse_scope
from asgi_oauth.throttle import Throttle

from .conftest import FakeClock


def test_secret_hash_verifies_and_hides_the_secret() -> None:
    stored = crypto.hash_secret("s3cret")
    assert "s3cret" not in stored
    assert crypto.verify_secret("s3cret", stored)
    assert not crypto.verify_secret("s3cret!", stored)
    assert not crypto.verify_secret("s3cret", None)
    assert crypto.hash_secret("s3cret") != stored  # salted


def test_password_hash_is_scrypt_and_verifies() -> None:
    stored = crypto.hash_password("pw")
    assert stored.startswith("scrypt$")
    assert crypto.verify_password("pw", stored)
    assert not crypto.verify_password("pW", stored)
    assert not crypto.verify_password("pw", None)


def test_tokens_are_random_and_hashed_deterministically() -> None:
    a, b = crypto.generate_token(), crypto.generate_token()
    assert a != b and len(a) >= 43
    assert crypto.hash_token(a) == crypto.hash_token(a) != crypto.hash_token(b)


def test_pkce_s256_matches_rfc_7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert pkce.s256_challenge(verifier) == challenge
    assert pkce.verify(verifier, challenge, "S256")
    assert not pkce.verify(verifier[:-1] + "l", challenge, "S256")
    assert pkce.verify(verifier, verifier, "plain")


@pytest.mark.parametrize("verifier", ["short", "x" * 129, "a" * 42 + "!", "é" * 43])
def test_pkce_refuses_malformed_verifiers(verifier: str) -> None:
    assert not pkce.is_valid_verifier(verifier)
    assert not pkce.verify(verifier, verifier, "plain")


def test_pkce_challenge_syntax() -> None:
    assert pkce.is_valid_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "S256")
    assert not pkce.is_valid_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c", "S256")
    assert pkce.is_valid_challenge("a" * 43, "plain")


def test_scope_parsing_and_narrowing() -> None:
    assert parse_scope(None) is None
    assert parse_scope("read write") == frozenset({"read", "write"})
    for bad in ("read  write", " read", 'a"b', "a\\b", "é"):
        with pytest.raises(InvalidScopeError):
            parse_scope(bad)
    assert narrow_scope(None, ["a", "b"]) == {"a", "b"}
    assert narrow_scope(frozenset({"a"}), ["a", "b"]) == {"a"}
    with pytest.raises(InvalidScopeError, match="c"):
        narrow_scope(frozenset({"a", "c"}), ["a", "b"])


def test_throttle_tells_failures_past_the_limit_to_wait_until_the_window_ends() -> None:
    clock = FakeClock(0)
    throttle = Throttle(limit=2, window=60, clock=clock)
    assert throttle.failed("k") == 0
    assert throttle.failed("k") == 0
    assert throttle.failed("k") == 61
    clock.advance(30)
    assert 0 < throttle.failed("k") <= 31
    assert throttle.failed("other") == 0
    clock.advance(31)
    assert throttle.failed("k") == 0  # a new window


def test_throttle_success_clears_the_count() -> None:
    clock = FakeClock(0)
    throttle = Throttle(limit=2, window=60, clock=clock)
    throttle.failed("k")
    throttle.failed("k")
    throttle.succeeded("k")
    assert throttle.failed("k") == 0
    assert throttle.failed("k") == 0


def test_throttle_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("asgi_oauth.throttle._MAX_KEYS", 10)
    clock = FakeClock(0)
    throttle = Throttle(limit=1, window=60, clock=clock)
    for i in range(25):
        throttle.failed(f"k{i}")
    assert len(throttle._failures) <= 11
    assert throttle.failed("k24") > 0  # the newest keys are kept


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"issuer": "ftp://as.example"}, "absolute https"),
        ({"issuer": "/oauth2"}, "absolute https"),
        ({"issuer": "https://as.example?x=1"}, "query or fragment"),
        ({"issuer": "http://as.example"}, "insecure_transport"),
        ({"issuer": "https://a.example", "access_token_lifetime": 0}, "positive"),
        ({"issuer": "https://a.example", "enabled_grants": frozenset({"bogus"})}, "unknown"),
        ({"issuer": "https://a.example", "refresh_token_grace_period": -1}, ">= 0"),
    ],
)
def test_settings_refuse_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(**kwargs)  # type: ignore[arg-type]


def test_settings_normalise_the_issuer() -> None:
    settings = Settings(issuer="https://as.example/oauth2/")
    assert settings.issuer == "https://as.example/oauth2"
    assert settings.issuer_path == "/oauth2"
    assert Settings(issuer="http://localhost:8000", insecure_transport=True).issuer_path == ""


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example/cb",
        "http://127.0.0.1:8080/cb",
        "http://localhost/cb",
        "http://[::1]/cb",
        "com.example.app:/callback",
        "myapp:/cb",
    ],
)
def test_valid_redirect_uris(uri: str) -> None:
    assert validate_redirect_uri(uri) == uri


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("/cb", "absolute"),
        ("https://app.example/cb#x", "fragment"),
        ("http://app.example/cb", "loopback"),
        ("https:///cb", "no host"),
        ("http:///cb", "no host"),
        ("javascript:alert(1)", "private-use"),
        ("https://app.example/c b", "white space"),
        ("", "white space"),
    ],
)
def test_invalid_redirect_uris(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_redirect_uri(uri)


def test_http_redirect_uri_allowed_with_insecure_transport() -> None:
    assert validate_redirect_uri("http://app.test/cb", insecure_transport=True)


@pytest.mark.parametrize(
    "origin", ["https://a.example/", "https://a.example/x", "file://x", "a", "https://a b.example"]
)
def test_invalid_origins(origin: str) -> None:
    with pytest.raises(ValueError, match="origin"):
        validate_origin(origin)


def test_family_ids_are_unique_and_time_ordered() -> None:
    ids = [new_family_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert [i[:11] for i in ids] == sorted(i[:11] for i in ids)


def test_codes_and_tokens_are_time_ordered_and_keyed_by_prefix_and_digest() -> None:
    first = crypto.time_ordered_token()
    time.sleep(0.002)
    second = crypto.time_ordered_token()
    assert first[:11] < second[:11]
    assert len(first) == 11 + 43  # 256 random bits after the time
    key = crypto.hash_token(first)
    assert key.startswith(first[:11])
    assert first[11:] not in key
    assert key[11:] == hashlib.sha256(first.encode()).hexdigest()
    assert crypto.hash_token("x") != crypto.hash_token("y")


def test_new_client_validation() -> None:
    with pytest.raises(ValueError, match="unknown grant"):
        new_client(name="x", grant_types=["bogus"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="public client"):
        new_client(name="x", grant_types=["client_credentials"], public=True)
    with pytest.raises(ValueError, match="redirect URI"):
        new_client(name="x", grant_types=["authorization_code"])
    public = new_client(name="x", redirect_uris=["https://a.example/cb"], public=True)
    assert public.client_secret is None and public.client.is_public
    confidential = new_client(name="x", grant_types=["client_credentials"])
    assert confidential.client_secret is not None
    assert crypto.verify_secret(confidential.client_secret, confidential.client.secret_hash)

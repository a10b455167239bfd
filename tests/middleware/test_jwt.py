"""JWT access tokens (RFC 9068) behind ``BearerTokenMiddleware``: checked where they arrive.

``LocalIntrospector`` verifies a JWT against its server's keys without reading the
token's row, and keeps a revocation list it rereads every ``revocation_ttl``
seconds; ``JWTIntrospector`` with ``RemoteJWKS`` does the same for a resource
server elsewhere, against the keys the authorization server publishes. Here:
what passes, what is refused (and never reaches the route), how revocations
arrive, that the store is not asked per request, and that an undecidable check
is a 503.

``LocalIntrospector`` checks the times on its server's clock, here a ``FakeClock``
started at the wall clock (``tests/middleware/conftest.py``); ``JWTIntrospector``
on its own (the wall clock by default). Forged tokens are signed with the
server's own private key, read from the store and decrypted with the test
key-encryption key, so each differs from a good token in one respect only.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from asgi_oauth import AuthorizationServer, InvalidGrantError, Settings, StorageError
from asgi_oauth.app import OAuth2App
from asgi_oauth.keys import KeyEncryption, generate_signing_key
from asgi_oauth.middleware import (
    BearerTokenMiddleware,
    JWTIntrospector,
    LocalIntrospector,
    RemoteIntrospector,
    RemoteJWKS,
)
from asgi_oauth.models import SigningKey
from asgi_oauth.storage import MemoryStorage, SQLiteStorage

from ..conftest import ISSUER, REDIRECT_URI, Credentials, FakeClock
from ..helpers import request
from ..openid_helpers import KEK, openid_settings
from ..test_grant_authorization_code import exchange, issue_code
from .conftest import register_caller
from .test_bearer import (
    Called,
    access_token,
    bearer,
    challenge,
    connect,
    starlette_app,
    user_tokens,
)

pytestmark = pytest.mark.anyio

#: ``Settings.clock_skew``'s default: the leeway of every time check here.
LEEWAY = 60
#: A revocation list short-lived enough to wait out in a test.
SHORT_TTL = 0.2


# -- stores that tell what they were asked, or fail -----------------------------------------


class CountingStorage(MemoryStorage):
    """A memory store that records the name of every storage method called on it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []
        #: ``list_revoked_access_tokens`` raises ``StorageError`` while this is set.
        self.failing = False
        #: When set, ``list_revoked_access_tokens`` reads the list, then waits for it.
        self.gate: anyio.Event | None = None
        self.reading = anyio.Event()

    def __getattribute__(self, name: str) -> Any:
        attribute = super().__getattribute__(name)
        if name.startswith("_") or not asyncio.iscoroutinefunction(attribute):
            return attribute
        calls: list[str] = super().__getattribute__("calls")

        async def counted(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return await attribute(*args, **kwargs)

        return counted

    async def list_revoked_access_tokens(self, *, now: int) -> list[str]:
        if self.failing:
            raise StorageError("database is locked")
        revoked = await super().list_revoked_access_tokens(now=now)
        if self.gate is not None:
            self.reading.set()
            await self.gate.wait()
        return revoked


@pytest.fixture
def settings() -> Settings:
    return openid_settings(access_token_format="jwt")


@functools.cache
def _signing_keys() -> tuple[SigningKey, ...]:
    """One RS256 and one ES256 key, made once: generating RSA keys per test is slow."""
    encryption = KeyEncryption(KEK)
    now = int(time.time())
    return tuple(generate_signing_key(alg, encryption, now=now) for alg in ("RS256", "ES256"))


@pytest.fixture
async def store() -> CountingStorage:
    """A counting store holding the signing keys already (as after a first start)."""
    store = CountingStorage()
    for key in _signing_keys():
        await store.add_signing_key(key, retire_active_until=None, now=int(time.time()))
    store.calls.clear()
    return store


@pytest.fixture
async def server(
    store: CountingStorage, settings: Settings, clock: FakeClock
) -> AsyncIterator[AuthorizationServer]:
    server = AuthorizationServer(store, settings, clock=clock)
    yield server
    await server.close()


def api(introspector: Any) -> ASGIApp:
    """Starlette echoing what the middleware found; /admin needs admin and write."""
    return starlette_app(introspector=introspector, protect={"/": "", "/admin": "admin write"})


def assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert challenge(response)["error"] == "invalid_token"
    assert response.json()["error"] == "invalid_token"


def assert_unavailable(response: httpx.Response) -> None:
    """503 and the RFC 6750 challenge without an error code: the middleware failed closed."""
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'
    assert response.json()["error"] == "temporarily_unavailable"


# -- a good JWT ---------------------------------------------------------------------------


async def test_a_user_jwt_reaches_the_route_with_its_scopes_and_user(
    server: AuthorizationServer, caller: Credentials
) -> None:
    pair = await user_tokens(server, caller, "read write")
    assert jwt.get_unverified_header(pair.access_token)["typ"] == "at+jwt"
    async with connect(api(server)) as client:
        response = await client.get("/things", headers=bearer(pair.access_token))
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["authenticated"] is True
    assert seen["scopes"] == ["read", "write"]
    assert seen["client_id"] == caller.client_id
    assert seen["subject"] == "user-1"
    claims = seen["claims"]
    assert claims["active"] is True and claims["iss"] == ISSUER
    assert claims["aud"] == ISSUER and claims["token_type"] == "Bearer"
    payload = jwt.decode(pair.access_token, options={"verify_signature": False})
    assert claims["exp"] == payload["exp"] and claims["iat"] == payload["iat"]


async def test_a_client_credentials_jwt_has_the_client_as_user_and_no_subject(
    server: AuthorizationServer, caller: Credentials
) -> None:
    token = await access_token(server, caller, "read")
    async with connect(api(server)) as client:
        seen = (await client.get("/things", headers=bearer(token))).json()
    assert seen["subject"] is None
    assert seen["client_id"] == caller.client_id
    assert seen["scopes"] == ["read"]


async def test_an_es256_jwt_is_checked_locally_too(clock: FakeClock) -> None:
    settings = openid_settings(access_token_format="jwt", access_token_signing_alg="ES256")
    server = AuthorizationServer(MemoryStorage(), settings, clock=clock)
    try:
        token = await access_token(server, await register_caller(server), "read")
        assert jwt.get_unverified_header(token)["alg"] == "ES256"
        async with connect(api(server)) as client:
            response = await client.get("/things", headers=bearer(token))
        assert response.status_code == 200
    finally:
        await server.close()


async def test_insufficient_scope_is_403_for_a_jwt_and_enough_scope_passes(
    server: AuthorizationServer, caller: Credentials
) -> None:
    async with connect(api(server)) as client:
        refused = await client.get(
            "/admin/users", headers=bearer(await access_token(server, caller, "read admin"))
        )
        allowed = await client.get(
            "/admin/users", headers=bearer(await access_token(server, caller, "admin write"))
        )
    assert refused.status_code == 403
    attributes = challenge(refused)
    assert attributes["error"] == "insufficient_scope"
    assert attributes["scope"] == "admin read write"
    assert allowed.status_code == 200
    assert allowed.json()["scopes"] == ["admin", "write"]


# -- no store call per request ------------------------------------------------------------


async def test_after_the_first_check_no_store_call_until_the_revocation_ttl_passes(
    server: AuthorizationServer, store: CountingStorage, caller: Credentials
) -> None:
    ttl = 1.0
    token = await access_token(server, caller, "read")
    other = await access_token(server, caller, "read")
    introspector = LocalIntrospector(server, revocation_ttl=ttl)
    async with connect(api(introspector)) as client:
        store.calls.clear()
        started = time.monotonic()
        assert (await client.get("/things", headers=bearer(token))).status_code == 200
        assert store.calls == ["list_revoked_access_tokens"]
        store.calls.clear()
        for _ in range(20):
            assert (await client.get("/things", headers=bearer(token))).status_code == 200
        # A JWT seen for the first time is verified here too: still no lookup.
        assert (await client.get("/things", headers=bearer(other))).status_code == 200
        assert time.monotonic() - started < ttl, "too slow to tell: the list went stale"
        assert store.calls == []
        await anyio.sleep(ttl - (time.monotonic() - started) + 0.05)
        assert (await client.get("/things", headers=bearer(token))).status_code == 200
        assert (await client.get("/things", headers=bearer(token))).status_code == 200
    # One reread of the revocation list; the token's own row is never read.
    assert store.calls == ["list_revoked_access_tokens"]


async def test_a_cached_jwt_is_refused_once_the_servers_clock_passes_exp_and_the_leeway(
    server: AuthorizationServer, caller: Credentials, clock: FakeClock
) -> None:
    token = await access_token(server, caller, "read")
    async with connect(api(server)) as client:
        assert (await client.get("/things", headers=bearer(token))).status_code == 200
        clock.advance(server.settings.access_token_lifetime + LEEWAY - 1)
        assert (await client.get("/things", headers=bearer(token))).status_code == 200
        clock.advance(1)
        assert_invalid_token(await client.get("/things", headers=bearer(token)))


# -- revocation ---------------------------------------------------------------------------


async def test_revoking_through_the_endpoint_is_refused_on_the_very_next_request(
    server: AuthorizationServer, caller: Credentials, http: httpx.AsyncClient
) -> None:
    token = await access_token(server, caller, "read")
    async with connect(api(server)) as client:
        assert (await client.get("/things", headers=bearer(token))).status_code == 200
        assert (await client.get("/things", headers=bearer(token))).status_code == 200
        revoked = await http.post("/oauth2/revoke", data={"token": token}, auth=caller.basic)
        assert revoked.status_code == 200
        assert_invalid_token(await client.get("/things", headers=bearer(token)))


async def test_revoking_the_refresh_token_refuses_its_jwt_on_the_next_request(
    server: AuthorizationServer, caller: Credentials, http: httpx.AsyncClient
) -> None:
    pair = await user_tokens(server, caller, "read")
    assert pair.refresh_token is not None
    async with connect(api(server)) as client:
        assert (await client.get("/things", headers=bearer(pair.access_token))).status_code == 200
        revoked = await http.post(
            "/oauth2/revoke", data={"token": pair.refresh_token}, auth=caller.basic
        )
        assert revoked.status_code == 200
        assert_invalid_token(await client.get("/things", headers=bearer(pair.access_token)))


async def test_a_revocation_by_another_server_on_the_same_sqlite_file_is_seen_after_the_ttl(
    tmp_path: Path,
) -> None:
    db = tmp_path / "oauth.db"
    here = AuthorizationServer(SQLiteStorage(db), openid_settings(access_token_format="jwt"))
    there = AuthorizationServer(SQLiteStorage(db), openid_settings(access_token_format="jwt"))
    try:
        caller = await register_caller(here)
        token = await access_token(here, caller, "read")
        introspector = LocalIntrospector(here, revocation_ttl=SHORT_TTL)
        async with connect(api(introspector)) as client:
            assert (await client.get("/things", headers=bearer(token))).status_code == 200
            await there.revoke(request(caller, token=token))
            await anyio.sleep(SHORT_TTL + 0.05)
            assert_invalid_token(await client.get("/things", headers=bearer(token)))
        assert not (await here.introspect_token(token)).active
    finally:
        await there.close()
        await here.close()


async def test_refresh_token_reuse_revokes_the_family_and_its_jwt(
    server: AuthorizationServer, caller: Credentials
) -> None:
    first = await user_tokens(server, caller, "read")
    assert first.refresh_token is not None
    refresh = request(caller, grant_type="refresh_token", refresh_token=first.refresh_token)
    second = await server.token(refresh)
    async with connect(api(server)) as client:
        assert (await client.get("/things", headers=bearer(second.access_token))).status_code == 200
        with pytest.raises(InvalidGrantError, match="already used"):
            await server.token(refresh)  # reuse: the whole grant is revoked
        assert_invalid_token(await client.get("/things", headers=bearer(second.access_token)))


async def test_deleting_the_client_revokes_its_jwt(
    server: AuthorizationServer, store: CountingStorage, caller: Credentials
) -> None:
    token = await access_token(server, caller, "read")
    introspector = LocalIntrospector(server, revocation_ttl=SHORT_TTL)
    async with connect(api(introspector)) as client:
        assert (await client.get("/things", headers=bearer(token))).status_code == 200
        assert await store.delete_client(caller.client_id)
        await anyio.sleep(SHORT_TTL + 0.05)
        assert_invalid_token(await client.get("/things", headers=bearer(token)))


async def test_a_revocation_during_an_in_flight_reread_is_still_seen_at_once(
    server: AuthorizationServer, store: CountingStorage, caller: Credentials
) -> None:
    """A reread that began before a revocation of this process must not be trusted."""
    ttl = 1.0
    token = await access_token(server, caller, "read")
    other = await access_token(server, caller, "read")
    introspector = LocalIntrospector(server, revocation_ttl=ttl)
    async with connect(api(introspector)) as client:
        assert (await client.get("/things", headers=bearer(token))).status_code == 200
        await anyio.sleep(ttl + 0.05)  # the list is stale: the next request rereads it
        store.gate = anyio.Event()
        answers: list[int] = []

        async def in_flight() -> None:
            answers.append((await client.get("/things", headers=bearer(other))).status_code)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(in_flight)
            await store.reading.wait()  # the reread has the list as it was before...
            await server.revoke(request(caller, token=token))  # ...this revocation
            store.gate.set()
        assert answers == [200]
        assert_invalid_token(await client.get("/things", headers=bearer(token)))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


#: The order of the P-256 group: (r, n - s) is as valid an ECDSA signature as (r, s).
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


async def test_a_revoked_es256_jwt_with_its_twin_signature_is_refused(
    clock: FakeClock,
) -> None:
    """ECDSA signatures are malleable: (r, s) and (r, n - s) both verify. The twin is
    another string with the same claims, so revocation must not key on the string."""
    settings = openid_settings(access_token_format="jwt", access_token_signing_alg="ES256")
    server = AuthorizationServer(MemoryStorage(), settings, clock=clock)
    try:
        caller = await register_caller(server)
        token = await access_token(server, caller, "read")
        header, payload, signature = token.split(".")
        raw = _unb64(signature)
        s = int.from_bytes(raw[32:], "big")
        twin = f"{header}.{payload}.{_b64(raw[:32] + (P256_ORDER - s).to_bytes(32, 'big'))}"
        assert twin != token
        await server.revoke(request(caller, token=token))
        async with connect(api(server)) as client:
            assert_invalid_token(await client.get("/things", headers=bearer(token)))
            assert_invalid_token(await client.get("/things", headers=bearer(twin)))
    finally:
        await server.close()


# -- failing closed -----------------------------------------------------------------------


async def test_a_failing_store_with_a_stale_revocation_list_is_503_and_the_route_never_runs(
    server: AuthorizationServer, store: CountingStorage, caller: Credentials
) -> None:
    token = await access_token(server, caller, "read")
    route = Called()
    app = BearerTokenMiddleware(route, introspector=LocalIntrospector(server, revocation_ttl=0.1))
    async with connect(app) as client:
        assert (await client.get("/things", headers=bearer(token))).status_code == 204
        store.failing = True
        await anyio.sleep(0.15)
        assert_unavailable(await client.get("/things", headers=bearer(token)))
        assert_unavailable(await client.get("/things", headers=bearer(token)))
    assert route.calls == 1


async def test_a_revocation_list_never_read_is_503_when_the_store_fails(
    server: AuthorizationServer, store: CountingStorage, caller: Credentials
) -> None:
    token = await access_token(server, caller, "read")
    store.failing = True
    route = Called()
    async with connect(BearerTokenMiddleware(route, introspector=server)) as client:
        assert_unavailable(await client.get("/things", headers=bearer(token)))
    assert route.calls == 0


# -- bad JWTs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Forge:
    """What a forger has: the server's RS256 key pair and one good token of it."""

    kid: str
    key: rsa.RSAPrivateKey
    public_jwk: Mapping[str, str]
    good: str
    client_id: str
    #: The server's clock, which the checks run on.
    clock: Callable[[], float]
    #: The kid of the server's ES256 key.
    es256_kid: str = ""

    def now(self) -> int:
        return int(self.clock())

    def claims(self, **changes: object) -> dict[str, object]:
        now = self.now()
        claims: dict[str, object] = {
            "iss": ISSUER,
            "sub": self.client_id,
            "aud": ISSUER,
            "exp": now + 600,
            "iat": now,
            "jti": "forged-" + str(now),
            "client_id": self.client_id,
            "scope": "read",
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def header(self, **changes: object) -> dict[str, object]:
        header: dict[str, object] = {"alg": "RS256", "kid": self.kid, "typ": "at+jwt"}
        header.update(changes)
        return {k: v for k, v in header.items() if v is not None}

    def sign(
        self,
        claims: Mapping[str, object] | bytes | None = None,
        header: Mapping[str, object] | bytes | None = None,
        key: rsa.RSAPrivateKey | None = None,
    ) -> str:
        """A compact JWS signed with RS256 (by the server's key unless ``key``)."""
        signer = key or self.key
        return compact(
            self.header() if header is None else header,
            self.claims() if claims is None else claims,
            lambda data: signer.sign(data, padding.PKCS1v15(), hashes.SHA256()),
        )

    def hmac(self, secret: bytes) -> str:
        """HS256 with ``secret``: the algorithm confusion attack."""
        return compact(
            self.header(alg="HS256"),
            self.claims(),
            lambda data: hmac.new(secret, data, hashlib.sha256).digest(),
        )


def _json(value: Mapping[str, object] | bytes) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def compact(
    header: Mapping[str, object] | bytes,
    claims: Mapping[str, object] | bytes,
    sign: Callable[[bytes], bytes],
) -> str:
    signing_input = f"{_b64(_json(header))}.{_b64(_json(claims))}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


async def server_key(
    server: AuthorizationServer, alg: str = "RS256"
) -> tuple[str, Any, dict[str, str]]:
    """The active key of ``alg``: kid, private key, public JWK (decrypted from the store)."""
    keys = await server.storage.list_signing_keys(now=int(time.time()))
    stored = next(k for k in keys if k.alg == alg and k.is_active)
    private = KeyEncryption(KEK).decrypt(stored.private_jwk, kid=stored.kid)
    public: dict[str, str] = json.loads(stored.public_jwk)
    return stored.kid, jwt.PyJWK(json.loads(private)).key, public


@pytest.fixture
async def forge(server: AuthorizationServer, caller: Credentials) -> Forge:
    good = await access_token(server, caller, "read")
    kid, key, public = await server_key(server)
    assert isinstance(key, rsa.RSAPrivateKey)
    es256_kid = (await server_key(server, "ES256"))[0]
    return Forge(kid, key, public, good, caller.client_id, server.clock, es256_kid)


def _replace_segment(token: str, index: int, segment: str) -> str:
    parts = token.split(".")
    parts[index] = segment
    return ".".join(parts)


def _bad_base64(segment: str, how: str) -> str:
    """``segment`` made invalid base64url, still within RFC 6750's b64token characters."""
    if how == "length":  # one character too many: no whole byte
        return segment + "A" * ((1 - len(segment)) % 4 or 4)
    if how == "tilde":
        return segment[:8] + "~" + segment[8:]
    return segment[:8] + "+" + segment[9:]  # "+" is base64, not base64url


def _tampered_payload(f: Forge) -> str:
    return _replace_segment(f.good, 1, _b64(_json(f.claims(scope="read write admin"))))


def _tampered_signature(f: Forge) -> str:
    signature = f.good.split(".")[2]
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return _replace_segment(f.good, 2, signature[:middle] + flipped + signature[middle + 1 :])


def _alg_none(f: Forge) -> str:
    return compact(f.header(alg="none"), f.claims(), lambda data: b"")


def _alg_none_keeping_a_signature(f: Forge) -> str:
    header = _b64(_json(f.header(alg="none")))
    return _replace_segment(f.good, 0, header)


def _public_pem(f: Forge, fmt: serialization.PublicFormat) -> bytes:
    return f.key.public_key().public_bytes(serialization.Encoding.PEM, fmt)


def _foreign_key(f: Forge) -> str:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return f.sign(key=stranger)


def _header_of_20_kb(f: Forge) -> str:
    return f.sign(header=f.header(x="a" * 20_000))


def _bad_segment(index: int, how: str) -> Callable[[Forge], str]:
    def forge(f: Forge) -> str:
        return _replace_segment(f.good, index, _bad_base64(f.good.split(".")[index], how))

    return forge


def _segments(count: int) -> Callable[[Forge], str]:
    def forge(f: Forge) -> str:
        parts = f.good.split(".")
        return ".".join((parts * 2)[:count])

    return forge


FORGERIES: dict[str, Callable[[Forge], str]] = {
    "tampered-payload": _tampered_payload,
    "tampered-signature": _tampered_signature,
    "signature-stripped": lambda f: _replace_segment(f.good, 2, ""),
    "alg-none": _alg_none,
    "alg-none-keeping-the-signature": _alg_none_keeping_a_signature,
    "hs256-public-key-pem": lambda f: f.hmac(
        _public_pem(f, serialization.PublicFormat.SubjectPublicKeyInfo)
    ),
    "hs256-public-key-pem-pkcs1": lambda f: f.hmac(
        _public_pem(f, serialization.PublicFormat.PKCS1)
    ),
    "hs256-jwk-n-bytes": lambda f: f.hmac(_unb64(f.public_jwk["n"])),
    "hs256-jwk-n-text": lambda f: f.hmac(f.public_jwk["n"].encode()),
    "hs256-jwk-json": lambda f: f.hmac(json.dumps(f.public_jwk).encode()),
    "unknown-kid": lambda f: f.sign(header=f.header(kid="no-such-key")),
    "no-kid": lambda f: f.sign(header=f.header(kid=None)),
    "foreign-key-with-our-kid": _foreign_key,
    "rs256-naming-the-es256-kid": lambda f: f.sign(header=f.header(kid=f.es256_kid)),
    "es256-naming-the-rs256-kid": lambda f: f.sign(header=f.header(alg="ES256")),
    "crit-header": lambda f: f.sign(header=f.header(crit=["exp"], exp=1)),
    "wrong-iss": lambda f: f.sign(f.claims(iss="https://evil.example/oauth2")),
    "no-iss": lambda f: f.sign(f.claims(iss=None)),
    "wrong-aud": lambda f: f.sign(f.claims(aud="https://other-api.example")),
    "aud-list-without-us": lambda f: f.sign(f.claims(aud=["https://a.example", "b"])),
    "no-aud": lambda f: f.sign(f.claims(aud=None)),
    "expired-beyond-leeway": lambda f: f.sign(f.claims(exp=f.now() - LEEWAY - 30)),
    "expired-exactly-at-leeway": lambda f: f.sign(f.claims(exp=f.now() - LEEWAY)),
    "iat-in-the-future-beyond-leeway": lambda f: f.sign(f.claims(iat=f.now() + LEEWAY + 60)),
    "typ-jwt": lambda f: f.sign(header=f.header(typ="JWT")),
    "no-typ": lambda f: f.sign(header=f.header(typ=None)),
    "exp-as-string": lambda f: f.sign(f.claims(exp=str(f.now() + 600))),
    "exp-as-bool": lambda f: f.sign(f.claims(exp=True)),
    "exp-as-float": lambda f: f.sign(f.claims(exp=f.now() + 600.5)),
    "no-exp": lambda f: f.sign(f.claims(exp=None)),
    "iat-as-string": lambda f: f.sign(f.claims(iat=str(f.now()))),
    "scope-as-list": lambda f: f.sign(f.claims(scope=["read"])),
    "no-client-id": lambda f: f.sign(f.claims(client_id=None)),
    "no-sub": lambda f: f.sign(f.claims(sub=None)),
    "no-jti": lambda f: f.sign(f.claims(jti=None)),
    "empty-jti": lambda f: f.sign(f.claims(jti="")),
    "jti-as-number": lambda f: f.sign(f.claims(jti=12345)),
    "claims-a-list": lambda f: f.sign(b'["read"]'),
    "claims-a-string": lambda f: f.sign(b'"read"'),
    "claims-not-json": lambda f: f.sign(b'{"iss": '),
    "header-not-json": lambda f: f.sign(header=b'{"alg": "RS256", "kid": '),
    "header-not-an-object": lambda f: f.sign(header=b'["RS256"]'),
    "header-a-string": lambda f: f.sign(header=b'"RS256"'),
    "header-of-20-kb": _header_of_20_kb,
    "two-segments": _segments(2),
    "four-segments": _segments(4),
    **{
        f"bad-base64-{name}-{how}": _bad_segment(index, how)
        for index, name in enumerate(("header", "payload", "signature"))
        for how in ("length", "tilde", "plus")
    },
}


@pytest.mark.parametrize("name", list(FORGERIES))
async def test_a_bad_jwt_is_401_invalid_token_and_never_reaches_the_route(
    server: AuthorizationServer, forge: Forge, name: str
) -> None:
    token = FORGERIES[name](forge)
    assert token != forge.good
    route = Called()
    async with connect(BearerTokenMiddleware(route, introspector=server)) as client:
        assert (await client.get("/", headers=bearer(forge.good))).status_code == 204
        response = await client.get("/", headers=bearer(token))
        again = await client.get("/", headers=bearer(token))
    assert_invalid_token(response)
    assert_invalid_token(again)
    assert route.calls == 1  # the good token's request only


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": -(LEEWAY - 20)},
        {"iat": LEEWAY - 20, "exp": LEEWAY + 600},
        {"typ": "AT+JWT"},
        {"typ": "application/at+jwt"},
        {"aud": "list"},
    ],
    ids=["expired-within-leeway", "iat-ahead-within-leeway", "typ-upper", "typ-media", "aud-list"],
)
async def test_a_jwt_within_the_rules_is_accepted(
    server: AuthorizationServer, forge: Forge, changes: dict[str, Any]
) -> None:
    now = forge.now()
    claims = forge.claims(**{k: now + v for k, v in changes.items() if k in ("exp", "iat")})
    if "aud" in changes:
        claims["aud"] = ["https://other-api.example", ISSUER]
    header = forge.header(typ=changes.get("typ", "at+jwt"))
    token = forge.sign(claims, header)
    async with connect(api(server)) as client:
        response = await client.get("/things", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()["client_id"] == forge.client_id


async def test_a_foreign_rsa_public_key_in_the_header_is_not_trusted(
    server: AuthorizationServer, forge: Forge
) -> None:
    """``jwk`` (RFC 7515 §4.1.3) names a key the token brings itself: never trusted."""
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(stranger.public_key()))
    token = forge.sign(header=forge.header(jwk=jwk), key=stranger)
    route = Called()
    async with connect(BearerTokenMiddleware(route, introspector=server)) as client:
        assert_invalid_token(await client.get("/", headers=bearer(token)))
    assert route.calls == 0


async def test_an_id_token_is_no_access_token(server: AuthorizationServer) -> None:
    registered = await server.register_client(
        name="RP",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code"],
        scope=["openid", "read"],
    )
    creds = Credentials(registered.client.client_id, registered.client_secret)
    code = await issue_code(server, creds, scope="openid read")
    issued = await server.token(request(creds, **exchange(creds, code)))
    assert issued.id_token is not None
    assert jwt.get_unverified_header(issued.id_token)["typ"] == "JWT"
    route = Called()
    async with connect(BearerTokenMiddleware(route, introspector=server)) as client:
        assert (await client.get("/", headers=bearer(issued.access_token))).status_code == 204
        assert_invalid_token(await client.get("/", headers=bearer(issued.id_token)))
    assert route.calls == 1


@pytest.mark.parametrize(
    ("overrides", "offset"),
    [
        ({"issuer": "https://other.example/oauth2"}, 0),
        ({"access_token_audience": "https://other-api.example"}, 0),
        ({}, -(3600 + LEEWAY + 60)),
        ({}, LEEWAY + 120),
    ],
    ids=["other-issuer", "other-audience", "expired", "issued-in-the-future"],
)
async def test_a_jwt_another_configuration_issued_with_our_keys_is_refused(
    server: AuthorizationServer,
    forge: Forge,
    clock: FakeClock,
    overrides: dict[str, Any],
    offset: float,
) -> None:
    """A server on the same store (so the same keys), otherwise configured or clocked."""
    settings = openid_settings(access_token_format="jwt", **overrides)
    sibling = AuthorizationServer(server.storage, settings, clock=FakeClock(clock.now + offset))
    caller = await register_caller(sibling)
    token = await access_token(sibling, caller, "read")
    assert jwt.get_unverified_header(token)["kid"] == forge.kid
    route = Called()
    async with connect(BearerTokenMiddleware(route, introspector=server)) as client:
        assert_invalid_token(await client.get("/", headers=bearer(token)))
    assert route.calls == 0


async def test_a_jwt_signed_by_a_retired_key_still_passes_and_its_new_key_too(
    server: AuthorizationServer, caller: Credentials
) -> None:
    before = await access_token(server, caller, "read")
    await server.rotate_signing_keys()
    after = await access_token(server, caller, "read")
    kids = {jwt.get_unverified_header(t)["kid"] for t in (before, after)}
    assert len(kids) == 2
    async with connect(api(server)) as client:
        for token in (before, after):
            assert (await client.get("/things", headers=bearer(token))).status_code == 200


# -- a resource server elsewhere: JWTIntrospector and RemoteJWKS ----------------------------


class Recorder:
    """ASGI middleware recording the path of every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


@dataclass
class RemoteAS:
    server: AuthorizationServer
    issuer: str
    recorder: Recorder
    http: Uvicorn

    @property
    def jwks_uri(self) -> str:
        return self.issuer + "/jwks"


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Uvicorn:
    """uvicorn serving an app as a task of the test's own event loop."""

    server: uvicorn.Server
    task: asyncio.Task[None]

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        self.server.should_exit = True
        with anyio.fail_after(10):
            await self.task


@asynccontextmanager
async def uvicorn_in_this_loop(app: ASGIApp, sock: socket.socket) -> AsyncIterator[Uvicorn]:
    config = uvicorn.Config(
        app, lifespan="off", ws="none", http="h11", log_config=None, log_level="warning"
    )
    server = uvicorn.Server(config)
    running = Uvicorn(server, asyncio.create_task(server.serve(sockets=[sock])))
    try:
        with anyio.fail_after(10):
            while not server.started:
                if running.task.done():
                    running.task.result()  # raise what stopped it
                    pytest.fail("uvicorn stopped before it started")
                await anyio.sleep(0.01)
        yield running
    finally:
        await running.stop()
        sock.close()


@pytest.fixture
async def remote_as(clock: FakeClock) -> AsyncIterator[RemoteAS]:
    """An authorization server issuing JWTs, over TCP on 127.0.0.1 (uvicorn, in-process)."""
    sock = _listening_socket()
    issuer = f"http://127.0.0.1:{sock.getsockname()[1]}/oauth2"
    settings = openid_settings(issuer=issuer, insecure_transport=True, access_token_format="jwt")
    server = AuthorizationServer(MemoryStorage(), settings, clock=clock)
    recorder = Recorder(Starlette(routes=[Mount("/oauth2", app=OAuth2App(server))]))
    try:
        async with uvicorn_in_this_loop(recorder, sock) as http:
            yield RemoteAS(server, issuer, recorder, http)
    finally:
        await server.close()


@asynccontextmanager
async def remote_api(
    remote: RemoteAS, keys: RemoteJWKS, fallback: Any = None
) -> AsyncIterator[tuple[httpx.AsyncClient, Called]]:
    """A resource server (in-process) checking JWTs against ``keys``; no revocation list."""
    introspector = JWTIntrospector(
        keys=keys, issuer=remote.issuer, audience=remote.issuer, revocations=None, fallback=fallback
    )
    route = Called()
    try:
        async with connect(BearerTokenMiddleware(route, introspector=introspector)) as client:
            yield client, route
    finally:
        await keys.aclose()


async def test_remote_jwts_are_checked_with_one_jwks_fetch_and_no_call_per_request(
    remote_as: RemoteAS,
) -> None:
    caller = await register_caller(remote_as.server)
    tokens = [await access_token(remote_as.server, caller, "read") for _ in range(3)]
    async with remote_api(remote_as, RemoteJWKS(remote_as.jwks_uri)) as (client, route):
        for _ in range(5):
            for token in tokens:
                assert (await client.get("/", headers=bearer(token))).status_code == 204
        assert_invalid_token(await client.get("/", headers=bearer(tokens[0][:-4] + "AAAA")))
    assert route.calls == 15
    assert remote_as.recorder.paths == ["/oauth2/jwks"]


async def test_a_new_kid_after_a_rotation_refetches_the_jwks_and_old_tokens_still_pass(
    remote_as: RemoteAS,
) -> None:
    server = remote_as.server
    caller = await register_caller(server)
    seen_before = await access_token(server, caller, "read")
    unseen_before = await access_token(server, caller, "read")
    keys = RemoteJWKS(remote_as.jwks_uri, min_refetch_interval=0.0)
    async with remote_api(remote_as, keys) as (client, _):
        assert (await client.get("/", headers=bearer(seen_before))).status_code == 204
        await server.rotate_signing_keys()
        after = await access_token(server, caller, "read")
        assert (
            jwt.get_unverified_header(after)["kid"] != jwt.get_unverified_header(seen_before)["kid"]
        )
        assert (await client.get("/", headers=bearer(after))).status_code == 204
        assert remote_as.recorder.paths == ["/oauth2/jwks", "/oauth2/jwks"]
        # Signed by the retired key, first seen now: verified against the refetched set.
        assert (await client.get("/", headers=bearer(unseen_before))).status_code == 204
        assert (await client.get("/", headers=bearer(seen_before))).status_code == 204
    assert remote_as.recorder.paths == ["/oauth2/jwks", "/oauth2/jwks"]


async def test_unknown_kids_do_not_refetch_the_jwks_more_than_the_minimum_interval(
    remote_as: RemoteAS,
) -> None:
    server = remote_as.server
    caller = await register_caller(server)
    token = await access_token(server, caller, "read")
    kid, key, _ = await server_key(server)
    forge = Forge(kid, key, {}, token, caller.client_id, server.clock)
    async with remote_api(remote_as, RemoteJWKS(remote_as.jwks_uri)) as (client, route):
        assert (await client.get("/", headers=bearer(token))).status_code == 204
        for n in range(5):
            junk = forge.sign(header=forge.header(kid=f"junk-{n}"))
            assert_invalid_token(await client.get("/", headers=bearer(junk)))
    assert remote_as.recorder.paths == ["/oauth2/jwks"]
    assert route.calls == 1


async def test_opaque_tokens_go_to_the_fallback_introspector(remote_as: RemoteAS) -> None:
    server = remote_as.server
    rs = await server.register_client(name="API", grant_types=[], is_resource_server=True)
    assert rs.client_secret is not None
    fallback = RemoteIntrospector(
        remote_as.issuer + "/introspect",
        client_id=rs.client.client_id,
        client_secret=rs.client_secret,
    )
    opaque_client = await server.register_client(
        name="Opaque",
        grant_types=["client_credentials"],
        scope=["read"],
        access_token_format="opaque",
    )
    opaque = await access_token(
        server,
        Credentials(opaque_client.client.client_id, opaque_client.client_secret),
        "read",
    )
    assert opaque.count(".") != 2
    try:
        async with remote_api(remote_as, RemoteJWKS(remote_as.jwks_uri), fallback) as (
            client,
            route,
        ):
            assert (await client.get("/", headers=bearer(opaque))).status_code == 204
            assert_invalid_token(await client.get("/", headers=bearer("not-a-real-token")))
    finally:
        await fallback.aclose()
    assert remote_as.recorder.paths == ["/oauth2/introspect", "/oauth2/introspect"]
    assert route.calls == 1


async def test_opaque_tokens_without_a_fallback_are_invalid(remote_as: RemoteAS) -> None:
    async with remote_api(remote_as, RemoteJWKS(remote_as.jwks_uri)) as (client, route):
        assert_invalid_token(await client.get("/", headers=bearer("an-opaque-token")))
    assert route.calls == 0
    assert remote_as.recorder.paths == []


async def test_keys_already_fetched_keep_working_while_the_jwks_endpoint_is_down(
    remote_as: RemoteAS, caplog: pytest.LogCaptureFixture
) -> None:
    server = remote_as.server
    caller = await register_caller(server)
    first = await access_token(server, caller, "read")
    keys = RemoteJWKS(remote_as.jwks_uri, refresh_interval=0.0, timeout=0.5)
    async with remote_api(remote_as, keys) as (client, route):
        assert (await client.get("/", headers=bearer(first))).status_code == 204
        await remote_as.http.stop()
        second = await access_token(server, caller, "read")
        assert (await client.get("/", headers=bearer(second))).status_code == 204
    assert route.calls == 2
    assert "failed, keeping the keys" in caplog.text  # it did try to refetch


async def test_an_unreachable_jwks_endpoint_with_no_keys_yet_is_503(
    remote_as: RemoteAS,
) -> None:
    caller = await register_caller(remote_as.server)
    token = await access_token(remote_as.server, caller, "read")
    keys = RemoteJWKS(f"http://127.0.0.1:{_closed_port()}/oauth2/jwks", timeout=0.5)
    async with remote_api(remote_as, keys) as (client, route):
        assert_unavailable(await client.get("/", headers=bearer(token)))
        assert_unavailable(await client.get("/", headers=bearer(token)))
    assert route.calls == 0


async def test_a_jwks_endpoint_answering_garbage_with_no_keys_yet_is_503(
    remote_as: RemoteAS,
) -> None:
    caller = await register_caller(remote_as.server)
    token = await access_token(remote_as.server, caller, "read")
    keys = RemoteJWKS(remote_as.issuer + "/no-such-endpoint", timeout=0.5)
    async with remote_api(remote_as, keys) as (client, route):
        assert_unavailable(await client.get("/", headers=bearer(token)))
    assert route.calls == 0

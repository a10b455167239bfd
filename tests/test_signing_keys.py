"""Signing keys through ``AuthorizationServer`` (``asgi_oauth/keys.py``): made in the
store on first use, private halves encrypted at rest, rotated without breaking a
token already issued (OpenID Connect Core §10.1.1), retired keys published until
what they signed has expired.

Every test runs on a ``MemoryStorage`` and on a SQLite file; "another server on
the same store" is a second ``AuthorizationServer`` on the same ``MemoryStorage``
object, or on its own ``SQLiteStorage`` handle on the same file, as a second
process would be. What the server signed is checked with PyJWT (``decode``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

import asgi_oauth.keys
from asgi_oauth import AuthorizationServer, KeyEncryptionError, OAuthRequest, Settings
from asgi_oauth.app import OAuth2App
from asgi_oauth.authorization import AuthorizationRedirectError
from asgi_oauth.keys import KeyEncryption
from asgi_oauth.models import SigningKey
from asgi_oauth.storage import MemoryStorage, SQLiteStorage, Storage
from asgi_oauth.types import SIGNING_ALGORITHMS, SigningAlgorithm

from .conftest import REDIRECT_URI, Credentials, FakeClock
from .helpers import basic_header
from .openid_helpers import KEK, decode, openid_settings

pytestmark = pytest.mark.anyio

OTHER_KEK = "another-key-encryption-key-fedcba987654321"
NONCE = "n-0S6_WzA2Mj"


@dataclass
class Store:
    """One store that several servers open: a shared ``MemoryStorage``, or a SQLite file."""

    memory: MemoryStorage | None = None
    path: Path | None = None

    def open(self) -> Storage:
        if self.memory is not None:
            return self.memory
        assert self.path is not None
        return SQLiteStorage(self.path)

    async def rows(self) -> list[dict[str, Any]]:
        """The signing keys as stored, expired ones too: the file's own rows for SQLite."""
        if self.memory is not None:
            # Nothing has expired at the epoch: every key still stored.
            keys = await self.memory.list_signing_keys(now=0)
            return [
                {"kid": k.kid, "public_jwk": k.public_jwk, "private_jwk": k.private_jwk}
                for k in keys
            ]
        assert self.path is not None
        with sqlite3.connect(self.path) as conn:
            conn.row_factory = sqlite3.Row
            found = conn.execute("SELECT kid, public_jwk, private_jwk FROM signing_keys")
            rows = [dict(row) for row in found]
        conn.close()
        return rows

    def file_bytes(self) -> bytes:
        """Everything SQLite wrote to disk (the database and its write-ahead log)."""
        assert self.path is not None
        return b"".join(p.read_bytes() for p in self.path.parent.glob(self.path.name + "*"))


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return Store(memory=MemoryStorage())
    return Store(path=tmp_path / "oauth.db")


@pytest.fixture
def clock() -> FakeClock:
    """Now, so that PyJWT (which reads the real clock) accepts what is still valid."""
    return FakeClock(float(int(time.time())))


MakeServer = Callable[..., AuthorizationServer]


@pytest.fixture
async def make_server(store: Store, clock: FakeClock) -> AsyncIterator[MakeServer]:
    """Servers on ``store`` sharing ``clock``, closed at the end."""
    made: list[AuthorizationServer] = []

    def make(settings: Settings | None = None) -> AuthorizationServer:
        server = AuthorizationServer(store.open(), settings or openid_settings(), clock=clock)
        made.append(server)
        return server

    yield make
    for server in made:
        await server.close()


async def listed(server: AuthorizationServer) -> list[SigningKey]:
    return await server.storage.list_signing_keys(now=server.now())


def kids(jwks: object) -> set[str]:
    assert isinstance(jwks, dict)
    return {key["kid"] for key in jwks["keys"]}


def kid_of(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


async def register_rp(server: AuthorizationServer, alg: SigningAlgorithm = "RS256") -> Credentials:
    registered = await server.register_client(
        name=f"RP {alg}",
        redirect_uris=[REDIRECT_URI],
        scope=["openid", "profile"],
        id_token_signed_response_alg=alg,
    )
    return Credentials(registered.client.client_id, registered.client_secret)


async def id_token(server: AuthorizationServer, rp: Credentials) -> str:
    """An ID token for alice (made on first call) from a code exchanged at ``server``."""
    user = await server.storage.get_user("alice")
    if user is None:
        user = await server.create_user("alice", "correct horse battery staple")
    code = await server.create_authorization_code(
        client_id=rp.client_id,
        subject=user.user_id,
        redirect_uri=REDIRECT_URI,
        scope="openid",
        nonce=NONCE,
    )
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    issued = await server.token(OAuthRequest(form=form, authorization=basic_header(*rp.basic)))
    assert issued.id_token is not None
    return issued.id_token


# -- first use -------------------------------------------------------------------------


async def test_first_use_makes_exactly_one_active_key_per_algorithm(
    make_server: MakeServer, clock: FakeClock
) -> None:
    server = make_server()
    assert await listed(server) == []  # nothing is made before it is needed
    documents = await asyncio.gather(*(server.jwks() for _ in range(5)))
    assert all(d == documents[0] for d in documents)
    keys = await listed(server)
    assert sorted(k.alg for k in keys) == sorted(SIGNING_ALGORITHMS)
    assert all(k.is_active and k.expires_at is None for k in keys)
    assert all(k.created_at == int(clock.now) for k in keys)
    assert kids(documents[0]) == {k.kid for k in keys}
    # Using the keys again makes none.
    await id_token(server, await register_rp(server))
    assert await listed(server) == keys


async def test_two_servers_starting_together_agree_on_the_keys(make_server: MakeServer) -> None:
    first, second, third = make_server(), make_server(), make_server()
    documents = await asyncio.gather(first.jwks(), second.jwks(), third.jwks())
    assert documents[0] == documents[1] == documents[2]
    keys = await listed(first)
    assert len(keys) == len(SIGNING_ALGORITHMS) and all(k.is_active for k in keys)
    # And each signs with the one active key of its algorithm, which the others verify.
    rp = await register_rp(first)
    for server in (first, second, third):
        token = await id_token(server, rp)
        (active,) = [k for k in keys if k.alg == "RS256"]
        assert kid_of(token) == active.kid
        decode(token, dict(documents[0]), audience=rp.client_id)


async def test_private_keys_are_stored_encrypted(make_server: MakeServer, store: Store) -> None:
    server = make_server()
    published = await server.jwks()
    rows = await store.rows()
    assert {row["kid"] for row in rows} == kids(published)
    encryption = KeyEncryption(KEK)
    secrets_of_keys: list[str] = []
    for row in rows:
        public = json.loads(row["public_jwk"])
        assert "d" not in public
        stored: str = row["private_jwk"]
        assert stored.startswith("v1.")
        assert '"d"' not in stored and '"kty"' not in stored
        with pytest.raises(json.JSONDecodeError):
            json.loads(stored)
        # Only the key-encryption key opens it, and only under its own kid.
        private = json.loads(encryption.decrypt(stored, kid=row["kid"]))
        assert private["kty"] == public["kty"] and isinstance(private["d"], str)
        secrets_of_keys.append(private["d"])
        with pytest.raises(KeyEncryptionError):
            KeyEncryption(OTHER_KEK).decrypt(stored, kid=row["kid"])
        other_kid = next(r["kid"] for r in rows if r["kid"] != row["kid"])
        with pytest.raises(KeyEncryptionError):
            encryption.decrypt(stored, kid=other_kid)
    if store.path is not None:
        on_disk = store.file_bytes()
        for secret in secrets_of_keys:
            assert secret.encode() not in on_disk
        assert b'"d"' not in on_disk


async def test_a_server_with_another_key_encryption_key_cannot_sign(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    first = make_server()
    rp = await register_rp(first)
    await id_token(first, rp)  # the keys exist, under KEK
    wrong = make_server(openid_settings(key_encryption_key=OTHER_KEK))
    with pytest.raises(KeyEncryptionError, match="key_encryption_key"):
        await wrong.jwks()
    with pytest.raises(KeyEncryptionError, match="cannot be decrypted"):
        await id_token(wrong, rp)
    # Nothing was replaced: the store still has the keys made under KEK.
    assert len(await listed(first)) == len(SIGNING_ALGORITHMS)

    # Over HTTP: a JSON error, the reason in the log, no traceback to the client.
    host = Starlette(routes=[Mount("/oauth2", app=OAuth2App(wrong))])
    transport = httpx.ASGITransport(app=host)
    caplog.set_level(logging.ERROR, logger="asgi_oauth")
    alice = await wrong.storage.get_user("alice")
    assert alice is not None
    code = await wrong.create_authorization_code(
        client_id=rp.client_id, subject=alice.user_id, redirect_uri=REDIRECT_URI, scope="openid"
    )
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    async with httpx.AsyncClient(transport=transport, base_url="https://as.example") as http:
        jwks = await http.get("/oauth2/jwks")
        token = await http.post("/oauth2/token", data=form, auth=rp.basic)
    for response in (jwks, token):
        assert response.status_code == 500, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"] == "server_error"
        assert "Traceback" not in response.text and "decrypt" not in response.text
    assert "cannot be decrypted" in caplog.text


# -- rotation --------------------------------------------------------------------------


@pytest.mark.parametrize("alg", SIGNING_ALGORITHMS)
async def test_after_a_rotation_the_new_key_signs_and_the_old_still_verifies(
    make_server: MakeServer, alg: SigningAlgorithm
) -> None:
    server = make_server()
    rp = await register_rp(server, alg)
    before = await id_token(server, rp)
    old_kid = kid_of(before)
    assert jwt.get_unverified_header(before)["alg"] == alg

    rotated = await server.rotate_signing_keys()
    assert sorted(k.alg for k in rotated) == sorted(SIGNING_ALGORITHMS)
    (new,) = [k for k in rotated if k.alg == alg]
    jwks = dict(await server.jwks())
    assert kids(jwks) == {k.kid for k in await listed(server)}
    assert {old_kid, new.kid} <= kids(jwks) and len(kids(jwks)) == 2 * len(SIGNING_ALGORITHMS)

    after = await id_token(server, rp)
    assert kid_of(after) == new.kid != old_kid
    assert jwt.get_unverified_header(after)["alg"] == alg
    # A relying party that fetches the JWK Set now verifies both.
    for token in (before, after):
        claims = decode(token, jwks, audience=rp.client_id)
        assert claims["nonce"] == NONCE


@pytest.mark.parametrize(("id_token_lifetime", "access_token_lifetime"), [(3600, 600), (600, 7200)])
async def test_a_retired_key_is_published_for_the_longest_token_lifetime_and_clock_skew(
    make_server: MakeServer, clock: FakeClock, id_token_lifetime: int, access_token_lifetime: int
) -> None:
    settings = openid_settings(
        id_token_lifetime=id_token_lifetime,
        access_token_lifetime=access_token_lifetime,
        clock_skew=30,
    )
    server = make_server(settings)
    first = await server.jwks()
    await server.rotate_signing_keys()
    retired = [k for k in await listed(server) if not k.is_active]
    assert {k.kid for k in retired} == kids(first)
    keep = max(id_token_lifetime, access_token_lifetime) + 30 + int(asgi_oauth.keys.RELOAD_INTERVAL)
    for key in retired:
        assert key.retired_at == server.now()
        assert key.expires_at == server.now() + keep


async def test_a_retired_key_leaves_the_jwks_when_it_expires_and_purge_deletes_it(
    make_server: MakeServer, clock: FakeClock, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A running server rereads its keys every minute of real time; here, at every use.
    monkeypatch.setattr(asgi_oauth.keys, "RELOAD_INTERVAL", 0.0)
    settings = openid_settings()
    server = make_server(settings)
    old = kids(await server.jwks())
    rotated = await server.rotate_signing_keys()
    new = {k.kid for k in rotated}
    keep = (
        max(settings.id_token_lifetime, settings.access_token_lifetime)
        + settings.clock_skew
        + int(asgi_oauth.keys.RELOAD_INTERVAL)
    )

    clock.advance(keep - 1)
    assert kids(await server.jwks()) == old | new
    assert await server.purge_expired() == 0

    clock.advance(1)
    assert kids(await server.jwks()) == new
    assert kids(await make_server().jwks()) == new  # a server starting now agrees
    assert {
        row["kid"] for row in (await store.rows())
    } == old | new  # gone from view, not yet deleted
    assert await server.purge_expired() == len(SIGNING_ALGORITHMS)
    assert {row["kid"] for row in await store.rows()} == new
    assert {k.kid for k in await listed(server)} == new


async def test_an_id_token_from_a_rotated_server_is_a_valid_hint_on_another(
    make_server: MakeServer,
) -> None:
    """Core §3.1.2.1 ``id_token_hint``: B has never seen A's new key; an unknown kid makes
    it reread the store instead of refusing."""
    a, b = make_server(), make_server()
    rp = await register_rp(a)
    before = kids(await b.jwks())  # B has loaded the keys of the time
    await a.rotate_signing_keys()
    hint = await id_token(a, rp)
    assert kid_of(hint) not in before
    assert b.keys is not None and kid_of(hint) not in kids(dict(b.keys.jwks()))

    params = {
        "client_id": rp.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "openid",
        "id_token_hint": hint,
    }
    request = await b.authorization_request(params)
    alice = await b.storage.get_user("alice")
    assert alice is not None and request.hint_subject == alice.user_id
    assert kid_of(hint) in kids(dict(b.keys.jwks()))


async def test_a_hint_signed_by_no_key_of_ours_is_refused(make_server: MakeServer) -> None:
    server = make_server()
    rp = await register_rp(server)
    genuine = await id_token(server, rp)
    header, claims, _ = genuine.split(".")
    forged_header = jwt.utils.base64url_encode(
        json.dumps({"alg": "RS256", "kid": "no-such-kid", "typ": "JWT"}).encode()
    ).decode()
    for hint in (f"{forged_header}.{claims}.{_}", f"{header}.{claims}.AAAA", "junk"):
        params = {
            "client_id": rp.client_id,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "scope": "openid",
            "id_token_hint": hint,
        }
        with pytest.raises(AuthorizationRedirectError) as refused:
            await server.authorization_request(params)
        assert refused.value.error.error == "invalid_request"

"""EdDSA over Ed25519 (RFC 8037) beside RS256 and ES256: ID tokens, JWT access tokens
(RFC 9068), the JWK Set and discovery, the middleware, rotation, stores whose keys
were made before EdDSA existed, and the command line.

What the server signs is checked with PyJWT against the published JWK Set, not with
the server's own JOSE code; forgeries are signed with another Ed25519 key.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc.jwk import ECKey, KeySet, OKPKey
from starlette.applications import Starlette
from starlette.routing import Mount

from asgi_oauth import AuthorizationServer, OAuthRequest, Settings
from asgi_oauth.app import OAuth2App
from asgi_oauth.federation.id_token import verify_id_token
from asgi_oauth.keys import KeyEncryption, PublicKeys, generate_signing_key
from asgi_oauth.middleware import (
    BearerTokenMiddleware,
    JWTIntrospector,
    LocalIntrospector,
    RemoteJWKS,
)
from asgi_oauth.storage import MemoryStorage, SQLiteStorage, Storage

from .conftest import ISSUER, REDIRECT_URI, Credentials, FakeClock
from .helpers import basic_header
from .middleware.test_bearer import Called, bearer, connect
from .middleware.test_jwt import assert_invalid_token, uvicorn_in_this_loop
from .openid_helpers import KEK, decode, fetch_jwks, openid_settings
from .test_cli import clean_env
from .test_cli_commands import Cli

pytestmark = pytest.mark.anyio

NONCE = "n-0S6_WzA2Mj"


@pytest.fixture
def clock() -> FakeClock:
    """The wall clock, so PyJWT's own exp and iat checks apply."""
    return FakeClock(float(int(time.time())))


@pytest.fixture
def settings() -> Settings:
    """JWT access tokens signed with EdDSA; open registration for relying parties."""
    return openid_settings(
        access_token_format="jwt",
        access_token_signing_alg="EdDSA",
        client_registration="open",
        scopes_supported=("openid", "read"),
    )


def sha512_half(value: str) -> str:
    """at_hash / c_hash for an Ed25519-signed ID token: the left half of SHA-512."""
    digest = hashlib.sha512(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:32]).rstrip(b"=").decode()


def eddsa_kid(jwks: dict[str, Any]) -> str:
    (key,) = [k for k in jwks["keys"] if k["alg"] == "EdDSA"]
    kid: str = key["kid"]
    return kid


async def client_token(http: httpx.AsyncClient, creds: Credentials) -> str:
    form = {"grant_type": "client_credentials", "scope": "read"}
    response = await http.post("/oauth2/token", data=form, auth=creds.basic)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def register_service(server: AuthorizationServer) -> Credentials:
    registered = await server.register_client(
        name="Service", grant_types=["client_credentials"], scope=["read"]
    )
    return Credentials(registered.client.client_id, registered.client_secret)


def forged(token: str, kid: str) -> str:
    """``token``'s header and claims, naming ``kid``, signed by another Ed25519 key."""
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    other = Ed25519PrivateKey.generate()
    return jwt.encode(claims, other, algorithm="EdDSA", headers={**header, "kid": kid})


# -- what is published ------------------------------------------------------------------


async def test_discovery_lists_eddsa_and_the_jwks_publishes_one_ed25519_public_key(
    http: httpx.AsyncClient,
) -> None:
    openid = (await http.get("/oauth2/.well-known/openid-configuration")).json()
    assert openid["id_token_signing_alg_values_supported"] == ["RS256", "ES256", "EdDSA"]
    jwks = await fetch_jwks(http)
    (okp,) = [k for k in jwks["keys"] if k["alg"] == "EdDSA"]
    # RFC 8037 §2: the public key is x alone; d is never published.
    assert set(okp) == {"kty", "crv", "x", "kid", "alg", "use"}
    assert (okp["kty"], okp["crv"], okp["use"]) == ("OKP", "Ed25519", "sig")
    assert okp["kid"] == OKPKey.import_key(okp).thumbprint()  # RFC 7638, as the others


# -- ID tokens --------------------------------------------------------------------------


async def test_a_client_registered_with_eddsa_gets_eddsa_id_tokens_that_pyjwt_verifies(
    http: httpx.AsyncClient, server: AuthorizationServer, clock: FakeClock
) -> None:
    document = {
        "redirect_uris": [REDIRECT_URI],
        "scope": "openid",
        "id_token_signed_response_alg": "EdDSA",
    }
    response = await http.post("/oauth2/register", json=document)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id_token_signed_response_alg"] == "EdDSA"
    rp = Credentials(body["client_id"], body["client_secret"])

    user = await server.create_user("alice", "correct horse battery staple")
    code = await server.create_authorization_code(
        client_id=rp.client_id,
        subject=user.user_id,
        redirect_uri=REDIRECT_URI,
        scope="openid",
        nonce=NONCE,
    )
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    response = await http.post("/oauth2/token", data=form, auth=rp.basic)
    assert response.status_code == 200, response.text
    tokens = response.json()
    header = jwt.get_unverified_header(tokens["id_token"])
    jwks = await fetch_jwks(http)
    assert (header["alg"], header["typ"], header["kid"]) == ("EdDSA", "JWT", eddsa_kid(jwks))
    claims = decode(tokens["id_token"], jwks, audience=rp.client_id)
    assert claims["sub"] == user.user_id and claims["nonce"] == NONCE
    assert claims["at_hash"] == sha512_half(tokens["access_token"])


async def test_registration_refuses_an_eddsa_curve_it_does_not_sign_with(
    http: httpx.AsyncClient,
) -> None:
    for alg in ("Ed448", "Ed25519", "eddsa"):
        document = {"redirect_uris": [REDIRECT_URI], "id_token_signed_response_alg": alg}
        response = await http.post("/oauth2/register", json=document)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_client_metadata"


# -- JWT access tokens ------------------------------------------------------------------


async def test_an_eddsa_jwt_access_token_verifies_with_pyjwt(
    http: httpx.AsyncClient, server: AuthorizationServer
) -> None:
    creds = await register_service(server)
    token = await client_token(http, creds)
    header = jwt.get_unverified_header(token)
    jwks = await fetch_jwks(http)
    assert (header["alg"], header["typ"], header["kid"]) == ("EdDSA", "at+jwt", eddsa_kid(jwks))
    claims = decode(token, jwks, audience=ISSUER)
    assert claims["client_id"] == creds.client_id and claims["scope"] == "read"


async def test_the_local_introspector_accepts_eddsa_and_refuses_another_ed25519_key(
    http: httpx.AsyncClient, server: AuthorizationServer
) -> None:
    creds = await register_service(server)
    token = await client_token(http, creds)
    fake = forged(token, jwt.get_unverified_header(token)["kid"])
    route = Called()
    introspector = LocalIntrospector(server)
    async with connect(BearerTokenMiddleware(route, introspector=introspector)) as api:
        assert (await api.get("/", headers=bearer(token))).status_code == 204
        assert_invalid_token(await api.get("/", headers=bearer(fake)))
    assert route.calls == 1


async def test_a_resource_server_elsewhere_checks_eddsa_tokens_against_the_jwks(
    clock: FakeClock,
) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    issuer = f"http://127.0.0.1:{sock.getsockname()[1]}/oauth2"
    settings = openid_settings(
        issuer=issuer,
        insecure_transport=True,
        access_token_format="jwt",
        access_token_signing_alg="EdDSA",
    )
    server = AuthorizationServer(MemoryStorage(), settings, clock=clock)
    app = Starlette(routes=[Mount("/oauth2", app=OAuth2App(server))])
    keys = RemoteJWKS(issuer + "/jwks")
    introspector = JWTIntrospector(keys=keys, issuer=issuer, audience=issuer, revocations=None)
    route = Called()
    try:
        async with uvicorn_in_this_loop(app, sock):
            creds = await register_service(server)
            form = {"grant_type": "client_credentials", "scope": "read"}
            auth = basic_header(*creds.basic)
            token = (await server.token(OAuthRequest(form=form, authorization=auth))).access_token
            assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
            fake = forged(token, jwt.get_unverified_header(token)["kid"])
            async with connect(BearerTokenMiddleware(route, introspector=introspector)) as api:
                assert (await api.get("/", headers=bearer(token))).status_code == 204
                assert_invalid_token(await api.get("/", headers=bearer(fake)))
    finally:
        await keys.aclose()
        await server.close()
    assert route.calls == 1


def test_a_jwks_key_is_trusted_for_eddsa_only_on_ed25519() -> None:
    """RFC 8037 allows Ed448 under "EdDSA" too; this server signs with Ed25519 only,
    and a key whose type does not fit its ``alg`` is never used."""
    ed25519 = OKPKey.generate_key("Ed25519").as_dict(private=False)
    ed448 = OKPKey.generate_key("Ed448").as_dict(private=False)
    p256 = ECKey.generate_key("P-256").as_dict(private=False)
    document = {
        "keys": [
            {**ed25519, "kid": "good", "alg": "EdDSA"},
            {**ed448, "kid": "ed448", "alg": "EdDSA"},
            {**p256, "kid": "ec-as-eddsa", "alg": "EdDSA"},
            {**ed25519, "kid": "okp-as-es256", "alg": "ES256"},
        ]
    }
    keys = PublicKeys.from_jwks(document)
    assert [kid for kid in ("good", "ed448", "ec-as-eddsa", "okp-as-es256") if kid in keys] == [
        "good"
    ]


def test_an_upstream_providers_eddsa_id_token_is_accepted() -> None:
    """Federation: a provider that signs its ID tokens with EdDSA (RFC 8037)."""
    now = int(time.time())
    provider = OKPKey.generate_key("Ed25519", parameters={"kid": "op-1", "use": "sig"})
    claims: dict[str, object] = {"iss": "https://op.example", "aud": "us", "sub": "s"}
    claims |= {"nonce": NONCE, "iat": now, "exp": now + 60}
    signing = jwt.PyJWK(provider.as_dict(private=True)).key
    token = jwt.encode(claims, signing, algorithm="EdDSA", headers={"kid": "op-1"})
    keys = KeySet.import_key_set({"keys": [provider.as_dict(private=False)]})
    verified = verify_id_token(
        token,
        keys,
        issuer="https://op.example",
        client_id="us",
        nonce=NONCE,
        algorithms=["EdDSA"],
        now=now,
        leeway=0,
    )
    assert verified["sub"] == "s"


# -- rotation and existing stores -------------------------------------------------------


async def test_rotation_keeps_the_old_eddsa_key_published_as_the_others(
    http: httpx.AsyncClient, server: AuthorizationServer
) -> None:
    creds = await register_service(server)
    before = await client_token(http, creds)
    old = await fetch_jwks(http)
    rotated = await server.rotate_signing_keys()
    assert sorted(k.alg for k in rotated) == ["ES256", "EdDSA", "RS256"]
    jwks = await fetch_jwks(http)
    published = {k["kid"] for k in jwks["keys"]}
    # Every retired key stays published beside its successor, EdDSA's as the others'.
    assert {k["kid"] for k in old["keys"]} | {k.kid for k in rotated} == published
    after = await client_token(http, creds)
    new_kid = next(k.kid for k in rotated if k.alg == "EdDSA")
    assert jwt.get_unverified_header(after)["kid"] == new_kid
    assert eddsa_kid(old) != new_kid
    for token in (before, after):
        assert decode(token, jwks, audience=ISSUER)["client_id"] == creds.client_id


async def test_a_store_whose_keys_predate_eddsa_gets_an_eddsa_key_when_one_is_needed(
    storage: Storage, clock: FakeClock
) -> None:
    """A store with the RS256 and ES256 keys of an earlier version, on each backend."""
    now = int(clock())
    encryption = KeyEncryption(KEK)
    for alg in ("RS256", "ES256"):
        key = generate_signing_key(alg, encryption, now=now)
        assert await storage.add_signing_key(key, retire_active_until=None, now=now)
    earlier = {k.kid for k in await storage.list_signing_keys(now=now)}

    settings = openid_settings(access_token_format="jwt", access_token_signing_alg="EdDSA")
    server = AuthorizationServer(storage, settings, clock=clock)
    creds = await register_service(server)
    form = {"grant_type": "client_credentials", "scope": "read"}
    auth = basic_header(*creds.basic)
    token = (await server.token(OAuthRequest(form=form, authorization=auth))).access_token

    keys = await storage.list_signing_keys(now=now)
    (eddsa,) = [k for k in keys if k.alg == "EdDSA"]
    assert eddsa.is_active and {k.kid for k in keys} == earlier | {eddsa.kid}
    jwks = dict(await server.jwks())
    assert jwt.get_unverified_header(token)["kid"] == eddsa.kid
    assert decode(token, jwks, audience=ISSUER)["client_id"] == creds.client_id


# -- the command line -------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path, tmp_path / "oauth.db")

    async def migrate() -> None:
        storage = SQLiteStorage(cli.db)
        await storage.migrate()
        await storage.close()

    asyncio.run(migrate())
    return cli


@asynccontextmanager
async def server_on(db: Path) -> AsyncIterator[AuthorizationServer]:
    settings = Settings(issuer=ISSUER, key_encryption_key=KEK)
    server = AuthorizationServer(SQLiteStorage(db), settings)
    try:
        yield server
    finally:
        await server.close()


def test_the_cli_rotates_and_lists_the_eddsa_key_and_creates_eddsa_clients(cli: Cli) -> None:
    env = clean_env(ASGI_OAUTH_KEY_ENCRYPTION_KEY=KEK)
    rotated = cli("keys", "rotate", "--alg", "EdDSA", env=env, json=True)
    assert rotated.code == 0, rotated
    [new] = rotated.json()
    assert new["alg"] == "EdDSA"
    listing = cli.ok("keys", "list")
    assert any(
        line.split()[:3] == [new["kid"], "EdDSA", "signing"] for line in listing.out.splitlines()
    )
    # The first rotation of a store also makes the first keys of the other algorithms.
    listed = {k["alg"]: k["kid"] for k in cli.json("keys", "list")}
    assert listed.keys() == {"RS256", "ES256", "EdDSA"} and listed["EdDSA"] == new["kid"]

    created = cli.create_client(
        "RP", "--redirect-uri", REDIRECT_URI, "--grant-type", "authorization_code",
        "--scope", "openid", "--id-token-alg", "EdDSA",
    )  # fmt: skip
    assert created["id_token_signed_response_alg"] == "EdDSA"

    async def id_token() -> str:
        async with server_on(cli.db) as server:
            user = await server.create_user("alice", "correct horse battery staple")
            code = await server.create_authorization_code(
                client_id=created["client_id"],
                subject=user.user_id,
                redirect_uri=REDIRECT_URI,
                scope="openid",
            )
            form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
            auth = basic_header(created["client_id"], created["client_secret"])
            issued = await server.token(OAuthRequest(form=form, authorization=auth))
            assert issued.id_token is not None
            return issued.id_token

    header = jwt.get_unverified_header(asyncio.run(id_token()))
    assert (header["alg"], header["kid"]) == ("EdDSA", new["kid"])

"""DPoP at the token endpoint (RFC 9449 §5, §6, §8, §10), over HTTP, with proofs made by
an independent JOSE implementation: PyJWT with ``cryptography`` keys (ES256, RS256).

§5: a token request with a valid proof gets a ``DPoP`` token bound to the proof's
key (``cnf.jkt``, §6, a thumbprint computed here as RFC 7638 §3 says); a public
client's refresh token is bound too, a confidential client's is not. §4.3: every
bad proof is ``invalid_dpop_proof`` and issues nothing. §8: server nonces.
§10: ``dpop_jkt`` at the authorization endpoint binds the code. Last, a client
written here runs code + PKCE + DPoP against a real uvicorn server and calls a
protected route through ``BearerTokenMiddleware`` (§7).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import jwt
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, Router

from asgi_oauth import AuthorizationServer, Settings, User
from asgi_oauth.app import OAuth2App
from asgi_oauth.middleware import BearerTokenMiddleware, BearerUser
from asgi_oauth.storage import MemoryStorage

from ..browser_helpers import CHALLENGE, VERIFIER
from ..conftest import ISSUER, REDIRECT_URI, Credentials, FakeClock
from ..dpop_helpers import (
    FORM,
    PASSWORD,
    TOKEN_URL,
    USERNAME,
    DPoPKey,
    LedgerStorage,
    authorization_code,
    authorize_url,
    b64,
    error_of,
    introspect,
    query_of,
    thumbprint,
    token_request,
    unsigned,
)
from ..openid_helpers import KEK, decode, fetch_jwks
from ..user_agent import Person

pytestmark = pytest.mark.anyio

LEEWAY = Settings(issuer=ISSUER).clock_skew
JWT_SETTINGS = Settings(issuer=ISSUER, key_encryption_key=KEK, access_token_format="jwt")


@pytest.fixture
def now(clock: FakeClock) -> int:
    return int(clock.now)


@pytest.fixture(scope="module")
def keys() -> dict[str, DPoPKey]:
    """One key of each kind, and a second P-256 key (another client's, or a new one)."""
    return {"ES256": DPoPKey("ES256"), "RS256": DPoPKey("RS256"), "other": DPoPKey("ES256")}


@pytest.fixture
def holder(keys: dict[str, DPoPKey]) -> DPoPKey:
    return keys["ES256"]


@pytest.fixture
def other(keys: dict[str, DPoPKey]) -> DPoPKey:
    return keys["other"]


def code_request(client: Credentials, **params: str) -> dict[str, str]:
    """A code request with S256 PKCE (which the public client needs, and the other may use)."""
    return {
        "client_id": client.client_id,
        "response_type": "code",
        "scope": "read",
        "state": "xyz",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        **params,
    }


async def redeem(
    http: httpx.AsyncClient, client: Credentials, code: str, dpop: str | None = None
) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": VERIFIER}
    return await token_request(http, client, form, dpop=dpop)


async def client_credentials(
    http: httpx.AsyncClient, client: Credentials, dpop: str | None = None
) -> httpx.Response:
    form = {"grant_type": "client_credentials", "scope": "read"}
    return await token_request(http, client, form, dpop=dpop)


async def refresh(
    http: httpx.AsyncClient, client: Credentials, refresh_token: str, dpop: str | None = None
) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return await token_request(http, client, form, dpop=dpop)


def issued(response: httpx.Response, token_type: str) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["token_type"] == token_type, body
    return body


async def assert_bound(
    http: httpx.AsyncClient, resource_server: Credentials, token: str, jkt: str | None
) -> None:
    """Introspection (RFC 9449 §6.2) says the token is bound to ``jkt``, or is a bearer token."""
    described = await introspect(http, resource_server, token)
    assert described["active"] is True, described
    if jkt is None:
        assert described["token_type"] == "Bearer"
        assert "cnf" not in described
    else:
        assert described["token_type"] == "DPoP"
        assert described["cnf"] == {"jkt": jkt}


# -- §5, §6: binding ------------------------------------------------------------------------------


def test_the_thumbprint_here_is_rfc_7638s() -> None:
    """The thumbprint function of these tests gives RFC 7638 §3.1's own example."""
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSo"
        "c_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0"
        "_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI"
        "4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
@pytest.mark.parametrize("client_kind", ["confidential", "public"])
async def test_a_code_redeemed_with_a_proof_gives_a_bound_token(
    http: httpx.AsyncClient,
    confidential: Credentials,
    public: Credentials,
    resource_server: Credentials,
    keys: dict[str, DPoPKey],
    now: int,
    alice: User,
    alg: str,
    client_kind: str,
) -> None:
    client = confidential if client_kind == "confidential" else public
    key = keys[alg]
    code = await authorization_code(http, code_request(client))
    tokens = issued(await redeem(http, client, code, key.proof(iat=now)), "DPoP")
    await assert_bound(http, resource_server, tokens["access_token"], key.jkt)


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
async def test_client_credentials_with_a_proof_gives_a_bound_token(
    http: httpx.AsyncClient,
    confidential: Credentials,
    resource_server: Credentials,
    keys: dict[str, DPoPKey],
    now: int,
    alg: str,
) -> None:
    key = keys[alg]
    tokens = issued(await client_credentials(http, confidential, key.proof(iat=now)), "DPoP")
    assert "refresh_token" not in tokens
    await assert_bound(http, resource_server, tokens["access_token"], key.jkt)


@pytest.mark.parametrize("settings", [JWT_SETTINGS], ids=["jwt"])
async def test_a_bound_jwt_access_token_carries_the_thumbprint(
    http: httpx.AsyncClient, confidential: Credentials, holder: DPoPKey, now: int
) -> None:
    tokens = issued(await client_credentials(http, confidential, holder.proof(iat=now)), "DPoP")
    claims = decode(
        tokens["access_token"], await fetch_jwks(http), audience=ISSUER, verify_exp=False
    )
    assert claims["cnf"] == {"jkt": holder.jkt}


@pytest.mark.parametrize("settings", [JWT_SETTINGS], ids=["jwt"])
async def test_an_unbound_jwt_access_token_has_no_confirmation(
    http: httpx.AsyncClient, confidential: Credentials
) -> None:
    tokens = issued(await client_credentials(http, confidential), "Bearer")
    claims = decode(
        tokens["access_token"], await fetch_jwks(http), audience=ISSUER, verify_exp=False
    )
    assert "cnf" not in claims


async def test_without_a_proof_the_tokens_are_bearer_tokens(
    http: httpx.AsyncClient,
    public: Credentials,
    resource_server: Credentials,
    other: DPoPKey,
    now: int,
    alice: User,
) -> None:
    code = await authorization_code(http, code_request(public))
    tokens = issued(await redeem(http, public, code), "Bearer")
    await assert_bound(http, resource_server, tokens["access_token"], None)
    # The refresh token is not bound either: a proof of any key may come with it.
    refreshed = issued(await refresh(http, public, tokens["refresh_token"]), "Bearer")
    bound = issued(
        await refresh(http, public, refreshed["refresh_token"], other.proof(iat=now)), "DPoP"
    )
    await assert_bound(http, resource_server, bound["access_token"], other.jkt)


async def test_a_public_clients_refresh_token_is_bound_to_its_key(
    http: httpx.AsyncClient,
    ledger: LedgerStorage,
    public: Credentials,
    resource_server: Credentials,
    holder: DPoPKey,
    other: DPoPKey,
    now: int,
    alice: User,
) -> None:
    code = await authorization_code(http, code_request(public))
    tokens = issued(await redeem(http, public, code, holder.proof(iat=now)), "DPoP")
    saved = len(ledger.tokens)

    without = await refresh(http, public, tokens["refresh_token"])
    assert error_of(without) == "invalid_dpop_proof"
    with_another = await refresh(http, public, tokens["refresh_token"], other.proof(iat=now))
    assert error_of(with_another) == "invalid_dpop_proof"
    assert len(ledger.tokens) == saved

    refreshed = issued(
        await refresh(http, public, tokens["refresh_token"], holder.proof(iat=now)), "DPoP"
    )
    await assert_bound(http, resource_server, refreshed["access_token"], holder.jkt)
    # The successor stays bound to the same key.
    again = await refresh(http, public, refreshed["refresh_token"], other.proof(iat=now))
    assert error_of(again) == "invalid_dpop_proof"


async def test_a_confidential_clients_refresh_token_is_not_bound(
    http: httpx.AsyncClient,
    confidential: Credentials,
    resource_server: Credentials,
    holder: DPoPKey,
    other: DPoPKey,
    now: int,
    alice: User,
) -> None:
    code = await authorization_code(http, code_request(confidential))
    tokens = issued(await redeem(http, confidential, code, holder.proof(iat=now)), "DPoP")

    # Its secret protects the refresh token; the new access token follows the new key.
    moved = issued(
        await refresh(http, confidential, tokens["refresh_token"], other.proof(iat=now)), "DPoP"
    )
    await assert_bound(http, resource_server, moved["access_token"], other.jkt)
    plain = issued(await refresh(http, confidential, moved["refresh_token"]), "Bearer")
    await assert_bound(http, resource_server, plain["access_token"], None)


async def test_a_client_whose_tokens_are_always_bound_must_send_a_proof(
    http: httpx.AsyncClient,
    server: AuthorizationServer,
    ledger: LedgerStorage,
    holder: DPoPKey,
    now: int,
) -> None:
    registered = await server.register_client(
        name="Bound",
        grant_types=["client_credentials"],
        scope=["read"],
        dpop_bound_access_tokens=True,
    )
    client = Credentials(registered.client.client_id, registered.client_secret)
    assert error_of(await client_credentials(http, client)) == "invalid_dpop_proof"
    assert ledger.tokens == []
    issued(await client_credentials(http, client, holder.proof(iat=now)), "DPoP")


# -- §4.3: proofs that are refused ----------------------------------------------------------------


Make = Callable[[dict[str, DPoPKey], int], str]


def _claims(**changes: object) -> Make:
    """A proof by the ES256 key whose claims have ``changes`` (``None`` drops one)."""

    def make(keys: dict[str, DPoPKey], now: int) -> str:
        key = keys["ES256"]
        claims = {**key.claims(TOKEN_URL, iat=now), **changes}
        claims = {name: value for name, value in claims.items() if value is not None}
        return jwt.encode(claims, key.private_key, algorithm=key.alg, headers=key.header())

    return make


def _header(**changes: object) -> Make:
    """A proof by the ES256 key whose header has ``changes`` (``None`` drops one)."""

    def make(keys: dict[str, DPoPKey], now: int) -> str:
        key = keys["ES256"]
        return key.proof(iat=now, header=key.header(**changes))

    return make


def _private_jwk(keys: dict[str, DPoPKey], now: int) -> str:
    key = keys["ES256"]
    return key.proof(iat=now, header=key.header(jwk=key.private_jwk))


def _signed_by_another_key(keys: dict[str, DPoPKey], now: int) -> str:
    return keys["ES256"].proof(iat=now, signer=keys["other"].private_key)


def _alg_none(keys: dict[str, DPoPKey], now: int) -> str:
    key = keys["ES256"]
    header = {"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk}
    return unsigned(header, key.claims(TOKEN_URL, iat=now))


def _hs256(keys: dict[str, DPoPKey], now: int) -> str:
    secret = b"a symmetric key of thirty-two bytes or more"
    header = {"typ": "dpop+jwt", "jwk": {"kty": "oct", "k": b64(secret)}}
    claims = keys["ES256"].claims(TOKEN_URL, iat=now)
    return jwt.encode(claims, secret, algorithm="HS256", headers=header)


def _rs256_with_an_ec_jwk(keys: dict[str, DPoPKey], now: int) -> str:
    rsa_key = keys["RS256"]
    return rsa_key.proof(iat=now, header=rsa_key.header(jwk=keys["ES256"].jwk))


def _iat(offset: int) -> Make:
    return lambda keys, now: keys["ES256"].proof(iat=now + offset)


def _htu(htu: str) -> Make:
    return lambda keys, now: keys["ES256"].proof(htu, iat=now)


BAD_PROOFS: dict[str, Make] = {
    "stale-iat": _iat(-LEEWAY - 1),
    "future-iat": _iat(LEEWAY + 1),
    "iat-as-string": _claims(iat="1700000000"),
    "htm-get": _claims(htm="GET"),
    "htm-lowercase": _claims(htm="post"),
    "htu-introspect": _htu(ISSUER + "/introspect"),
    "htu-other-host": _htu("https://other.example/oauth2/token"),
    "htu-http": _htu(TOKEN_URL.replace("https:", "http:")),
    "htu-other-port": _htu("https://as.example:8443/oauth2/token"),
    "htu-path-case": _htu(ISSUER + "/TOKEN"),
    "htu-relative": _htu("/oauth2/token"),
    "signed-by-another-key": _signed_by_another_key,
    "alg-none": _alg_none,
    "hs256": _hs256,
    "private-key-in-jwk": _private_jwk,
    "no-jwk": _header(jwk=None),
    "rs256-with-an-ec-jwk": _rs256_with_an_ec_jwk,
    "no-typ": _header(typ=None),
    "typ-jwt": _header(typ="JWT"),
    "no-jti": _claims(jti=None),
    "empty-jti": _claims(jti=""),
    "no-htm": _claims(htm=None),
    "no-htu": _claims(htu=None),
    "no-iat": _claims(iat=None),
    "junk": lambda keys, now: "not a proof",
    "empty-jws": lambda keys, now: "..",
}


@pytest.mark.parametrize("make", BAD_PROOFS.values(), ids=BAD_PROOFS.keys())
async def test_a_bad_proof_is_refused_and_issues_nothing(
    http: httpx.AsyncClient,
    ledger: LedgerStorage,
    confidential: Credentials,
    keys: dict[str, DPoPKey],
    now: int,
    make: Make,
) -> None:
    response = await client_credentials(http, confidential, make(keys, now))
    assert error_of(response) == "invalid_dpop_proof"
    assert response.headers["cache-control"] == "no-store"
    assert ledger.tokens == []


@pytest.mark.parametrize(
    "age", [-LEEWAY, LEEWAY], ids=["ahead-by-the-leeway", "as-old-as-the-leeway"]
)
async def test_a_proof_at_the_edge_of_the_leeway_is_accepted(
    http: httpx.AsyncClient, confidential: Credentials, holder: DPoPKey, now: int, age: int
) -> None:
    issued(await client_credentials(http, confidential, holder.proof(iat=now - age)), "DPoP")


@pytest.mark.parametrize(
    "htu",
    [
        TOKEN_URL + "?x=1",
        TOKEN_URL + "#x",
        "HTTPS://AS.EXAMPLE/oauth2/token",
        "https://as.example:443/oauth2/token",
        "https://as.example/%6Fauth2/token",
    ],
    ids=["query", "fragment", "upper-case-scheme-and-host", "default-port", "encoded-unreserved"],
)
async def test_a_proof_for_the_same_url_written_otherwise_is_accepted(
    http: httpx.AsyncClient, confidential: Credentials, holder: DPoPKey, now: int, htu: str
) -> None:
    # §4.3: query and fragment are ignored; RFC 3986 §6.2.2, §6.2.3 normalisation first.
    issued(await client_credentials(http, confidential, holder.proof(htu, iat=now)), "DPoP")


async def test_a_proof_is_used_once(
    http: httpx.AsyncClient,
    ledger: LedgerStorage,
    confidential: Credentials,
    holder: DPoPKey,
    now: int,
) -> None:
    proof = holder.proof(iat=now)
    issued(await client_credentials(http, confidential, proof), "DPoP")
    saved = len(ledger.tokens)
    assert error_of(await client_credentials(http, confidential, proof)) == "invalid_dpop_proof"
    assert len(ledger.tokens) == saved


async def test_a_proof_goes_stale_as_the_clock_moves(
    http: httpx.AsyncClient,
    ledger: LedgerStorage,
    confidential: Credentials,
    clock: FakeClock,
    holder: DPoPKey,
    now: int,
) -> None:
    proof = holder.proof(iat=now)
    clock.advance(LEEWAY + 1)
    assert error_of(await client_credentials(http, confidential, proof)) == "invalid_dpop_proof"
    assert ledger.tokens == []


async def test_two_dpop_headers_are_refused(
    http: httpx.AsyncClient,
    ledger: LedgerStorage,
    confidential: Credentials,
    holder: DPoPKey,
    now: int,
) -> None:
    headers = [
        ("content-type", FORM["content-type"]),
        ("dpop", holder.proof(iat=now)),
        ("dpop", holder.proof(iat=now)),
    ]
    response = await http.post(
        TOKEN_URL,
        content="grant_type=client_credentials",
        headers=headers,
        auth=confidential.basic,
    )
    assert error_of(response) == "invalid_request"
    assert "dpop" in response.json()["error_description"]
    assert ledger.tokens == []


# -- §8: server nonces ----------------------------------------------------------------------------

NONCES = Settings(issuer=ISSUER, dpop_nonce_required=True)


@pytest.mark.parametrize("settings", [NONCES], ids=["nonces"])
async def test_the_server_asks_for_a_nonce_and_takes_the_retry(
    http: httpx.AsyncClient,
    ledger: LedgerStorage,
    confidential: Credentials,
    resource_server: Credentials,
    holder: DPoPKey,
    now: int,
) -> None:
    first = await client_credentials(http, confidential, holder.proof(iat=now))
    assert error_of(first) == "use_dpop_nonce"
    nonce = first.headers["dpop-nonce"]
    assert nonce
    assert ledger.tokens == []

    retry = await client_credentials(http, confidential, holder.proof(iat=now, nonce=nonce))
    tokens = issued(retry, "DPoP")
    await assert_bound(http, resource_server, tokens["access_token"], holder.jkt)


@pytest.mark.parametrize("settings", [NONCES], ids=["nonces"])
async def test_a_wrong_or_old_nonce_is_answered_with_a_new_one(
    http: httpx.AsyncClient,
    ledger: LedgerStorage,
    confidential: Credentials,
    clock: FakeClock,
    holder: DPoPKey,
) -> None:
    now = int(clock.now)
    wrong = await client_credentials(http, confidential, holder.proof(iat=now, nonce="made-up"))
    assert error_of(wrong) == "use_dpop_nonce"
    nonce = wrong.headers["dpop-nonce"]

    clock.advance(3600)
    now = int(clock.now)
    old = await client_credentials(http, confidential, holder.proof(iat=now, nonce=nonce))
    assert error_of(old) == "use_dpop_nonce"
    assert old.headers["dpop-nonce"] != nonce
    assert ledger.tokens == []

    fresh = holder.proof(iat=now, nonce=old.headers["dpop-nonce"])
    issued(await client_credentials(http, confidential, fresh), "DPoP")


async def test_without_nonces_required_a_nonce_in_the_proof_does_no_harm(
    http: httpx.AsyncClient, confidential: Credentials, holder: DPoPKey, now: int
) -> None:
    issued(await client_credentials(http, confidential, holder.proof(iat=now, nonce="n")), "DPoP")


# -- §10: dpop_jkt at the authorization endpoint --------------------------------------------------


async def test_dpop_jkt_binds_the_code_to_that_key(
    http: httpx.AsyncClient,
    ledger: LedgerStorage,
    public: Credentials,
    resource_server: Credentials,
    holder: DPoPKey,
    other: DPoPKey,
    now: int,
    alice: User,
) -> None:
    code = await authorization_code(http, code_request(public, dpop_jkt=holder.jkt))

    assert error_of(await redeem(http, public, code)) == "invalid_dpop_proof"
    assert error_of(await redeem(http, public, code, other.proof(iat=now))) == "invalid_dpop_proof"
    assert ledger.tokens == []

    tokens = issued(await redeem(http, public, code, holder.proof(iat=now)), "DPoP")
    await assert_bound(http, resource_server, tokens["access_token"], holder.jkt)


@pytest.mark.parametrize(
    "dpop_jkt",
    ["too-short", "x" * 44, "+" * 43, "é" * 43],
    ids=["short", "long", "not-base64url", "not-ascii"],
)
async def test_a_malformed_dpop_jkt_is_sent_back_as_invalid_request(
    http: httpx.AsyncClient, public: Credentials, alice: User, dpop_jkt: str
) -> None:
    response = await http.get(authorize_url(code_request(public, dpop_jkt=dpop_jkt)))
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.partition("?")[0] == REDIRECT_URI
    params = query_of(location)
    assert params["error"] == "invalid_request"
    assert "dpop_jkt" in params["error_description"]
    assert params["state"] == "xyz"
    assert "code" not in params


# -- §7: the whole flow against a real server -----------------------------------------------------

REAL_REDIRECT_URI = "http://127.0.0.1/cb"


async def me(request: Request) -> JSONResponse:
    user = request.user
    assert isinstance(user, BearerUser)
    return JSONResponse({"sub": user.subject, "dpop": request.auth.dpop})


@contextmanager
def uvicorn_in_a_thread(app: Starlette, sock: socket.socket) -> Iterator[None]:
    """``app`` served by uvicorn on ``sock``, in a thread with its own event loop."""
    config = uvicorn.Config(
        app, log_level="warning", loop="asyncio", http="h11", ws="none", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        thread.join(10)
        assert not thread.is_alive()


def s256(verifier: str) -> str:
    """RFC 7636 §4.2, computed here."""
    return (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )


@pytest.mark.slow
async def test_a_dpop_client_against_a_real_server() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    issuer, api = base + "/oauth2", base + "/api"
    server = AuthorizationServer(
        MemoryStorage(), Settings(issuer=issuer, insecure_transport=True, resources=(api,))
    )
    registered = await server.register_client(
        name="Native app",
        redirect_uris=[REAL_REDIRECT_URI],
        grant_types=["authorization_code", "refresh_token"],
        scope=["read"],
        public=True,
    )
    client_id = registered.client.client_id
    alice = await server.create_user(USERNAME, PASSWORD)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await server.close()

    app = Starlette(
        routes=[
            Mount("/oauth2", app=OAuth2App(server)),
            Mount(
                "/api",
                app=BearerTokenMiddleware(
                    Router([Route("/me", me)]), introspector=server, resource=api
                ),
            ),
        ],
        lifespan=lifespan,
    )
    key = DPoPKey("ES256")
    verifier = secrets.token_urlsafe(48)

    def proof(htm: str, htu: str, access_token: str | None = None) -> str:
        return key.proof(htu, htm=htm, iat=int(time.time()), access_token=access_token)

    with sock, uvicorn_in_a_thread(app, sock):
        async with httpx.AsyncClient(base_url=base, timeout=10) as browser:
            query = {
                "client_id": client_id,
                "response_type": "code",
                "redirect_uri": REAL_REDIRECT_URI,
                "scope": "read",
                "state": "s1",
                "code_challenge": s256(verifier),
                "code_challenge_method": "S256",
                "resource": api,
                "dpop_jkt": key.jkt,
            }
            location = await Person(browser, USERNAME, PASSWORD).authorize(
                f"{issuer}/authorize?{httpx.QueryParams(query)}"
            )
        answer = query_of(location)
        assert location.startswith(REAL_REDIRECT_URI + "?") and answer["state"] == "s1"

        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            token_response = await client.post(
                "/oauth2/token",
                data={
                    "grant_type": "authorization_code",
                    "code": answer["code"],
                    "redirect_uri": REAL_REDIRECT_URI,
                    "client_id": client_id,
                    "code_verifier": verifier,
                },
                headers={"dpop": proof("POST", issuer + "/token")},
            )
            tokens = issued(token_response, "DPoP")
            access_token = tokens["access_token"]

            resource_proof = proof("GET", api + "/me", access_token)
            dpop_headers = {"authorization": f"DPoP {access_token}", "dpop": resource_proof}
            reached = await client.get("/api/me", headers=dpop_headers)
            assert reached.status_code == 200, reached.text
            assert reached.json() == {"sub": alice.user_id, "dpop": True}

            as_bearer = await client.get(
                "/api/me", headers={"authorization": f"Bearer {access_token}"}
            )
            # §7.2: a bound token is no bearer token.
            assert as_bearer.status_code == 401, as_bearer.text
            assert as_bearer.json()["error"] == "invalid_token"

            replayed = await client.get("/api/me", headers=dpop_headers)
            assert replayed.status_code == 401, replayed.text
            assert 'error="invalid_dpop_proof"' in replayed.headers["www-authenticate"]

            # A fresh proof for the same token still gets through.
            fresh = {
                "authorization": f"DPoP {access_token}",
                "dpop": proof("GET", api + "/me", access_token),
            }
            again = await client.get("/api/me", headers=fresh)
            assert again.status_code == 200, again.text

"""Which ``redirect_uri`` the authorization endpoint takes, and where it then redirects.

RFC 6749 §3.1.2.3 and RFC 9700 §4.1.3: a requested redirect URI is compared with
the registered ones as strings, byte for byte. The one exception is the port of an
``http`` loopback redirect URI (RFC 8252 §7.3), which a native app picks when it
starts listening. Whatever is accepted, the server redirects to the registered
string, with only that port changed: never to a spelling it did not compare.
"""

from __future__ import annotations

from urllib.parse import urlencode

import httpx
import pytest

from asgi_oauth import AuthorizationServer, User

from .browser_helpers import (
    CHALLENGE,
    PASSWORD,
    VERIFIER,
    approved,
    exchange,
    parse_page,
    query_of,
    redirect_target,
    start,
)
from .conftest import ISSUER, Credentials

pytestmark = pytest.mark.anyio

LOOPBACK = "http://127.0.0.1/cb"
WITH_PORT = "http://127.0.0.1:8080/cb"
IPV6 = "http://[::1]/cb"
LOCALHOST = "http://localhost/cb"
WITH_QUERY = "http://127.0.0.1/cb?app=Native"
WEB = "https://app.example/cb"


@pytest.fixture
async def alice(server: AuthorizationServer) -> User:
    return await server.create_user("alice", PASSWORD)


async def client_for(server: AuthorizationServer, registered: str) -> Credentials:
    client = await server.register_client(
        name="Native", redirect_uris=[registered], public=True, scope=["read"]
    )
    return Credentials(client.client.client_id, None)


def code_request(client: Credentials, redirect_uri: str) -> dict[str, str]:
    return {
        "client_id": client.client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "state": "xyz",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }


@pytest.mark.parametrize(
    ("registered", "requested"),
    [
        (LOOPBACK, "HTTP://127.0.0.1:5000/cb"),
        (LOOPBACK, "HTTP://127.0.0.1/cb"),
        (LOOPBACK, "Http://127.0.0.1/cb"),
        (LOCALHOST, "http://LOCALHOST:5000/cb"),
        (LOCALHOST, "http://Localhost/cb"),
        (LOOPBACK, " http://127.0.0.1:5000/cb"),
        (LOOPBACK, " http://127.0.0.1/cb"),
        (LOOPBACK, "\thttp://127.0.0.1:5000/cb"),
        (LOOPBACK, "http://127.0.0.1:5000/cb\t"),
        (LOOPBACK, "http://127.0.0.1/cb\t"),
        (LOOPBACK, "http://127.0.0.1:5000/c\tb"),
        (LOOPBACK, "http://127.0.0.1:5000/cb\r\n"),
        (LOOPBACK, "http://127.0.0.1/cb\r\nSet-Cookie: x=1"),
        (LOOPBACK, "http://127.0.0.1:5000/cb\x00"),
        (LOOPBACK, "\x00http://127.0.0.1/cb"),
        (LOOPBACK, "http://127.0.0.1:5000/cb%20"),
        (LOOPBACK, "http://127.0.0.1:5000/cb "),
        (LOOPBACK, "http://user@127.0.0.1:5000/cb"),
        (LOOPBACK, "http://127.0.0.1:5000@evil.example/cb"),
        (LOOPBACK, "http://127.0.0.1.evil.example:5000/cb"),
        (LOOPBACK, "http://127.0.0.1:5000/cb#x"),
        (LOOPBACK, "http://127.0.0.1/cb#"),
        (LOOPBACK, "http://127.0.0.1:5000/CB"),
        (LOOPBACK, "http://127.0.0.1:5000/cb/"),
        (LOOPBACK, "http://127.0.0.1:5000/other"),
        (LOOPBACK, "http://127.0.0.1:5000/cb?x=1"),
        (WITH_QUERY, "http://127.0.0.1:5000/cb?app=native"),
        (WITH_QUERY, "http://127.0.0.1:5000/cb?APP=Native"),
        (LOOPBACK, "http://127.0.0.1:0/cb"),
        (LOOPBACK, "http://127.0.0.1:65536/cb"),
        (LOOPBACK, "http://127.0.0.1:99999/cb"),
        (LOOPBACK, "http://127.0.0.1:05000/cb"),
        (LOOPBACK, "http://127.0.0.1:/cb"),
        (LOOPBACK, "http://127.0.0.1:port/cb"),
        (LOOPBACK, "http://127.0.0.1:+5000/cb"),
        (LOOPBACK, "http://127.0.0.1:5\u0660/cb"),
        (LOOPBACK, "http://127.0.0.1:5000:6000/cb"),
        (LOOPBACK, "http://localhost:5000/cb"),
        (LOOPBACK, "http://[::1]:5000/cb"),
        # localhost matches localhost only, as registered (RFC 8252 §8.3 advises the IPs).
        (LOCALHOST, "http://127.0.0.1:5000/cb"),
        (LOCALHOST, "http://[::1]:5000/cb"),
        (LOOPBACK, "https://127.0.0.1:5000/cb"),
        (IPV6, "http://[0:0::1]:5000/cb"),
        (IPV6, "http://[::1]5000/cb"),
        (IPV6, "http://::1:5000/cb"),
        (WEB, "HTTPS://app.example/cb"),
        (WEB, "https://APP.example/cb"),
        (WEB, " https://app.example/cb"),
        (WEB, "https://app.example/cb\t"),
        (WEB, "https://app.example:443/cb"),
    ],
)
async def test_a_redirect_uri_other_than_a_registered_one_is_refused_on_a_page(
    http: httpx.AsyncClient, server: AuthorizationServer, registered: str, requested: str
) -> None:
    client = await client_for(server, registered)
    response = await start(http, **code_request(client, requested))
    assert response.status_code == 400, (response.status_code, response.headers)
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    # A NUL is refused with every parameter that holds one, before any is compared.
    reason = "must not contain NUL" if "\x00" in requested else "redirect_uri is not registered"
    assert reason in parse_page(response.text).text


@pytest.mark.parametrize(
    ("registered", "requested"),
    [
        (LOOPBACK, LOOPBACK),
        (LOOPBACK, "http://127.0.0.1:5000/cb"),
        (LOOPBACK, "http://127.0.0.1:1/cb"),
        (LOOPBACK, "http://127.0.0.1:65535/cb"),
        (WITH_PORT, "http://127.0.0.1:9090/cb"),
        (WITH_PORT, "http://127.0.0.1/cb"),
        (WITH_QUERY, "http://127.0.0.1:5000/cb?app=Native"),
        (IPV6, IPV6),
        (IPV6, "http://[::1]:5000/cb"),
        ("http://[::1]:7000/cb", "http://[::1]/cb"),
        (LOCALHOST, "http://localhost:5000/cb"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:9090"),
        (WEB, WEB),
    ],
)
async def test_an_accepted_redirect_uri_gets_the_code_at_exactly_that_uri(
    http: httpx.AsyncClient,
    server: AuthorizationServer,
    alice: User,
    registered: str,
    requested: str,
) -> None:
    client = await client_for(server, registered)
    response = await approved(http, "alice", **code_request(client, requested))
    location = redirect_target(response)
    separator = "&" if "?" in requested else "?"
    assert location.startswith(requested + separator), location
    query = urlencode({"code": query_of(location)["code"], "state": "xyz", "iss": ISSUER})
    assert location == requested + separator + query
    token = await exchange(
        http,
        query_of(location)["code"],
        client_id=client.client_id,
        redirect_uri=requested,
        verifier=VERIFIER,
    )
    assert token.status_code == 200, token.text

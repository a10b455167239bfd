"""Bad input is a 400 on every store, never an outage: a NUL byte (which PostgreSQL text
cannot hold) in any parameter of any endpoint, or in a registered redirect URI."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import httpx
import pytest

from tests.servers.process import INTROSPECT, REDIRECT_URI, REVOKE, TOKEN

from .conftest import Cluster

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

NUL = "\x00"
#: One good request per endpoint: (method, path, parameters); each parameter in turn gets
#: a NUL, as a value and in its name.
REQUESTS: list[tuple[str, str, dict[str, str]]] = [
    (
        "POST",
        TOKEN,
        {
            "grant_type": "authorization_code",
            "code": "1a2b3c",
            "redirect_uri": REDIRECT_URI,
            "code_verifier": "v" * 43,
            "scope": "read",
            "resource": "https://api.example",
        },
    ),
    ("POST", TOKEN, {"grant_type": "refresh_token", "refresh_token": "r" * 43}),
    ("POST", INTROSPECT, {"token": "t" * 43, "token_type_hint": "access_token"}),
    ("POST", REVOKE, {"token": "t" * 43, "token_type_hint": "refresh_token"}),
    ("POST", "/oauth2/device_authorization", {"scope": "read"}),
    (
        "GET",
        "/oauth2/authorize",
        {
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "scope": "openid read",
            "state": "s",
            "nonce": "n",
            "login_hint": "alice",
            "code_challenge": "c" * 43,
            "code_challenge_method": "S256",
        },
    ),
    ("POST", "/oauth2/par", {"response_type": "code", "redirect_uri": REDIRECT_URI, "nonce": "n"}),
    ("POST", "/oauth2/login", {"username": "alice", "password": "pw", "csrf_token": "x"}),
]


def variants(params: dict[str, str]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for name, value in params.items():
        out.append({**params, name: value + NUL})
        out.append({**params, name: NUL + value})
        rest = {k: v for k, v in params.items() if k != name}
        out.append({**rest, name + NUL: value})
    return out


async def send(
    http: httpx.AsyncClient, cluster: Cluster, method: str, path: str, params: dict[str, str]
) -> httpx.Response:
    client = cluster.deployment.client
    if path == "/oauth2/authorize":
        return await http.get(path, params={"client_id": client.client_id, **params})
    if path == "/oauth2/login":
        return await http.post(path, data=params)
    return await http.post(path, data=params, auth=client)


@pytest.mark.parametrize(("method", "path", "params"), REQUESTS, ids=lambda v: str(v)[:40])
async def test_a_nul_in_any_parameter_is_a_bad_request(
    cluster: Cluster, method: str, path: str, params: dict[str, str]
) -> None:
    async with cluster.http() as http:
        for bad in variants(params):
            response = await send(http, cluster, method, path, bad)
            assert response.status_code == 400, (bad, response.text)
            assert "Location" not in response.headers
    assert_no_server_error(cluster)


async def test_a_nul_in_client_credentials_is_a_bad_request(cluster: Cluster) -> None:
    client = cluster.deployment.client
    form = {"grant_type": "client_credentials"}
    async with cluster.http() as http:
        for credentials in (
            {"client_id": client.client_id + NUL, "client_secret": client.secret},
            {"client_id": client.client_id, "client_secret": client.secret + NUL},
        ):
            response = await http.post(TOKEN, data={**form, **credentials})
            assert response.status_code == 400, response.text
            assert response.json()["error"] == "invalid_request"
        basic = await http.post(TOKEN, data=form, auth=(client.client_id + NUL, client.secret))
        assert basic.status_code == 401, basic.text
    assert_no_server_error(cluster)


@pytest.mark.parametrize(
    "document",
    [
        lambda: {"redirect_uris": [REDIRECT_URI + NUL]},
        lambda: {"redirect_uris": [REDIRECT_URI], "client_name": "app" + NUL},
        lambda: {"redirect_uris": [REDIRECT_URI], "contacts": ["a@example.com" + NUL]},
        lambda: {"redirect_uris": [REDIRECT_URI], "software_id": NUL},
    ],
    ids=["redirect_uri", "client_name", "contacts", "software_id"],
)
async def test_a_nul_in_a_registration_is_refused(
    cluster: Cluster, document: Callable[[], dict[str, object]]
) -> None:
    async with cluster.http() as http:
        response = await http.post("/oauth2/register", json=document())
    assert response.status_code == 400, response.text
    assert response.json()["error"] in ("invalid_redirect_uri", "invalid_client_metadata")
    assert_no_server_error(cluster)


async def test_a_registration_with_a_clean_document_still_works(cluster: Cluster) -> None:
    async with cluster.http() as http:
        response = await http.post(
            "/oauth2/register",
            json={"redirect_uris": [REDIRECT_URI], "client_name": f"app {secrets.token_hex(2)}"},
        )
    assert response.status_code == 201, response.text


def assert_no_server_error(cluster: Cluster) -> None:
    logs = "\n".join(process.stderr() for process in cluster.processes)
    assert "Traceback" not in logs
    assert "cannot reach its storage" not in logs

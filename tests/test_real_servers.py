"""The endpoints through real HTTP servers (uvicorn, hypercorn) on 127.0.0.1.

Each server runs ``tests.servers.app:app`` in a subprocess on a SQLite file
that the test prepared beforehand with the library itself; the tests talk to
it over TCP with httpx, so the whole stack (ASGI server, Starlette mount,
SQLite writer thread, separate processes) is exercised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.servers.process import (
    INTROSPECT,
    REVOKE,
    TOKEN,
    Deployment,
    ServerKind,
    ServerProcess,
    deploy,
    serve,
)

pytestmark = pytest.mark.slow

METADATA_PATHS = (
    "/oauth2/.well-known/oauth-authorization-server",
    "/.well-known/oauth-authorization-server/oauth2",
)


Launch = Callable[[ServerKind, Deployment], ServerProcess]


@pytest.fixture
def launch() -> Iterator[Launch]:
    """Start servers during a test; every one is stopped at teardown."""
    with ExitStack() as stack:
        yield lambda kind, deployment: stack.enter_context(serve(kind, deployment))


@pytest.fixture
def deployment(tmp_path: Path) -> Deployment:
    return deploy(tmp_path)


@pytest.fixture(scope="module", params=["uvicorn", "hypercorn"])
def running(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One server of each kind, shared by the tests that only read or add tokens."""
    kind: ServerKind = request.param
    with serve(kind, deploy(tmp_path_factory.mktemp(kind))) as server:
        yield server


def client_credentials_token(http: httpx.Client, deployment: Deployment) -> str:
    response = http.post(TOKEN, data={"grant_type": "client_credentials"}, auth=deployment.client)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def introspect(http: httpx.Client, deployment: Deployment, token: str) -> dict[str, object]:
    response = http.post(INTROSPECT, data={"token": token}, auth=deployment.resource_server)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_token_is_issued_introspected_and_revoked(running: ServerProcess) -> None:
    deployment = running.deployment
    with httpx.Client(base_url=running.url, timeout=10) as http:
        issued = http.post(TOKEN, data={"grant_type": "client_credentials"}, auth=deployment.client)
        assert issued.status_code == 200, issued.text
        assert issued.headers["cache-control"] == "no-store"
        assert issued.headers["pragma"] == "no-cache"
        token = issued.json()["access_token"]

        described = introspect(http, deployment, token)
        assert described["active"] is True
        assert described["client_id"] == deployment.client.client_id
        assert described["scope"] == "read write"
        assert described["iss"] == deployment.issuer

        revoked = http.post(REVOKE, data={"token": token}, auth=deployment.client)
        assert revoked.status_code == 200, revoked.text

        assert introspect(http, deployment, token) == {"active": False}


@pytest.mark.parametrize("path", METADATA_PATHS)
@pytest.mark.parametrize("host", [None, "evil.example"], ids=["host", "forged-host"])
def test_metadata_has_the_configured_issuer(
    running: ServerProcess, path: str, host: str | None
) -> None:
    issuer = running.deployment.issuer
    headers = {} if host is None else {"Host": host}
    with httpx.Client(base_url=running.url, timeout=10) as http:
        response = http.get(path, headers=headers)
    assert response.status_code == 200, response.text
    metadata = response.json()
    assert metadata["issuer"] == issuer
    assert metadata["token_endpoint"] == f"{issuer}/token"


def test_token_survives_sigkill_and_restart(deployment: Deployment, launch: Launch) -> None:
    first = launch("uvicorn", deployment)
    with httpx.Client(base_url=first.url, timeout=10) as http:
        token = client_credentials_token(http, deployment)
    first.kill()

    second = launch("uvicorn", deployment)
    with httpx.Client(base_url=second.url, timeout=10) as http:
        described = introspect(http, deployment, token)
    assert described["active"] is True
    assert described["client_id"] == deployment.client.client_id


def test_bad_requests_get_json_errors_and_no_traceback(
    deployment: Deployment, launch: Launch
) -> None:
    server = launch("uvicorn", deployment)
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    with httpx.Client(base_url=server.url, timeout=10) as http:
        wrong_method = http.get(TOKEN)
        too_large = http.post(TOKEN, content=b"a" * (100 * 1024), headers=form_type)
        not_utf8 = http.post(TOKEN, content=b"\xff\xfe", headers=form_type)
        wrong_type = http.post(TOKEN, json={"grant_type": "client_credentials"})
        bad_basic = http.post(
            TOKEN,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": "Basic %%%not-base64"},
        )
    server.stop()

    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"
    assert too_large.status_code == 413
    assert not_utf8.status_code == 400
    assert wrong_type.status_code == 415
    assert bad_basic.status_code == 401
    assert bad_basic.headers["www-authenticate"].startswith("Basic ")
    for response in (wrong_method, too_large, not_utf8, wrong_type, bad_basic):
        assert response.headers["content-type"] == "application/json"
        assert isinstance(response.json()["error"], str), response.text
    assert "Traceback" not in server.stderr()

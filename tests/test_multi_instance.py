"""Several server processes on one PostgreSQL schema, as behind a load balancer.

Each test prepares a fresh schema (``pg_schema``) with ``deploy`` and runs
``tests.servers.app`` on it in uvicorn (or hypercorn) subprocesses on 127.0.0.1:
instance A and instance B share the store, the issuer and the session key, and
each has its own resource-server side (``/api/me`` behind ``BearerTokenMiddleware``
with a ``LocalIntrospector``). The tests check that what one instance does is
seen by the other, and that a database outage (a ``tcp_proxy`` cut) is answered
with 503 and healed without a restart. Races between instances are the contract
of ``tests/contract/``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from asgi_oauth.types import DEVICE_CODE
from tests.device_helpers import hidden
from tests.postgres import POSTGRES_URL
from tests.servers.process import (
    API_ME,
    INTROSPECT,
    REVOKE,
    TOKEN,
    Deployment,
    ServerKind,
    ServerProcess,
    deploy,
    serve,
    serve_all,
)
from tests.tcp_proxy import tcp_proxy

pytestmark = pytest.mark.slow

#: B's ``/api`` cache time in the revocation test (the library's default is 10 s): the
#: revocation must beat it by far.
CACHE_TTL = 2.0
#: The longest an answer may take while the database is unreachable.
OUTAGE_ANSWER_BOUND = 3.0
#: How long service may take to come back after the database does.
RECOVERY_BOUND = 10.0


def with_schema(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = f"{parts.query}&schema={schema}" if parts.query else f"schema={schema}"
    return urlunsplit(parts._replace(query=query))


def through_port(url: str, port: int) -> str:
    """``url`` with its host and port replaced by 127.0.0.1:``port`` (a proxy)."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def deployment(tmp_path: Path, pg_schema: str) -> Deployment:
    return deploy(tmp_path, with_schema(POSTGRES_URL, pg_schema))


@pytest.fixture
def pair(deployment: Deployment) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Instances A and B under uvicorn on the deployment; B's ``/api`` caches ``CACHE_TTL`` s."""
    b = replace(deployment.instance(), cache_ttl=CACHE_TTL)
    with serve_all("uvicorn", [deployment, b]) as (first, second):
        yield first, second


# -- helpers ---------------------------------------------------------------------------------


def issue_token(http: httpx.Client, deployment: Deployment) -> str:
    response = http.post(TOKEN, data={"grant_type": "client_credentials"}, auth=deployment.client)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def introspect(http: httpx.Client, deployment: Deployment, token: str) -> dict[str, object]:
    response = http.post(INTROSPECT, data={"token": token}, auth=deployment.resource_server)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def call_api(http: httpx.Client, token: str) -> httpx.Response:
    return http.get(API_ME, headers={"Authorization": f"Bearer {token}"})


def errors_of(responses: list[httpx.Response]) -> list[tuple[int, object]]:
    return [(response.status_code, response.json().get("error")) for response in responses]


def assert_store_unavailable(response: httpx.Response) -> None:
    """The token endpoint's answer to a failed store (RFC 6749 §5.2 ``temporarily_unavailable``)."""
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "temporarily_unavailable"
    assert response.headers["retry-after"] == "1"
    assert response.headers["cache-control"] == "no-store"


# -- tests -----------------------------------------------------------------------------------


def test_token_from_one_instance_is_seen_and_revoked_on_the_other(
    pair: tuple[ServerProcess, ServerProcess], deployment: Deployment
) -> None:
    a, b = pair
    with (
        httpx.Client(base_url=a.url, timeout=10) as on_a,
        httpx.Client(base_url=b.url, timeout=10) as on_b,
    ):
        token = issue_token(on_a, deployment)
        described = introspect(on_b, deployment, token)
        assert described["active"] is True
        assert described["client_id"] == deployment.client.client_id
        assert described["iss"] == deployment.issuer
        assert call_api(on_a, token).status_code == 200
        cached_at = time.monotonic()
        answer = call_api(on_b, token)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "sub": described.get("sub"),
            "client_id": deployment.client.client_id,
            "scope": "read write",
        }

        revoked = on_a.post(REVOKE, data={"token": token}, auth=deployment.client)
        assert revoked.status_code == 200, revoked.text
        revoked_at = time.monotonic()

        # The store is shared: B's introspection endpoint knows at once.
        assert introspect(on_b, deployment, token) == {"active": False}
        # A's middleware too: the revocation went through A, which cleared its cache.
        assert call_api(on_a, token).status_code == 401
        # B's middleware had the token cached for CACHE_TTL s, but the revocation was
        # announced (LISTEN/NOTIFY): B forgets it at once, not when its cache expires.
        while (refusal := call_api(on_b, token)).status_code == 200:
            assert time.monotonic() - revoked_at <= 0.1, "still accepted after 100 ms"
            time.sleep(0.005)
        refused_after = time.monotonic() - revoked_at

    assert refusal.status_code == 401, refusal.text
    assert 'error="invalid_token"' in refusal.headers["www-authenticate"]
    assert refused_after <= 0.1
    assert revoked_at - cached_at < CACHE_TTL, "the cached answer had expired anyway"


def test_device_approved_on_one_instance_gets_tokens_from_the_other(
    pair: tuple[ServerProcess, ServerProcess], deployment: Deployment
) -> None:
    a, b = pair
    device_form = {"client_id": deployment.public_client_id}
    with (
        httpx.Client(base_url=a.url, timeout=10) as device,
        httpx.Client(base_url=b.url, timeout=10) as browser,
    ):
        started = device.post("/oauth2/device_authorization", data={**device_form, "scope": "read"})
        assert started.status_code == 200, started.text
        codes = started.json()
        assert codes["verification_uri"] == f"{deployment.issuer}/device"
        poll_form = {**device_form, "grant_type": DEVICE_CODE, "device_code": codes["device_code"]}
        pending = device.post(TOKEN, data=poll_form)
        assert errors_of([pending]) == [(400, "authorization_pending")]

        # The person, on B: the device page wants a sign-in first.
        entry = browser.get("/oauth2/device")
        assert entry.status_code == 303
        login = browser.get("/oauth2/login", params={"next": "/device"})
        assert login.status_code == 200, login.text
        signed_in = browser.post(
            "/oauth2/login",
            data={
                "csrf_token": hidden(login.text, "csrf_token"),
                "username": deployment.username,
                "password": deployment.password,
                "next": "/device",
            },
        )
        assert signed_in.status_code == 303, signed_in.text
        assert signed_in.headers["location"] == f"{deployment.issuer}/device"
        entry = browser.get("/oauth2/device")
        assert entry.status_code == 200, entry.text
        consent = browser.post(
            "/oauth2/device",
            data={"csrf_token": hidden(entry.text, "csrf_token"), "user_code": codes["user_code"]},
        )
        assert consent.status_code == 200, consent.text
        assert "Authorize a device" in consent.text
        approved = browser.post(
            "/oauth2/device",
            data={
                "csrf_token": hidden(consent.text, "csrf_token"),
                "user_code": hidden(consent.text, "user_code"),
                "decision": "approve",
            },
        )
        assert approved.status_code == 200, approved.text
        assert "Device connected" in approved.text

        # The device, on A, polls no faster than it is told to.
        interval = codes["interval"]
        deadline = time.monotonic() + 15
        while True:
            time.sleep(interval)
            polled = device.post(TOKEN, data=poll_form)
            if polled.status_code == 200 or time.monotonic() > deadline:
                break
            error = polled.json().get("error")
            assert error in ("authorization_pending", "slow_down"), polled.text
            if error == "slow_down":
                interval += 5
        assert polled.status_code == 200, polled.text
        tokens = polled.json()
        assert tokens["scope"] == "read"
        again = device.post(TOKEN, data=poll_form)
        assert errors_of([again]) == [(400, "invalid_grant")]

        # The token speaks for the person who approved, on either instance.
        me = call_api(browser, tokens["access_token"])
        assert me.status_code == 200, me.text
        assert me.json()["client_id"] == deployment.public_client_id
        assert me.json()["sub"] not in (None, deployment.public_client_id)
        assert me.json()["scope"] == "read"


def test_database_outage_is_503_and_heals_without_restart(deployment: Deployment) -> None:
    target = urlsplit(POSTGRES_URL)
    with tcp_proxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        proxied = replace(deployment, db=through_port(str(deployment.db), proxy.port))
        with (
            serve("uvicorn", proxied) as server,
            httpx.Client(base_url=server.url, timeout=10) as http,
        ):
            seen = issue_token(http, deployment)
            assert call_api(http, seen).status_code == 200  # now in the middleware's cache
            unseen = issue_token(http, deployment)  # never shown to /api/me before the cut

            proxy.cut()
            started = time.monotonic()
            refused = http.post(
                TOKEN, data={"grant_type": "client_credentials"}, auth=deployment.client
            )
            token_took = time.monotonic() - started
            started = time.monotonic()
            api = call_api(http, unseen)
            api_took = time.monotonic() - started

            assert_store_unavailable(refused)
            assert token_took < OUTAGE_ANSWER_BOUND
            # The middleware fails closed: the route is not reached.
            assert api.status_code == 503, api.text
            assert api.json()["error"] == "temporarily_unavailable"
            assert api.headers["retry-after"] == "1"
            assert api.headers["www-authenticate"].startswith("Bearer ")
            assert api_took < OUTAGE_ANSWER_BOUND
            # A token the middleware checked before the cut is still served from its cache.
            assert call_api(http, seen).status_code == 200

            proxy.restore()
            restored = time.monotonic()
            while True:
                issued = http.post(
                    TOKEN, data={"grant_type": "client_credentials"}, auth=deployment.client
                )
                if issued.status_code == 200 or time.monotonic() - restored > RECOVERY_BOUND:
                    break
                assert_store_unavailable(issued)
                time.sleep(0.2)
            assert issued.status_code == 200, issued.text
            api = call_api(http, unseen)
            assert api.status_code == 200, api.text
            assert api.json()["client_id"] == deployment.client.client_id
    # Handled, not crashed: no traceback passes through the package (asyncpg's pool may
    # log its own while it retries in the background).
    assert "/asgi_oauth/" not in server.stderr()


@pytest.mark.parametrize("kind", ["hypercorn"])
def test_token_is_issued_introspected_and_revoked_on_postgres(
    deployment: Deployment, kind: ServerKind
) -> None:
    with (
        serve(kind, deployment) as server,
        httpx.Client(base_url=server.url, timeout=10) as http,
    ):
        token = issue_token(http, deployment)
        described = introspect(http, deployment, token)
        assert described["active"] is True
        assert described["scope"] == "read write"
        assert described["iss"] == deployment.issuer
        assert call_api(http, token).status_code == 200

        revoked = http.post(REVOKE, data={"token": token}, auth=deployment.client)
        assert revoked.status_code == 200, revoked.text

        assert introspect(http, deployment, token) == {"active": False}
        assert call_api(http, token).status_code == 401

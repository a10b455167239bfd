"""RemoteIntrospector against ``httpx.MockTransport``: parsing RFC 7662 answers, retries.

Remote introspection against a real server is tested elsewhere; here every
answer the other server could give is made up, including the broken ones.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from asgi_oauth import IntrospectionResult
from asgi_oauth.middleware import (
    BearerTokenMiddleware,
    IntrospectionUnavailable,
    RemoteIntrospector,
)

from .test_bearer import bearer, connect, echo

pytestmark = pytest.mark.anyio

URL = "https://as.example/oauth2/introspect"


class Remote:
    """The other server: answers in turn (the last one repeats), recording each request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
async def introspectors() -> AsyncIterator[Callable[..., RemoteIntrospector]]:
    """Make RemoteIntrospectors talking to a ``Remote``; all are closed afterwards."""
    made: list[RemoteIntrospector] = []

    def make(remote: Remote, **options: Any) -> RemoteIntrospector:
        introspector = RemoteIntrospector(URL, client_id="rs", client_secret="s3cret", **options)
        introspector._client = httpx.AsyncClient(transport=httpx.MockTransport(remote))
        made.append(introspector)
        return introspector

    yield make
    for introspector in made:
        await introspector.aclose()


def answer(body: object, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body)


async def test_active_answer_is_read_claim_by_claim(
    introspectors: Callable[..., RemoteIntrospector],
) -> None:
    body = {
        "active": True,
        "scope": "read write",
        "client_id": "c1",
        "token_type": "Bearer",
        "exp": 2_000_000_000,
        "iat": 1_999_996_400,
        "iss": "https://as.example/oauth2",
        "sub": "user-1",
        "aud": "https://api.example",
        "tenant": "t-9",
    }
    result = await introspectors(Remote(answer(body))).introspect_token("tok")
    assert result == IntrospectionResult(
        active=True,
        scope=frozenset({"read", "write"}),
        client_id="c1",
        token_type="Bearer",
        exp=2_000_000_000,
        iat=1_999_996_400,
        iss="https://as.example/oauth2",
        sub="user-1",
        aud=("https://api.example",),
        extra={"tenant": "t-9"},
    )


async def test_minimal_active_answer_and_audience_list(
    introspectors: Callable[..., RemoteIntrospector],
) -> None:
    body = {"active": True, "aud": ["https://a.example", "https://b.example"]}
    result = await introspectors(Remote(answer(body))).introspect_token("tok")
    assert result == IntrospectionResult(
        active=True, aud=("https://a.example", "https://b.example")
    )


async def test_inactive_answer_says_nothing_more(
    introspectors: Callable[..., RemoteIntrospector],
) -> None:
    body = {"active": False, "scope": "read", "sub": "user-1"}
    result = await introspectors(Remote(answer(body))).introspect_token("tok")
    assert result == IntrospectionResult(active=False)


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(200, content=b"<html>oops</html>"), "not JSON"),
        (answer(["active", True]), "no boolean 'active'"),
        (answer({"scope": "read"}), "no boolean 'active'"),
        (answer({"active": "true"}), "no boolean 'active'"),
        (answer({"active": 1}), "no boolean 'active'"),
        (answer({"active": True, "scope": ["read"]}), "malformed claims"),
        (answer({"active": True, "exp": "2000000000"}), "malformed claims"),
        (answer({"active": True, "exp": 2e9}), "malformed claims"),
        (answer({"active": True, "iat": True}), "malformed claims"),
        (answer({"active": True, "aud": 7}), "malformed claims"),
        (answer({"active": True, "aud": ["https://a.example", 7]}), "malformed claims"),
        (answer({"active": True, "client_id": 42}), "malformed claims"),
        (answer({"active": True, "sub": None}), "malformed claims"),
        (answer({"active": True, "token_type": {"x": 1}}), "malformed claims"),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "no-active",
        "active-string",
        "active-number",
        "scope-list",
        "exp-string",
        "exp-float",
        "iat-bool",
        "aud-number",
        "aud-list-with-number",
        "client_id-number",
        "sub-null",
        "token_type-object",
    ],
)
async def test_odd_answer_is_unavailable_not_a_guess(
    introspectors: Callable[..., RemoteIntrospector], response: httpx.Response, message: str
) -> None:
    with pytest.raises(IntrospectionUnavailable, match=message):
        await introspectors(Remote(response)).introspect_token("tok")


async def test_request_is_a_basic_authenticated_form_post(
    introspectors: Callable[..., RemoteIntrospector],
) -> None:
    remote = Remote(answer({"active": False}))
    await introspectors(remote).introspect_token("tok-1")
    (sent,) = remote.requests
    assert sent.method == "POST"
    assert str(sent.url) == URL
    assert parse_qs(sent.content.decode()) == {
        "token": ["tok-1"],
        "token_type_hint": ["access_token"],
    }


async def test_own_client_sends_the_credentials_with_basic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a patched ``_client`` the introspector makes its own, with Basic auth."""
    remote = Remote(answer({"active": False}))
    real = httpx.AsyncClient

    def mocked(**options: Any) -> httpx.AsyncClient:
        return real(transport=httpx.MockTransport(remote), **options)

    monkeypatch.setattr(httpx, "AsyncClient", mocked)
    introspector = RemoteIntrospector(URL, client_id="rs", client_secret="s3cret")
    try:
        await introspector.introspect_token("tok")
        await introspector.introspect_token("other")
    finally:
        await introspector.aclose()
    expected = "Basic " + base64.b64encode(b"rs:s3cret").decode()
    assert [r.headers["authorization"] for r in remote.requests] == [expected, expected]


async def test_answers_are_cached(introspectors: Callable[..., RemoteIntrospector]) -> None:
    remote = Remote(answer({"active": True, "scope": "read"}))
    introspector = introspectors(remote)
    first = await introspector.introspect_token("tok")
    assert await introspector.introspect_token("tok") == first
    assert len(remote.requests) == 1


async def test_server_error_is_retried(introspectors: Callable[..., RemoteIntrospector]) -> None:
    remote = Remote(answer({"error": "boom"}, 500), answer({"active": True}))
    result = await introspectors(remote).introspect_token("tok")
    assert result.active
    assert len(remote.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_client_error_is_not_retried(
    introspectors: Callable[..., RemoteIntrospector], status: int
) -> None:
    remote = Remote(answer({"error": "invalid_client"}, status), answer({"active": True}))
    with pytest.raises(IntrospectionUnavailable, match=f"HTTP {status}"):
        await introspectors(remote).introspect_token("tok")
    assert len(remote.requests) == 1


async def test_redirect_is_not_followed_nor_trusted(
    introspectors: Callable[..., RemoteIntrospector],
) -> None:
    remote = Remote(httpx.Response(302, headers={"location": "https://elsewhere.example/"}))
    with pytest.raises(IntrospectionUnavailable, match="HTTP 302"):
        await introspectors(remote).introspect_token("tok")
    assert len(remote.requests) == 1


@pytest.mark.parametrize(
    ("failure", "problem"),
    [
        (answer({}, 503), "HTTP 503"),
        (httpx.ConnectError("connection refused"), "ConnectError: connection refused"),
        (httpx.ReadTimeout("timed out"), "ReadTimeout: timed out"),
    ],
    ids=["503", "connect", "timeout"],
)
async def test_failures_exhausting_the_retries_are_unavailable(
    introspectors: Callable[..., RemoteIntrospector],
    caplog: pytest.LogCaptureFixture,
    failure: httpx.Response | Exception,
    problem: str,
) -> None:
    remote = Remote(failure)
    with (
        caplog.at_level(logging.ERROR, "asgi_oauth"),
        pytest.raises(IntrospectionUnavailable, match=problem),
    ):
        await introspectors(remote, retries=2).introspect_token("tok")
    assert len(remote.requests) == 3
    assert f"introspection at {URL} failed: {problem}" in caplog.text


async def test_zero_retries_tries_once(introspectors: Callable[..., RemoteIntrospector]) -> None:
    remote = Remote(httpx.ConnectError("refused"), answer({"active": True}))
    with pytest.raises(IntrospectionUnavailable):
        await introspectors(remote, retries=0).introspect_token("tok")
    assert len(remote.requests) == 1


async def test_failures_are_not_cached(introspectors: Callable[..., RemoteIntrospector]) -> None:
    remote = Remote(answer({}, 401), answer({"active": True}))
    introspector = introspectors(remote)
    with pytest.raises(IntrospectionUnavailable):
        await introspector.introspect_token("tok")
    assert (await introspector.introspect_token("tok")).active


async def test_aclose_closes_the_client_and_may_be_repeated() -> None:
    introspector = RemoteIntrospector(URL, client_id="rs", client_secret="s")
    client = httpx.AsyncClient(transport=httpx.MockTransport(Remote(answer({"active": False}))))
    introspector._client = client
    await introspector.aclose()
    assert client.is_closed
    await introspector.aclose()


async def test_middleware_with_a_remote_that_is_down_is_503(
    introspectors: Callable[..., RemoteIntrospector],
) -> None:
    introspector = introspectors(Remote(httpx.ConnectError("refused")), retries=0)
    async with connect(BearerTokenMiddleware(echo, introspector=introspector)) as client:
        response = await client.get("/", headers=bearer("tok"))
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"


async def test_middleware_with_a_remote_sees_its_claims(
    introspectors: Callable[..., RemoteIntrospector],
) -> None:
    body = {"active": True, "scope": "read", "client_id": "c1", "token_type": "Bearer"}
    introspector = introspectors(Remote(answer(body)))
    app = BearerTokenMiddleware(echo, introspector=introspector, protect={"/": "read"})
    async with connect(app) as client:
        response = await client.get("/", headers=bearer("tok"))
    assert response.status_code == 200
    assert response.json()["client_id"] == "c1"
    assert response.json()["claims"] == body

"""Metrics and traces: a scripted mix of requests, then the exact counts scraped from
the exposition, the span tree of a token request and of a middleware call, and no
token, code, secret or password anywhere in either."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, Router

from asgi_oauth import AuthorizationServer, RegisteredClient, Settings
from asgi_oauth.app import OAuth2App
from asgi_oauth.errors import StorageError
from asgi_oauth.middleware import BearerTokenMiddleware, LocalIntrospector
from asgi_oauth.models import Client
from asgi_oauth.observability import Instruments, PrometheusMetrics
from asgi_oauth.storage import MemoryStorage, Storage

pytestmark = pytest.mark.anyio

ISSUER = "https://as.example/oauth2"


async def me(request: Request) -> JSONResponse:
    return JSONResponse({"sub": request.user.identity})


@dataclass
class Deployment:
    server: AuthorizationServer
    http: httpx.AsyncClient
    client: RegisteredClient
    api: RegisteredClient

    @property
    def basic(self) -> tuple[str, str]:
        assert self.client.client_secret is not None
        return self.client.client.client_id, self.client.client_secret

    @property
    def api_basic(self) -> tuple[str, str]:
        assert self.api.client_secret is not None
        return self.api.client.client_id, self.api.client_secret

    async def token(self) -> str:
        response = await self.http.post(
            "/oauth2/token", data={"grant_type": "client_credentials"}, auth=self.basic
        )
        assert response.status_code == 200, response.text
        access_token: str = response.json()["access_token"]
        return access_token


async def deployment(store: Storage, instruments: Instruments) -> AsyncIterator[Deployment]:
    server = AuthorizationServer(store, Settings(issuer=ISSUER), instruments=instruments)
    client = await server.register_client(
        name="app", grant_types=["client_credentials"], scope=["read"]
    )
    api = await server.register_client(name="api", grant_types=[], is_resource_server=True)
    routes: list[Any] = [
        Mount("/oauth2", app=OAuth2App(server)),
        Mount(
            "/api",
            app=BearerTokenMiddleware(
                Router([Route("/me", me)]),
                introspector=LocalIntrospector(server),
                instruments=instruments,
            ),
        ),
    ]
    metrics = instruments.metrics
    if isinstance(metrics, PrometheusMetrics):
        routes.append(Route("/metrics", metrics.app))
    transport = httpx.ASGITransport(app=Starlette(routes=routes))
    async with httpx.AsyncClient(transport=transport, base_url="https://as.example") as http:
        yield Deployment(server, http, client, api)
    await server.close()


def samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition, by name and labels."""
    found = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def test_a_scripted_mix_of_requests_is_counted_exactly(store: Storage) -> None:
    metrics = PrometheusMetrics()
    async for d in deployment(store, Instruments(metrics=metrics)):
        tokens = [await d.token() for _ in range(3)]
        wrong = await d.http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(d.client.client.client_id, "not the secret"),
        )
        assert wrong.status_code == 401
        unknown = await d.http.post("/oauth2/token", data={"grant_type": "made-up"}, auth=d.basic)
        assert unknown.status_code == 400
        for token in tokens[:2]:
            introspected = await d.http.post(
                "/oauth2/introspect", data={"token": token}, auth=d.api_basic
            )
            assert introspected.json()["active"] is True
        revoked = await d.http.post("/oauth2/revoke", data={"token": tokens[0]}, auth=d.basic)
        assert revoked.status_code == 200
        bearer = {"Authorization": f"Bearer {tokens[1]}"}
        assert (await d.http.get("/api/me", headers=bearer)).status_code == 200
        assert (await d.http.get("/api/me", headers=bearer)).status_code == 200  # cached
        refused = {"Authorization": f"Bearer {tokens[0]}"}  # revoked above
        assert (await d.http.get("/api/me", headers=refused)).status_code == 401
        assert (await d.http.get("/api/me")).status_code == 401

        scraped = await d.http.get("/metrics")
        assert scraped.status_code == 200
        assert scraped.headers["cache-control"] == "no-store"
        found = samples(scraped.text)
        requests = "asgi_oauth_requests_total"
        token, cc = "/token", "client_credentials"
        assert value(found, requests, endpoint=token, grant_type=cc, outcome="ok") == 3
        assert value(found, requests, endpoint=token, grant_type=cc, outcome="invalid_client") == 1
        assert (
            value(
                found,
                requests,
                endpoint=token,
                grant_type="other",
                outcome="unsupported_grant_type",
            )
            == 1
        )
        assert value(found, requests, endpoint="/introspect", grant_type="", outcome="ok") == 2
        assert value(found, requests, endpoint="/revoke", grant_type="", outcome="ok") == 1
        issued = "asgi_oauth_tokens_issued_total"
        assert value(found, issued, kind="access_token", grant_type=cc) == 3
        assert value(found, issued, kind="refresh_token", grant_type=cc) == 0
        assert value(found, "asgi_oauth_revocations_total") == 1
        decisions = "asgi_oauth_middleware_requests_total"
        assert value(found, decisions, outcome="accepted", reason="") == 2
        assert value(found, decisions, outcome="refused", reason="invalid_token") == 1
        assert value(found, decisions, outcome="refused", reason="missing_token") == 1
        cache = "asgi_oauth_middleware_cache_total"
        assert value(found, cache, result="hit") == 1
        assert value(found, cache, result="miss") == 3
        latency = "asgi_oauth_request_duration_seconds_count"
        assert value(found, latency, endpoint=token) == 5
        store_calls = "asgi_oauth_store_call_duration_seconds_count"
        assert value(found, store_calls, operation="save_tokens") == 3
        assert value(found, store_calls, operation="revoke_token") == 1
        # The store's own revocation signal: a file (SQLite) or the process (memory).
        assert value(found, "asgi_oauth_notifications_live", source="store") == 1
        # Nothing a thief could use, in any label or value.
        secrets = [*tokens, d.basic[1], d.api_basic[1], "not the secret"]
        assert not [s for s in secrets if s in scraped.text]


async def test_requests_refused_by_a_guessing_limit_are_counted_as_throttled(
    store: Storage,
) -> None:
    metrics = PrometheusMetrics()
    async for d in deployment(store, Instruments(metrics=metrics)):
        statuses = []
        for _ in range(12):
            response = await d.http.post(
                "/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(d.client.client.client_id, "a wrong guess"),
            )
            statuses.append(response.status_code)
        found = samples((await d.http.get("/metrics")).text)
        assert value(found, "asgi_oauth_throttled_total", endpoint="/token") == statuses.count(429)
        assert statuses.count(429) >= 1


class FailingStore(MemoryStorage):
    """A store whose database goes away when told to."""

    down = False

    async def get_client(self, client_id: str) -> Client | None:
        if self.down:
            raise StorageError("the database is gone")
        return await super().get_client(client_id)


async def test_a_failing_store_call_is_counted_by_operation() -> None:
    metrics, store = PrometheusMetrics(), FailingStore()
    async for d in deployment(store, Instruments(metrics=metrics)):
        store.down = True
        response = await d.http.post(
            "/oauth2/token", data={"grant_type": "client_credentials"}, auth=d.basic
        )
        assert response.status_code == 503
        found = samples((await d.http.get("/metrics")).text)
        assert value(found, "asgi_oauth_store_failures_total", operation="get_client") >= 1
        assert (
            value(
                found,
                "asgi_oauth_requests_total",
                endpoint="/token",
                grant_type="client_credentials",
                outcome="temporarily_unavailable",
            )
            == 1
        )


def tracing() -> tuple[Any, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("asgi_oauth"), exporter


def children(spans: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[str]:
    assert parent.context is not None
    return [
        s.name for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id
    ]


def everything_said(spans: tuple[ReadableSpan, ...]) -> str:
    return " ".join(f"{s.name} {dict(s.attributes or {})}" for s in spans)


async def test_the_span_tree_of_a_token_request(store: Storage) -> None:
    tracer, exporter = tracing()
    async for d in deployment(store, Instruments(tracer=tracer)):
        exporter.clear()
        token = await d.token()
        spans = exporter.get_finished_spans()
        (root,) = [s for s in spans if s.parent is None]
        assert root.name == "POST /token"
        assert root.attributes is not None
        assert root.attributes["http.response.status_code"] == 200
        assert root.attributes["oauth.grant_type"] == "client_credentials"
        below = children(spans, root)
        assert "store get_client" in below and "store save_tokens" in below
        assert all(name.startswith("store ") for name in below)
        assert token not in everything_said(spans) and d.basic[1] not in everything_said(spans)


async def test_the_span_tree_of_a_middleware_call(store: Storage) -> None:
    tracer, exporter = tracing()
    async for d in deployment(store, Instruments(tracer=tracer)):
        token = await d.token()
        exporter.clear()
        with tracer.start_as_current_span("GET /api/me"):
            response = await d.http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        spans = exporter.get_finished_spans()
        (root,) = [s for s in spans if s.parent is None]
        assert children(spans, root) == ["introspect"]
        (introspect,) = [s for s in spans if s.name == "introspect"]
        assert introspect.attributes is not None
        assert introspect.attributes["asgi_oauth.introspector"] == "LocalIntrospector"
        assert children(spans, introspect) == ["store get_token"]
        assert token not in everything_said(spans)


async def test_without_instruments_nothing_is_wrapped(store: Storage) -> None:
    server = AuthorizationServer(store, Settings(issuer=ISSUER))
    assert server.storage is store
    assert OAuth2App(server)._observer is None
    await server.close()


async def test_each_upstream_call_has_a_span_naming_only_its_host(tmp_path: Any) -> None:
    from tests.servers.upstreams import GitHubLike
    from tests.test_federation import ISSUER as issuer
    from tests.test_federation import github_provider
    from tests.upstream_helpers import serve_upstream
    from tests.user_agent import Person

    tracer, exporter = tracing()
    fake = GitHubLike()
    fake.add_client("gh-client", "gh-secret", f"{issuer}/upstream/github/callback")
    with serve_upstream(fake):
        base = fake.base_url
        provider = github_provider(fake)
        settings = Settings(issuer=issuer, insecure_transport=True, upstream_providers=(provider,))
        server = AuthorizationServer(
            MemoryStorage(), settings, instruments=Instruments(tracer=tracer)
        )
        host = Starlette(routes=[Mount("/oauth2", app=OAuth2App(server))])
        mounts = {"http://as.test": httpx.ASGITransport(app=host)}
        async with httpx.AsyncClient(mounts=mounts) as http:
            person = Person(http, "-", "-", provider="GitHub", elsewhere=(base,))
            page = await person.visit(f"{issuer}/login")
        await server.close()
    assert "signed in as github:octocat" in page.text
    spans = exporter.get_finished_spans()
    (callback,) = [
        s
        for s in spans
        if s.name == "GET /upstream"
        and s.attributes
        and s.attributes["http.response.status_code"] == 200
    ]
    below = children(spans, callback)
    assert below.count("upstream POST") == 1  # the token request
    assert below.count("upstream GET") == 2  # the user API and its e-mail list
    for span in spans:
        if span.name.startswith("upstream "):
            assert span.attributes is not None
            assert span.attributes["server.address"] == "127.0.0.1"
    said = everything_said(spans)
    assert "gh-secret" not in said and "code=" not in said and "gho_" not in said


def test_latency_histograms_have_prometheus_cumulative_buckets() -> None:
    metrics = PrometheusMetrics()
    for seconds in (0.003, 0.005, 0.7):
        metrics.request("/token", "client_credentials", "ok", 200, seconds)
    found = samples(metrics.exposition()[0].decode())
    bucket = "asgi_oauth_request_duration_seconds_bucket"
    assert value(found, bucket, endpoint="/token", le="0.0025") == 0
    assert value(found, bucket, endpoint="/token", le="0.005") == 2  # le is inclusive
    assert value(found, bucket, endpoint="/token", le="0.5") == 2
    assert value(found, bucket, endpoint="/token", le="1.0") == 3
    assert value(found, bucket, endpoint="/token", le="+Inf") == 3
    assert value(found, "asgi_oauth_request_duration_seconds_count", endpoint="/token") == 3
    total = value(found, "asgi_oauth_request_duration_seconds_sum", endpoint="/token")
    assert total == pytest.approx(0.708)


async def test_the_revocation_stream_state_is_a_gauge() -> None:
    from asgi_oauth.middleware import RemoteIntrospector, RevocationStream

    metrics = PrometheusMetrics()
    stream = RevocationStream(
        "http://127.0.0.1:9/oauth2/revocations", client_id="api", client_secret="s" * 43
    )
    introspector = RemoteIntrospector(
        "http://127.0.0.1:9/oauth2/introspect",
        client_id="api",
        client_secret="s" * 43,
        revocations=stream,
    )
    BearerTokenMiddleware(Router([]), introspector=introspector, instruments=Instruments(metrics))
    found = samples(metrics.exposition()[0].decode())
    # Never started, so not connected: the middleware relies on its cache lifetimes.
    assert value(found, "asgi_oauth_notifications_live", source="revocation_stream") == 0
    stream._live = True  # what a connected stream says
    found = samples(metrics.exposition()[0].decode())
    assert value(found, "asgi_oauth_notifications_live", source="revocation_stream") == 1
    await introspector.aclose()

"""``PrometheusMetrics``: the server's and the middleware's measurements in Prometheus's
exposition format (the ``prometheus-client`` library, the ``metrics`` extra).

The counts are plain numbers kept by the event loop that serves the requests (an
increment costs a dictionary update, where a ``prometheus_client`` metric takes a
lock); a collector turns them into metric families when Prometheus scrapes. Every
series has its own registry unless you give one, so two servers in one process (or a
test) never count into each other. ``app`` is the exposition as a raw ASGI
application: mount it where you like (``Route("/metrics", metrics.app)``), behind
what protects your other internal routes.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

#: Latency buckets, in seconds: endpoints take between a fraction of a millisecond
#: (a cached introspection) and a few hundred (a slow store, scrypt).
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

Labels = tuple[str, ...]


class _Histogram:
    """Per-bucket counts (not cumulative), the sum and the count of observations."""

    __slots__ = ("buckets", "count", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(BUCKETS) + 1)  # the last is +Inf
        self.total = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds
        self.count += 1


class PrometheusMetrics:
    """Counters, histograms and gauges named ``asgi_oauth_*``."""

    def __init__(self, registry: Any = None) -> None:
        try:
            import prometheus_client as prometheus
            from prometheus_client import core
        except ImportError:
            raise RuntimeError(
                "metrics need prometheus-client: pip install 'asgi_oauth[metrics]'"
            ) from None
        self._prometheus, self._core = prometheus, core
        self.registry = registry if registry is not None else prometheus.CollectorRegistry()
        self._requests: defaultdict[Labels, int] = defaultdict(int)
        self._latency: defaultdict[Labels, _Histogram] = defaultdict(_Histogram)
        self._throttled: defaultdict[Labels, int] = defaultdict(int)
        self._store: defaultdict[Labels, _Histogram] = defaultdict(_Histogram)
        self._store_failures: defaultdict[Labels, int] = defaultdict(int)
        self._issued: defaultdict[Labels, int] = defaultdict(int)
        self._revocations = 0
        self._decisions: defaultdict[Labels, int] = defaultdict(int)
        self._cache: defaultdict[Labels, int] = defaultdict(int)
        self._live: dict[Labels, Callable[[], bool]] = {}
        self.registry.register(self)

    # -- what the server and the middleware report (asgi_oauth.observability.Metrics)

    def request(
        self, endpoint: str, grant_type: str, outcome: str, status: int, seconds: float
    ) -> None:
        self._requests[endpoint, grant_type, outcome] += 1
        self._latency[(endpoint,)].observe(seconds)
        if status == 429:
            self._throttled[(endpoint,)] += 1

    def store_call(self, operation: str, seconds: float, *, failed: bool) -> None:
        self._store[(operation,)].observe(seconds)
        if failed:
            self._store_failures[(operation,)] += 1

    def issued(self, grant_type: str, kinds: tuple[str, ...]) -> None:
        for kind in kinds:
            self._issued[kind, grant_type] += 1

    def revoked(self) -> None:
        self._revocations += 1

    def middleware(self, outcome: str, reason: str, *, cached: bool) -> None:
        self._decisions[outcome, reason] += 1
        self._cache[("hit",) if cached else ("miss",)] += 1

    def watch(self, name: str, live: Callable[[], bool]) -> None:
        self._live[(name,)] = live

    # -- what Prometheus scrapes ------------------------------------------------

    def describe(self) -> list[Any]:
        """Nothing up front: the registry then has ``collect`` name the families."""
        return []

    def collect(self) -> Iterator[Any]:
        """The metric families, from the counts as they are now."""
        core = self._core
        yield _counters(
            core,
            "asgi_oauth_requests",
            "Requests to each endpoint by grant type and outcome (ok, or the RFC error code)",
            ("endpoint", "grant_type", "outcome"),
            self._requests,
        )
        yield _histograms(
            core,
            "asgi_oauth_request_duration_seconds",
            "Time to answer a request, by endpoint",
            ("endpoint",),
            self._latency,
        )
        yield _counters(
            core,
            "asgi_oauth_throttled",
            "Requests refused with 429 (guessing limits, rate limits), by endpoint",
            ("endpoint",),
            self._throttled,
        )
        yield _histograms(
            core,
            "asgi_oauth_store_call_duration_seconds",
            "Time of each store call, by operation",
            ("operation",),
            self._store,
        )
        yield _counters(
            core,
            "asgi_oauth_store_failures",
            "Store calls that failed, by operation",
            ("operation",),
            self._store_failures,
        )
        yield _counters(
            core,
            "asgi_oauth_tokens_issued",
            "Tokens the token endpoint issued, by kind and grant type",
            ("kind", "grant_type"),
            self._issued,
        )
        yield _counters(
            core,
            "asgi_oauth_revocations",
            "Revocations this process made (requests, replayed codes, reused refresh tokens)",
            (),
            {(): self._revocations},
        )
        yield _counters(
            core,
            "asgi_oauth_middleware_requests",
            "Middleware decisions: accepted, or refused with the reason",
            ("outcome", "reason"),
            self._decisions,
        )
        yield _counters(
            core,
            "asgi_oauth_middleware_cache",
            "Middleware token lookups answered from its cache (hit) or not (miss)",
            ("result",),
            self._cache,
        )
        live = core.GaugeMetricFamily(
            "asgi_oauth_notifications_live",
            "1 while a revocation notification connection is up, by source",
            labels=("source",),
        )
        for labels, is_live in self._live.items():
            live.add_metric(labels, 1.0 if is_live() else 0.0)
        yield live

    def exposition(self) -> tuple[bytes, str]:
        """The current values, and their content type."""
        body = self._prometheus.generate_latest(self.registry)
        return body, self._prometheus.CONTENT_TYPE_LATEST

    @property
    def app(self) -> Exposition:
        """The exposition over HTTP, as a raw ASGI application."""
        return Exposition(self)


def _counters(
    core: Any, name: str, doc: str, labels: Labels, counts: MutableMapping[Labels, int]
) -> Any:
    family = core.CounterMetricFamily(name, doc, labels=labels)
    for values, count in list(counts.items()):
        family.add_metric(values, count)
    return family


def _histograms(
    core: Any, name: str, doc: str, labels: Labels, series: MutableMapping[Labels, _Histogram]
) -> Any:
    family = core.HistogramMetricFamily(name, doc, labels=labels)
    for values, histogram in list(series.items()):
        cumulative, buckets = 0, []
        for bound, count in zip((*BUCKETS, float("inf")), histogram.buckets, strict=True):
            cumulative += count
            buckets.append((_le(bound), cumulative))
        family.add_metric(values, buckets, histogram.total)
    return family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class Exposition:
    """``GET`` the metrics' current values; never cached."""

    def __init__(self, metrics: PrometheusMetrics) -> None:
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _answer(send, 405, b"method not allowed\n", "text/plain", [(b"allow", b"GET")])
            return
        body, content_type = self._metrics.exposition()
        await _answer(send, 200, body if scope["method"] == "GET" else b"", content_type)


async def _answer(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"cache-control", b"no-store"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

"""``Instruments``: the metrics and the tracer the server and the middleware report to.

A ``Metrics`` is anything with these methods (``PrometheusMetrics`` is one); the tracer
is an OpenTelemetry ``Tracer`` (``opentelemetry_tracer()``, or your provider's). Either
may be absent: the code paths check once and do nothing more.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

#: Span attribute values OpenTelemetry takes.
AttributeValue = str | bool | int | float


class Metrics(Protocol):
    """What the server and the middleware report; every label is a bounded word."""

    def request(
        self, endpoint: str, grant_type: str, outcome: str, status: int, seconds: float
    ) -> None:
        """One request to an endpoint: its outcome is ``ok`` or an RFC error code."""

    def store_call(self, operation: str, seconds: float, *, failed: bool) -> None:
        """One call to the store."""

    def issued(self, grant_type: str, kinds: tuple[str, ...]) -> None:
        """Tokens issued by the token endpoint (``access_token``, ``refresh_token``...)."""

    def revoked(self) -> None:
        """This process revoked tokens (a revocation request, a replay, a reuse)."""

    def middleware(self, outcome: str, reason: str, *, cached: bool) -> None:
        """One decision of the middleware: ``accepted``, or ``refused`` and why."""

    def watch(self, name: str, live: Callable[[], bool]) -> None:
        """A connection to keep an eye on (revocation notifications, the stream)."""


@dataclass(frozen=True, slots=True)
class Instruments:
    """Where measurements go; ``Instruments()`` measures nothing."""

    metrics: Metrics | None = None
    #: An OpenTelemetry ``Tracer``.
    tracer: Any = None

    @property
    def active(self) -> bool:
        return self.metrics is not None or self.tracer is not None

    def span(
        self, name: str, attributes: Mapping[str, AttributeValue] | None = None
    ) -> contextlib.AbstractContextManager[Any]:
        """An OpenTelemetry span around a block (none without a tracer)."""
        if self.tracer is None:
            return contextlib.nullcontext()
        return self.tracer.start_as_current_span(name, attributes=attributes)  # type: ignore[no-any-return]


def opentelemetry_tracer() -> Any:
    """This package's tracer from the global OpenTelemetry provider (``opentelemetry-api``,
    the ``tracing`` extra); with no SDK configured, its spans record nothing."""
    try:
        from opentelemetry import trace
    except ImportError:
        raise RuntimeError("traces need OpenTelemetry: pip install 'asgi_oauth[tracing]'") from None
    from .. import __version__

    return trace.get_tracer("asgi_oauth", __version__)

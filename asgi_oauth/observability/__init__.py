"""Metrics and traces: what an operator watches (optional extras).

``Instruments(metrics=PrometheusMetrics(), tracer=...)`` given to
``AuthorizationServer`` and ``BearerTokenMiddleware`` counts and times each endpoint,
store call and middleware decision, and opens OpenTelemetry spans around them. Nothing
is measured, and nothing costs, without it. No label or span attribute ever carries a
token, a code, a secret or a password.
"""

from __future__ import annotations

from .instruments import Instruments, Metrics, opentelemetry_tracer
from .prometheus import PrometheusMetrics

__all__ = ["Instruments", "Metrics", "PrometheusMetrics", "opentelemetry_tracer"]

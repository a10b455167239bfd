"""Each request to the app, measured: an OpenTelemetry span, and its endpoint, grant
type, outcome and time in the metrics. Made only when the server has instruments.

Every label is a bounded word: the endpoint is one of the app's paths (``other`` for
anything else), the grant type one this server knows (``other`` otherwise), the
outcome ``ok`` or the RFC error code. Nothing from the request's values is kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, get_args

from starlette.types import Message, Receive, Scope, Send

from ..observability.instruments import Instruments
from ..types import GrantType

if TYPE_CHECKING:
    from .application import OAuth2App

_GRANT_TYPES = frozenset(get_args(GrantType))


@dataclass(slots=True)
class Report:
    """What ``OAuth2App.dispatch`` learns of a request, for its measurement."""

    grant_type: str | None = None
    error: str | None = None
    issued: tuple[str, ...] = ()


class Observer:
    def __init__(self, instruments: Instruments) -> None:
        self._instruments = instruments
        self._metrics = instruments.metrics

    async def observe(
        self,
        app: OAuth2App,
        path: str,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        endpoint = app.route_of(path)
        report = Report()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        attributes = {"http.request.method": scope["method"], "http.route": endpoint}
        with self._instruments.span(f"{scope['method']} {endpoint}", attributes) as span:
            await app.serve(scope, receive, send_status, path, report)
            grant_type = _grant_type(report.grant_type)
            outcome = report.error or ("ok" if status < 400 else "error")
            if span is not None:
                span.set_attribute("http.response.status_code", status)
                if grant_type:
                    span.set_attribute("oauth.grant_type", grant_type)
                if outcome != "ok":
                    span.set_attribute("oauth.error", outcome)
        if self._metrics is not None:
            seconds = time.perf_counter() - started
            self._metrics.request(endpoint, grant_type, outcome, status, seconds)
            if report.issued and outcome == "ok":
                self._metrics.issued(grant_type, report.issued)


def _grant_type(value: str | None) -> str:
    if value is None:
        return ""
    return value if value in _GRANT_TYPES else "other"

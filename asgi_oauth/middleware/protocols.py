"""What the middleware asks of an introspector, and how one says it cannot decide."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..models import IntrospectionResult


class IntrospectionUnavailable(Exception):
    """The introspector could not decide; the request must be refused (fail closed)."""


@runtime_checkable
class Introspector(Protocol):
    async def introspect_token(self, token: str) -> IntrospectionResult:
        """What RFC 7662 says of ``token``; ``IntrospectionUnavailable`` when unsure."""


@runtime_checkable
class CachingIntrospector(Introspector, Protocol):
    """An introspector whose live cached answers can be read without awaiting."""

    def cached(self, token: str) -> IntrospectionResult | None:
        """The cached answer for ``token``, or None: the middleware's hot path."""

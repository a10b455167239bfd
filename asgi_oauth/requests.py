"""The framework-free request the core works on: what an endpoint received."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import InvalidRequestError


@dataclass(frozen=True, slots=True)
class OAuthRequest:
    """The parameters of a request and its ``Authorization`` header.

    ``form`` holds each parameter once; the ASGI layer has already refused
    repeated parameters and dropped empty ones (RFC 6749 §3.1).
    """

    form: Mapping[str, str] = field(default_factory=dict)
    authorization: str | None = None

    def require(self, name: str) -> str:
        value = self.form.get(name)
        if value is None:
            raise InvalidRequestError(f"missing parameter: {name}")
        return value

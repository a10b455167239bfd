"""The framework-free request the core works on: what an endpoint received."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import InvalidRequestError


@dataclass(frozen=True, slots=True)
class OAuthRequest:
    """The parameters of a request, its ``Authorization`` header and where it came from.

    ``form`` holds each parameter once; the ASGI layer has already refused
    repeated parameters and dropped empty ones (RFC 6749 §3.1).
    ``client_address`` keys throttling, so guesses from one address cannot lock
    a client or user out everywhere.
    """

    form: Mapping[str, str] = field(default_factory=dict)
    authorization: str | None = None
    client_address: str | None = None
    #: The ``DPoP`` header: a proof of possession of a key (RFC 9449 §4).
    dpop: str | None = None

    def throttle_key(self, subject: str) -> str:
        """What failed attempts at ``subject`` count against.

        Callers name their kind of subject (``client:<id>``, ``user:<name>``,
        ``user_code``), so one kind's count never spills into another's.
        """
        return f"{subject}\x00{self.client_address or ''}"

    def require(self, name: str) -> str:
        value = self.form.get(name)
        if value is None:
            raise InvalidRequestError(f"missing parameter: {name}")
        return value

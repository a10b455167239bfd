"""What routes see: ``request.auth`` and ``request.user``, as Starlette users expect.

``request.auth.scopes`` makes Starlette's ``requires("read")`` work unchanged;
``request.user`` says who is calling. Both carry the full introspection result
for routes that want more claims.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.authentication import AuthCredentials, BaseUser

from ..models import IntrospectionResult
from .errors import BearerError


class BearerUser(BaseUser):
    """The resource owner (``sub``) or, for client credentials, the client itself."""

    def __init__(self, introspection: IntrospectionResult) -> None:
        self.introspection = introspection
        self.subject = introspection.sub
        self.client_id = introspection.client_id

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.subject or self.client_id or ""

    @property
    def identity(self) -> str:
        return self.subject or self.client_id or ""


class BearerCredentials(AuthCredentials):
    """The token's scopes; ``introspection`` is None for a request without a valid token,
    and ``error`` then says why. ``challenge`` builds the middleware's own
    ``WWW-Authenticate`` value, so route-level checks answer exactly as it does."""

    def __init__(
        self,
        introspection: IntrospectionResult | None = None,
        error: BearerError | None = None,
        challenge: Callable[[BearerError], str] | None = None,
    ) -> None:
        super().__init__(sorted(introspection.scope) if introspection is not None else [])
        self.introspection = introspection
        self.error = error
        self.challenge = challenge

    @property
    def jkt(self) -> str | None:
        """The thumbprint of the DPoP key the token is bound to (RFC 9449 §6), which the
        request's proof was signed with; None for a bearer token."""
        return self.introspection.jkt if self.introspection is not None else None

    @property
    def dpop(self) -> bool:
        """Whether the request proved possession of the token's key (RFC 9449 §7.1)."""
        return self.jkt is not None

"""The revocation endpoint (RFC 7009), and who hears of a revocation in-process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..client_auth import authenticate_client
from ..client_lookup import ClientLookup
from ..errors import storage_guard
from ..events import security_event
from ..keys import KeySet
from ..requests import OAuthRequest
from ..storage.base import Storage
from ..throttle import Throttle
from .introspection import find_token


class RevocationListeners:
    """Callbacks run whenever this process revokes tokens, so caches forget at once."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[], None]] = []

    def add(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def __call__(self) -> None:
        for listener in self._listeners:
            listener()


@dataclass(frozen=True, slots=True)
class Revocation:
    """Revokes a token at its client's request."""

    storage: Storage
    clients: ClientLookup
    throttle: Throttle
    keys: KeySet | None
    clock: Callable[[], float]
    #: Told after every revocation, so in-process caches forget at once.
    revoked: Callable[[], None]

    async def revoke(self, request: OAuthRequest) -> None:
        """§2.1. An unknown token, or one issued to another client, is answered like a
        revoked one (§2.2) so the endpoint tells nothing. ``token_type_hint`` needs no
        trust: one lookup finds either kind."""
        token_value = request.require("token")
        with storage_guard:
            client = await authenticate_client(
                request, self.clients, self.throttle, allow_public=True
            )
            token = await find_token(self.storage, self.keys, token_value)
            if token is None or token.client_id != client.client_id:
                return
            now = int(self.clock())
            if token.kind == "refresh_token":
                # §2.1: revoking a refresh token SHOULD revoke the access tokens of its grant.
                await self.storage.revoke_family(token.family_id, now=now)
            else:
                await self.storage.revoke_token(token.token_hash, now=now)
        security_event("token_revoked", client_id=client.client_id, token_kind=token.kind)
        self.revoked()

"""The dicts of an in-process store, and the private helpers its parts share."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ...errors import StorageError
from ...models import (
    AuthorizationCode,
    BrowserSession,
    Client,
    DeviceAuthorization,
    FederatedIdentity,
    PushedAuthorizationRequest,
    SigningKey,
    Token,
    User,
)
from ...revocation_signal import LocalSignal


class _State:
    """What ``MemoryStorage`` holds, and the helpers more than one of its parts calls."""

    def __init__(self) -> None:
        self._clients: dict[str, Client] = {}
        self._users: dict[str, User] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._tokens: dict[str, Token] = {}
        self._families: dict[str, set[str]] = {}
        #: (subject, client_id) -> (the scopes granted, when: ``granted_at``).
        self._consents: dict[tuple[str, str], tuple[frozenset[str], int]] = {}
        self._failures: dict[str, list[int]] = {}
        self._devices: dict[str, DeviceAuthorization] = {}
        self._user_codes: dict[str, str] = {}  # user code hash -> device code hash
        self._signing_keys: dict[str, SigningKey] = {}
        self._pushed: dict[str, PushedAuthorizationRequest] = {}
        self._once: dict[str, int] = {}  # key -> expires_at
        #: (key, window start) -> (requests counted, expires_at): ``count_request``.
        self._requests: dict[tuple[str, int], tuple[int, int]] = {}
        self._sessions: dict[str, BrowserSession] = {}
        #: (issuer, subject) -> the link of that upstream account.
        self._federated: dict[tuple[str, str], FederatedIdentity] = {}
        #: No other process shares this store: a counter is all the signal it takes.
        self.revocation_signal = LocalSignal()

    async def close(self) -> None:
        return None

    def _check_new(self, tokens: Sequence[Token]) -> None:
        """Refuse a hash already stored, before anything is written (as a primary key would)."""
        if any(token.token_hash in self._tokens for token in tokens):
            raise StorageError("duplicate token hash")

    def _add(self, tokens: Sequence[Token]) -> None:
        for token in tokens:
            self._tokens[token.token_hash] = token
            self._families.setdefault(token.family_id, set()).add(token.token_hash)

    def _revoke(self, token_hash: str, now: int) -> bool:
        token = self._tokens.get(token_hash)
        if token is None or token.revoked_at is not None:
            return False
        self._tokens[token_hash] = dataclasses.replace(token, revoked_at=now)
        return True

    def _forget_device(self, device: DeviceAuthorization) -> None:
        del self._devices[device.device_code_hash]
        del self._user_codes[device.user_code_hash]

    def _forget(self, token: Token) -> None:
        del self._tokens[token.token_hash]
        family = self._families.get(token.family_id)
        if family is not None:
            family.discard(token.token_hash)
            if not family:
                del self._families[token.family_id]

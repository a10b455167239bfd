"""The in-process store's clients, users (with their linked upstream accounts), consents
and browser sessions."""

from __future__ import annotations

import dataclasses
import time

from ...errors import StorageError
from ...models import (
    AuthorizationCode,
    BrowserSession,
    Client,
    ConnectedApp,
    DeviceAuthorization,
    FederatedIdentity,
    Token,
    User,
)
from .. import _rows
from .state import _State


class _Accounts(_State):
    """Clients, users, consents and browser sessions."""

    async def get_client(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    async def add_client(self, client: Client) -> bool:
        if client.client_id in self._clients:
            return False
        self._clients[client.client_id] = client
        return True

    async def save_client(self, client: Client) -> None:
        self._clients[client.client_id] = client

    async def delete_client(self, client_id: str) -> bool:
        if self._clients.pop(client_id, None) is None:
            return False
        for code_hash in [h for h, c in self._codes.items() if c.client_id == client_id]:
            del self._codes[code_hash]
        self._end_tokens([t for t in self._tokens.values() if t.client_id == client_id])
        for device in [d for d in self._devices.values() if d.client_id == client_id]:
            self._forget_device(device)
        for uri_hash in [h for h, r in self._pushed.items() if r.client_id == client_id]:
            del self._pushed[uri_hash]
        for key in [k for k in self._consents if k[1] == client_id]:
            del self._consents[key]
        self.revocation_signal.revoked()
        return True

    async def list_clients(self) -> list[Client]:
        return sorted(self._clients.values(), key=lambda c: c.client_id)

    async def is_allowed_origin(self, origin: str) -> bool:
        return any(origin in c.allowed_origins for c in self._clients.values())

    async def get_user(self, username: str) -> User | None:
        return self._users.get(username)

    async def get_user_by_id(self, user_id: str) -> User | None:
        return self._by_id(user_id)

    async def add_user(self, user: User) -> bool:
        if user.username in self._users or self._by_id(user.user_id) is not None:
            return False
        self._users[user.username] = user
        return True

    async def save_user(self, user: User) -> None:
        taken = self._users.get(user.username)
        if taken is not None and taken.user_id != user.user_id:
            raise StorageError("username taken by another user")
        known = self._by_id(user.user_id)
        if known is not None:
            del self._users[known.username]
        self._users[user.username] = user

    async def list_users(self) -> list[User]:
        return sorted(self._users.values(), key=lambda u: u.username)

    async def delete_user(self, username: str) -> bool:
        user = self._users.pop(username, None)
        if user is None:
            return False
        for key in [k for k in self._consents if k[0] == user.user_id]:
            del self._consents[key]
        for code_hash in [h for h, c in self._codes.items() if c.subject == user.user_id]:
            del self._codes[code_hash]
        for device in [d for d in self._devices.values() if d.subject == user.user_id]:
            self._forget_device(device)
        for session_hash in [h for h, s in self._sessions.items() if s.user_id == user.user_id]:
            del self._sessions[session_hash]
        for pair in [p for p, f in self._federated.items() if f.user_id == user.user_id]:
            del self._federated[pair]
        self._end_tokens([t for t in self._tokens.values() if t.subject == user.user_id])
        self.revocation_signal.revoked()
        return True

    async def get_federated_identity(self, issuer: str, subject: str) -> FederatedIdentity | None:
        return self._federated.get((issuer, subject))

    async def federated_identities(self, user_id: str) -> list[FederatedIdentity]:
        linked = [f for f in self._federated.values() if f.user_id == user_id]
        return sorted(linked, key=lambda f: (-f.updated_at, f.issuer, f.subject))

    async def add_federated_identity(self, identity: FederatedIdentity) -> bool:
        pair = (identity.issuer, identity.subject)
        if pair in self._federated or self._by_id(identity.user_id) is None:
            return False
        self._federated[pair] = identity
        return True

    async def add_federated_user(self, user: User, identity: FederatedIdentity) -> bool:
        pair = (identity.issuer, identity.subject)
        _rows.linked_to(identity, user)
        taken = user.username in self._users or self._by_id(user.user_id) is not None
        if taken or pair in self._federated:
            return False
        self._users[user.username] = user
        self._federated[pair] = identity
        return True

    async def save_federated_identity(self, identity: FederatedIdentity) -> None:
        pair = (identity.issuer, identity.subject)
        known = self._federated.get(pair)
        if known is not None:
            self._federated[pair] = dataclasses.replace(
                known,
                provider=identity.provider,
                claims=identity.claims,
                tokens=identity.tokens,
                updated_at=identity.updated_at,
            )

    async def get_consent(self, subject: str, client_id: str) -> frozenset[str] | None:
        consent = self._consents.get((subject, client_id))
        return None if consent is None else consent[0]

    async def save_consent(
        self, subject: str, client_id: str, scope: frozenset[str], *, now: int = 0
    ) -> None:
        self._consents[(subject, client_id)] = (scope, now)

    async def list_grants(self, subject: str, *, now: int) -> list[ConnectedApp]:
        used: dict[str, int] = {}
        live: list[tuple[str, str, int]] = []
        for token in self._tokens.values():
            if token.subject == subject:
                used[token.client_id] = max(used.get(token.client_id, 0), token.issued_at)
                if token.expires_at > now and token.revoked_at is None:
                    live.append((token.client_id, " ".join(token.scope), token.issued_at))
        consented = [
            ConnectedApp(client_id, scope, granted_at, used.get(client_id))
            for (who, client_id), (scope, granted_at) in sorted(self._consents.items())
            if who == subject
        ]
        return _rows.with_live_tokens(consented, live)

    async def revoke_grant(self, subject: str, client_id: str, *, now: int) -> bool:
        def ours(record: AuthorizationCode | DeviceAuthorization | Token) -> bool:
            return record.subject == subject and record.client_id == client_id

        codes = [h for h, c in self._codes.items() if ours(c)]
        devices = [d for d in self._devices.values() if ours(d)]
        tokens = [t for t in self._tokens.values() if ours(t)]
        live = [t for t in tokens if t.kind != "access_token" or t.revoked_at is None]
        consent = self._consents.pop((subject, client_id), None)
        if consent is None and not codes and not devices and not live:
            return False
        for code_hash in codes:
            del self._codes[code_hash]
        for device in devices:
            self._forget_device(device)
        self._end_tokens(tokens, now)
        self.revocation_signal.revoked()
        return True

    async def consented_clients(self, subject: str) -> list[str]:
        return sorted(client_id for who, client_id in self._consents if who == subject)

    async def save_session(self, session: BrowserSession) -> None:
        self._sessions[session.session_hash] = session

    async def get_session(self, session_hash: str) -> BrowserSession | None:
        return self._sessions.get(session_hash)

    async def delete_session(self, session_hash: str) -> bool:
        return self._sessions.pop(session_hash, None) is not None

    def _by_id(self, user_id: str) -> User | None:
        return next((u for u in self._users.values() if u.user_id == user_id), None)

    def _end_tokens(self, tokens: list[Token], now: int | None = None) -> None:
        """Revoke access tokens (the revocation list names them until they expire);
        forget refresh tokens."""
        now = int(time.time()) if now is None else now
        for token in tokens:
            if token.kind == "access_token":
                self._revoke(token.token_hash, now)
            else:
                self._forget(token)

"""An in-process store: fast, ephemeral, for tests and single-process demos.

Every method runs without awaiting, so on one event loop each is atomic; like a
database, it checks everything before it writes anything.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

from ..errors import StorageError
from ..models import (
    AuthorizationCode,
    BrowserSession,
    Client,
    DeviceAuthorization,
    PushedAuthorizationRequest,
    SigningKey,
    Token,
    User,
)
from .base import FAILURE_RETENTION, successor_of


class MemoryStorage:
    def __init__(self) -> None:
        self._clients: dict[str, Client] = {}
        self._users: dict[str, User] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._tokens: dict[str, Token] = {}
        self._families: dict[str, set[str]] = {}
        self._consents: dict[tuple[str, str], frozenset[str]] = {}
        self._failures: dict[str, list[int]] = {}
        self._devices: dict[str, DeviceAuthorization] = {}
        self._user_codes: dict[str, str] = {}  # user code hash -> device code hash
        self._signing_keys: dict[str, SigningKey] = {}
        self._pushed: dict[str, PushedAuthorizationRequest] = {}
        self._once: dict[str, int] = {}  # key -> expires_at
        self._sessions: dict[str, BrowserSession] = {}

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
        self._end_tokens([t for t in self._tokens.values() if t.subject == user.user_id])
        return True

    async def get_consent(self, subject: str, client_id: str) -> frozenset[str] | None:
        return self._consents.get((subject, client_id))

    async def save_consent(self, subject: str, client_id: str, scope: frozenset[str]) -> None:
        self._consents[(subject, client_id)] = scope

    async def save_authorization_code(self, code: AuthorizationCode) -> None:
        if code.code_hash in self._codes:
            raise StorageError("duplicate authorization code hash")
        self._codes[code.code_hash] = code

    async def get_authorization_code(self, code_hash: str) -> AuthorizationCode | None:
        return self._codes.get(code_hash)

    async def redeem_authorization_code(
        self, code_hash: str, *, tokens: Sequence[Token], now: int
    ) -> bool:
        code = self._codes.get(code_hash)
        if code is None or code.consumed_at is not None or code.expires_at <= now:
            return False
        self._check_new(tokens)
        self._codes[code_hash] = dataclasses.replace(code, consumed_at=now)
        self._add(tokens)
        return True

    async def save_tokens(self, tokens: Sequence[Token]) -> None:
        self._check_new(tokens)
        self._add(tokens)

    async def get_token(self, token_hash: str) -> Token | None:
        return self._tokens.get(token_hash)

    async def rotate_refresh_token(
        self,
        token_hash: str,
        *,
        tokens: Sequence[Token],
        now: int,
        sealed_response: str | None = None,
    ) -> bool:
        successor = successor_of(tokens)
        token = self._tokens.get(token_hash)
        if token is None or token.revoked_at is not None or token.replaced_by is not None:
            return False
        self._check_new(tokens)
        self._tokens[token_hash] = dataclasses.replace(
            token, replaced_by=successor, rotated_at=now, sealed_response=sealed_response
        )
        self._add(tokens)
        return True

    async def revoke_token(self, token_hash: str, *, now: int) -> bool:
        return self._revoke(token_hash, now)

    async def revoke_family(self, family_id: str, *, now: int) -> int:
        return sum(self._revoke(h, now) for h in self._families.get(family_id, ()))

    async def list_revoked_access_tokens(self, *, now: int) -> list[str]:
        return [
            t.token_hash
            for t in self._tokens.values()
            if t.kind == "access_token" and t.revoked_at is not None and t.expires_at > now
        ]

    async def list_signing_keys(self, *, now: int) -> list[SigningKey]:
        keys = [k for k in self._signing_keys.values() if not _expired(k, now)]
        return sorted(keys, key=lambda k: (k.created_at, k.kid))

    async def add_signing_key(
        self, key: SigningKey, *, retire_active_until: int | None, now: int
    ) -> bool:
        if key.kid in self._signing_keys:
            raise StorageError("duplicate signing key id")
        active = [k for k in self._signing_keys.values() if k.alg == key.alg and k.is_active]
        if active and retire_active_until is None and key.is_active:
            return False
        for old in active:
            self._signing_keys[old.kid] = dataclasses.replace(
                old, retired_at=now, expires_at=retire_active_until
            )
        self._signing_keys[key.kid] = key
        return True

    async def save_device_authorization(self, device: DeviceAuthorization) -> None:
        if device.device_code_hash in self._devices or device.user_code_hash in self._user_codes:
            raise StorageError("duplicate device code or user code hash")
        self._devices[device.device_code_hash] = device
        self._user_codes[device.user_code_hash] = device.device_code_hash

    async def get_device_authorization(self, user_code_hash: str) -> DeviceAuthorization | None:
        return self._device_by_user_code(user_code_hash)

    async def decide_device_authorization(
        self, user_code_hash: str, *, subject: str, approved: bool, now: int
    ) -> bool:
        device = self._device_by_user_code(user_code_hash)
        if device is None or device.status != "pending" or device.expires_at <= now:
            return False
        self._devices[device.device_code_hash] = dataclasses.replace(
            device, status="approved" if approved else "denied", subject=subject
        )
        return True

    async def poll_device_authorization(
        self, device_code_hash: str, *, client_id: str, now: int
    ) -> DeviceAuthorization | None:
        device = self._devices.get(device_code_hash)
        if device is None or device.client_id != client_id:
            return None
        last, interval = device.last_polled_at, device.interval
        if last is not None and now - last < interval:
            interval += 5
        self._devices[device_code_hash] = dataclasses.replace(
            device, last_polled_at=now, interval=interval
        )
        return device

    async def redeem_device_code(
        self, device_code_hash: str, *, tokens: Sequence[Token], now: int
    ) -> bool:
        device = self._devices.get(device_code_hash)
        if device is None or device.status != "approved" or device.expires_at <= now:
            return False
        self._check_new(tokens)
        self._devices[device_code_hash] = dataclasses.replace(device, status="consumed")
        self._add(tokens)
        return True

    async def save_pushed_authorization_request(self, request: PushedAuthorizationRequest) -> None:
        if request.request_uri_hash in self._pushed:
            raise StorageError("duplicate request_uri hash")
        self._pushed[request.request_uri_hash] = dataclasses.replace(
            request, params=dict(request.params)
        )

    async def get_pushed_authorization_request(
        self, request_uri_hash: str
    ) -> PushedAuthorizationRequest | None:
        return self._pushed.get(request_uri_hash)

    async def consume_pushed_authorization_request(
        self, request_uri_hash: str, *, now: int
    ) -> bool:
        request = self._pushed.get(request_uri_hash)
        if request is None or request.consumed_at is not None or request.expires_at <= now:
            return False
        self._pushed[request_uri_hash] = dataclasses.replace(request, consumed_at=now)
        return True

    async def use_once(self, key: str, *, expires_at: int, now: int) -> bool:
        if self._once.get(key, now) > now:
            return False
        self._once[key] = expires_at
        return True

    async def purge_expired(self, *, now: int) -> int:
        codes = [h for h, c in self._codes.items() if c.expires_at <= now]
        for code_hash in codes:
            del self._codes[code_hash]
        tokens = [t for t in self._tokens.values() if t.expires_at <= now]
        for token in tokens:
            self._forget(token)
        devices = [d for d in self._devices.values() if d.expires_at <= now]
        for device in devices:
            self._forget_device(device)
        kids = [kid for kid, k in self._signing_keys.items() if _expired(k, now)]
        for kid in kids:
            del self._signing_keys[kid]
        pushed = [h for h, r in self._pushed.items() if r.expires_at <= now]
        for uri_hash in pushed:
            del self._pushed[uri_hash]
        once = [k for k, expires_at in self._once.items() if expires_at <= now]
        for key in once:
            del self._once[key]
        sessions = [h for h, s in self._sessions.items() if s.expires_at <= now]
        for session_hash in sessions:
            del self._sessions[session_hash]
        failures = 0
        for key, times in list(self._failures.items()):
            kept = [t for t in times if t > now - FAILURE_RETENTION]
            failures += len(times) - len(kept)
            if kept:
                self._failures[key] = kept
            else:
                del self._failures[key]
        rows = len(codes) + len(tokens) + len(devices) + len(kids) + len(pushed) + len(once)
        return rows + len(sessions) + failures

    async def take_attempt(self, key: str, *, limit: int, since: int, now: int) -> int | None:
        recent = [t for t in self._failures.get(key, ()) if t >= since]
        if len(recent) >= limit:
            return min(recent)
        self._failures.setdefault(key, []).append(now)
        return None

    async def forget_failure(self, key: str, *, at: int) -> None:
        times = self._failures.get(key, [])
        if at in times:
            times.remove(at)

    async def clear_failures(self, key: str) -> None:
        self._failures.pop(key, None)

    async def save_session(self, session: BrowserSession) -> None:
        self._sessions[session.session_hash] = session

    async def get_session(self, session_hash: str) -> BrowserSession | None:
        return self._sessions.get(session_hash)

    async def delete_session(self, session_hash: str) -> bool:
        return self._sessions.pop(session_hash, None) is not None

    async def close(self) -> None:
        return None

    def _by_id(self, user_id: str) -> User | None:
        return next((u for u in self._users.values() if u.user_id == user_id), None)

    def _check_new(self, tokens: Sequence[Token]) -> None:
        """Refuse a hash already stored, before anything is written (as a primary key would)."""
        if any(token.token_hash in self._tokens for token in tokens):
            raise StorageError("duplicate token hash")

    def _add(self, tokens: Sequence[Token]) -> None:
        for token in tokens:
            self._tokens[token.token_hash] = token
            self._families.setdefault(token.family_id, set()).add(token.token_hash)

    def _end_tokens(self, tokens: list[Token]) -> None:
        """Revoke access tokens (the revocation list names them until they expire);
        forget refresh tokens."""
        now = int(time.time())
        for token in tokens:
            if token.kind == "access_token":
                self._revoke(token.token_hash, now)
            else:
                self._forget(token)

    def _revoke(self, token_hash: str, now: int) -> bool:
        token = self._tokens.get(token_hash)
        if token is None or token.revoked_at is not None:
            return False
        self._tokens[token_hash] = dataclasses.replace(token, revoked_at=now)
        return True

    def _device_by_user_code(self, user_code_hash: str) -> DeviceAuthorization | None:
        device_code_hash = self._user_codes.get(user_code_hash)
        return None if device_code_hash is None else self._devices[device_code_hash]

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


def _expired(key: SigningKey, now: int) -> bool:
    return key.expires_at is not None and key.expires_at <= now

"""The in-process store's short-lived records: device authorizations, pushed
authorization requests, one-time keys, failed-attempt and request counters; and purging."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ...errors import StorageError
from ...models import DeviceAuthorization, PushedAuthorizationRequest, Token
from ..base import FAILURE_RETENTION
from .state import _State
from .tokens import _expired


class _Pending(_State):
    """Device authorizations, pushed authorization requests, one-time keys, failed
    attempts, and purging whatever has expired."""

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

    async def take_attempt(self, key: str, *, limit: int, since: int, now: int) -> int | None:
        recent = [t for t in self._failures.get(key, ()) if t >= since]
        if len(recent) >= limit:
            return min(recent)
        self._failures.setdefault(key, []).append(now)
        return None

    async def count_request(
        self, key: str, *, window_start: int, expires_at: int, limit: int
    ) -> bool:
        count, _ = self._requests.get((key, window_start), (0, expires_at))
        if count >= limit:
            return False
        self._requests[(key, window_start)] = (count + 1, expires_at)
        return True

    async def forget_failure(self, key: str, *, at: int) -> None:
        times = self._failures.get(key, [])
        if at in times:
            times.remove(at)

    async def clear_failures(self, key: str) -> None:
        self._failures.pop(key, None)

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
        counters = [k for k, (_, expires_at) in self._requests.items() if expires_at <= now]
        for counter in counters:
            del self._requests[counter]
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
        return rows + len(sessions) + len(counters) + failures

    def _device_by_user_code(self, user_code_hash: str) -> DeviceAuthorization | None:
        device_code_hash = self._user_codes.get(user_code_hash)
        return None if device_code_hash is None else self._devices[device_code_hash]

"""The in-process store's authorization codes, tokens and signing keys."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ...errors import StorageError
from ...models import AuthorizationCode, SigningKey, Token
from ..base import successor_of
from .state import _State


class _Tokens(_State):
    """Authorization codes, tokens and signing keys."""

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
        if not self._revoke(token_hash, now):
            return False
        self.revocation_signal.revoked()
        return True

    async def revoke_family(self, family_id: str, *, now: int) -> int:
        revoked = sum(self._revoke(h, now) for h in self._families.get(family_id, ()))
        if revoked:
            self.revocation_signal.revoked()
        return revoked

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
        self.revocation_signal.revoked()
        return True


def _expired(key: SigningKey, now: int) -> bool:
    return key.expires_at is not None and key.expires_at <= now

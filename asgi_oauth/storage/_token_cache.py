"""Access-token rows recently read from a store shared by several processes, reused until
the store's revocation signal moves: introspection then answers from memory.

An access token's row changes in one way only, its revocation (a refresh token's also
by rotation, so refresh tokens are never kept), and every write that revokes one moves
the store's ``revocation_signal`` once committed, in every process on the store. Entries
are trusted only under the version of the signal read before their row was: a change
committed after that read clears them at the next lookup. Their life is bounded too
(``ttl``), should a signal ever fail to move, and a signal that is not ``live`` (other
processes' revocations unseen) keeps nothing. Unknown tokens are never kept: one issued
a moment later by another process must be found. The signal (a file beside a SQLite
database) is first read once an access token has been found, so a lookup that finds
nothing, or fails, leaves no file behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..models import Token
from ..revocation_signal import RevocationSignal

#: ``AccessTokenCache.version`` until the signal was first read.
_COLD = object()


class AccessTokenCache:
    __slots__ = ("_clock", "_entries", "_expires", "_max_size", "_signal", "_ttl", "version")

    def __init__(
        self,
        signal: RevocationSignal,
        *,
        ttl: float = 5.0,
        max_size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._signal = signal
        self._ttl = ttl
        self._max_size = max_size
        self._clock = clock
        self._entries: dict[str, Token] = {}
        self._expires = 0.0
        #: The signal's version the entries were read under; read it before a row.
        self.version: object = _COLD

    def get(self, token_hash: str) -> Token | None:
        """The kept row of ``token_hash``, if it is still what the store holds."""
        if self.version is _COLD:
            return None
        version = self._signal.version()
        if version != self.version or self._clock() >= self._expires:
            self._entries.clear()
            self.version = version
            self._expires = self._clock() + self._ttl
            return None
        return self._entries.get(token_hash)

    def put(self, version: object, token: Token) -> None:
        """Keep ``token``, read after ``get`` saw ``version``, if nothing moved since."""
        if token.kind != "access_token":
            return
        if self.version is _COLD:
            # The first one found: the signal is read from now on (the next lookup reads
            # it before its row); this row, read before, is not kept.
            self.version = self._signal.version()
            self._expires = 0.0
            return
        if version != self.version or not self._signal.live:
            return
        if len(self._entries) >= self._max_size:
            self._entries.clear()
        self._entries[token.token_hash] = token

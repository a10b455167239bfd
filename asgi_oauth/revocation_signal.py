"""How every process that shares a store learns, at once, that something was revoked.

A store's revocations (a token, a family, a client's or a user's tokens, a signing
key) are made by whichever process or instance serves the request; the caches of
all the others (the middleware's introspection cache, the JWT revocation list) must
forget at once. Each store offers a ``RevocationSignal``:

- ``version()`` is checked on every request, so it is cheap and synchronous; it
  changes whenever any process sharing the store revoked something.
- ``revoked()`` is called by the store after a revocation is committed.
- ``live`` is False while changes may be missed (a PostgreSQL notification
  connection being re-established): callers then rely on their cache lifetimes.

The memory store lives in one process, where ``LocalSignal`` is all it takes.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class RevocationSignal(Protocol):
    @property
    def live(self) -> bool:
        """Whether every revocation, wherever made, moves ``version`` within moments."""

    def version(self) -> object:
        """A value that changes whenever a process sharing the store revoked something."""

    def revoked(self) -> None:
        """Tell every process sharing the store: call after the revocation is committed."""


class LocalSignal:
    """The signal of a store no other process shares: a counter."""

    __slots__ = ("_version",)

    live = True

    def __init__(self) -> None:
        self._version = 0

    def version(self) -> object:
        return self._version

    def revoked(self) -> None:
        self._version += 1


def signal_of(storage: object) -> RevocationSignal:
    """The store's ``revocation_signal``; a store without one (your own) is taken to
    be shared by no other process."""
    signal = getattr(storage, "revocation_signal", None)
    if isinstance(signal, RevocationSignal):
        return signal
    return LocalSignal()

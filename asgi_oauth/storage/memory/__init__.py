"""``MemoryStorage``, the in-process store, put together from its parts."""

from __future__ import annotations

from .accounts import _Accounts
from .maintenance import _Maintenance
from .pending import _Pending
from .tokens import _Tokens

__all__ = ["MemoryStorage"]


class MemoryStorage(_Accounts, _Tokens, _Pending, _Maintenance):
    """An in-process store: fast, ephemeral, for tests and single-process demos.

    Every method runs without awaiting, so on one event loop each is atomic; like a
    database, it checks everything before it writes anything.
    """

"""The default store: one SQLite file in WAL mode, durable and safe across processes.

Reads run on the caller's thread; writes are committed in groups by one writer
thread (see ``database``). The conditional writes of the ``Storage`` protocol
decide with a guarded ``UPDATE`` (or a read, when the old row is the answer)
inside the writer's transaction, so concurrent servers on one file still get one
winner. Every SQLite failure reaches the caller as ``StorageError``.

The package: ``database`` (the connections, the writer thread and its group
commit), ``schema`` (the tables, their migrations and the SQL), and the
``Storage`` methods in four mixins on ``database``: ``accounts``, ``tokens``,
``pending`` and ``maintenance``.
"""

from __future__ import annotations

from .accounts import _Accounts
from .database import _MAX_BATCH as _MAX_BATCH  # the tests read the group size
from .database import _nothing
from .maintenance import _Maintenance
from .pending import _Pending
from .tokens import _Tokens

__all__ = ["SQLiteStorage"]


class SQLiteStorage(_Accounts, _Tokens, _Pending, _Maintenance):
    """A ``Storage`` in one SQLite file, opened (and migrated) on first use.

    ``synchronous="FULL"`` fsyncs every commit; ``"NORMAL"`` may lose the last
    commits on power loss, never on a crash of the process. ``busy_timeout`` is
    how many seconds to wait for another process holding the file's lock.
    ``client_cache_ttl`` is how long a client read from the file is reused: a
    client changed by another process (the command line, another server) is
    seen within that many seconds; 0 reads it every time.
    """

    async def migrate(self) -> None:
        """Create or upgrade the schema now rather than on first use; safe to repeat."""
        await self._write(_nothing)

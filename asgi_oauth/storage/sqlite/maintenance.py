"""The SQLite store's maintenance switch (``asgi_oauth.availability``): one row while it
is off, read by every process on the file."""

from __future__ import annotations

from .database import SQLiteDatabase

_SELECT = "SELECT since FROM maintenance WHERE id = 1"
#: A switch already off keeps the time it went off.
_INSERT = "INSERT INTO maintenance (id, since) VALUES (1, ?) ON CONFLICT (id) DO NOTHING"


class _Maintenance(SQLiteDatabase):
    """When the shared switch went off; None while it is on."""

    async def maintenance_since(self) -> int | None:
        rows = await self._read(_SELECT)
        return int(rows[0][0]) if rows else None

    async def set_maintenance(self, since: int | None) -> None:
        sql, params = ("DELETE FROM maintenance", ()) if since is None else (_INSERT, (since,))
        await self._write(lambda conn: conn.execute(sql, params).close(), atomic=True)

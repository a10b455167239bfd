"""The PostgreSQL store's maintenance switch (``asgi_oauth.availability``): one row while
it is off, read by every instance on the schema."""

from __future__ import annotations

from .database import PostgresDatabase

_SELECT = "SELECT since FROM maintenance WHERE id = 1"
#: A switch already off keeps the time it went off.
_INSERT = "INSERT INTO maintenance (id, since) VALUES (1, $1) ON CONFLICT (id) DO NOTHING"


class _Maintenance(PostgresDatabase):
    """When the shared switch went off; None while it is on."""

    async def maintenance_since(self) -> int | None:
        row = await self._fetchrow(_SELECT)
        return None if row is None else int(row[0])

    async def set_maintenance(self, since: int | None) -> None:
        if since is None:
            await self._execute("DELETE FROM maintenance")
        else:
            await self._execute(_INSERT, since)

"""The in-process store's maintenance switch (``asgi_oauth.availability``)."""

from __future__ import annotations

from .state import _State


class _Maintenance(_State):
    """When the shared switch went off; None while it is on."""

    _maintenance_since: int | None = None

    async def maintenance_since(self) -> int | None:
        return self._maintenance_since

    async def set_maintenance(self, since: int | None) -> None:
        if since is None or self._maintenance_since is None:
            self._maintenance_since = since

"""A Starlette host application for the real-server tests (``tests/test_real_servers.py``).

``OAuth2App`` is mounted at ``/oauth2`` and its metadata is also served at the
host's root well-known URI (RFC 8414 §3.1). The store and the issuer come from
the environment, set by the test that starts the server process:

* ``ASGI_OAUTH_TEST_DB``: the SQLite file, prepared by the test;
* ``ASGI_OAUTH_TEST_ISSUER``: ``http://127.0.0.1:<port>/oauth2``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Mount, Route

from asgi_oauth import AuthorizationServer, Settings
from asgi_oauth.app import OAuth2App
from asgi_oauth.storage import SQLiteStorage

server = AuthorizationServer(
    SQLiteStorage(os.environ["ASGI_OAUTH_TEST_DB"]),
    Settings(
        issuer=os.environ["ASGI_OAUTH_TEST_ISSUER"],
        insecure_transport=True,
        scope_descriptions={"read": "Read your data", "write": "Change your data"},
        # Polling every second keeps the device-flow tests short.
        device_poll_interval=1,
    ),
)
oauth_app = OAuth2App(server)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await server.close()


app = Starlette(
    routes=[
        Route(oauth_app.metadata_path, endpoint=oauth_app.metadata_app),
        Mount("/oauth2", app=oauth_app),
    ],
    lifespan=lifespan,
)

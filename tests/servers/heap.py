"""Apps for ``tests/test_heap.py``: an authorization server on a SQLite file
(``HEAP_TEST_DB``, issuer ``HEAP_TEST_ISSUER``) served three ways, each answering
``GET /__heap`` with how many objects the garbage collector has frozen in its process."""

from __future__ import annotations

import gc
import json
import os

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import Receive, Scope, Send

from asgi_oauth import AuthorizationServer, Settings
from asgi_oauth.app import OAuth2App
from asgi_oauth.cli.serve import build_app
from asgi_oauth.storage import SQLiteStorage


def _server() -> AuthorizationServer:
    settings = Settings(issuer=os.environ["HEAP_TEST_ISSUER"], insecure_transport=True)
    return AuthorizationServer(SQLiteStorage(os.environ["HEAP_TEST_DB"]), settings)


class Probe:
    """``app``, but ``GET /__heap`` answers ``{"frozen": gc.get_freeze_count()}``."""

    def __init__(self, app: Starlette | OAuth2App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/__heap":
            body = json.dumps({"frozen": gc.get_freeze_count()}).encode()
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


#: ``OAuth2App`` served alone: it runs the process's lifespan.
alone = Probe(OAuth2App(_server()))
#: Mounted in a host application, which runs the lifespan; OAuth2App never sees it.
mounted = Probe(Starlette(routes=[Mount("/oauth2", OAuth2App(_server()))]))
#: What ``asgi-oauth serve`` runs.
served = Probe(build_app(_server(), demo=False))

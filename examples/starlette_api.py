"""A Starlette API that is also its own authorization server.

The OAuth2App is mounted at ``/oauth2``, and ``BearerTokenMiddleware`` asks it
in-process about the tokens sent to ``/api/*``. On its first start the app
registers on ``./example.db``, and prints each secret once: ``demo-client``
(client credentials, scopes ``read write``), ``demo-resource-server`` (for
``examples/remote_resource_server.py``), the public client ``demo-app`` (the
device flow, for ``examples/device_client.py``) and the user ``demo``, who
signs in on the server's pages to approve a device. Delete the file to get
new secrets.

Run it from the repository root, under uvicorn or under hypercorn::

    python examples/starlette_api.py
    hypercorn examples.starlette_api:app --bind 127.0.0.1:8000

Then, with the secret it printed::

    curl -s -u demo-client:SECRET -d grant_type=client_credentials \\
        http://127.0.0.1:8000/oauth2/token                          # copy access_token
    curl -s -H "Authorization: Bearer TOKEN" http://127.0.0.1:8000/api/me
    curl -s -H "Authorization: Bearer TOKEN" -H "Content-Type: application/json" \\
        -d '{"text": "hello"}' http://127.0.0.1:8000/api/notes      # 201
    curl -si http://127.0.0.1:8000/api/me                           # 401, a Bearer challenge

A token asked for with ``-d scope=read`` gets 403 ``insufficient_scope`` from
``POST /api/notes``, which needs ``write``. The metadata documents are at
``/.well-known/oauth-authorization-server/oauth2`` (RFC 8414) and
``/.well-known/oauth-protected-resource`` (RFC 9728).

A person's token, from the device flow (open the link it prints, sign in as
``demo`` with the password printed above, approve), is used the same way;
``/api/me`` then names the user too::

    python examples/device_client.py --issuer http://127.0.0.1:8000/oauth2 --client-id demo-app

Environment: ``EXAMPLE_PORT`` (8000), ``EXAMPLE_DB`` (``example.db``) and
``EXAMPLE_ISSUER`` (``http://127.0.0.1:$EXAMPLE_PORT/oauth2``). The app can
also be served as ``uvicorn examples.starlette_api:app``; on another port,
set ``EXAMPLE_PORT`` to the port given to uvicorn or hypercorn, as the
issuer is built from it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from asgi_oauth import AuthorizationServer, Settings
from asgi_oauth.app import OAuth2App
from asgi_oauth.middleware import BearerTokenMiddleware, BearerUser, require_scopes
from asgi_oauth.storage import SQLiteStorage

PORT = int(os.environ.get("EXAMPLE_PORT", "8000"))
ISSUER = os.environ.get("EXAMPLE_ISSUER", f"http://127.0.0.1:{PORT}/oauth2")
#: This API's own URL (RFC 9728 resource identifier): the issuer without its mount.
RESOURCE = ISSUER.removesuffix("/oauth2")
CLIENT_ID = "demo-client"
RESOURCE_SERVER_ID = "demo-resource-server"
DEVICE_APP_ID = "demo-app"
USERNAME = "demo"

server = AuthorizationServer(
    SQLiteStorage(os.environ.get("EXAMPLE_DB", "example.db")),
    # insecure_transport allows the local http issuer; an https issuer keeps it off.
    Settings(
        issuer=ISSUER,
        insecure_transport=ISSUER.startswith("http://"),
        scopes_supported=("read", "write"),
    ),
)
oauth = OAuth2App(server)
notes: list[dict[str, str | None]] = []


async def register_demo_accounts() -> None:
    """Register the demo clients and user on the first start; print each secret once."""
    if await server.storage.get_client(CLIENT_ID) is None:
        client = await server.register_client(
            name="Demo client",
            grant_types=["client_credentials"],
            scope=["read", "write"],
            client_id=CLIENT_ID,
        )
        print(f"demo client_id:     {CLIENT_ID}", flush=True)
        print(f"demo client_secret: {client.client_secret}  (shown once)", flush=True)
    if await server.storage.get_client(RESOURCE_SERVER_ID) is None:
        api = await server.register_client(
            name="Demo resource server",
            grant_types=[],
            is_resource_server=True,
            client_id=RESOURCE_SERVER_ID,
        )
        print(f"resource server client_id:     {RESOURCE_SERVER_ID}", flush=True)
        print(f"resource server client_secret: {api.client_secret}  (shown once)", flush=True)
    if await server.storage.get_client(DEVICE_APP_ID) is None:
        # Public: a device cannot keep a secret, so it gets none (RFC 8628 §5.6).
        await server.register_client(
            name="Demo device app",
            grant_types=["urn:ietf:params:oauth:grant-type:device_code"],
            scope=["read", "write"],
            public=True,
            client_id=DEVICE_APP_ID,
        )
        print(f"device app client_id: {DEVICE_APP_ID}  (public, no secret)", flush=True)
    if await server.storage.get_user(USERNAME) is None:
        password = secrets.token_urlsafe(12)
        await server.create_user(USERNAME, password)
        print(f"demo user: {USERNAME} / {password}  (shown once)", flush=True)


async def me(request: Request) -> Response:
    """Who is calling: the middleware put the introspected token in request.user/auth."""
    user: BearerUser = request.user
    return JSONResponse(
        {"client_id": user.client_id, "subject": user.subject, "scopes": request.auth.scopes}
    )


@require_scopes("write")
async def add_note(request: Request) -> Response:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        return JSONResponse({"error": 'send JSON: {"text": "..."}'}, status_code=400)
    user: BearerUser = request.user
    note = {"text": body["text"], "by": user.client_id}
    notes.append(note)
    return JSONResponse(note, status_code=201)


async def list_notes(request: Request) -> Response:
    return JSONResponse(notes)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    await register_demo_accounts()
    try:
        yield
    finally:
        await server.close()


app = Starlette(
    routes=[
        Mount("/oauth2", app=oauth),
        # RFC 8414 §3.1: an issuer with a path also publishes its metadata at the host's root.
        Route(oauth.metadata_path, oauth.metadata_app),
        Route("/api/me", me),
        Route("/api/notes", list_notes, methods=["GET"]),
        Route("/api/notes", add_note, methods=["POST"]),
    ],
    middleware=[
        Middleware(
            BearerTokenMiddleware,
            introspector=server,
            public=["/oauth2", "/.well-known"],
            protect={"/api": "read"},
            resource=RESOURCE,
            scopes_supported=["read", "write"],  # "write" is checked per route, below
        )
    ],
    lifespan=lifespan,
)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=PORT)

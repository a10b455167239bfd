"""A FastAPI app with per-route scopes, and its own authorization server at ``/oauth2``.

``BearerTokenMiddleware`` requires a valid token on every path except the
public ones (the authorization server, the API docs, the well-known
documents); each route names the scopes it needs with
``Security(oauth2, scopes=[...])``, which also puts the OAuth2 scheme and
its scopes into ``/openapi.json`` and ``/docs``. On its first start the app
registers on ``./example.db``, and prints each secret once: ``demo-client``
(client credentials, scopes ``read write``), the public client ``demo-app``
(for the docs' "Authorize" button and ``examples/device_client.py``) and the
user ``demo``; delete the file to get new ones.

Run it from the repository root::

    python examples/fastapi_api.py

Then, with the secret it printed::

    curl -s -u demo-client:SECRET -d grant_type=client_credentials \\
        http://127.0.0.1:8000/oauth2/token                          # copy access_token
    curl -s -H "Authorization: Bearer TOKEN" http://127.0.0.1:8000/api/me
    curl -s -H "Authorization: Bearer TOKEN" -H "Content-Type: application/json" \\
        -d '{"text": "hello"}' http://127.0.0.1:8000/api/notes      # 201
    curl -si http://127.0.0.1:8000/api/me                           # 401, a Bearer challenge

A token asked for with ``-d scope=read`` gets 403 ``insufficient_scope`` from
``POST /api/notes``, which needs ``write``. Open http://127.0.0.1:8000/docs
for the API documentation: its "Authorize" button runs the authorization
code flow with PKCE as ``demo-app`` (tick the scopes, sign in as ``demo``
with the password printed above, approve), and "Try it out" then sends the
token. ``python examples/device_client.py --issuer
http://127.0.0.1:8000/oauth2 --client-id demo-app`` gets a person's token too.

Environment: ``EXAMPLE_PORT`` (8000), ``EXAMPLE_DB`` (``example.db``) and
``EXAMPLE_ISSUER`` (``http://127.0.0.1:$EXAMPLE_PORT/oauth2``). The app can
also be served as ``uvicorn examples.fastapi_api:app``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import FastAPI, Security
from pydantic import BaseModel
from starlette.routing import Route

from asgi_oauth import AuthorizationServer, Settings
from asgi_oauth.app import OAuth2App
from asgi_oauth.middleware import BearerTokenMiddleware, BearerUser
from asgi_oauth.middleware.fastapi import OAuth2Scopes
from asgi_oauth.storage import SQLiteStorage

PORT = int(os.environ.get("EXAMPLE_PORT", "8000"))
ISSUER = os.environ.get("EXAMPLE_ISSUER", f"http://127.0.0.1:{PORT}/oauth2")
RESOURCE = ISSUER.removesuffix("/oauth2")
CLIENT_ID = "demo-client"
APP_ID = "demo-app"
USERNAME = "demo"
SCOPES = {"read": "Read your profile and notes", "write": "Add notes"}

server = AuthorizationServer(
    SQLiteStorage(os.environ.get("EXAMPLE_DB", "example.db")),
    # insecure_transport allows the local http issuer; an https issuer keeps it off.
    Settings(
        issuer=ISSUER,
        insecure_transport=ISSUER.startswith("http://"),
        scopes_supported=tuple(SCOPES),
    ),
)
oauth = OAuth2App(server)
oauth2 = OAuth2Scopes(issuer=ISSUER, scopes=SCOPES)


class Note(BaseModel):
    text: str


class SavedNote(BaseModel):
    text: str
    by: str | None


notes: list[SavedNote] = []


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    if await server.storage.get_client(CLIENT_ID) is None:
        client = await server.register_client(
            name="Demo client",
            grant_types=["client_credentials"],
            scope=list(SCOPES),
            client_id=CLIENT_ID,
        )
        print(f"demo client_id:     {CLIENT_ID}", flush=True)
        print(f"demo client_secret: {client.client_secret}  (shown once)", flush=True)
    if await server.storage.get_client(APP_ID) is None:
        # Public: the docs page runs in the browser and can keep no secret; PKCE instead.
        await server.register_client(
            name="Demo app",
            redirect_uris=[RESOURCE + "/docs/oauth2-redirect"],
            grant_types=["authorization_code", "urn:ietf:params:oauth:grant-type:device_code"],
            scope=list(SCOPES),
            public=True,
            client_id=APP_ID,
        )
        print(f"app client_id: {APP_ID}  (public, no secret)", flush=True)
    if await server.storage.get_user(USERNAME) is None:
        password = secrets.token_urlsafe(12)
        await server.create_user(USERNAME, password)
        print(f"demo user: {USERNAME} / {password}  (shown once)", flush=True)
    try:
        yield
    finally:
        await server.close()


app = FastAPI(
    title="asgi_oauth FastAPI example",
    lifespan=lifespan,
    # The docs' "Authorize" button: the public client, with PKCE (RFC 7636).
    swagger_ui_init_oauth={"clientId": APP_ID, "usePkceWithAuthorizationCodeGrant": True},
)
app.mount("/oauth2", oauth)
# RFC 8414 §3.1: an issuer with a path also publishes its metadata at the host's root.
app.router.routes.append(Route(oauth.metadata_path, oauth.metadata_app))
app.add_middleware(
    BearerTokenMiddleware,
    introspector=server,
    public=["/oauth2", "/docs", "/openapi.json", "/.well-known"],
    resource=RESOURCE,
    scopes_supported=list(SCOPES),
)


@app.get("/api/me")
async def me(user: Annotated[BearerUser, Security(oauth2, scopes=["read"])]) -> dict[str, object]:
    """Who is calling: the client, the resource owner (none for client credentials), scopes."""
    return {
        "client_id": user.client_id,
        "subject": user.subject,
        "scopes": sorted(user.introspection.scope),
    }


@app.get("/api/notes")
async def list_notes(
    user: Annotated[BearerUser, Security(oauth2, scopes=["read"])],
) -> list[SavedNote]:
    return notes


@app.post("/api/notes", status_code=201)
async def add_note(
    note: Note, user: Annotated[BearerUser, Security(oauth2, scopes=["write"])]
) -> SavedNote:
    saved = SavedNote(text=note.text, by=user.client_id)
    notes.append(saved)
    return saved


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=PORT)

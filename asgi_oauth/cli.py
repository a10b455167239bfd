"""The ``asgi-oauth`` command: serve a standalone authorization server.

``asgi-oauth serve`` runs the ASGI app under uvicorn on the SQLite default
(``./asgi_oauth.db``); ``--demo`` registers a demo client once and prints its
credentials.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from .config import Settings
from .errors import StorageError
from .server import AuthorizationServer
from .storage.sqlite import SQLiteStorage

DEMO_CLIENT_ID = "demo-client"


def sqlite_path(url: str) -> str:
    """A SQLite file from ``sqlite:///path`` or a plain path."""
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    if "://" in url:
        raise ValueError(f"unsupported database URL: {url!r} (expected sqlite:///path)")
    return url


async def prepare(db: str, settings: Settings, demo: bool) -> None:
    """Create or migrate the database, and the demo client when asked."""
    storage = SQLiteStorage(db)
    try:
        await storage.migrate()
        if demo and await storage.get_client(DEMO_CLIENT_ID) is None:
            server = AuthorizationServer(storage, settings)
            registered = await server.register_client(
                name="Demo client",
                grant_types=["client_credentials"],
                scope=["read", "write"],
                client_id=DEMO_CLIENT_ID,
            )
            print(f"demo client_id:     {DEMO_CLIENT_ID}")
            print(f"demo client_secret: {registered.client_secret}  (shown once)")
        elif demo:
            print(f"demo client {DEMO_CLIENT_ID!r} exists; its secret was shown when created")
    finally:
        await storage.close()


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import OAuth2App

    scheme = "http" if args.insecure_transport else "https"
    issuer = args.issuer or f"{scheme}://{args.host}:{args.port}"
    try:
        db = sqlite_path(args.db)
        settings = Settings(issuer=issuer, insecure_transport=args.insecure_transport)
        asyncio.run(prepare(db, settings, args.demo))
    except (ValueError, StorageError) as exc:
        print(f"asgi-oauth: {exc}", file=sys.stderr)
        return 2
    app = OAuth2App(AuthorizationServer(SQLiteStorage(db), settings))
    print(f"listening on http://{args.host}:{args.port}  (database {db})")
    print(f"metadata: {issuer}/.well-known/oauth-authorization-server")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="asgi-oauth", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run a standalone authorization server")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument(
        "--db",
        default=os.environ.get("ASGI_OAUTH_DB", "asgi_oauth.db"),
        help="SQLite file or sqlite:///path URL (env ASGI_OAUTH_DB; default ./asgi_oauth.db)",
    )
    run.add_argument("--issuer", help="the public URL of the server (default from host/port)")
    run.add_argument(
        "--insecure-transport",
        action="store_true",
        help="allow http (local development only)",
    )
    run.add_argument("--demo", action="store_true", help="register a demo client once")
    args = parser.parse_args(argv)
    return serve(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

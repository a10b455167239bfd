"""The ``asgi-oauth`` command: serve a standalone authorization server, and keep its database.

``asgi-oauth serve`` runs the ASGI app under uvicorn on the SQLite default
(``./asgi_oauth.db``) or the database ``--db`` names; ``--demo`` registers a
demo client once and prints its credentials. ``migrate`` creates or upgrades
the schema; ``purge`` deletes expired codes and tokens (for a scheduled job).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence

from .config import Settings
from .errors import StorageError
from .server import AuthorizationServer
from .storage import DEFAULT_DATABASE_URL, Storage, open_storage

DEMO_CLIENT_ID = "demo-client"


async def prepare(storage: Storage, settings: Settings, demo: bool) -> None:
    """Create or migrate the database, and the demo client when asked."""
    try:
        await _migrate(storage)
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


async def _migrate(storage: Storage) -> None:
    migrate = getattr(storage, "migrate", None)
    if migrate is not None:
        await migrate()


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import OAuth2App

    scheme = "http" if args.insecure_transport else "https"
    issuer = args.issuer or f"{scheme}://{args.host}:{args.port}"
    settings = Settings(
        issuer=issuer, insecure_transport=args.insecure_transport, database_url=args.db
    )
    asyncio.run(prepare(open_storage(args.db), settings, args.demo))
    app = OAuth2App(AuthorizationServer.from_settings(settings))
    print(f"listening on http://{args.host}:{args.port}  (database {args.db})")
    print(f"metadata: {issuer}/.well-known/oauth-authorization-server")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def migrate(args: argparse.Namespace) -> int:
    async def run() -> None:
        storage = open_storage(args.db)
        try:
            await _migrate(storage)
        finally:
            await storage.close()

    asyncio.run(run())
    print(f"database ready: {args.db}")
    return 0


def purge(args: argparse.Namespace) -> int:
    async def run() -> int:
        storage = open_storage(args.db)
        try:
            return await storage.purge_expired(now=int(time.time()))
        finally:
            await storage.close()

    print(f"purged {asyncio.run(run())} expired codes, device codes and tokens")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="asgi-oauth", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument(
        "--db",
        default=os.environ.get("ASGI_OAUTH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="sqlite:///path, a SQLite file, or postgresql://... "
        f"(env ASGI_OAUTH_DATABASE_URL; default {DEFAULT_DATABASE_URL})",
    )
    run = commands.add_parser(
        "serve", parents=[database], help="run a standalone authorization server"
    )
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--issuer", help="the public URL of the server (default from host/port)")
    run.add_argument(
        "--insecure-transport",
        action="store_true",
        help="allow http (local development only)",
    )
    run.add_argument("--demo", action="store_true", help="register a demo client once")
    run.set_defaults(handler=serve)
    commands.add_parser(
        "migrate", parents=[database], help="create or upgrade the database schema"
    ).set_defaults(handler=migrate)
    commands.add_parser(
        "purge", parents=[database], help="delete expired codes, device codes and tokens"
    ).set_defaults(handler=purge)
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except (ValueError, StorageError) as exc:
        print(f"asgi-oauth: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``asgi-oauth`` command (also ``python -m asgi_oauth``).

``serve`` runs a standalone server; ``clients``, ``users``, ``keys`` and
``tokens`` manage what it knows; ``migrate`` and ``purge`` look after its database;
``maintenance`` switches every server on it unavailable, and back. Every
command takes ``--db`` (or ``ASGI_OAUTH_DATABASE_URL``) and ``--help``. A
mistake prints one line on stderr and exits non-zero, leaving the database as
it was: 1 for a refused change, 2 for a setup that cannot work (an option, a
missing extra, a database or port out of reach).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import StorageError
from ..keys import KeyEncryptionError
from . import clients, database, keys, maintenance, serve, users
from ._common import CommandError, SetupError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asgi-oauth",
        description="An OAuth 2.0 authorization server: run it, and manage its clients and users.",
        epilog="Settings come from flags, then ASGI_OAUTH_* environment variables, then defaults.",
    )
    parser.add_argument("--version", action="version", version=f"asgi-oauth {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (serve, clients, users, keys, database, maintenance):
        module.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except CommandError as exc:
        print(f"asgi-oauth: {exc}", file=sys.stderr)
        return 1
    except (SetupError, ValueError, StorageError, KeyEncryptionError) as exc:
        print(f"asgi-oauth: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code

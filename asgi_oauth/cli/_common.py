"""What every command shares: the database option, settings, output and errors.

Configuration has one precedence everywhere: a command-line flag beats an
``ASGI_OAUTH_*`` environment variable, which beats the default. A setup that cannot
work (an option, a missing extra, a database out of reach) is refused before
anything is written, in one line naming what to do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import getpass
import importlib
import json
import os
import shlex
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TextIO

from ..config import Settings
from ..errors import StorageError
from ..keys import read_key_file
from ..models import Client, User
from ..storage import DEFAULT_DATABASE_URL, Storage, open_storage
from ..storage.urls import redact_url, sqlite_path, store_kind

#: Stands in for the issuer where a command needs settings but publishes no URL.
_OFFLINE_ISSUER = "https://localhost"


class CommandError(Exception):
    """A user's mistake: printed as one line on stderr, exit status 1."""


class SetupError(Exception):
    """A setup the command cannot run with (its options, the installation, where the
    database is): printed as one line on stderr, exit status 2, as a bad option is."""


def require(module: str, extra: str, needed_by: str) -> None:
    """Import ``module`` of the package's ``extra``, or refuse with the command installing it."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        if exc.name != module:
            raise  # installed but broken: the traceback says more than a line could
        raise SetupError(f"{needed_by} needs {module}: pip install 'asgi-oauth[{extra}]'") from None


def check_database(url: str) -> None:
    """Refuse now what would only fail at first use: a URL no store takes, a SQLite
    file in a directory that is not there, PostgreSQL without its driver."""
    kind = store_kind(url)
    if kind == "postgresql":
        require("asyncpg", "postgres", "a postgresql:// database")
    elif kind == "sqlite":
        path = sqlite_path(url) or url
        directory = os.path.dirname(path)
        if directory and not os.path.isdir(directory):
            raise SetupError(
                f"unable to open database file {path}: there is no directory {directory}"
                " (create it, or choose another --db)"
            )


def add_database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=None,
        metavar="URL",
        help="sqlite:///path, a SQLite file, or postgresql://... "
        f"(env ASGI_OAUTH_DATABASE_URL; default {DEFAULT_DATABASE_URL})",
    )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON, for scripts")


def database_url(args: argparse.Namespace) -> str:
    url: str = args.db or os.environ.get("ASGI_OAUTH_DATABASE_URL") or DEFAULT_DATABASE_URL
    return url


def shown_database(args: argparse.Namespace) -> str:
    """The database URL as it may be printed: without its password."""
    return redact_url(database_url(args))


def add_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str
) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` says what it does, as the command list does."""
    return sub.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")


def settings(args: argparse.Namespace, **flags: object) -> Settings:
    """Settings from flags over the environment; commands that publish nothing
    need no issuer."""
    overrides = {k: v for k, v in flags.items() if v is not None}
    overrides["database_url"] = database_url(args)
    if "issuer" not in overrides and not os.environ.get("ASGI_OAUTH_ISSUER"):
        overrides["issuer"] = _OFFLINE_ISSUER
        overrides.setdefault("insecure_transport", _env_flag("ASGI_OAUTH_INSECURE_TRANSPORT"))
    return Settings.from_env(None, **overrides)


def key_encryption_key(args: argparse.Namespace) -> str | None:
    """``ASGI_OAUTH_KEY_ENCRYPTION_KEY``, else the key file beside a SQLite database
    (made on first use, so the zero-setup server speaks OpenID Connect); None on
    another database without the variable."""
    configured = os.environ.get("ASGI_OAUTH_KEY_ENCRYPTION_KEY")
    if configured:
        return configured
    path = sqlite_path(database_url(args))
    return None if path is None else read_key_file(key_file_path(path))


def key_file_path(database_path: str) -> str:
    return database_path + ".key"


def open_database(args: argparse.Namespace, *, create: bool) -> Storage:
    """The store ``--db`` names. Unless ``create``, a SQLite file must exist already:
    a command that changes nothing must not leave a new database behind a typo."""
    url = database_url(args)
    check_database(url)
    path = sqlite_path(url)
    if not create and path is not None and not os.path.exists(path):
        raise StorageError(f"unable to open database file {path}: none there (migrate creates one)")
    return open_storage(url)


Command = Callable[[argparse.Namespace, Storage], Awaitable[int]]


def with_storage(
    *, create: bool = False
) -> Callable[[Command], Callable[[argparse.Namespace], int]]:
    """A command run on the store ``--db`` names (created if ``create``), closed afterwards."""

    def decorate(fn: Command) -> Callable[[argparse.Namespace], int]:
        @functools.wraps(fn)
        def command(args: argparse.Namespace) -> int:
            path = sqlite_path(database_url(args))
            new_file = path is not None and not os.path.exists(path)

            async def main() -> int:
                storage = open_database(args, create=create)
                try:
                    return await fn(args, storage)
                finally:
                    await storage.close()

            try:
                return asyncio.run(main())
            except BaseException:
                if new_file and path is not None:
                    _remove_sqlite_files(path)  # a refused command leaves nothing behind
                raise

        return command

    return decorate


def _remove_sqlite_files(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def read_password(*, from_stdin: bool, confirm: bool = True) -> str:
    """A password from a prompt (typed twice), or the first line of stdin; never argv."""
    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if confirm and getpass.getpass("Password (again): ") != password:
            raise CommandError("the passwords differ")
    if not password:
        raise CommandError("the password must not be empty")
    return password


def command_hint(args: argparse.Namespace, *words: str) -> str:
    """A command line to paste: this program as it was typed (``.venv/bin/asgi-oauth``)
    or ``asgi-oauth``, then ``words``, then ``--db`` if it was given (without its password)."""
    typed = sys.argv[0]
    program = typed if os.path.basename(typed) == "asgi-oauth" else "asgi-oauth"
    database = ["--db", shown_database(args)] if args.db else []
    return " ".join(shlex.quote(word) for word in (program, *words, *database))


def iso_time(timestamp: int) -> str:
    """An epoch time as people read it: ISO 8601 in UTC (``2026-01-31T09:30:00Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def report(args: argparse.Namespace, value: object, text: str) -> None:
    """A command's result: ``value`` as JSON with ``--json``, else ``text`` for people."""
    if args.json:
        print_json(value)
    else:
        print(text)


def print_json(value: object, out: TextIO | None = None) -> None:
    out = out or sys.stdout  # looked up now: stdout may have been replaced since import
    json.dump(value, out, indent=2, sort_keys=True)
    out.write("\n")


def client_json(client: Client) -> dict[str, object]:
    """What may be shown of a client: everything but its secret's hash."""
    return {
        "client_id": client.client_id,
        "name": client.name,
        "public": client.is_public,
        "application_type": client.application_type,
        "redirect_uris": list(client.redirect_uris),
        "grant_types": sorted(client.grant_types),
        "scope": " ".join(sorted(client.scope)),
        "allowed_origins": list(client.allowed_origins),
        "is_resource_server": client.is_resource_server,
        "require_pkce": client.require_pkce,
        "access_token_format": client.access_token_format,
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "created_at": client.created_at,
    }


def user_json(user: User) -> dict[str, object]:
    return {"user_id": user.user_id, "username": user.username, "created_at": user.created_at}


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())

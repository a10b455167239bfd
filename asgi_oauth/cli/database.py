"""``asgi-oauth migrate``, ``purge`` and ``tokens revoke``: looking after the database."""

from __future__ import annotations

import argparse
import sys
import time

from ..crypto import hash_token
from ..events import security_event
from ..jwt_access_tokens import looks_like_jwt, unverified_jti_key
from ..storage import Storage
from ._common import (
    CommandError,
    add_command,
    add_database_option,
    add_json_option,
    report,
    shown_database,
    with_storage,
)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    migrate = add_command(commands, "migrate", "create or upgrade the database schema")
    migrate.set_defaults(run=_migrate)
    purge = add_command(
        commands,
        "purge",
        "delete expired codes, device codes, tokens and keys (for a scheduled job)",
    )
    purge.set_defaults(run=_purge)
    tokens = add_command(commands, "tokens", "act on issued tokens")
    sub = tokens.add_subparsers(dest="action", required=True, metavar="ACTION")
    revoke = add_command(
        sub, "revoke", "revoke a token read from stdin (a refresh token takes its grant along)"
    )
    revoke.set_defaults(run=_revoke)
    for parser in (migrate, purge, revoke):
        add_database_option(parser)
        add_json_option(parser)


async def migrate_storage(storage: Storage) -> None:
    """Create or upgrade the schema of a store that has one."""
    migrate = getattr(storage, "migrate", None)
    if migrate is not None:
        await migrate()


@with_storage(create=True)
async def _migrate(args: argparse.Namespace, storage: Storage) -> int:
    await migrate_storage(storage)
    report(
        args,
        {"database": shown_database(args), "ready": True},
        f"database ready: {shown_database(args)}",
    )
    return 0


@with_storage()
async def _purge(args: argparse.Namespace, storage: Storage) -> int:
    purged = await storage.purge_expired(now=int(time.time()))
    report(
        args,
        {"purged": purged},
        f"purged {purged} expired codes, device codes, tokens and signing keys",
    )
    return 0


@with_storage()
async def _revoke(args: argparse.Namespace, storage: Storage) -> int:
    # Read from stdin: a token on the command line would stay in the shell's history.
    value = sys.stdin.readline().strip()
    if not value:
        raise CommandError("give the token on stdin, e.g.: echo $TOKEN | asgi-oauth tokens revoke")
    token = await storage.get_token(
        (looks_like_jwt(value) and unverified_jti_key(value)) or hash_token(value)
    )
    if token is None:
        raise CommandError("no such token")
    now = int(time.time())
    if token.kind == "refresh_token":
        revoked = await storage.revoke_family(token.family_id, now=now)
    else:
        revoked = int(await storage.revoke_token(token.token_hash, now=now))
    security_event("token_revoked", client_id=token.client_id, token_kind=token.kind, source="cli")
    report(
        args,
        {"revoked": revoked, "client_id": token.client_id, "kind": token.kind},
        f"revoked {revoked} token(s) of client {token.client_id}",
    )
    return 0

"""``asgi-oauth keys list|rotate``: the keys that sign ID tokens and JWT access tokens."""

from __future__ import annotations

import argparse
import time

from ..server import AuthorizationServer
from ..storage import Storage
from ..types import SIGNING_ALGORITHMS
from ._common import (
    CommandError,
    add_command,
    add_database_option,
    add_json_option,
    key_encryption_key,
    print_json,
    print_table,
    report,
    settings,
    with_storage,
)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = add_command(commands, "keys", "list or rotate the signing keys (OpenID Connect)")
    sub = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = add_command(sub, "list", "list the published signing keys")
    listing.set_defaults(run=_list)
    rotate = add_command(
        sub, "rotate", "sign with new keys; the old stay published until what they signed expires"
    )
    rotate.add_argument(
        "--alg", action="append", choices=SIGNING_ALGORITHMS, help="only this algorithm"
    )
    rotate.set_defaults(run=_rotate)
    for parser in (listing, rotate):
        add_database_option(parser)
        add_json_option(parser)


@with_storage()
async def _list(args: argparse.Namespace, storage: Storage) -> int:
    keys = await storage.list_signing_keys(now=int(time.time()))
    rows = [
        {
            "kid": k.kid,
            "alg": k.alg,
            "active": k.is_active,
            "created_at": k.created_at,
            "expires_at": k.expires_at,
        }
        for k in keys
    ]
    if args.json:
        print_json(rows)
    elif not rows:
        print("no signing keys yet: they are made when the server first signs")
    else:
        print_table(
            ("KID", "ALG", "STATE", "PUBLISHED UNTIL"),
            [
                (k.kid, k.alg, "signing" if k.is_active else "retired", _when(k.expires_at))
                for k in keys
            ],
        )
    return 0


@with_storage()
async def _rotate(args: argparse.Namespace, storage: Storage) -> int:
    secret = key_encryption_key(args)
    if secret is None:
        raise CommandError("set ASGI_OAUTH_KEY_ENCRYPTION_KEY: the new keys are stored encrypted")
    server = AuthorizationServer(storage, settings(args, key_encryption_key=secret))
    rotated = await server.rotate_signing_keys(args.alg)
    report(
        args,
        [{"kid": k.kid, "alg": k.alg} for k in rotated],
        "\n".join(f"now signing with {k.alg} key {k.kid}" for k in rotated),
    )
    return 0


def _when(timestamp: int | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))

"""``asgi-oauth users``: the people who sign in on the built-in login page.

Passwords are read from a prompt (typed twice) or the first line of stdin
(``--password-stdin``), never from the command line, and kept as scrypt hashes.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time

from ..crypto import generate_token, hash_password
from ..models import User
from ..storage import Storage
from ._common import (
    CommandError,
    add_database_option,
    add_json_option,
    print_json,
    print_table,
    read_password,
    user_json,
    with_storage,
)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("users", help="manage the users of the built-in login page")
    sub = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = sub.add_parser("create", help="add a user (asks for the password)")
    create.set_defaults(run=_create)
    password = sub.add_parser("set-password", help="change a user's password")
    password.set_defaults(run=_set_password)
    delete = sub.add_parser("delete", help="delete a user and the consents they gave")
    delete.set_defaults(run=_delete)
    for parser in (create, password, delete):
        parser.add_argument("username")
    for parser in (create, password):
        parser.add_argument(
            "--password-stdin", action="store_true", help="read the password from stdin"
        )
    listing = sub.add_parser("list", help="list every user")
    listing.set_defaults(run=_list)
    for parser in (create, password, delete, listing):
        add_database_option(parser)
        add_json_option(parser)


async def _hash(args: argparse.Namespace) -> str:
    password = read_password(from_stdin=args.password_stdin)
    return await asyncio.to_thread(hash_password, password)


@with_storage
async def _create(args: argparse.Namespace, storage: Storage) -> int:
    if not args.username.strip() or not args.username.isprintable():
        raise CommandError("the username must be printable and not blank")
    if await storage.get_user(args.username) is not None:
        raise CommandError(f"a user named {args.username!r} exists already")
    user = User(
        user_id=generate_token(16),
        username=args.username,
        password_hash=await _hash(args),
        created_at=int(time.time()),
    )
    await storage.save_user(user)
    if args.json:
        print_json(user_json(user))
    else:
        print(f"created user {user.username!r} (user_id {user.user_id})")
    return 0


@with_storage
async def _set_password(args: argparse.Namespace, storage: Storage) -> int:
    user = await storage.get_user(args.username)
    if user is None:
        raise CommandError(f"no user named {args.username!r}")
    await storage.save_user(dataclasses.replace(user, password_hash=await _hash(args)))
    if args.json:
        print_json(user_json(user))
    else:
        print(f"changed the password of {user.username!r}; their sign-in sessions have ended")
    return 0


@with_storage
async def _delete(args: argparse.Namespace, storage: Storage) -> int:
    if not await storage.delete_user(args.username):
        raise CommandError(f"no user named {args.username!r}")
    if args.json:
        print_json({"deleted": args.username})
    else:
        print(f"deleted user {args.username!r}")
    return 0


@with_storage
async def _list(args: argparse.Namespace, storage: Storage) -> int:
    users = await storage.list_users()
    if args.json:
        print_json([user_json(u) for u in users])
    else:
        print_table(("USERNAME", "USER_ID"), [(u.username, u.user_id) for u in users])
    return 0

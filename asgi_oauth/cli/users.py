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
from ..events import security_event
from ..models import User
from ..storage import Storage
from ..users import check_new_password
from ._common import (
    CommandError,
    add_command,
    add_database_option,
    add_json_option,
    print_json,
    print_table,
    read_password,
    report,
    settings,
    user_json,
    with_storage,
)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = add_command(commands, "users", "manage the users of the built-in login page")
    sub = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = add_command(
        sub,
        "create",
        "add a user; the password comes from a prompt, or stdin with --password-stdin",
    )
    create.set_defaults(run=_create)
    password = add_command(
        sub,
        "set-password",
        "change a user's password (prompt or --password-stdin); their sessions end",
    )
    password.set_defaults(run=_set_password)
    delete = add_command(sub, "delete", "delete a user and everything issued on their behalf")
    delete.set_defaults(run=_delete)
    for parser in (create, password, delete):
        parser.add_argument("username")
    for parser in (create, password):
        parser.add_argument(
            "--password-stdin", action="store_true", help="read the password from stdin"
        )
    listing = add_command(sub, "list", "list every user")
    listing.set_defaults(run=_list)
    for parser in (create, password, delete, listing):
        add_database_option(parser)
        add_json_option(parser)


async def _hash(args: argparse.Namespace) -> str:
    password = read_password(from_stdin=args.password_stdin)
    try:
        check_new_password(password, settings(args).min_password_length)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    return await asyncio.to_thread(hash_password, password)


@with_storage(create=True)
async def _create(args: argparse.Namespace, storage: Storage) -> int:
    if not args.username.strip() or not args.username.isprintable():
        raise CommandError("the username must be printable and not blank")
    if await storage.get_user(args.username) is not None:  # before asking for a password
        raise CommandError(f"a user named {args.username!r} exists already")
    user = User(
        user_id=generate_token(16),
        username=args.username,
        password_hash=await _hash(args),
        created_at=int(time.time()),
    )
    if not await storage.add_user(user):
        raise CommandError(f"a user named {args.username!r} exists already")
    security_event("user_created", user_id=user.user_id, source="cli")
    report(args, user_json(user), f"created user {user.username!r} (user_id {user.user_id})")
    return 0


@with_storage()
async def _set_password(args: argparse.Namespace, storage: Storage) -> int:
    user = await storage.get_user(args.username)
    if user is None:
        raise CommandError(f"no user named {args.username!r}")
    await storage.save_user(dataclasses.replace(user, password_hash=await _hash(args)))
    security_event("user_password_changed", user_id=user.user_id, source="cli")
    report(
        args,
        user_json(user),
        f"changed the password of {user.username!r}; their sign-in sessions have ended",
    )
    return 0


@with_storage()
async def _delete(args: argparse.Namespace, storage: Storage) -> int:
    user = await storage.get_user(args.username)
    if user is None or not await storage.delete_user(args.username):
        raise CommandError(f"no user named {args.username!r}")
    security_event("user_deleted", user_id=user.user_id, source="cli")
    report(
        args,
        {"deleted": args.username},
        f"deleted user {args.username!r} and everything issued on their behalf",
    )
    return 0


@with_storage()
async def _list(args: argparse.Namespace, storage: Storage) -> int:
    users = await storage.list_users()
    if args.json:
        print_json([user_json(u) for u in users])
    else:
        print_table(("USERNAME", "USER_ID"), [(u.username, u.user_id) for u in users])
    return 0

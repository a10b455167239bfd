"""``asgi-oauth clients``: register, list, show, update, delete clients, rotate secrets,
and apply a clients file (``client_config``).

A secret is printed once, at creation or rotation; the store keeps only its hash.
Every change is validated before anything is written.
"""

from __future__ import annotations

import argparse
import dataclasses

from ..client_config import ClientConfigError, ClientFileError, apply_clients, load_clients
from ..clients import RegisteredClient, check_client, new_client, rotate_secret
from ..events import security_event
from ..models import Client
from ..storage import Storage
from ..storage.urls import sqlite_path
from ..types import APPLICATION_TYPES, SIGNING_ALGORITHMS
from ._common import (
    CommandError,
    SetupError,
    add_command,
    add_database_option,
    add_json_option,
    client_json,
    database_url,
    iso_time,
    print_json,
    print_table,
    report,
    settings,
    with_storage,
)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = add_command(commands, "clients", "manage registered clients")
    sub = group.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = add_command(sub, "create", "register a client; prints its secret once")
    create.add_argument("--name", required=True, help="shown to people on the consent page")
    create.add_argument("--client-id", help="choose the id (default: random)")
    _metadata_options(create)
    create.add_argument("--public", action="store_true", help="no secret: a browser or native app")
    create.set_defaults(run=_create)

    listing = add_command(sub, "list", "list every client")
    listing.set_defaults(run=_list)

    show = add_command(sub, "show", "show one client")
    show.add_argument("client_id")
    show.set_defaults(run=_show)

    update = add_command(sub, "update", "change a client; a list given replaces the old one")
    update.add_argument("client_id")
    update.add_argument("--name")
    _metadata_options(update)
    update.set_defaults(run=_update)

    delete = add_command(sub, "delete", "delete a client and everything issued to it")
    delete.add_argument("client_id")
    delete.set_defaults(run=_delete)

    rotate = add_command(sub, "rotate-secret", "give a client a new secret; prints it once")
    rotate.add_argument("client_id")
    rotate.set_defaults(run=_rotate)

    apply = add_command(sub, "apply", "make the clients what a TOML, JSON or YAML file declares")
    apply.add_argument("file", metavar="FILE", help="the clients file ([[client]] tables)")
    apply.add_argument(
        "--prune",
        action="store_true",
        help="delete the clients the file does not list (never self-registered ones)",
    )
    apply.add_argument(
        "--dry-run", action="store_true", help="say what would change; write nothing"
    )
    apply.add_argument(
        "--insecure-transport",
        action="store_true",
        default=None,
        help="allow http redirect URIs on any host (local development only)",
    )
    apply.set_defaults(run=_apply)

    for parser in (create, listing, show, update, delete, rotate, apply):
        add_database_option(parser)
        add_json_option(parser)


def _metadata_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redirect-uri", action="append", metavar="URI", help="repeat for several")
    parser.add_argument(
        "--grant-type",
        action="append",
        metavar="GRANT",
        help="repeat for several (default: authorization_code refresh_token)",
    )
    parser.add_argument("--scope", action="append", help="space-separated, or repeated")
    parser.add_argument("--origin", action="append", help="a browser origin allowed by CORS")
    parser.add_argument(
        "--resource-server",
        action=argparse.BooleanOptionalAction,
        help="may introspect every token (RFC 7662 §4)",
    )
    parser.add_argument(
        "--require-pkce", action=argparse.BooleanOptionalAction, help="require PKCE of it"
    )
    parser.add_argument(
        "--access-token-format",
        choices=("opaque", "jwt"),
        help="jwt: RFC 9068 access tokens (default: the server's setting)",
    )
    parser.add_argument(
        "--id-token-alg",
        choices=SIGNING_ALGORITHMS,
        help="how its ID tokens are signed (default RS256)",
    )
    parser.add_argument(
        "--application-type",
        choices=APPLICATION_TYPES,
        help="native: loopback http and private-use schemes too; web: https only",
    )
    parser.add_argument(
        "--post-logout-redirect-uri",
        action="append",
        metavar="URI",
        help="where /logout may send people back to; repeat for several ('' clears)",
    )
    parser.add_argument(
        "--backchannel-logout-uri",
        metavar="URI",
        help="told by a logout token when someone signs out ('' clears)",
    )
    parser.add_argument(
        "--insecure-transport",
        action="store_true",
        default=None,
        help="allow http redirect URIs on any host (local development only)",
    )


def _scopes(values: list[str] | None) -> list[str] | None:
    return None if values is None else [s for value in values for s in value.split()]


@with_storage(create=True)
async def _create(args: argparse.Namespace, storage: Storage) -> int:
    insecure = settings(args, insecure_transport=args.insecure_transport).insecure_transport
    if any(c.name == args.name for c in await storage.list_clients()):
        raise CommandError(f"a client named {args.name!r} exists already")
    try:
        registered = new_client(
            name=args.name,
            client_id=args.client_id,
            redirect_uris=args.redirect_uri or (),
            grant_types=args.grant_type or ("authorization_code", "refresh_token"),
            scope=_scopes(args.scope) or (),
            public=args.public,
            allowed_origins=args.origin or (),
            is_resource_server=bool(args.resource_server),
            require_pkce=bool(args.require_pkce),
            insecure_transport=insecure,
            access_token_format=args.access_token_format,
            id_token_signed_response_alg=args.id_token_alg or "RS256",
            application_type=args.application_type,
            post_logout_redirect_uris=args.post_logout_redirect_uri or (),
            backchannel_logout_uri=args.backchannel_logout_uri or None,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if not await storage.add_client(registered.client):
        raise CommandError(f"client_id {registered.client.client_id!r} exists already")
    security_event("client_created", client_id=registered.client.client_id, source="cli")
    _print_registered(args, registered, "created")
    return 0


def _print_registered(args: argparse.Namespace, registered: RegisteredClient, what: str) -> None:
    if args.json:
        print_json({**client_json(registered.client), "client_secret": registered.client_secret})
        return
    print(f"{what} client {registered.client.name!r}")
    print(f"client_id:     {registered.client.client_id}")
    if registered.client_secret is not None:
        print(f"client_secret: {registered.client_secret}")
        print("(the secret is shown this once: store it now)")


@with_storage()
async def _list(args: argparse.Namespace, storage: Storage) -> int:
    clients = await storage.list_clients()
    if args.json:
        print_json([client_json(c) for c in clients])
        return 0
    print_table(
        ("CLIENT_ID", "NAME", "TYPE", "GRANTS", "SCOPE"),
        [
            (
                c.client_id,
                c.name,
                "public" if c.is_public else "confidential",
                ",".join(sorted(c.grant_types)),
                " ".join(sorted(c.scope)),
            )
            for c in clients
        ],
    )
    return 0


async def _find(storage: Storage, client_id: str) -> Client:
    client = await storage.get_client(client_id)
    if client is None:
        raise CommandError(f"no client with id {client_id!r}")
    return client


@with_storage()
async def _show(args: argparse.Namespace, storage: Storage) -> int:
    client = await _find(storage, args.client_id)
    shown = client_json(client)
    if args.json:
        print_json(shown)  # epoch seconds, for scripts
        return 0
    shown["created_at"] = iso_time(client.created_at)
    for key, value in shown.items():
        text = " ".join(value) if isinstance(value, list) else value
        print(f"{key + ':':20} {text}")
    return 0


@with_storage()
async def _update(args: argparse.Namespace, storage: Storage) -> int:
    client = await _find(storage, args.client_id)
    changes: dict[str, object] = {}
    if args.name is not None and args.name != client.name:
        if any(c.name == args.name for c in await storage.list_clients()):
            raise CommandError(f"a client named {args.name!r} exists already")
        changes["name"] = args.name
    if args.redirect_uri is not None:
        changes["redirect_uris"] = tuple(args.redirect_uri)
    if args.grant_type is not None:
        changes["grant_types"] = frozenset(args.grant_type)
    if args.scope is not None:
        changes["scope"] = frozenset(_scopes(args.scope) or ())
    if args.origin is not None:
        changes["allowed_origins"] = tuple(args.origin)
    if args.resource_server is not None:
        changes["is_resource_server"] = args.resource_server
    if args.require_pkce is not None:
        changes["require_pkce"] = args.require_pkce
    if args.access_token_format is not None:
        changes["access_token_format"] = args.access_token_format
    if args.id_token_alg is not None:
        changes["id_token_signed_response_alg"] = args.id_token_alg
    if args.application_type is not None:
        changes["application_type"] = args.application_type
    if args.post_logout_redirect_uri is not None:
        changes["post_logout_redirect_uris"] = tuple(u for u in args.post_logout_redirect_uri if u)
    if args.backchannel_logout_uri is not None:
        changes["backchannel_logout_uri"] = args.backchannel_logout_uri or None
    insecure = settings(args, insecure_transport=args.insecure_transport).insecure_transport
    try:
        updated = check_client(dataclasses.replace(client, **changes), insecure_transport=insecure)  # type: ignore[arg-type]
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    await storage.save_client(updated)
    security_event("client_updated", client_id=updated.client_id, source="cli")
    report(args, client_json(updated), f"updated client {updated.client_id}")
    return 0


@with_storage()
async def _delete(args: argparse.Namespace, storage: Storage) -> int:
    if not await storage.delete_client(args.client_id):
        raise CommandError(f"no client with id {args.client_id!r}")
    security_event("client_deleted", client_id=args.client_id, source="cli")
    report(
        args,
        {"deleted": args.client_id},
        f"deleted client {args.client_id}, what was issued to it, and revoked its access tokens",
    )
    return 0


@with_storage()
async def _rotate(args: argparse.Namespace, storage: Storage) -> int:
    try:
        rotated = rotate_secret(await _find(storage, args.client_id))
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    await storage.save_client(rotated.client)
    security_event("client_secret_rotated", client_id=rotated.client.client_id, source="cli")
    _print_registered(args, rotated, "new secret for")
    return 0


@with_storage(create=True)
async def _apply(args: argparse.Namespace, storage: Storage) -> int:
    config = settings(args, insecure_transport=args.insecure_transport)
    # As serve will have them: from the variable, or the key file it keeps beside SQLite.
    signing_keys = config.openid_enabled or sqlite_path(database_url(args)) is not None
    try:
        plan = await apply_clients(
            storage,
            load_clients(args.file),
            insecure_transport=config.insecure_transport,
            signing_keys=signing_keys,
            prune=args.prune,
            dry_run=args.dry_run,
        )
    except ClientFileError as exc:
        raise SetupError(str(exc)) from None
    except ClientConfigError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print_json(plan.as_json())
        return 0
    for line in plan.lines():
        print(line)
    print(plan.summary())
    return 0

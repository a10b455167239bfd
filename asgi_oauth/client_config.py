"""Clients as configuration: a file declares clients, and the store follows it.

A clients file (TOML ``[[client]]`` tables; JSON or YAML: a list, or ``{"clients":
[...]}``) lists clients by ``client_id`` with the metadata ``register_client`` takes
(``name`` defaults to the id). Secrets are named, never written: ``client_secret_env``
names an environment variable, ``client_secret_file`` a file (beside the clients file
when relative); a confidential client must name one, a public client none. Applying it
creates what is missing, updates what differs and, with ``prune``, deletes what it no
longer lists; every client is validated, and every secret read, before the first write.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .clients import RegisteredClient, new_client
from .config import Settings
from .config_files import named_secret, read_structured
from .crypto import verify_secret
from .events import security_event
from .models import Client
from .storage.base import Storage

__all__ = [
    "METADATA_FIELDS",
    "ClientConfigError",
    "ClientFileError",
    "ClientPlan",
    "DeclaredClient",
    "apply_clients",
    "apply_clients_file",
    "load_clients",
]

_FLAGS = frozenset(
    {
        "public",
        "is_resource_server",
        "require_pkce",
        "require_pushed_authorization_requests",
        "dpop_bound_access_tokens",
    }
)
_LISTS = frozenset({"redirect_uris", "grant_types", "allowed_origins", "post_logout_redirect_uris"})
#: Text that may be null (JSON, YAML) for the server's default; TOML leaves it out.
_OPTIONAL_TEXT = frozenset({"access_token_format", "application_type", "backchannel_logout_uri"})
_TEXT = frozenset({"name", "id_token_signed_response_alg"}) | _OPTIONAL_TEXT
#: What a file may say of a client besides its id and its secret's name.
METADATA_FIELDS = _FLAGS | _LISTS | _TEXT | {"scope"}
#: The stored fields a file decides, by the same names; ``public`` is whether there is a secret.
_COMPARED = tuple(sorted(METADATA_FIELDS - {"public"}))


class ClientConfigError(ValueError):
    """A clients file that cannot be applied; the message names the client and the field."""


class ClientFileError(ClientConfigError):
    """The file, the reader it needs, or a secret it names cannot be read: the setup,
    not the declarations."""


@dataclass(frozen=True, slots=True)
class DeclaredClient:
    """One client as the file declares it: ``new_client``'s keyword arguments."""

    client_id: str
    metadata: Mapping[str, Any]
    client_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class ClientPlan:
    """What applying a file does (or, with ``dry_run``, would do), by client id.

    ``updated`` maps each id to the fields that differ (``secret`` for the secret).
    """

    created: tuple[str, ...] = ()
    updated: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    unchanged: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    dry_run: bool = False

    @property
    def changes(self) -> bool:
        return bool(self.created or self.updated or self.deleted)

    def lines(self) -> list[str]:
        """One line per client: ``created app``, ``updated api (redirect_uris, secret)``..."""
        would = "would " if self.dry_run else ""
        verb = ("create", "update", "delete") if self.dry_run else ("created", "updated", "deleted")
        return [
            *(f"{would}{verb[0]} {cid}" for cid in self.created),
            *(f"{would}{verb[1]} {cid} ({', '.join(f)})" for cid, f in self.updated.items()),
            *(f"unchanged {cid}" for cid in self.unchanged),
            *(f"{would}{verb[2]} {cid}" for cid in self.deleted),
        ]

    def summary(self) -> str:
        """``1 created, 2 unchanged``, or ``3 unchanged: nothing to do``."""
        if not self.changes:
            return f"{len(self.unchanged)} unchanged: nothing to do"
        counts = (
            (len(self.created), "to create" if self.dry_run else "created"),
            (len(self.updated), "to update" if self.dry_run else "updated"),
            (len(self.unchanged), "unchanged"),
            (len(self.deleted), "to delete" if self.dry_run else "deleted"),
        )
        text = ", ".join(f"{n} {what}" for n, what in counts if n)
        return f"dry run: {text}; nothing written" if self.dry_run else text

    def as_json(self) -> dict[str, object]:
        return {
            "created": list(self.created),
            "updated": {cid: list(fields) for cid, fields in self.updated.items()},
            "unchanged": list(self.unchanged),
            "deleted": list(self.deleted),
            "dry_run": self.dry_run,
        }


# -- reading a file -----------------------------------------------------------------


def load_clients(
    path: str | Path, environ: Mapping[str, str] | None = None
) -> tuple[DeclaredClient, ...]:
    """The clients a TOML, JSON or YAML file declares (by its suffix; TOML otherwise),
    with their secrets read. A literal ``client_secret`` is refused, so the file can
    live in version control; so are unknown fields and a repeated ``client_id``."""
    env = os.environ if environ is None else environ
    file = Path(path)
    where = f"clients file {str(file)!r}"
    data = read_structured(file, where, refused=ClientConfigError, unreadable=ClientFileError)
    suffix = file.suffix.lower()
    key = "clients" if suffix in (".json", ".yaml", ".yml") else "client"
    entries = data.pop(key, None) if isinstance(data, dict) else data
    shape = "[[client]] tables" if key == "client" else 'a list, or {"clients": [...]}'
    if isinstance(data, dict) and data:
        raise ClientConfigError(f"{where}: unknown top-level fields {sorted(data)} ({shape})")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ClientConfigError(f"{where}: a list of clients ({shape})")
    declared = tuple(_declared(dict(entry), env, file.parent) for entry in entries)
    ids = [client.client_id for client in declared]
    repeated = sorted({cid for cid in ids if ids.count(cid) > 1})
    if repeated:
        raise ClientConfigError(f"{where}: each client_id once, repeated {repeated}")
    return declared


def _declared(entry: dict[str, object], env: Mapping[str, str], base: Path) -> DeclaredClient:
    client_id = entry.pop("client_id", None)
    if not isinstance(client_id, str) or not client_id:
        raise ClientConfigError(
            f"client {entry.get('name')!r}: client_id is required (it is what the file manages)"
        )
    where = f"client {client_id!r}"
    secret = named_secret(
        entry, env, base, where, refused=ClientConfigError, unreadable=ClientFileError
    )
    unknown = sorted(set(entry) - METADATA_FIELDS)
    if unknown:
        raise ClientConfigError(f"{where}: unknown fields {unknown}")
    metadata: dict[str, object] = {"name": client_id}
    for name, value in entry.items():
        metadata[name] = _value(name, value, where)
    if not metadata.get("public") and secret is None:
        raise ClientConfigError(
            f"{where}: a confidential client needs client_secret_env or client_secret_file"
            " (or public = true)"
        )
    return DeclaredClient(client_id, metadata, secret)


def _value(name: str, value: object, where: str) -> object:
    """A field's value as ``new_client`` takes it (its rules are ``check_client``'s):
    only the type is checked here, so that a string is never read as a list."""
    if name in _FLAGS:
        if isinstance(value, bool):
            return value
        raise ClientConfigError(f"{where}: {name} must be true or false")
    if name in _TEXT:
        if isinstance(value, str) or (value is None and name in _OPTIONAL_TEXT):
            return value
        raise ClientConfigError(f"{where}: {name} must be a string")
    if name == "scope" and isinstance(value, str):
        return tuple(value.split())  # space-separated, as RFC 6749 §3.3 writes scopes
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ClientConfigError(f"{where}: {name} must be a list of strings")


# -- applying it --------------------------------------------------------------------


async def apply_clients_file(
    storage: Storage,
    settings: Settings,
    path: str | Path | None = None,
    *,
    prune: bool = False,
    dry_run: bool = False,
    environ: Mapping[str, str] | None = None,
) -> ClientPlan:
    """``load_clients`` then ``apply_clients`` under ``settings`` (``insecure_transport``;
    JWT access tokens need its key-encryption key). ``path`` defaults to
    ``settings.clients_file``; with neither, it is refused, naming the setting."""
    path = settings.clients_file if path is None else path
    if path is None:
        raise ClientFileError("no clients file: give its path, or set ASGI_OAUTH_CLIENTS_FILE")
    return await apply_clients(
        storage,
        load_clients(path, environ),
        insecure_transport=settings.insecure_transport,
        signing_keys=settings.openid_enabled,
        prune=prune,
        dry_run=dry_run,
    )


async def apply_clients(
    storage: Storage,
    declared: Sequence[DeclaredClient],
    *,
    insecure_transport: bool = False,
    signing_keys: bool = True,
    prune: bool = False,
    dry_run: bool = False,
) -> ClientPlan:
    """Create, update and (with ``prune``) delete stored clients to match ``declared``.

    Each client is built by ``new_client``, so it meets every rule registering one
    does; an update keeps ``created_at``, and the stored hash when the secret is the
    same (checked in constant time). The file never owns, so never updates nor prunes,
    a client that registered itself (RFC 7591: it holds a registration access token)
    or one read from a client ID metadata document. Nothing is written until every
    client is known good, nothing at all with ``dry_run`` or when nothing differs.
    """
    stored = {client.client_id: client for client in await storage.list_clients()}
    built = {d.client_id: _build(d, insecure_transport, signing_keys) for d in declared}
    created: list[Client] = []
    updated: dict[str, tuple[Client, tuple[str, ...]]] = {}
    unchanged: list[str] = []
    for client_id, registered in built.items():
        old = stored.get(client_id)
        if old is None:
            created.append(registered.client)
        elif not _owned(old):
            raise ClientConfigError(
                f"client {client_id!r} registered itself (RFC 7591): the file cannot manage it"
            )
        else:
            new, differs = _compare(old, registered)
            if differs:
                updated[client_id] = (new, differs)
            else:
                unchanged.append(client_id)
    deleted = [c.client_id for c in stored.values() if c.client_id not in built and _owned(c)]
    plan = ClientPlan(
        created=tuple(c.client_id for c in created),
        updated={client_id: differs for client_id, (_, differs) in updated.items()},
        unchanged=tuple(unchanged),
        deleted=tuple(deleted) if prune else (),
        dry_run=dry_run,
    )
    if not dry_run:
        await _write(storage, created, [client for client, _ in updated.values()], plan.deleted)
    return plan


def _build(
    declared: DeclaredClient, insecure_transport: bool, signing_keys: bool
) -> RegisteredClient:
    where = f"client {declared.client_id!r}"
    if declared.metadata.get("access_token_format") == "jwt" and not signing_keys:
        raise ClientConfigError(f"{where}: JWT access tokens need signing keys")
    try:
        return new_client(
            client_id=declared.client_id,
            client_secret=declared.client_secret,
            insecure_transport=insecure_transport,
            **declared.metadata,
        )
    except ValueError as exc:
        raise ClientConfigError(f"{where}: {exc}") from None


def _owned(client: Client) -> bool:
    """Whether a clients file may manage this stored client."""
    return client.registration_access_token_hash is None and not client.metadata_document


def _compare(old: Client, new: RegisteredClient) -> tuple[Client, tuple[str, ...]]:
    """The declared client as it would be stored (born when the stored one was, with its
    hash when the secret is the same), and the names of what differs."""
    differs = [name for name in _COMPARED if getattr(old, name) != getattr(new.client, name)]
    secret_hash = new.client.secret_hash
    if old.is_public != new.client.is_public:
        differs.append("public")
    elif new.client_secret is not None and not verify_secret(new.client_secret, old.secret_hash):
        differs.append("secret")
    else:
        secret_hash = old.secret_hash  # the same secret (or none): the stored hash stays
    client = dataclasses.replace(new.client, created_at=old.created_at, secret_hash=secret_hash)
    return client, tuple(differs)


async def _write(
    storage: Storage, created: list[Client], updated: list[Client], deleted: Sequence[str]
) -> None:
    for client in created:
        if not await storage.add_client(client):
            raise ClientConfigError(f"client {client.client_id!r} was registered meanwhile")
        security_event("client_created", client_id=client.client_id, source="clients_file")
    for client in updated:
        await storage.save_client(client)
        security_event("client_updated", client_id=client.client_id, source="clients_file")
    for client_id in deleted:
        await storage.delete_client(client_id)
        security_event("client_deleted", client_id=client_id, source="clients_file")

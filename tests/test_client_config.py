"""Clients as configuration (``asgi_oauth.client_config``): reading a clients file, and
applying it to a store: created, updated, unchanged, pruned, and refused with nothing
written. The round trip runs on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from asgi_oauth import AuthorizationServer, InvalidClientError, Settings
from asgi_oauth.client_config import (
    METADATA_FIELDS,
    ClientConfigError,
    ClientFileError,
    ClientPlan,
    apply_clients_file,
    load_clients,
)
from asgi_oauth.clients import new_client
from asgi_oauth.crypto import generate_token, verify_secret
from asgi_oauth.models import Client
from asgi_oauth.storage import MemoryStorage, SQLiteStorage, Storage

from .conftest import ISSUER, Credentials
from .helpers import request
from .postgres import POSTGRES_URL

pytestmark = pytest.mark.anyio

APP_SECRET, API_SECRET, NEW_API_SECRET = generate_token(), generate_token(), generate_token()
ENV = {"APP_SECRET": APP_SECRET, "API_SECRET": API_SECRET, "OLD_SECRET": generate_token()}

CLIENTS_TOML = """
[[client]]
client_id = "app"
name = "The app"
redirect_uris = ["https://app.example/cb"]
scope = "read write"
client_secret_env = "APP_SECRET"

[[client]]
client_id = "api"
grant_types = ["client_credentials"]
scope = ["read"]
is_resource_server = true
client_secret_env = "API_SECRET"

[[client]]
client_id = "spa"
redirect_uris = ["https://spa.example/cb"]
public = true
allowed_origins = ["https://spa.example"]
"""

OLD_CLIENT_TOML = """
[[client]]
client_id = "old"
grant_types = ["client_credentials"]
client_secret_env = "OLD_SECRET"
"""

WRITES = ("add_client", "save_client", "delete_client")


class CountedWrites:
    """Records every client write a store is asked to make."""

    def __init__(self, storage: Storage) -> None:
        self.calls: list[tuple[str, object]] = []
        for name in WRITES:
            setattr(storage, name, self._counting(name, getattr(storage, name)))

    def _counting(
        self, name: str, write: Callable[[Any], Awaitable[Any]]
    ) -> Callable[[Any], Awaitable[Any]]:
        async def counted(arg: Any) -> Any:
            self.calls.append((name, getattr(arg, "client_id", arg)))
            return await write(arg)

        return counted


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    """A fresh SQLite file, or a fresh schema of the real PostgreSQL."""
    if request.param == "sqlite":
        opened: Storage = SQLiteStorage(tmp_path / "o.db")
    else:
        from asgi_oauth.storage.postgres import PostgresStorage

        opened = PostgresStorage(POSTGRES_URL, schema=request.getfixturevalue("pg_schema"))
    yield opened
    await opened.close()


def write(tmp_path: Path, text: str, name: str = "clients.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


async def client_credentials(server: AuthorizationServer, client_id: str, secret: str) -> str:
    response = await server.token(
        request(Credentials(client_id, secret), grant_type="client_credentials")
    )
    return response.access_token


async def test_a_file_round_trip_creates_leaves_updates_and_prunes(
    store: Storage, tmp_path: Path
) -> None:
    settings = Settings(issuer=ISSUER, client_registration="open")
    server = AuthorizationServer(store, settings)
    path = write(tmp_path, CLIENTS_TOML + OLD_CLIENT_TOML)

    plan = await apply_clients_file(store, settings, path, environ=ENV)
    assert plan == ClientPlan(created=("app", "api", "spa", "old"))
    stored = {c.client_id: c for c in await store.list_clients()}
    assert stored["app"].name == "The app" and stored["api"].name == "api"
    assert stored["app"].scope == {"read", "write"} and stored["spa"].is_public
    assert verify_secret(APP_SECRET, stored["app"].secret_hash)
    old_token = await client_credentials(server, "old", ENV["OLD_SECRET"])
    dynamic = await server.registrar.register(
        {"redirect_uris": ["https://dyn.example/cb"]}, initial_access_token=None
    )

    writes = CountedWrites(store)
    again = await apply_clients_file(store, settings, path, environ=ENV)
    assert again == ClientPlan(unchanged=("app", "api", "spa", "old"))
    assert again.summary() == "4 unchanged: nothing to do"
    assert writes.calls == []

    edited = CLIENTS_TOML.replace('scope = ["read"]', 'scope = ["read", "write"]')
    path = write(tmp_path, edited + OLD_CLIENT_TOML)
    plan = await apply_clients_file(
        store, settings, path, environ={**ENV, "API_SECRET": NEW_API_SECRET}
    )
    assert plan == ClientPlan(updated={"api": ("scope", "secret")}, unchanged=("app", "spa", "old"))
    assert writes.calls == [("save_client", "api")]
    api = await store.get_client("api")
    assert api is not None and api.scope == {"read", "write"}
    assert api.created_at == stored["api"].created_at
    assert await client_credentials(server, "api", NEW_API_SECRET)
    with pytest.raises(InvalidClientError):
        await client_credentials(server, "api", API_SECRET)

    path = write(tmp_path, edited)  # "old" is no longer listed
    kept = await apply_clients_file(
        store, settings, path, environ={**ENV, "API_SECRET": NEW_API_SECRET}
    )
    assert kept.deleted == () and await store.get_client("old") is not None
    pruned = await apply_clients_file(
        store, settings, path, prune=True, environ={**ENV, "API_SECRET": NEW_API_SECRET}
    )
    assert pruned == ClientPlan(unchanged=("app", "api", "spa"), deleted=("old",))
    assert await store.get_client("old") is None
    assert not (await server.introspect_token(old_token)).active
    assert await store.get_client(str(dynamic["client_id"])) is not None  # RFC 7591: not the file's
    app = await store.get_client("app")
    assert app is not None and app.secret_hash == stored["app"].secret_hash  # never rewritten
    await server.close()


async def test_toml_json_and_yaml_declare_the_same_clients(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    entries = [
        {
            "client_id": "app",
            "redirect_uris": ["https://app.example/cb"],
            "scope": "read write",
            "client_secret_env": "APP_SECRET",
        },
        {"client_id": "spa", "redirect_uris": ["https://spa.example/cb"], "public": True},
    ]
    toml = """
[[client]]
client_id = "app"
redirect_uris = ["https://app.example/cb"]
scope = "read write"
client_secret_env = "APP_SECRET"

[[client]]
client_id = "spa"
redirect_uris = ["https://spa.example/cb"]
public = true
"""
    yaml = """
clients:
  - client_id: app
    redirect_uris: [https://app.example/cb]
    scope: read write
    client_secret_env: APP_SECRET
  - client_id: spa
    redirect_uris: ["https://spa.example/cb"]
    public: true
"""
    read = [
        load_clients(write(tmp_path, toml, "c.toml"), ENV),
        load_clients(write(tmp_path, json.dumps(entries), "list.json"), ENV),
        load_clients(write(tmp_path, json.dumps({"clients": entries}), "object.json"), ENV),
        load_clients(write(tmp_path, yaml, "c.yaml"), ENV),
    ]
    assert all(declared == read[0] for declared in read)
    assert [d.client_id for d in read[0]] == ["app", "spa"]
    assert read[0][0].client_secret == APP_SECRET

    stores = [MemoryStorage(), MemoryStorage()]
    settings = Settings(issuer=ISSUER)
    for storage, name in zip(stores, ("c.toml", "c.yaml"), strict=True):
        await apply_clients_file(storage, settings, tmp_path / name, environ=ENV)
    first, second = [[_shape(c) for c in await s.list_clients()] for s in stores]
    assert first == second and len(first) == 2


def _shape(client: Client) -> tuple[object, ...]:
    """A client without what differs between two registrations of it (hash salt, time)."""
    return (client.client_id, client.name, client.redirect_uris, client.scope, client.is_public)


def table(**fields: object) -> str:
    """A ``[[client]]`` table: a good confidential client ``second``, then ``fields``
    (None leaves a field out). JSON writes these strings, lists and booleans as TOML does."""
    given: dict[str, object] = {
        "client_id": "second",
        "redirect_uris": ["https://second.example/cb"],
        "client_secret_env": "API_SECRET",
        **fields,
    }
    return "[[client]]\n" + "".join(
        f"{key} = {json.dumps(value)}\n" for key, value in given.items() if value is not None
    )


@pytest.mark.parametrize(
    ("second", "error", "message"),
    [
        (table(client_secret="s" * 43), ClientConfigError, "never write it in the file"),
        (table(colour="blue"), ClientConfigError, "unknown fields ['colour']"),
        (table(client_secret_env="MISSING"), ClientFileError, "MISSING is not set"),
        (table(client_secret_env="SHORT"), ClientConfigError, "at least 43 characters"),
        (table(client_id="first"), ClientConfigError, "each client_id once, repeated ['first']"),
        (
            table(redirect_uris=["http://evil.example/cb"]),
            ClientConfigError,
            "client 'second': http redirect URI allowed on loopback only",
        ),
        (table(client_secret_env=None), ClientConfigError, "needs client_secret_env"),
        (table(public=True), ClientConfigError, "a public client has no secret"),
        (table(redirect_uris="https://a.example/cb"), ClientConfigError, "a list of strings"),
        (table(public="yes"), ClientConfigError, "public must be true or false"),
        (table(client_id=None), ClientConfigError, "client_id is required"),
    ],
    ids=[
        "literal secret",
        "unknown field",
        "missing env var",
        "short secret",
        "duplicate id",
        "invalid redirect URI",
        "confidential without secret",
        "public with secret",
        "string for a list",
        "string for a flag",
        "no client_id",
    ],
)
async def test_a_refused_file_writes_nothing(
    tmp_path: Path, second: str, error: type[Exception], message: str
) -> None:
    """The second client is refused; the first, good and new, is not created either."""
    first = table(client_id="first", client_secret_env="APP_SECRET")
    storage = MemoryStorage()
    existing = Client(client_id="kept", redirect_uris=("https://k.example/cb",))
    await storage.save_client(existing)
    writes = CountedWrites(storage)
    with pytest.raises(error) as refused:
        await apply_clients_file(
            storage,
            Settings(issuer=ISSUER),
            write(tmp_path, first + second),
            prune=True,
            environ={**ENV, "SHORT": "s" * 42},
        )
    assert message in str(refused.value)
    assert writes.calls == []
    assert await storage.list_clients() == [existing]


async def test_a_dry_run_plans_and_writes_nothing(tmp_path: Path) -> None:
    storage = MemoryStorage()
    await storage.save_client(Client(client_id="gone"))
    writes = CountedWrites(storage)
    plan = await apply_clients_file(
        storage,
        Settings(issuer=ISSUER),
        write(tmp_path, table()),
        prune=True,
        dry_run=True,
        environ=ENV,
    )
    assert plan == ClientPlan(created=("second",), deleted=("gone",), dry_run=True)
    assert plan.lines() == ["would create second", "would delete gone"]
    assert plan.summary() == "dry run: 1 to create, 1 to delete; nothing written"
    assert writes.calls == []


async def test_the_plan_names_each_client_and_what_changed() -> None:
    plan = ClientPlan(
        created=("app",),
        updated={"api": ("redirect_uris", "secret")},
        unchanged=("web",),
        deleted=("old",),
    )
    assert plan.lines() == [
        "created app",
        "updated api (redirect_uris, secret)",
        "unchanged web",
        "deleted old",
    ]
    assert plan.summary() == "1 created, 1 updated, 1 unchanged, 1 deleted"


async def test_a_client_turned_public_loses_its_secret(tmp_path: Path) -> None:
    storage, settings = MemoryStorage(), Settings(issuer=ISSUER)
    await apply_clients_file(storage, settings, write(tmp_path, table()), environ=ENV)
    public = table(public=True, client_secret_env=None)
    plan = await apply_clients_file(storage, settings, write(tmp_path, public), environ=ENV)
    assert plan.updated == {"second": ("public",)}
    stored = await storage.get_client("second")
    assert stored is not None and stored.is_public and stored.secret_hash is None


async def test_a_self_registered_client_is_not_the_files_to_manage(tmp_path: Path) -> None:
    storage = MemoryStorage()
    registered = Client(client_id="second", registration_access_token_hash="sha256$$x")
    await storage.save_client(registered)
    writes = CountedWrites(storage)
    with pytest.raises(ClientConfigError, match="registered itself"):
        await apply_clients_file(
            storage, Settings(issuer=ISSUER), write(tmp_path, table()), environ=ENV
        )
    assert writes.calls == []


async def test_jwt_access_tokens_need_signing_keys(tmp_path: Path) -> None:
    path = write(tmp_path, table(access_token_format="jwt"))
    with pytest.raises(ClientConfigError, match="JWT access tokens need signing keys"):
        await apply_clients_file(MemoryStorage(), Settings(issuer=ISSUER), path, environ=ENV)
    keyed = Settings(issuer=ISSUER, key_encryption_key="k" * 32)
    plan = await apply_clients_file(MemoryStorage(), keyed, path, environ=ENV)
    assert plan.created == ("second",)


async def test_a_secret_file_is_read_beside_the_clients_file(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text(API_SECRET + "\n")
    path = write(tmp_path, table(client_secret_env=None, client_secret_file="secret.txt"))
    (declared,) = load_clients(path, {})
    assert declared.client_secret == API_SECRET
    assert API_SECRET not in repr(declared)


def test_yaml_without_pyyaml_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml now raises ImportError
    with pytest.raises(ClientFileError, match="pip install pyyaml"):
        load_clients(write(tmp_path, "clients: []", "c.yml"), {})


async def test_no_clients_file_names_the_setting() -> None:
    with pytest.raises(ClientFileError, match="ASGI_OAUTH_CLIENTS_FILE"):
        await apply_clients_file(MemoryStorage(), Settings(issuer=ISSUER))


async def test_register_client_stores_a_given_secret_as_a_hash(
    server: AuthorizationServer,
) -> None:
    secret = generate_token()
    registered = await server.register_client(
        name="c", grant_types=["client_credentials"], client_secret=secret
    )
    assert registered.client_secret == secret
    assert registered.client.secret_hash != secret
    assert verify_secret(secret, registered.client.secret_hash)
    assert await client_credentials(server, registered.client.client_id, secret)
    with pytest.raises(ValueError, match="at least 43 characters"):
        await server.register_client(name="d", client_secret=secret[:42])
    with pytest.raises(ValueError, match="a public client has no secret"):
        await server.register_client(
            name="e", redirect_uris=["https://e.example/cb"], public=True, client_secret=secret
        )


async def test_server_apply_clients_reads_the_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_SECRET", API_SECRET)
    path = write(tmp_path, table(grant_types=["client_credentials"]))
    settings = Settings(issuer=ISSUER, clients_file=str(path))
    server = AuthorizationServer(MemoryStorage(), settings)
    assert (await server.apply_clients(dry_run=True)).created == ("second",)
    assert await server.storage.get_client("second") is None
    assert (await server.apply_clients()).created == ("second",)
    assert await client_credentials(server, "second", API_SECRET)
    await server.close()


def test_a_file_takes_the_metadata_register_client_takes() -> None:
    """Same names: a field added to ``register_client`` is one a file can declare."""
    managed = {"client_id", "client_secret"}  # the identity, and a secret never written
    registered = set(inspect.signature(AuthorizationServer.register_client).parameters)
    assert registered - {"self"} - managed == METADATA_FIELDS
    built = set(inspect.signature(new_client).parameters)
    assert built - {"insecure_transport"} - managed == METADATA_FIELDS

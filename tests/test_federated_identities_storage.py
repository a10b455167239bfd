"""Upstream accounts linked to local users, kept by every store.

A link is keyed by the provider's (issuer, subject) (OpenID Connect Core §5.7):
one pair is linked to one user at most, even when first sign-ins race on two
instances sharing a database, and a new user with their first link is written
whole or not at all. The links go with their user and survive a restart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from asgi_oauth.models import FederatedIdentity
from asgi_oauth.storage import MemoryStorage, SQLiteStorage, Storage

from .postgres import POSTGRES_URL
from .test_storage import NOW, make_user

pytestmark = pytest.mark.anyio

ISSUER = "https://accounts.upstream.example"
#: What a provider said, with what a careless store would alter: non-ASCII text,
#: doubled spaces, a newline, escapes and a NUL escaped as JSON does.
CLAIMS = (
    '{"name": "Zoë  O\'Brien", "email": "zoe@upstream.example",\n'
    ' "groups": ["a", "b"], "note": "tab\\tnul\\u0000"}'
)
SEALED = "v1.cTJ3~Zm9v/YmFy+==.8Jd-"


def make_link(
    subject: str = "248289761001", user_id: str = "user-1", **kw: Any
) -> FederatedIdentity:
    fields: dict[str, Any] = {
        "issuer": ISSUER,
        "provider": "upstream",
        "claims": CLAIMS,
        "tokens": SEALED,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return FederatedIdentity(subject=subject, user_id=user_id, **{**fields, **kw})


def open_postgres(schema: str, application_name: str = "asgi_oauth_federated") -> Storage:
    from asgi_oauth.storage.postgres import PostgresStorage

    separator = "&" if "?" in POSTGRES_URL else "?"
    dsn = POSTGRES_URL + separator + urlencode({"application_name": application_name})
    return PostgresStorage(dsn, schema=schema)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    store: Storage
    if request.param == "memory":
        store = MemoryStorage()
    elif request.param == "sqlite":
        store = SQLiteStorage(tmp_path / "store.db")
    else:
        store = open_postgres(request.getfixturevalue("pg_schema"))
    yield store
    await store.close()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def two_instances(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Storage, Storage]]:
    """Two stores on one database, as two server processes have (the memory store,
    shared by no other process, is one store twice)."""
    stores: tuple[Storage, Storage]
    if request.param == "memory":
        memory = MemoryStorage()
        stores = (memory, memory)
    elif request.param == "sqlite":
        stores = (SQLiteStorage(tmp_path / "store.db"), SQLiteStorage(tmp_path / "store.db"))
    else:
        schema = request.getfixturevalue("pg_schema")
        stores = (open_postgres(schema), open_postgres(schema))
    try:
        # Created and opened before the race, so it is between writes, not start-ups.
        for store in stores:
            assert await store.get_user("warm-up") is None
        yield stores
    finally:
        for store in dict.fromkeys(stores):
            await store.close()


# -- one link ------------------------------------------------------------------------------


async def test_a_link_round_trips_every_field(storage: Storage) -> None:
    assert await storage.add_user(make_user())
    link = make_link()
    assert await storage.add_federated_identity(link) is True
    assert await storage.get_federated_identity(ISSUER, link.subject) == link
    assert await storage.federated_identities("user-1") == [link]
    assert await storage.get_federated_identity(ISSUER, "another-subject") is None
    assert await storage.get_federated_identity("https://other.example", link.subject) is None


async def test_a_link_without_kept_tokens_round_trips(storage: Storage) -> None:
    assert await storage.add_user(make_user())
    link = make_link(claims="{}", tokens=None)
    assert await storage.add_federated_identity(link)
    assert await storage.get_federated_identity(ISSUER, link.subject) == link


async def test_save_replaces_provider_claims_tokens_and_updated_at_only(storage: Storage) -> None:
    assert await storage.add_user(make_user())
    assert await storage.add_user(make_user("user-2", "bob"))
    link = make_link()
    assert await storage.add_federated_identity(link)
    newer = dataclasses.replace(
        link,
        provider="renamed",
        claims='{"name": "Zoë"}',
        tokens=None,
        updated_at=NOW + 60,
        # Not the store's to change on a save: whose link it is, and when it was made.
        user_id="user-2",
        created_at=NOW + 60,
    )
    await storage.save_federated_identity(newer)
    expected = dataclasses.replace(newer, user_id="user-1", created_at=NOW)
    assert await storage.get_federated_identity(ISSUER, link.subject) == expected
    assert await storage.federated_identities("user-2") == []
    resealed = dataclasses.replace(expected, tokens=SEALED, updated_at=NOW + 120)
    await storage.save_federated_identity(resealed)
    assert await storage.get_federated_identity(ISSUER, link.subject) == resealed


async def test_saving_an_unknown_link_creates_none(storage: Storage) -> None:
    assert await storage.add_user(make_user())
    await storage.save_federated_identity(make_link())
    assert await storage.get_federated_identity(ISSUER, make_link().subject) is None
    assert await storage.federated_identities("user-1") == []


async def test_links_are_listed_last_signed_in_first(storage: Storage) -> None:
    assert await storage.add_user(make_user())
    assert await storage.add_user(make_user("user-2", "bob"))
    old = make_link("s-old", updated_at=NOW)
    recent_b = make_link("s-b", issuer="https://b.example", updated_at=NOW + 10)
    recent_a2 = make_link("s-2", issuer="https://a.example", updated_at=NOW + 10)
    recent_a1 = make_link("s-1", issuer="https://a.example", updated_at=NOW + 10)
    latest = make_link("s-new", updated_at=NOW + 20)
    bobs = make_link("s-bob", user_id="user-2", updated_at=NOW + 30)
    for link in (old, recent_b, recent_a2, bobs, latest, recent_a1):
        assert await storage.add_federated_identity(link)
    assert await storage.federated_identities("user-1") == [
        latest,
        recent_a1,
        recent_a2,
        recent_b,
        old,
    ]
    assert await storage.federated_identities("user-2") == [bobs]
    assert await storage.federated_identities("nobody") == []


# -- who may be linked ---------------------------------------------------------------------


async def test_a_linked_pair_is_not_linked_to_another_user(storage: Storage) -> None:
    assert await storage.add_user(make_user())
    assert await storage.add_user(make_user("user-2", "bob"))
    link = make_link()
    assert await storage.add_federated_identity(link)
    again = make_link(user_id="user-2", provider="other", claims='{"x": 1}', tokens=None)
    assert await storage.add_federated_identity(again) is False
    assert await storage.add_federated_identity(link) is False
    assert await storage.get_federated_identity(ISSUER, link.subject) == link
    assert await storage.federated_identities("user-2") == []


async def test_the_same_subject_at_another_issuer_is_another_account(storage: Storage) -> None:
    assert await storage.add_user(make_user())
    assert await storage.add_user(make_user("user-2", "bob"))
    here = make_link("same")
    there = make_link("same", issuer="https://other.example", user_id="user-2")
    assert await storage.add_federated_identity(here)
    assert await storage.add_federated_identity(there)
    assert await storage.get_federated_identity(ISSUER, "same") == here
    assert await storage.get_federated_identity("https://other.example", "same") == there


async def test_a_link_to_an_unknown_user_is_refused(storage: Storage) -> None:
    assert await storage.add_user(make_user())
    assert await storage.add_federated_identity(make_link(user_id="user-404")) is False
    assert await storage.get_federated_identity(ISSUER, make_link().subject) is None
    assert await storage.federated_identities("user-404") == []


async def test_a_link_to_a_deleted_user_is_refused(storage: Storage) -> None:
    assert await storage.add_user(make_user())
    assert await storage.delete_user("alice")
    assert await storage.add_federated_identity(make_link()) is False
    assert await storage.get_federated_identity(ISSUER, make_link().subject) is None


# -- a new user with their first link ------------------------------------------------------


async def test_a_federated_user_is_created_with_the_link(storage: Storage) -> None:
    user = make_user(password_hash="!")
    link = make_link()
    assert await storage.add_federated_user(user, link) is True
    assert await storage.get_user("alice") == user
    assert await storage.get_user_by_id("user-1") == user
    assert await storage.get_federated_identity(ISSUER, link.subject) == link
    assert await storage.federated_identities("user-1") == [link]


async def test_a_taken_username_creates_neither_user_nor_link(storage: Storage) -> None:
    alice = make_user()
    assert await storage.add_user(alice)
    newcomer = make_user("user-2", "alice", password_hash="!")
    assert await storage.add_federated_user(newcomer, make_link(user_id="user-2")) is False
    assert await storage.get_user("alice") == alice
    assert await storage.get_user_by_id("user-2") is None
    assert await storage.get_federated_identity(ISSUER, make_link().subject) is None
    assert await storage.federated_identities("user-2") == []


async def test_a_taken_user_id_creates_neither_user_nor_link(storage: Storage) -> None:
    alice = make_user()
    assert await storage.add_user(alice)
    assert await storage.add_federated_user(make_user("user-1", "bob"), make_link()) is False
    assert await storage.get_user("bob") is None
    assert await storage.get_federated_identity(ISSUER, make_link().subject) is None
    assert await storage.list_users() == [alice]


async def test_a_taken_pair_creates_no_user(storage: Storage) -> None:
    alice = make_user()
    assert await storage.add_user(alice)
    link = make_link()
    assert await storage.add_federated_identity(link)
    bob = make_user("user-2", "bob", password_hash="!")
    assert await storage.add_federated_user(bob, make_link(user_id="user-2")) is False
    assert await storage.get_user("bob") is None
    assert await storage.get_user_by_id("user-2") is None
    assert await storage.list_users() == [alice]
    assert await storage.get_federated_identity(ISSUER, link.subject) == link


async def test_a_link_naming_another_user_is_a_mistake(storage: Storage) -> None:
    with pytest.raises(ValueError, match="user-2"):
        await storage.add_federated_user(make_user(), make_link(user_id="user-2"))
    assert await storage.list_users() == []
    assert await storage.get_federated_identity(ISSUER, make_link().subject) is None


async def test_concurrent_first_sign_ins_create_one_user(
    two_instances: tuple[Storage, Storage],
) -> None:
    one, two = two_instances
    attempts = [
        (two if i % 2 else one).add_federated_user(
            make_user(f"user-{i}", f"person-{i}"), make_link(user_id=f"user-{i}")
        )
        for i in range(20)
    ]
    added = await asyncio.gather(*attempts)
    assert added.count(True) == 1
    winner = f"user-{added.index(True)}"
    for store in (one, two):
        assert [user.user_id for user in await store.list_users()] == [winner]
        link = await store.get_federated_identity(ISSUER, make_link().subject)
        assert link == make_link(user_id=winner)


# -- the links' lifetime -------------------------------------------------------------------


async def test_deleting_a_user_deletes_their_links_only(storage: Storage) -> None:
    assert await storage.add_user(make_user())
    assert await storage.add_user(make_user("user-2", "bob"))
    alices = [make_link("a-1"), make_link("a-2", issuer="https://other.example")]
    bobs = make_link("b-1", user_id="user-2")
    for link in (*alices, bobs):
        assert await storage.add_federated_identity(link)
    assert await storage.delete_user("alice")
    for link in alices:
        assert await storage.get_federated_identity(link.issuer, link.subject) is None
    assert await storage.federated_identities("user-1") == []
    assert await storage.get_federated_identity(ISSUER, "b-1") == bobs
    # The account is free again: a new user may link it.
    assert await storage.add_federated_user(
        make_user("user-3", "carol"), make_link("a-1", user_id="user-3")
    )


async def test_purging_leaves_the_links(storage: Storage) -> None:
    assert await storage.add_user(make_user())
    link = make_link(created_at=1, updated_at=1)
    assert await storage.add_federated_identity(link)
    await storage.purge_expired(now=int(time.time()) + 10 * 365 * 24 * 3600)
    assert await storage.get_federated_identity(ISSUER, link.subject) == link


async def test_links_survive_reopening_the_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SQLiteStorage(path)
    first, second = make_link("s-1"), make_link("s-2", tokens=None, updated_at=NOW + 1)
    try:
        assert await store.add_federated_user(make_user(), first)
        assert await store.add_federated_identity(second)
    finally:
        await store.close()
    reopened = SQLiteStorage(path)
    try:
        assert await reopened.get_user_by_id("user-1") == make_user()
        assert await reopened.get_federated_identity(ISSUER, "s-1") == first
        assert await reopened.federated_identities("user-1") == [second, first]
    finally:
        await reopened.close()


async def test_a_postgres_link_racing_the_deletion_of_its_user_is_not_left_behind(
    pg_schema: str,
) -> None:
    """The deletion holds the user's row: the link waits for it, then finds no user."""
    import asyncpg

    name = f"asgi_oauth_{pg_schema}"
    store = open_postgres(pg_schema, application_name=name)
    admin: Any = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        assert await store.add_user(make_user())
        transaction = admin.transaction()
        await transaction.start()
        await admin.execute(f'DELETE FROM "{pg_schema}".users WHERE user_id = $1', "user-1")
        linking = asyncio.ensure_future(store.add_federated_identity(make_link()))
        await wait_for_lock_wait(admin, name)
        await transaction.commit()
        assert await linking is False
        assert await store.get_federated_identity(ISSUER, make_link().subject) is None
    finally:
        await admin.close()
        await store.close()


async def wait_for_lock_wait(admin: Any, application_name: str) -> None:
    """Return once a backend of ``application_name`` waits on a lock."""
    deadline = time.monotonic() + 5
    sql = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = $1 AND wait_event_type = 'Lock'"
    )
    while not await admin.fetchval(sql, application_name):
        assert time.monotonic() < deadline, "the link never waited for the deletion"
        await asyncio.sleep(0.01)

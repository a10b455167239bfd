"""Connected applications: the store's grants of a person (every backend, old databases
migrated), and the ``/account`` page over HTTP, where the person revokes one."""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from asgi_oauth import AuthorizationServer, ResourceOwner
from asgi_oauth.app import OAuth2App
from asgi_oauth.models import ConnectedApp
from asgi_oauth.revocation_signal import signal_of
from asgi_oauth.storage import SQLiteStorage, Storage
from asgi_oauth.storage.sqlite import schema as sqlite_schema

from .browser_helpers import (
    CHALLENGE,
    FORM,
    LOGIN,
    TOKEN,
    VERIFIER,
    consent_page,
    csp,
    decide,
    exchange,
    mounted,
    parse_page,
    query_of,
    redirect_target,
    sign_in,
    submit,
)
from .conftest import ISSUER, Credentials
from .postgres import POSTGRES_URL
from .test_storage import NOW, make_code, make_device, make_pair

pytestmark = pytest.mark.anyio

ACCOUNT = ISSUER + "/account"


def of(subject: str, client_id: str, prefix: str, issued_at: int = NOW) -> list[Any]:
    """A grant's access and refresh token, for ``subject`` at ``client_id``."""
    return [
        dataclasses.replace(t, subject=subject, client_id=client_id, issued_at=issued_at)
        for t in make_pair(prefix, family_id=f"f-{prefix}")
    ]


# -- the store ---------------------------------------------------------------------


async def test_list_grants_gives_each_consent_with_when_and_last_use(storage: Storage) -> None:
    await storage.save_consent("user-1", "client-2", frozenset({"read"}), now=NOW + 5)
    await storage.save_consent("user-1", "client-1", frozenset({"openid", "read"}), now=NOW)
    await storage.save_consent("user-2", "client-1", frozenset({"read"}), now=NOW)
    await storage.save_tokens(of("user-1", "client-1", "a", issued_at=NOW + 10))
    await storage.save_tokens(of("user-1", "client-1", "b", issued_at=NOW + 20))
    await storage.save_tokens(of("user-2", "client-1", "c", issued_at=NOW + 99))
    await storage.save_tokens(of("user-1", "client-3", "d", issued_at=NOW + 98))

    assert await storage.list_grants("user-1", now=NOW) == [
        ConnectedApp("client-1", frozenset({"openid", "read"}), NOW, NOW + 20),
        ConnectedApp("client-2", frozenset({"read"}), NOW + 5, None),
        # No consent kept (a native app is asked each time): listed by its live tokens.
        ConnectedApp("client-3", frozenset({"openid"}), NOW + 98, NOW + 98),
    ]
    assert await storage.list_grants("nobody", now=NOW) == []
    # Once its tokens have expired, a client without a consent is no longer connected.
    later = [g.client_id for g in await storage.list_grants("user-1", now=NOW + 10**8)]
    assert later == ["client-1", "client-2"]


async def test_approving_again_moves_granted_at_and_an_unknown_time_is_zero(
    storage: Storage,
) -> None:
    await storage.save_consent("user-1", "client-1", frozenset({"read"}))
    assert await storage.list_grants("user-1", now=NOW) == [
        ConnectedApp("client-1", frozenset({"read"}), 0, None)
    ]
    await storage.save_consent("user-1", "client-1", frozenset({"read", "write"}), now=NOW)
    assert await storage.list_grants("user-1", now=NOW) == [
        ConnectedApp("client-1", frozenset({"read", "write"}), NOW, None)
    ]


async def test_revoke_grant_ends_that_clients_grant_of_that_person_only(storage: Storage) -> None:
    for subject, client_id in (
        ("user-1", "client-1"),
        ("user-1", "client-2"),
        ("user-2", "client-1"),
    ):
        prefix = f"{subject}-{client_id}"
        await storage.save_consent(subject, client_id, frozenset({"read"}), now=NOW)
        await storage.save_tokens(of(subject, client_id, prefix))
        code = make_code(f"code-{prefix}", subject=subject, client_id=client_id)
        await storage.save_authorization_code(code)
        device = make_device(f"d-{prefix}", f"u-{prefix}", subject=subject, client_id=client_id)
        await storage.save_device_authorization(device)
    signal = signal_of(storage)
    before = signal.version()

    assert await storage.revoke_grant("user-1", "client-1", now=NOW + 50) is True

    assert signal.version() != before
    assert await storage.get_consent("user-1", "client-1") is None
    access = await storage.get_token("user-1-client-1-at")
    assert access is not None and access.revoked_at == NOW + 50
    assert await storage.get_token("user-1-client-1-rt") is None
    assert await storage.list_revoked_access_tokens(now=NOW) == ["user-1-client-1-at"]
    assert await storage.get_authorization_code("code-user-1-client-1") is None
    assert await storage.get_device_authorization("u-user-1-client-1") is None
    # The family is over: nothing of it rotates or stays to revoke.
    assert await storage.revoke_family("f-user-1-client-1", now=NOW + 60) == 0
    for prefix in ("user-1-client-2", "user-2-client-1"):
        subject, _, client_id = prefix.partition("-client")
        assert await storage.get_consent(subject, "client" + client_id) == frozenset({"read"})
        for token_hash in (f"{prefix}-at", f"{prefix}-rt"):
            token = await storage.get_token(token_hash)
            assert token is not None and token.revoked_at is None
        assert await storage.get_authorization_code(f"code-{prefix}") is not None
        assert await storage.get_device_authorization(f"u-{prefix}") is not None
    assert [g.client_id for g in await storage.list_grants("user-1", now=NOW)] == ["client-2"]


async def test_revoke_grant_says_false_when_nothing_was_left(storage: Storage) -> None:
    assert await storage.revoke_grant("user-1", "client-1", now=NOW) is False
    await storage.save_tokens(of("user-1", "client-1", "a"))
    # Tokens without a kept consent (the person did not ask to be remembered) still end.
    assert await storage.revoke_grant("user-1", "client-1", now=NOW) is True
    assert await storage.revoke_grant("user-1", "client-1", now=NOW) is False
    assert await storage.list_revoked_access_tokens(now=NOW) == ["a-at"]


async def test_an_old_sqlite_file_keeps_its_consents_with_an_unknown_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    old = next(i for i, m in enumerate(sqlite_schema.MIGRATIONS) if "granted_at" in " ".join(m))
    monkeypatch.setattr(sqlite_schema, "MIGRATIONS", sqlite_schema.MIGRATIONS[:old])
    monkeypatch.setattr(sqlite_schema, "SCHEMA_VERSION", old)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        sqlite_schema.migrate(conn)
        conn.execute("INSERT INTO consents (subject, client_id, scope) VALUES ('u', 'c', 'read')")
    finally:
        conn.close()
        monkeypatch.undo()
    store = SQLiteStorage(path)
    try:
        assert await store.list_grants("u", now=NOW) == [
            ConnectedApp("c", frozenset({"read"}), 0, None)
        ]
    finally:
        await store.close()


async def test_an_old_postgres_schema_keeps_its_consents_with_an_unknown_time(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncpg

    from asgi_oauth.storage.postgres import PostgresStorage
    from asgi_oauth.storage.postgres import schema as pg

    old = next(i for i, m in enumerate(pg.MIGRATIONS) if "granted_at" in " ".join(m))
    monkeypatch.setattr(pg, "MIGRATIONS", pg.MIGRATIONS[:old])
    monkeypatch.setattr(pg, "SCHEMA_VERSION", old)
    before = PostgresStorage(POSTGRES_URL, schema=pg_schema)
    try:
        await before.migrate()
    finally:
        await before.close()
        monkeypatch.undo()
    admin: Any = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        await admin.execute(
            f'INSERT INTO "{pg_schema}".consents (subject, client_id, scope)'
            " VALUES ('u', 'c', 'read')"
        )
    finally:
        await admin.close()
    store = PostgresStorage(POSTGRES_URL, schema=pg_schema)
    try:
        assert await store.migrate() == pg.SCHEMA_VERSION - old
        assert await store.list_grants("u", now=NOW) == [
            ConnectedApp("c", frozenset({"read"}), 0, None)
        ]
    finally:
        await store.close()


# -- the core ----------------------------------------------------------------------


async def test_a_revocation_tells_the_listeners_and_a_deleted_client_is_not_listed(
    server: AuthorizationServer,
    confidential: Credentials,
    public: Credentials,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="asgi_oauth.events")
    heard: list[str] = []
    server.add_revocation_listener(lambda: heard.append("revoked"))
    for client in (confidential, public):
        await server.storage.save_consent("user-1", client.client_id, frozenset({"read"}))
    await server.storage.delete_client(public.client_id)
    listed = await server.connected_apps.of("user-1")
    assert [client.name for client, _ in listed] == ["Confidential"]

    assert await server.connected_apps.revoke("user-1", confidential.client_id) is True
    assert heard == ["revoked"]
    events = [
        (getattr(r, "event", None), getattr(r, "fields", None))
        for r in caplog.records
        if r.name == "asgi_oauth.events"
    ]
    assert events == [("grant_revoked", {"user_id": "user-1", "client_id": confidential.client_id})]
    assert await server.connected_apps.revoke("user-1", confidential.client_id) is False
    assert heard == ["revoked"]
    assert await server.connected_apps.of("user-1") == []


# -- the page ----------------------------------------------------------------------


@pytest.fixture
async def alice(server: AuthorizationServer) -> ResourceOwner:
    user = await server.create_user("alice", "correct horse battery staple")
    return ResourceOwner(user.user_id, user.username)


async def tokens_for(http: httpx.AsyncClient, client: Credentials) -> dict[str, Any]:
    """Approve ``client`` on the consent page (remembered), exchange the code."""
    params = {
        "client_id": client.client_id,
        "response_type": "code",
        "scope": "read",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }
    page = await consent_page(http, "alice", **params)
    response = await decide(http, page, "approve", remember=True)
    code = query_of(redirect_target(response))["code"]
    exchanged = await exchange(
        http,
        code,
        client_id=client.client_id,
        client_secret=client.client_secret,
        verifier=VERIFIER,
    )
    assert exchanged.status_code == 200, exchanged.text
    tokens: dict[str, Any] = exchanged.json()
    return tokens


async def is_active(server: AuthorizationServer, access_token: str) -> bool:
    return (await server.introspect_token(access_token)).active


async def test_signing_in_from_the_page_comes_back_to_it(
    http: httpx.AsyncClient, alice: ResourceOwner
) -> None:
    response = await http.get(ACCOUNT)
    assert redirect_target(response) == f"{LOGIN}?next=%2Faccount"
    signed_in = await sign_in(http, "alice", next_url=redirect_target(response))
    assert redirect_target(signed_in) == ACCOUNT


async def test_the_page_lists_each_app_and_revokes_one_with_a_notice(
    http: httpx.AsyncClient,
    server: AuthorizationServer,
    confidential: Credentials,
    public: Credentials,
    alice: ResourceOwner,
) -> None:
    orders = await tokens_for(http, confidential)
    other = await tokens_for(http, public)

    response = await http.get(ACCOUNT)
    assert response.status_code == 200
    page = parse_page(response.text)
    assert page.title == "Connected applications"
    assert "signed in as alice" in page.text
    for name in ("Confidential", "Public"):
        assert f'aria-label="Revoke {name}"' in response.text
    assert "app.example" in page.text  # the host of each one's redirect URI
    assert "Use “read”" in page.text  # the scope as the consent page says it
    assert page.text.count("2023-11-14 22:13 UTC") == 4  # approved and last used, each
    assert page.style_nonces and f"'nonce-{page.style_nonces[0]}'" in csp(response)["style-src"]
    forms = {form.fields["client_id"]: form for form in page.forms}
    assert forms.keys() == {confidential.client_id, public.client_id}

    revoked = await submit(http, forms[confidential.client_id])
    assert redirect_target(revoked) == f"{ACCOUNT}?revoked={confidential.client_id}"

    after = parse_page((await http.get(redirect_target(revoked))).text)
    assert "Confidential no longer has access to your account." in after.text
    assert [form.fields["client_id"] for form in after.forms] == [public.client_id]
    assert not await is_active(server, orders["access_token"])
    assert await is_active(server, other["access_token"])
    refreshed = await http.post(
        TOKEN,
        data={"grant_type": "refresh_token", "refresh_token": orders["refresh_token"]},
        auth=(confidential.client_id, confidential.client_secret or ""),
    )
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"


async def test_a_revocation_without_the_csrf_token_or_from_elsewhere_is_refused(
    http: httpx.AsyncClient,
    server: AuthorizationServer,
    confidential: Credentials,
    alice: ResourceOwner,
) -> None:
    tokens = await tokens_for(http, confidential)
    form = parse_page((await http.get(ACCOUNT)).text).form

    for csrf in (None, "forged"):
        response = await submit(http, form, {"csrf_token": csrf})
        assert response.status_code == 403
    elsewhere = await http.post(
        ACCOUNT,
        content=urlencode(form.fields),
        headers={**FORM, "origin": "https://evil.example"},
    )
    assert elsewhere.status_code == 403

    assert await is_active(server, tokens["access_token"])
    assert len(await server.connected_apps.of(alice.subject)) == 1


async def test_a_revocation_by_someone_signed_out_revokes_nothing(
    oauth_app: OAuth2App,
    http: httpx.AsyncClient,
    server: AuthorizationServer,
    confidential: Credentials,
    alice: ResourceOwner,
) -> None:
    tokens = await tokens_for(http, confidential)
    form = parse_page((await http.get(ACCOUNT)).text).form
    async with mounted(oauth_app) as stranger:
        response = await submit(stranger, form)
    assert redirect_target(response).startswith(LOGIN + "?")
    assert await is_active(server, tokens["access_token"])


async def test_a_notice_is_shown_only_when_true(
    http: httpx.AsyncClient, confidential: Credentials, alice: ResourceOwner
) -> None:
    await tokens_for(http, confidential)
    linked = await http.get(ACCOUNT, params={"revoked": confidential.client_id})
    assert "no longer has access" not in parse_page(linked.text).text
    unknown = await http.get(ACCOUNT, params={"revoked": "Your bank"})
    assert "Your bank" not in parse_page(unknown.text).text


async def test_no_page_with_a_host_sign_in_hook(server: AuthorizationServer) -> None:
    async def nobody(request: object) -> None:
        return None

    app = OAuth2App(server, current_user=nobody, login_url="https://host.example/login")
    async with mounted(app) as http:
        assert (await http.get(ACCOUNT)).status_code == 404


async def test_an_empty_list_says_so(
    http: httpx.AsyncClient, confidential: Credentials, alice: ResourceOwner
) -> None:
    await sign_in(http, "alice")
    page = parse_page((await http.get(ACCOUNT)).text)
    assert "No application has access to your account" in page.text and not page.forms

"""Signing out at a client's request: OpenID Connect RP-Initiated Logout 1.0 at /logout.

The ID token hint must be one this server signed (expired is fine, §2); a
``post_logout_redirect_uri`` is followed only when it equals one registered for the
client the hint or ``client_id`` names, else the request gets an error page and no
redirect. The person confirms; then the session ends and the browser goes back with
``state``. Also here: the two metadata fields, kept by every store and registered
dynamically, and discovery.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from asgi_oauth import AuthorizationServer, Settings, User
from asgi_oauth.app import OAuth2App
from asgi_oauth.clients import validate_logout_uri
from asgi_oauth.models import Client
from asgi_oauth.openid import Authentication
from asgi_oauth.storage import MemoryStorage, SQLiteStorage, Storage
from asgi_oauth.storage.sqlite import schema as sqlite_schema

from .browser_helpers import PASSWORD, authorize_url, mounted, parse_page, sign_in, submit
from .conftest import ISSUER, FakeClock
from .openid_helpers import openid_settings
from .test_cli_commands import Cli, on, stored_client
from .test_storage import make_client

pytestmark = pytest.mark.anyio

LOGOUT = ISSUER + "/logout"
BYE = "https://app.example/bye"
OTHER_BYE = "https://other.example/bye"


@pytest.fixture
def settings() -> Settings:
    return openid_settings(client_registration="open")


@pytest.fixture
async def alice(server: AuthorizationServer) -> User:
    return await server.create_user("alice", PASSWORD)


@pytest.fixture
async def rp(server: AuthorizationServer) -> Client:
    registered = await server.register_client(
        name="Relying Party",
        redirect_uris=["https://app.example/cb"],
        scope=["openid"],
        post_logout_redirect_uris=[BYE, "https://app.example/bye?from=op"],
    )
    return registered.client


@pytest.fixture
async def other(server: AuthorizationServer) -> Client:
    registered = await server.register_client(
        name="Other",
        redirect_uris=["https://other.example/cb"],
        post_logout_redirect_uris=[OTHER_BYE],
    )
    return registered.client


async def id_token(server: AuthorizationServer, client: Client, subject: str) -> str:
    """An ID token as the token endpoint would sign it for ``client``."""
    assert server.keys is not None
    await server.keys.ready()
    return await server.openid.id_token(
        client, Authentication(subject=subject), frozenset({"openid"}), with_user_claims=False
    )


def logout_url(**params: str) -> str:
    return f"{LOGOUT}?{urlencode(params)}"


async def is_signed_in(http: httpx.AsyncClient, client: Client) -> bool:
    """Ask the authorization endpoint: signed in unless it sends the person to sign in."""
    response = await http.get(
        authorize_url(
            client_id=client.client_id,
            response_type="code",
            scope="openid",
            code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            code_challenge_method="S256",
        )
    )
    return not (response.status_code == 303 and "/login?" in response.headers["location"])


def refused(response: httpx.Response) -> str:
    """An error page, never a redirect: its text."""
    assert response.status_code == 400, (response.status_code, response.text)
    assert "location" not in response.headers
    return parse_page(response.text).text


# -- discovery -------------------------------------------------------------------------


async def test_discovery_names_the_end_session_endpoint_and_back_channel_logout(
    http: httpx.AsyncClient,
) -> None:
    body = (await http.get(ISSUER + "/.well-known/openid-configuration")).json()
    assert body["end_session_endpoint"] == LOGOUT
    assert body["backchannel_logout_supported"] is True
    assert body["backchannel_logout_session_supported"] is False
    oauth = (await http.get("/.well-known/oauth-authorization-server/oauth2")).json()
    assert "end_session_endpoint" not in oauth


async def test_a_host_with_its_own_sign_in_advertises_no_end_session_endpoint(
    server: AuthorizationServer,
) -> None:
    async def nobody(request: object) -> None:
        return None

    app = OAuth2App(server, current_user=nobody, login_url="https://host.example/login")
    async with mounted(app) as http:
        body = (await http.get(ISSUER + "/.well-known/openid-configuration")).json()
    assert "end_session_endpoint" not in body
    assert "backchannel_logout_supported" not in body


# -- the request and the confirmation --------------------------------------------------


async def test_a_registered_uri_is_followed_with_state_after_the_person_confirms(
    http: httpx.AsyncClient, server: AuthorizationServer, rp: Client, alice: User
) -> None:
    await sign_in(http, "alice")
    hint = await id_token(server, rp, alice.user_id)
    page = await http.get(logout_url(id_token_hint=hint, post_logout_redirect_uri=BYE, state="s1"))
    assert page.status_code == 200, page.text
    form = parse_page(page.text).form
    assert "Relying Party asks you to sign out" in parse_page(page.text).text
    assert form.fields["id_token_hint"] == hint and form.fields["state"] == "s1"
    assert form.fields["post_logout_redirect_uri"] == BYE and form.fields["csrf_token"]
    assert await is_signed_in(http, rp)  # asking signs no one out

    done = await submit(http, form)
    assert done.status_code == 303
    assert done.headers["location"] == BYE + "?state=s1"
    assert "max-age=0" in done.headers["set-cookie"].lower()
    assert not await is_signed_in(http, rp)


async def test_state_joins_a_registered_query_and_goes_nowhere_without_a_uri(
    http: httpx.AsyncClient, server: AuthorizationServer, rp: Client, alice: User
) -> None:
    await sign_in(http, "alice")
    hint = await id_token(server, rp, alice.user_id)
    uri = "https://app.example/bye?from=op"
    page = await http.get(logout_url(id_token_hint=hint, post_logout_redirect_uri=uri, state="x y"))
    done = await submit(http, parse_page(page.text).form)
    assert done.headers["location"] == uri + "&state=x+y"

    await sign_in(http, "alice")
    page = await http.get(logout_url(id_token_hint=hint, state="ignored"))
    done = await submit(http, parse_page(page.text).form)
    assert done.status_code == 200 and parse_page(done.text).title == "Signed out"


async def test_client_id_alone_names_the_client_whose_uri_it_is(
    http: httpx.AsyncClient, rp: Client, alice: User
) -> None:
    await sign_in(http, "alice")
    page = await http.get(logout_url(client_id=rp.client_id, post_logout_redirect_uri=BYE))
    done = await submit(http, parse_page(page.text).form)
    assert done.headers["location"] == BYE


@pytest.mark.parametrize(
    "uri",
    [
        BYE + "/",
        BYE + "?x=1",
        "https://APP.example/bye",
        "https://app.example/Bye",
        "https://app.example:443/bye",
        BYE + "#frag",
        OTHER_BYE,  # another client's
        "https://evil.example/bye",
    ],
)
async def test_only_an_exact_registered_uri_is_followed(
    http: httpx.AsyncClient, server: AuthorizationServer, rp: Client, other: Client, uri: str
) -> None:
    hint = await id_token(server, rp, "alice-id")
    text = refused(await http.get(logout_url(id_token_hint=hint, post_logout_redirect_uri=uri)))
    assert "not registered" in text
    # Nor through a POSTed request, nor through a confirmation form with the URI swapped in.
    assert refused(
        await http.post(LOGOUT, data={"client_id": rp.client_id, "post_logout_redirect_uri": uri})
    )


async def test_a_uri_without_a_hint_or_client_id_is_refused(
    http: httpx.AsyncClient, rp: Client
) -> None:
    text = refused(await http.get(logout_url(post_logout_redirect_uri=BYE, state="s")))
    assert "id_token_hint or client_id" in text


async def test_an_expired_hint_is_still_a_hint(
    http: httpx.AsyncClient, server: AuthorizationServer, clock: FakeClock, rp: Client, alice: User
) -> None:
    hint = await id_token(server, rp, alice.user_id)
    clock.advance(server.settings.id_token_lifetime + 86400)
    await sign_in(http, "alice")
    page = await http.get(logout_url(id_token_hint=hint, post_logout_redirect_uri=BYE))
    assert page.status_code == 200, page.text
    done = await submit(http, parse_page(page.text).form)
    assert done.headers["location"] == BYE


async def test_a_hint_this_server_did_not_sign_is_refused(
    http: httpx.AsyncClient, server: AuthorizationServer, settings: Settings, rp: Client
) -> None:
    elsewhere = AuthorizationServer(MemoryStorage(), settings)
    try:
        foreign = await id_token(elsewhere, rp, "alice-id")
    finally:
        await elsewhere.close()
    assert server.keys is not None
    await server.keys.ready()
    claims = {"iss": "https://evil.example", "sub": "alice-id", "aud": rp.client_id, "exp": 2**40}
    wrong_issuer = server.keys.sign(claims, alg="RS256", typ="JWT")
    for hint in (foreign, wrong_issuer, "not.a.jwt"):
        text = refused(await http.get(logout_url(id_token_hint=hint, post_logout_redirect_uri=BYE)))
        assert "id_token_hint" in text
    # A token of another kind from this server (a logout token's typ) is no ID token either.
    logout_token = server.keys.sign({**claims, "iss": ISSUER}, alg="RS256", typ="logout+jwt")
    assert refused(await http.get(logout_url(id_token_hint=logout_token)))


async def test_client_id_must_be_the_hints_audience(
    http: httpx.AsyncClient, server: AuthorizationServer, rp: Client, other: Client
) -> None:
    hint = await id_token(server, rp, "alice-id")
    text = refused(
        await http.get(
            logout_url(
                id_token_hint=hint, client_id=other.client_id, post_logout_redirect_uri=OTHER_BYE
            )
        )
    )
    assert "audience" in text
    assert refused(await http.get(logout_url(client_id="no-such-client")))


async def test_a_hint_naming_someone_else_still_signs_out_who_is_here_and_says_so(
    http: httpx.AsyncClient, server: AuthorizationServer, rp: Client, alice: User
) -> None:
    bob = await server.create_user("bob", PASSWORD)
    await sign_in(http, "alice")
    page = await http.get(logout_url(id_token_hint=await id_token(server, rp, bob.user_id)))
    assert "another account" in parse_page(page.text).text
    done = await submit(http, parse_page(page.text).form)
    assert parse_page(done.text).title == "Signed out"
    assert not await is_signed_in(http, rp)


async def test_a_client_may_post_the_request_from_its_own_site(
    http: httpx.AsyncClient, server: AuthorizationServer, rp: Client, alice: User
) -> None:
    """§2: GET and POST; a POSTed request only shows the confirmation, whatever its origin."""
    await sign_in(http, "alice")
    hint = await id_token(server, rp, alice.user_id)
    page = await http.post(
        LOGOUT,
        data={"id_token_hint": hint, "post_logout_redirect_uri": BYE, "state": "p"},
        headers={"Origin": "https://app.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert page.status_code == 200 and parse_page(page.text).title == "Sign out"
    assert await is_signed_in(http, rp)
    # The confirmation itself from another site is refused, its token notwithstanding.
    form = parse_page(page.text).form
    forged = await http.post(LOGOUT, data=form.fields, headers={"Origin": "https://app.example"})
    assert forged.status_code == 403 and await is_signed_in(http, rp)
    done = await submit(http, form)
    assert done.headers["location"] == BYE + "?state=p"


async def test_the_confirmation_needs_the_sessions_csrf_token(
    http: httpx.AsyncClient, server: AuthorizationServer, rp: Client, alice: User
) -> None:
    await sign_in(http, "alice")
    page = await http.get(logout_url(client_id=rp.client_id, post_logout_redirect_uri=BYE))
    forged = await submit(http, parse_page(page.text).form, {"csrf_token": "forged"})
    assert forged.status_code == 403 and "location" not in forged.headers
    assert await is_signed_in(http, rp)


# -- the metadata: validated, stored, registered -------------------------------------


@pytest.mark.parametrize(
    ("uri", "insecure", "loopback", "ok"),
    [
        ("https://app.example/bye", False, True, True),
        ("https://app.example/bye?x=1", False, True, True),
        ("http://127.0.0.1:8000/bye", False, True, True),
        ("http://localhost/bye", False, True, True),
        ("http://app.example/bye", False, True, False),
        ("http://app.example/bye", True, True, True),
        ("http://127.0.0.1:8000/bc", False, False, False),
        ("http://127.0.0.1:8000/bc", True, False, True),
        ("https://app.example/bye#x", False, True, False),
        ("/bye", False, True, False),
        ("com.example.app:/bye", False, True, False),
        ("javascript:alert(1)", False, True, False),
        ("https://app.example/b ye", False, True, False),
        ("", False, True, False),
    ],
)
def test_logout_uris_are_absolute_https_without_fragment(
    uri: str, insecure: bool, loopback: bool, ok: bool
) -> None:
    if ok:
        assert validate_logout_uri(uri, insecure_transport=insecure, loopback=loopback) == uri
    else:
        with pytest.raises(ValueError, match="logout URI"):
            validate_logout_uri(uri, insecure_transport=insecure, loopback=loopback)


async def test_register_client_refuses_a_bad_logout_uri(server: AuthorizationServer) -> None:
    with pytest.raises(ValueError, match="https"):
        await server.register_client(name="a", post_logout_redirect_uris=["http://app.example/"])
    with pytest.raises(ValueError, match="https"):
        await server.register_client(name="b", backchannel_logout_uri="http://app.example/bc")
    with pytest.raises(ValueError, match="fragment"):
        await server.register_client(name="c", backchannel_logout_uri="https://app.example/#bc")


async def test_every_store_keeps_the_logout_metadata(storage: Storage) -> None:
    told = make_client(
        "told",
        post_logout_redirect_uris=(BYE, "http://127.0.0.1:9/bye"),
        backchannel_logout_uri="https://app.example/backchannel",
    )
    plain = make_client("plain")
    for client in (told, plain):
        await storage.add_client(client)
    assert await storage.get_client("told") == told
    assert await storage.get_client("plain") == plain
    assert plain.post_logout_redirect_uris == () and plain.backchannel_logout_uri is None
    changed = dataclasses.replace(told, post_logout_redirect_uris=(), backchannel_logout_uri=None)
    await storage.save_client(changed)
    assert await storage.get_client("told") == changed
    assert {c.client_id: c for c in await storage.list_clients()}["told"] == changed


async def test_every_store_lists_the_clients_a_person_consented_to(storage: Storage) -> None:
    for client_id in ("b", "a", "c"):
        await storage.add_client(make_client(client_id))
    await storage.save_consent("alice", "b", frozenset({"openid"}))
    await storage.save_consent("alice", "a", frozenset({"openid"}))
    await storage.save_consent("bob", "c", frozenset({"openid"}))
    assert await storage.consented_clients("alice") == ["a", "b"]
    assert await storage.consented_clients("bob") == ["c"]
    assert await storage.consented_clients("carol") == []


async def test_dynamic_registration_takes_and_echoes_the_logout_metadata(
    http: httpx.AsyncClient, server: AuthorizationServer
) -> None:
    document = {
        "redirect_uris": ["https://app.example/cb"],
        "post_logout_redirect_uris": [BYE],
        "backchannel_logout_uri": "https://app.example/backchannel",
    }
    response = await http.post(ISSUER + "/register", json=document)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["post_logout_redirect_uris"] == [BYE]
    assert body["backchannel_logout_uri"] == "https://app.example/backchannel"
    stored = await server.storage.get_client(body["client_id"])
    assert stored is not None and stored.post_logout_redirect_uris == (BYE,)
    read = await http.get(
        body["registration_client_uri"],
        headers={"Authorization": f"Bearer {body['registration_access_token']}"},
    )
    assert read.json()["post_logout_redirect_uris"] == [BYE]

    for bad in (
        {"post_logout_redirect_uris": ["http://app.example/bye"]},
        {"post_logout_redirect_uris": "https://app.example/bye"},
        {"backchannel_logout_uri": "https://app.example/bc#x"},
        {"backchannel_logout_uri": "http://127.0.0.1/bc"},
    ):
        refused_doc = await http.post(
            ISSUER + "/register", json={"redirect_uris": ["https://app.example/cb"], **bad}
        )
        assert refused_doc.status_code == 400, bad
        assert refused_doc.json()["error"] == "invalid_client_metadata", bad


def before_logout_metadata(schema: Any) -> int:
    """How many migrations a store of the release before the logout metadata had."""
    return next(
        i for i, m in enumerate(schema.MIGRATIONS) if "post_logout_redirect_uris" in " ".join(m)
    )


async def test_a_sqlite_file_of_the_release_before_gains_the_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    old_version = before_logout_metadata(sqlite_schema)
    monkeypatch.setattr(sqlite_schema, "MIGRATIONS", sqlite_schema.MIGRATIONS[:old_version])
    monkeypatch.setattr(sqlite_schema, "SCHEMA_VERSION", old_version)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        sqlite_schema.migrate(conn)
        conn.execute(
            "INSERT INTO clients (client_id, secret_hash, name, redirect_uris, grant_types,"
            " scope, allowed_origins, is_resource_server, require_pkce, created_at)"
            " VALUES ('old', NULL, 'Old', 'https://app.example/cb', 'authorization_code', '',"
            " '', 0, 0, 1)"
        )
    finally:
        conn.close()
        monkeypatch.undo()
    store = SQLiteStorage(path)
    try:
        await store.migrate()
        old = await store.get_client("old")
        assert old is not None and old.redirect_uris == ("https://app.example/cb",)
        assert old.post_logout_redirect_uris == () and old.backchannel_logout_uri is None
    finally:
        await store.close()


def test_the_command_line_sets_and_clears_the_logout_metadata(tmp_path: Path) -> None:
    cli = Cli(tmp_path, tmp_path / "oauth.db")
    created = cli.create_client(
        "Site", "--redirect-uri", "https://app.example/cb",
        "--post-logout-redirect-uri", BYE, "--post-logout-redirect-uri", "https://app.example/b2",
        "--backchannel-logout-uri", "https://app.example/backchannel",
    )  # fmt: skip
    assert created["post_logout_redirect_uris"] == [BYE, "https://app.example/b2"]
    assert created["backchannel_logout_uri"] == "https://app.example/backchannel"
    stored = stored_client(cli.db, created["client_id"])
    assert stored is not None and stored.post_logout_redirect_uris == (
        BYE,
        "https://app.example/b2",
    )
    cli.refuses(
        "clients", "update", "--backchannel-logout-uri", "http://app.example/bc",
        *on(created["client_id"]), message="must be https",
    )  # fmt: skip
    cli.ok(
        "clients", "update", "--post-logout-redirect-uri", "", "--backchannel-logout-uri", "",
        *on(created["client_id"]),
    )  # fmt: skip
    stored = stored_client(cli.db, created["client_id"])
    assert stored is not None and stored.post_logout_redirect_uris == ()
    assert stored.backchannel_logout_uri is None


async def test_a_clients_file_declares_the_logout_metadata(tmp_path: Path) -> None:
    path = tmp_path / "clients.toml"
    path.write_text(
        "[[client]]\nclient_id = 'site'\npublic = true\n"
        "redirect_uris = ['https://app.example/cb']\n"
        f"post_logout_redirect_uris = ['{BYE}']\n"
        "backchannel_logout_uri = 'https://app.example/backchannel'\n"
    )
    server = AuthorizationServer(MemoryStorage(), Settings(issuer=ISSUER))
    try:
        assert (await server.apply_clients(str(path))).created == ("site",)
        site = await server.storage.get_client("site")
        assert site is not None and site.post_logout_redirect_uris == (BYE,)
        assert site.backchannel_logout_uri == "https://app.example/backchannel"
    finally:
        await server.close()

"""``asgi-oauth keys list|rotate``, the OpenID Connect client options of ``clients``, and
``serve --demo`` as an OpenID provider, run as a person runs them: in a process of
their own, reading what they print, then checking the database through an
``AuthorizationServer`` on it.

On SQLite the key-encryption key is ``ASGI_OAUTH_KEY_ENCRYPTION_KEY``, else a key
file ``<database>.key`` (mode 0600) made beside the database on first need; on
another database the variable is required.
"""

from __future__ import annotations

import asyncio
import re
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from asgi_oauth import AuthorizationServer, OAuthRequest, Settings
from asgi_oauth.keys import RELOAD_INTERVAL
from asgi_oauth.storage import SQLiteStorage

from .helpers import basic_header
from .openid_helpers import KEK
from .postgres import POSTGRES_URL
from .test_cli import Run, assert_one_line_error, clean_env, free_port, run, serve
from .test_cli_commands import Cli, on

pytestmark = pytest.mark.slow

ISSUER = "https://as.example"
WEB = "https://app.example/cb"
OTHER_KEK = "another-key-encryption-key-fedcba987654321"
#: What ``keys rotate`` prints for each new key.
NOW_SIGNING = re.compile(r"^now signing with (RS256|ES256|EdDSA) key (\S+)$")
#: The seconds a retired key stays published with the default settings.
KEEP = (
    max(Settings(issuer=ISSUER).id_token_lifetime, Settings(issuer=ISSUER).access_token_lifetime)
    + Settings(issuer=ISSUER).clock_skew
    + int(RELOAD_INTERVAL)
)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The command on a migrated SQLite file in ``tmp_path``, no ASGI_OAUTH_* variable."""
    cli = Cli(tmp_path, tmp_path / "oauth.db")

    async def migrate() -> None:
        storage = SQLiteStorage(cli.db)
        await storage.migrate()
        await storage.close()

    asyncio.run(migrate())
    return cli


def key_file(cli: Cli) -> Path:
    return cli.db.with_name(cli.db.name + ".key")


def new_kids(result: Run) -> dict[str, str]:
    """alg -> kid, from what ``keys rotate`` printed."""
    assert result.code == 0 and result.err == "", result
    found: dict[str, str] = {}
    for line in result.out.splitlines():
        match = NOW_SIGNING.match(line)
        assert match is not None, result.out
        found[match.group(1)] = match.group(2)
    return found


@asynccontextmanager
async def server_on(db: Path, kek: str) -> AsyncIterator[AuthorizationServer]:
    server = AuthorizationServer(SQLiteStorage(db), Settings(issuer=ISSUER, key_encryption_key=kek))
    try:
        yield server
    finally:
        await server.close()


def published(db: Path, kek: str) -> set[str]:
    """The kids a server on ``db`` with ``kek`` publishes."""

    async def ask() -> set[str]:
        async with server_on(db, kek) as server:
            keys = (await server.jwks())["keys"]
            assert isinstance(keys, list)
            return {key["kid"] for key in keys}

    return asyncio.run(ask())


def signed_kids(db: Path, kek: str) -> dict[str, str]:
    """alg -> the kid a server on ``db`` with ``kek`` signs an ID token with."""

    async def sign() -> dict[str, str]:
        async with server_on(db, kek) as server:
            user = await server.create_user("alice", "correct horse battery staple")
            found: dict[str, str] = {}
            for alg in ("RS256", "ES256", "EdDSA"):
                rp = await server.register_client(
                    name=f"RP {alg}",
                    redirect_uris=[WEB],
                    scope=["openid"],
                    id_token_signed_response_alg=alg,
                )
                assert rp.client_secret is not None
                token = await id_token_for(
                    server, rp.client.client_id, rp.client_secret, user.user_id
                )
                found[alg] = jwt.get_unverified_header(token)["kid"]
            return found

    return asyncio.run(sign())


async def id_token_for(
    server: AuthorizationServer, client_id: str, secret: str, subject: str
) -> str:
    code = await server.create_authorization_code(
        client_id=client_id, subject=subject, redirect_uri=WEB, scope="openid"
    )
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": WEB}
    issued = await server.token(
        OAuthRequest(form=form, authorization=basic_header(client_id, secret))
    )
    assert issued.id_token is not None
    return issued.id_token


# -- keys list and rotate on SQLite ----------------------------------------------------


def test_keys_list_on_a_fresh_database_says_there_are_none(cli: Cli) -> None:
    listed = cli.ok("keys", "list")
    assert listed.out == "no signing keys yet: they are made when the server first signs\n"
    assert cli.json("keys", "list") == []
    # Listing needs no key-encryption key, so it makes no key file.
    assert not key_file(cli).exists()


def test_keys_rotate_makes_a_private_key_file_and_prints_the_new_kids(cli: Cli) -> None:
    rotated = new_kids(cli.ok("keys", "rotate"))
    assert set(rotated) == {"RS256", "ES256", "EdDSA"}
    path = key_file(cli)
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = path.read_text().strip()
    assert len(secret) >= 32
    assert all(secret not in text for text in cli.printed)
    # The file's key opens what was stored: a server with it signs with the new keys.
    assert set(rotated.values()) <= published(cli.db, secret)
    assert signed_kids(cli.db, secret) == rotated
    signing = [k for k in cli.json("keys", "list") if k["active"]]
    assert {k["alg"]: k["kid"] for k in signing} == rotated


def test_a_second_rotation_retires_the_first_and_keeps_the_key_file(cli: Cli) -> None:
    first = new_kids(cli.ok("keys", "rotate"))
    secret = key_file(cli).read_bytes()
    second = cli.json("keys", "rotate")
    assert [k["alg"] for k in second] == ["RS256", "ES256", "EdDSA"]
    assert set(second[0]) == {"kid", "alg"}
    assert {k["kid"] for k in second}.isdisjoint(first.values())
    assert key_file(cli).read_bytes() == secret

    table = cli.ok("keys", "list").out.splitlines()
    assert table[0].split() == ["KID", "ALG", "STATE", "PUBLISHED", "UNTIL"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    for alg, kid in first.items():
        assert rows[kid][1:3] == [alg, "retired"]
        assert rows[kid][-1] == "UTC"
    for key in second:
        assert rows[key["kid"]][1:] == [key["alg"], "signing", "-"]

    listed = {k["kid"]: k for k in cli.json("keys", "list")}
    for key in second:
        shown = listed[key["kid"]]
        assert shown == {
            "kid": key["kid"],
            "alg": key["alg"],
            "active": True,
            "created_at": shown["created_at"],
            "expires_at": None,
        }
        # The key it replaced stays published as long as what it signed may live.
        replaced = listed[first[key["alg"]]]
        assert replaced["active"] is False
        assert replaced["expires_at"] == shown["created_at"] + KEEP
    assert published(cli.db, secret.decode().strip()) == set(listed)


def test_keys_rotate_alg_rotates_only_that_algorithm(cli: Cli) -> None:
    first = new_kids(cli.ok("keys", "rotate"))
    rotated = cli.json("keys", "rotate", "--alg", "ES256")
    assert [k["alg"] for k in rotated] == ["ES256"]
    signing = {k["alg"]: k["kid"] for k in cli.json("keys", "list") if k["active"]}
    assert signing == {"RS256": first["RS256"], "ES256": rotated[0]["kid"], "EdDSA": first["EdDSA"]}
    assert rotated[0]["kid"] != first["ES256"]


def test_the_environment_key_comes_before_a_key_file(cli: Cli) -> None:
    env = clean_env(ASGI_OAUTH_KEY_ENCRYPTION_KEY=KEK)
    result = cli("keys", "rotate", env=env)
    rotated = new_kids(result)
    assert not key_file(cli).exists()
    assert signed_kids(cli.db, KEK) == rotated


def test_a_key_encryption_key_too_short_is_one_line_and_exit_2(cli: Cli) -> None:
    before = cli.snapshot()
    result = cli("keys", "rotate", env=clean_env(ASGI_OAUTH_KEY_ENCRYPTION_KEY="short"))
    assert_one_line_error(result, 2, "key_encryption_key must be at least 32 characters")
    assert cli.snapshot() == before


def test_rotating_with_another_key_encryption_key_is_one_line_and_exit_2(cli: Cli) -> None:
    new_kids(cli("keys", "rotate", env=clean_env(ASGI_OAUTH_KEY_ENCRYPTION_KEY=KEK)))
    before = cli.snapshot()
    result = cli("keys", "rotate", env=clean_env(ASGI_OAUTH_KEY_ENCRYPTION_KEY=OTHER_KEK))
    assert_one_line_error(result, 2, "key_encryption_key")
    assert cli.snapshot() == before


def test_keys_on_a_missing_database_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    for action in ("list", "rotate"):
        result = run("keys", action, "--db", str(tmp_path / "typo.db"), cwd=tmp_path)
        assert_one_line_error(result, 2, "none there")
    assert list(tmp_path.iterdir()) == []


# -- keys on PostgreSQL ----------------------------------------------------------------


def test_keys_rotate_on_postgresql_needs_the_environment_key(
    tmp_path: Path, pg_schema: str
) -> None:
    url = f"{POSTGRES_URL}?schema={pg_schema}"
    refused = run("keys", "rotate", "--db", url, cwd=tmp_path)
    assert_one_line_error(refused, 1, "ASGI_OAUTH_KEY_ENCRYPTION_KEY")
    assert list(tmp_path.iterdir()) == []  # no key file anywhere
    assert run("keys", "list", "--json", "--db", url, cwd=tmp_path).json() == []

    env = clean_env(ASGI_OAUTH_KEY_ENCRYPTION_KEY=KEK)
    rotated = run("keys", "rotate", "--json", "--db", url, cwd=tmp_path, env=env).json()
    assert [k["alg"] for k in rotated] == ["RS256", "ES256", "EdDSA"]
    listed = run("keys", "list", "--json", "--db", url, cwd=tmp_path).json()
    assert {k["kid"] for k in listed if k["active"]} == {k["kid"] for k in rotated}
    assert list(tmp_path.iterdir()) == []


# -- clients: OpenID Connect options ----------------------------------------------------


def test_clients_create_and_update_keep_the_token_format_and_id_token_alg(cli: Cli) -> None:
    created = cli.create_client(
        "RP", "--redirect-uri", WEB, "--grant-type", "authorization_code",
        "--grant-type", "client_credentials", "--scope", "openid read",
        "--access-token-format", "jwt", "--id-token-alg", "ES256",
    )  # fmt: skip
    assert created["access_token_format"] == "jwt"
    assert created["id_token_signed_response_alg"] == "ES256"
    client_id, secret = created["client_id"], created["client_secret"]
    shown = cli.json("clients", "show", *on(client_id))
    assert shown == {k: v for k, v in created.items() if k != "client_secret"}
    assert cli.json("clients", "list") == [shown]

    # What the server makes of it: an RFC 9068 JWT access token, an ES256 ID token.
    async def issue() -> tuple[str, str]:
        async with server_on(cli.db, KEK) as server:
            form = {"grant_type": "client_credentials", "scope": "read"}
            request = OAuthRequest(form=form, authorization=basic_header(client_id, secret))
            access = (await server.token(request)).access_token
            user = await server.create_user("alice", "correct horse battery staple")
            return access, await id_token_for(server, client_id, secret, user.user_id)

    access, id_token = asyncio.run(issue())
    assert jwt.get_unverified_header(access)["typ"].lower() == "at+jwt"
    assert jwt.get_unverified_header(id_token)["alg"] == "ES256"

    updated = cli.json(
        "clients", "update", "--access-token-format", "opaque", "--id-token-alg", "RS256",
        *on(client_id),
    )  # fmt: skip
    assert updated == {
        **shown,
        "access_token_format": "opaque",
        "id_token_signed_response_alg": "RS256",
    }
    # Options not given are kept.
    renamed = cli.json("clients", "update", "--name", "RP 2", *on(client_id))
    assert renamed == {**updated, "name": "RP 2"}


def test_a_client_follows_the_server_format_and_rs256_by_default(cli: Cli) -> None:
    created = cli.create_client("Plain", "--grant-type", "client_credentials")
    assert created["access_token_format"] is None
    assert created["id_token_signed_response_alg"] == "RS256"


@pytest.mark.parametrize(
    "option",
    [["--id-token-alg", "HS256"], ["--id-token-alg", "none"], ["--access-token-format", "jws"]],
)
def test_unknown_openid_client_options_are_usage_errors(cli: Cli, option: list[str]) -> None:
    before = cli.snapshot()
    result = cli("clients", "create", "--name", "RP", "--grant-type", "client_credentials", *option)
    assert result.code == 2 and "invalid choice" in result.err, result
    assert cli.snapshot() == before


# -- serve --demo ----------------------------------------------------------------------


def test_serve_demo_on_sqlite_is_an_openid_provider_that_keeps_its_keys(tmp_path: Path) -> None:
    db, port = tmp_path / "asgi_oauth.db", free_port()
    base = f"http://127.0.0.1:{port}"
    with serve(db, port, tmp_path / "first.out"):
        printed = (tmp_path / "first.out").read_text()
        assert f"OpenID Connect: {base}/.well-known/openid-configuration" in printed
        document = httpx.get(base + "/.well-known/openid-configuration", timeout=10)
        assert document.status_code == 200, document.text
        discovered: dict[str, Any] = document.json()
        assert discovered["issuer"] == base
        assert discovered["jwks_uri"] == base + "/jwks"
        # OpenID Connect Discovery adds only the sign-out members (RP-Initiated and
        # Back-Channel Logout 1.0) to what RFC 8414 metadata says.
        rfc8414 = httpx.get(base + "/.well-known/oauth-authorization-server").json()
        logout = {
            "end_session_endpoint": base + "/logout",
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": False,
        }
        assert discovered == {**rfc8414, **logout}
        first_keys = httpx.get(discovered["jwks_uri"], timeout=10).json()["keys"]
        assert sorted(k["alg"] for k in first_keys) == ["ES256", "EdDSA", "RS256"]
    path = db.with_name(db.name + ".key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() not in printed

    # A restart reads the same key file: the same keys, nothing new made.
    with serve(db, port, tmp_path / "second.out"):
        again = httpx.get(base + "/jwks", timeout=10).json()["keys"]
    assert again == first_keys
    listed = run("keys", "list", "--json", "--db", str(db), cwd=tmp_path).json()
    assert {k["kid"] for k in listed} == {k["kid"] for k in first_keys}

"""``asgi-oauth clients|users|tokens|migrate|purge``, run as a person runs them: in a
process of their own on a SQLite file, reading what they print, then checking the
file through an ``AuthorizationServer`` on it.

Every mistake is one ``asgi-oauth: ...`` line on stderr, exit status 1 (2 for a
database that cannot be used), and leaves the database file byte for byte as it was.
Secrets, their hashes and passwords are printed at most once, where documented.
"""

from __future__ import annotations

import asyncio
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from asgi_oauth import AuthorizationServer, OAuthRequest, Settings, TokenResponse
from asgi_oauth.clients import new_client
from asgi_oauth.crypto import hash_token
from asgi_oauth.errors import InvalidClientError, InvalidGrantError
from asgi_oauth.models import Client, Token
from asgi_oauth.storage import SQLiteStorage

from .helpers import basic_header
from .postgres import POSTGRES_URL
from .test_cli import Run, assert_one_line_error, clean_env, run

pytestmark = pytest.mark.slow

ISSUER = "https://as.example"
WEB = "https://app.example/cb"


# -- the command on one database --------------------------------------------------------


@dataclass
class Cli:
    """``asgi-oauth ... --db sqlite:///<db>`` in ``cwd``; remembers everything printed."""

    cwd: Path
    db: Path
    printed: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"sqlite:///{self.db}"

    def __call__(
        self, *args: str, stdin: str = "", env: dict[str, str] | None = None, json: bool = False
    ) -> Run:
        """``--db`` (and ``--json``) go before a ``--`` that ends the options."""
        end = args.index("--") if "--" in args else len(args)
        options = ["--db", self.url, *(["--json"] if json else [])]
        result = run(*args[:end], *options, *args[end:], cwd=self.cwd, stdin=stdin, env=env)
        self.printed.append(result.out + result.err)
        return result

    def ok(self, *args: str, stdin: str = "", json: bool = False) -> Run:
        result = self(*args, stdin=stdin, json=json)
        assert result.code == 0 and result.err == "", result
        return result

    def json(self, *args: str, stdin: str = "") -> Any:
        return self.ok(*args, stdin=stdin, json=True).json()

    def create_client(self, name: str, *options: str) -> dict[str, Any]:
        created: dict[str, Any] = self.json("clients", "create", "--name", name, *options)
        return created

    def snapshot(self) -> dict[str, bytes]:
        """The database's files, byte for byte (a -wal or -journal file too)."""
        return {p.name: p.read_bytes() for p in sorted(self.db.parent.glob(self.db.name + "*"))}

    def refuses(self, *args: str, code: int = 1, message: str = "", stdin: str = "") -> Run:
        """The command fails with one line and leaves the database as it was."""
        before = self.snapshot()
        result = self(*args, stdin=stdin)
        assert_one_line_error(result, code, message)
        assert self.snapshot() == before, f"{args} changed the database"
        return result


def on(client_id: str) -> tuple[str, str]:
    """A client id as the last argument, after ``--``: a generated id may start with "-"
    (see test_generated_client_ids_never_look_like_options)."""
    return ("--", client_id)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The command on a database made in process (quicker than ``migrate``, tested below)."""
    cli = Cli(tmp_path, tmp_path / "oauth.db")

    async def migrate() -> None:
        storage = SQLiteStorage(cli.db)
        await storage.migrate()
        await storage.close()

    asyncio.run(migrate())
    return cli


# -- the same file, in process ---------------------------------------------------------


@asynccontextmanager
async def server_on(
    db: Path, clock: Callable[[], float] = time.time
) -> AsyncIterator[AuthorizationServer]:
    server = AuthorizationServer(SQLiteStorage(db), Settings(issuer=ISSUER), clock=clock)
    try:
        yield server
    finally:
        await server.close()


def client_credentials(db: Path, client_id: str, secret: str) -> TokenResponse | None:
    """A token for this client and secret; None when client authentication fails."""

    async def ask() -> TokenResponse | None:
        async with server_on(db) as server:
            request = OAuthRequest(
                form={"grant_type": "client_credentials"},
                authorization=basic_header(client_id, secret),
            )
            try:
                return await server.token(request)
            except InvalidClientError:
                return None

    return asyncio.run(ask())


def signs_in(db: Path, username: str, password: str) -> bool:
    async def ask() -> bool:
        async with server_on(db) as server:
            try:
                await server.authenticate_user(OAuthRequest(), username, password)
            except InvalidGrantError:
                return False
            return True

    return asyncio.run(ask())


def stored_client(db: Path, client_id: str) -> Client | None:
    async def ask() -> Client | None:
        async with server_on(db) as server:
            return await server.storage.get_client(client_id)

    return asyncio.run(ask())


def stored_token(db: Path, value: str) -> Token | None:
    async def ask() -> Token | None:
        async with server_on(db) as server:
            return await server.storage.get_token(hash_token(value))

    return asyncio.run(ask())


def code_grant(db: Path, subject: str) -> tuple[str, str, TokenResponse]:
    """A web client registered in process (id, secret), and the tokens of one code
    issued for ``subject``."""

    async def grant() -> tuple[str, str, TokenResponse]:
        async with server_on(db) as server:
            web = await server.register_client(name="Web", redirect_uris=[WEB], scope=["read"])
            assert web.client_secret is not None
            client_id = web.client.client_id
            code = await server.create_authorization_code(
                client_id=client_id, subject=subject, redirect_uri=WEB, scope="read"
            )
            form = {"grant_type": "authorization_code", "code": code, "redirect_uri": WEB}
            auth = basic_header(client_id, web.client_secret)
            issued = await server.token(OAuthRequest(form=form, authorization=auth))
            return client_id, web.client_secret, issued

    return asyncio.run(grant())


def user_id_of(db: Path, username: str) -> str:
    async def ask() -> str:
        async with server_on(db) as server:
            user = await server.storage.get_user(username)
            assert user is not None
            return user.user_id

    return asyncio.run(ask())


def refreshed(db: Path, client_id: str, secret: str, refresh_token: str) -> bool:
    async def ask() -> bool:
        async with server_on(db) as server:
            form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
            request = OAuthRequest(form=form, authorization=basic_header(client_id, secret))
            try:
                await server.token(request)
            except InvalidGrantError:
                return False
            return True

    return asyncio.run(ask())


def secret_of(printed: str) -> str:
    found = re.search(r"^client_secret: (\S+)$", printed, re.M)
    assert found is not None, printed
    return found.group(1)


# -- clients ---------------------------------------------------------------------------


def test_create_prints_the_secret_once_and_nothing_shows_it_again(cli: Cli) -> None:
    created = cli.ok(
        "clients", "create", "--name", "Billing", "--grant-type", "client_credentials",
        "--scope", "read write",
    )  # fmt: skip
    lines = created.out.splitlines()
    assert lines[0] == "created client 'Billing'"
    client_id = lines[1].removeprefix("client_id:").strip()
    secret = secret_of(created.out)
    assert "shown this once" in lines[-1]
    issued = client_credentials(cli.db, client_id, secret)
    assert issued is not None and issued.scope == {"read", "write"}
    assert client_credentials(cli.db, client_id, secret + "x") is None

    stored = stored_client(cli.db, client_id)
    assert stored is not None and stored.secret_hash is not None
    shown = [
        cli.ok("clients", "show", *on(client_id)).out,
        cli.ok("clients", "list").out,
        str(cli.json("clients", "show", *on(client_id))),
        str(cli.json("clients", "list")),
    ]
    for text in shown:
        assert client_id in text
        assert secret not in text and "secret" not in text
        for part in stored.secret_hash.split("$"):
            assert part == "sha256" or part not in text
    assert sum(text.count(secret) for text in cli.printed) == 1

    as_json = cli.create_client("Reports", "--grant-type", "client_credentials")
    assert set(as_json) == {
        "client_id", "client_secret", "name", "public", "redirect_uris", "grant_types", "scope",
        "allowed_origins", "is_resource_server", "require_pkce", "created_at",
        "access_token_format", "id_token_signed_response_alg", "application_type",
        "post_logout_redirect_uris", "backchannel_logout_uri",
    }  # fmt: skip
    assert client_credentials(cli.db, as_json["client_id"], as_json["client_secret"]) is not None
    assert cli.json("clients", "show", *on(as_json["client_id"])) == {
        k: v for k, v in as_json.items() if k != "client_secret"
    }


def test_a_public_client_has_no_secret_to_print_or_rotate(cli: Cli) -> None:
    created = cli.ok("clients", "create", "--name", "SPA", "--public", "--redirect-uri", WEB)
    assert "client_secret" not in created.out and "secret is shown" not in created.out
    client_id = created.out.splitlines()[1].removeprefix("client_id:").strip()
    shown = cli.json("clients", "show", *on(client_id))
    assert shown["public"] is True
    assert shown["grant_types"] == ["authorization_code", "refresh_token"]
    cli.refuses("clients", "rotate-secret", *on(client_id), message="a public client has no secret")
    app = cli.create_client("App", "--public", "--redirect-uri", WEB)
    assert app["public"] is True and app["client_secret"] is None


def test_rotate_secret_prints_a_new_secret_and_the_old_one_stops_working(cli: Cli) -> None:
    created = cli.create_client("Billing", "--grant-type", "client_credentials")
    client_id, first = created["client_id"], created["client_secret"]
    assert client_credentials(cli.db, client_id, first) is not None

    rotated = cli.ok("clients", "rotate-secret", *on(client_id))
    assert rotated.out.startswith("new secret for client 'Billing'\n")
    second = secret_of(rotated.out)
    assert second != first and first not in rotated.out
    assert client_credentials(cli.db, client_id, first) is None
    assert client_credentials(cli.db, client_id, second) is not None

    third = cli.json("clients", "rotate-secret", *on(client_id))["client_secret"]
    assert third not in (first, second)
    assert client_credentials(cli.db, client_id, second) is None
    assert client_credentials(cli.db, client_id, third) is not None
    # Nothing else about the client changed.
    assert cli.json("clients", "show", *on(client_id)) == {
        k: v for k, v in created.items() if k != "client_secret"
    }


def test_update_replaces_what_it_is_given_and_keeps_the_rest(cli: Cli) -> None:
    created = cli.create_client(
        "Web", "--redirect-uri", WEB, "--redirect-uri", "https://app.example/other",
        "--scope", "read write", "--origin", "https://app.example", "--resource-server",
    )  # fmt: skip
    client_id, secret = created["client_id"], created["client_secret"]
    updated = cli.ok(
        "clients", "update", "--name", "Web 2", "--redirect-uri", "https://new.example/cb",
        "--scope", "admin", "--scope", "audit", "--origin", "https://new.example",
        "--no-resource-server", "--require-pkce", *on(client_id),
    )  # fmt: skip
    assert updated.out == f"updated client {client_id}\n"
    expected = {
        **{k: v for k, v in created.items() if k != "client_secret"},
        "name": "Web 2",
        "redirect_uris": ["https://new.example/cb"],
        "scope": "admin audit",
        "allowed_origins": ["https://new.example"],
        "is_resource_server": False,
        "require_pkce": True,
    }
    assert cli.json("clients", "show", *on(client_id)) == expected

    # Grant types are replaced too; what is not given stays, the secret included.
    again = cli.json(
        "clients", "update", "--grant-type", "client_credentials", "--scope", "read", *on(client_id)
    )
    assert again == {**expected, "grant_types": ["client_credentials"], "scope": "read"}
    issued = client_credentials(cli.db, client_id, secret)
    assert issued is not None and issued.scope == {"read"}
    # The same name again is no conflict with itself.
    cli.ok("clients", "update", "--name", "Web 2", *on(client_id))


UPDATE_MISTAKES = [
    (["--redirect-uri", "/relative"], "must be absolute"),
    (["--redirect-uri", "https://new.example/cb#top"], "fragment"),
    (["--redirect-uri", "http://new.example/cb"], "loopback"),
    (["--origin", "https://app.example/path"], "origin"),
    (["--grant-type", "bogus"], "unknown grant types"),
    (["--grant-type", "implicit"], "needs at least one redirect URI"),
    (["--name", "Taken"], "exists already"),
]


def test_update_validates_before_it_writes(cli: Cli) -> None:
    cli.create_client("Taken", "--grant-type", "client_credentials")
    service = cli.create_client("Service", "--grant-type", "client_credentials")
    client_id = service["client_id"]
    before = cli.json("clients", "show", *on(client_id))
    for change, message in UPDATE_MISTAKES:
        cli.refuses("clients", "update", *change, *on(client_id), message=message)
    assert cli.json("clients", "show", *on(client_id)) == before
    assert client_credentials(cli.db, client_id, service["client_secret"]) is not None


def test_updating_a_public_client_is_checked_like_creating_one(cli: Cli) -> None:
    spa = cli.create_client("SPA", "--public", "--redirect-uri", WEB)
    cli.refuses(
        "clients", "update", "--grant-type", "client_credentials", *on(spa["client_id"]),
        message="public client cannot use client_credentials",
    )  # fmt: skip
    # http on another host only with --insecure-transport.
    cli.refuses("clients", "update", "--redirect-uri", "http://dev.test/cb", *on(spa["client_id"]))
    changed = cli.json(
        "clients", "update", "--redirect-uri", "http://dev.test/cb", "--insecure-transport",
        *on(spa["client_id"]),
    )  # fmt: skip
    assert changed["redirect_uris"] == ["http://dev.test/cb"]


def test_delete_removes_the_client_and_revokes_every_token_it_was_issued(cli: Cli) -> None:
    created = cli.create_client("Billing", "--grant-type", "client_credentials")
    client_id = created["client_id"]
    issued = client_credentials(cli.db, client_id, created["client_secret"])
    assert issued is not None and stored_token(cli.db, issued.access_token) is not None
    keep = cli.create_client("Other", "--grant-type", "client_credentials")

    deleted = cli.ok("clients", "delete", *on(client_id))
    assert deleted.out == (
        f"deleted client {client_id}, what was issued to it, and revoked its access tokens\n"
    )
    access = stored_token(cli.db, issued.access_token)  # kept revoked until it expires
    assert access is not None and access.revoked_at is not None
    assert stored_client(cli.db, client_id) is None
    assert client_credentials(cli.db, client_id, created["client_secret"]) is None
    assert [c["client_id"] for c in cli.json("clients", "list")] == [keep["client_id"]]
    cli.refuses("clients", "delete", *on(client_id), message=f"no client with id {client_id!r}")
    assert cli.json("clients", "delete", *on(keep["client_id"])) == {"deleted": keep["client_id"]}
    assert cli.json("clients", "list") == []


@pytest.mark.parametrize("action", ["show", "update", "delete", "rotate-secret"])
def test_an_unknown_client_id_is_one_line_and_exit_1(cli: Cli, action: str) -> None:
    cli.create_client("Billing", "--grant-type", "client_credentials")
    extra = ["--name", "Renamed"] if action == "update" else []
    cli.refuses("clients", action, "no-such-client", *extra, message="no client with id")


def test_generated_client_ids_never_look_like_options(cli: Cli) -> None:
    """Fixed when no generated id starts with "-", or when the commands take one anyway."""
    drawn = [new_client(name="x", public=True, grant_types=["refresh_token"]) for _ in range(2000)]
    dashed = [r.client.client_id for r in drawn if r.client.client_id.startswith("-")]
    if not dashed:
        return
    # What a person meets with such an id (given here as it was generated).
    cli.create_client("Dashed", "--grant-type", "client_credentials", f"--client-id={dashed[0]}")
    shown = cli("clients", "show", dashed[0])
    assert shown.code == 0, shown


def test_names_and_client_ids_are_unique(cli: Cli) -> None:
    first = cli.create_client("Billing", "--grant-type", "client_credentials", "--client-id", "b")
    assert first["client_id"] == "b"
    cli.refuses(
        "clients", "create", "--name", "Billing", "--grant-type", "client_credentials",
        message="a client named 'Billing' exists already",
    )  # fmt: skip
    cli.refuses(
        "clients", "create", "--name", "Other", "--grant-type", "client_credentials",
        "--client-id", "b", message="client_id 'b' exists already",
    )  # fmt: skip
    assert [c["name"] for c in cli.json("clients", "list")] == ["Billing"]


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("/callback", "must be absolute"),
        ("app.example/cb", "must be absolute"),
        ("https://app.example/cb#done", "fragment"),
        ("http://app.example/cb", "loopback only"),
        ("https://app.example/a b", "white space"),
        ("javascript:alert(1)", "private-use"),
        ("localhost:3000/callback", "without a scheme"),
        ("https:///cb", "no host"),
    ],
)
def test_invalid_redirect_uris_are_refused(cli: Cli, uri: str, message: str) -> None:
    cli.refuses("clients", "create", "--name", "Web", "--redirect-uri", uri, message=message)


def test_http_redirect_uris_need_loopback_or_insecure_transport(cli: Cli) -> None:
    for uri in ("http://127.0.0.1/cb", "http://localhost:8080/cb", "http://[::1]/cb"):
        assert cli.create_client(uri, "--public", "--redirect-uri", uri)["redirect_uris"] == [uri]
    assert cli.create_client("Native", "--public", "--redirect-uri", "com.example.app:/cb")
    dev = "http://dev.test/cb"
    flagged = cli.create_client("Dev", "--redirect-uri", dev, "--insecure-transport")
    assert flagged["redirect_uris"] == [dev]
    from_env = run(
        "clients", "create", "--name", "Dev 2", "--redirect-uri", dev, "--json", "--db", cli.url,
        cwd=cli.cwd, env=clean_env(ASGI_OAUTH_INSECURE_TRANSPORT="1"),
    )  # fmt: skip
    assert from_env.json()["redirect_uris"] == [dev]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--grant-type", "bogus"], "unknown grant types: ['bogus']"),
        (["--grant-type", "client_credentials", "--public"], "cannot use client_credentials"),
        ([], "needs at least one redirect URI"),
        (["--redirect-uri", WEB, "--origin", "app.example"], "origin must be"),
        (["--grant-type", "client_credentials", "--client-id", "tab\tid"], "printable ASCII"),
    ],
    ids=["unknown-grant", "public-cc", "no-redirect", "origin", "client-id"],
)
def test_impossible_clients_are_refused(cli: Cli, options: list[str], message: str) -> None:
    cli.refuses("clients", "create", "--name", "Bad", *options, message=message)


@pytest.mark.parametrize("scope", ["read\\x", 'say"hi', "lecture\u00e9"])
def test_malformed_scope_tokens_are_refused(cli: Cli, scope: str) -> None:
    cli.refuses(
        "clients", "create", "--name", "Bad", "--grant-type", "client_credentials",
        "--scope", scope, message="scope",
    )  # fmt: skip


# -- users -----------------------------------------------------------------------------


def test_a_user_created_from_stdin_signs_in_with_exactly_that_password(cli: Cli) -> None:
    password = "  correct horse \u00e9 staple "  # spaces at either end belong to it
    created = cli.ok("users", "create", "alice", "--password-stdin", stdin=password + "\n")
    assert re.fullmatch(r"created user 'alice' \(user_id \S+\)\n", created.out), created.out
    assert signs_in(cli.db, "alice", password)
    assert not signs_in(cli.db, "alice", password.strip())
    assert not signs_in(cli.db, "bob", password)

    # Without the flag, stdin that is not a terminal is read the same way.
    piped = cli.json("users", "create", "bob", stdin="bobs password\r\nignored second line\n")
    assert set(piped) == {"user_id", "username", "created_at"} and piped["username"] == "bob"
    assert signs_in(cli.db, "bob", "bobs password")
    listed = cli.json("users", "list")
    assert [u["username"] for u in listed] == ["alice", "bob"]
    assert all(set(u) == {"user_id", "username", "created_at"} for u in listed)
    table = cli.ok("users", "list").out.splitlines()
    assert table[0].split() == ["USERNAME", "USER_ID"] and len(table) == 3
    for text in cli.printed:
        assert password.strip() not in text and "bobs password" not in text
        assert "scrypt" not in text


def on_a_terminal(args: Sequence[str], answers: Sequence[str], cwd: Path) -> tuple[int, str]:
    """Run the command with a terminal (a pty) as stdin, stdout and stderr, typing each
    answer after each password prompt: its exit status and everything the terminal showed.
    A new session has no controlling terminal, so getpass uses this one, not the test's."""
    main_fd, child_fd = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "asgi_oauth", *args],
        cwd=cwd,
        stdin=child_fd,
        stdout=child_fd,
        stderr=child_fd,
        env=clean_env(),
        start_new_session=True,
    )
    os.close(child_fd)
    prompt = re.compile(rb"Password(?: \(again\))?: ")
    shown, typed = b"", 0
    deadline = time.monotonic() + 30
    try:
        while True:
            ready, _, _ = select.select([main_fd], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, shown
            try:
                chunk = os.read(main_fd, 4096)
            except OSError:  # EIO: the command closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            while typed < len(answers) and len(prompt.findall(shown)) > typed:
                os.write(main_fd, answers[typed].encode() + b"\n")
                typed += 1
    finally:
        os.close(main_fd)
        code = process.wait(timeout=10)
    return code, shown.decode(errors="replace")


def test_on_a_terminal_the_password_is_asked_twice_and_never_echoed(cli: Cli) -> None:
    args = ["users", "create", "carol", "--db", cli.url]
    code, shown = on_a_terminal(args, ["terminal secret", "terminal secret"], cli.cwd)
    assert code == 0, shown
    assert "Password: " in shown and "Password (again): " in shown
    assert "created user 'carol'" in shown and "terminal secret" not in shown
    assert signs_in(cli.db, "carol", "terminal secret")

    before = cli.snapshot()
    code, shown = on_a_terminal(
        ["users", "create", "dave", "--db", cli.url], ["one secret", "another secret"], cli.cwd
    )
    assert code == 1, shown
    assert "asgi-oauth: the passwords differ" in shown
    assert "one secret" not in shown and "another secret" not in shown
    assert cli.snapshot() == before


def test_users_create_refuses_mistakes(cli: Cli) -> None:
    cli.ok("users", "create", "alice", stdin="alices password\n")
    for username, stdin, message in [
        ("alice", "another\n", "a user named 'alice' exists already"),
        ("bob", "\n", "the password must not be empty"),
        ("bob", "", "the password must not be empty"),
        ("   ", "pw\n", "printable and not blank"),
        ("bob\nevil", "pw\n", "printable and not blank"),
        ("bob", "seven c\n", "the password must be at least 8 characters"),
    ]:
        cli.refuses("users", "create", username, "--password-stdin", stdin=stdin, message=message)
    # There is no option to put a password in argv (and the shell's history); argparse
    # takes "--password" for "--password-stdin" and refuses the word after it.
    no_flag = cli("users", "create", "bob", "--password", "hunter2hunter2", stdin="pw\n")
    assert no_flag.code == 2 and "unrecognized arguments" in no_flag.err
    assert [u["username"] for u in cli.json("users", "list")] == ["alice"]
    assert signs_in(cli.db, "alice", "alices password")


def test_set_password_replaces_the_old_one(cli: Cli) -> None:
    cli.ok("users", "create", "alice", "--password-stdin", stdin="old password\n")
    changed = cli.ok("users", "set-password", "alice", "--password-stdin", stdin="new password\n")
    assert changed.out == "changed the password of 'alice'; their sign-in sessions have ended\n"
    assert signs_in(cli.db, "alice", "new password")
    assert not signs_in(cli.db, "alice", "old password")
    as_json = cli.json("users", "set-password", "alice", stdin="newest password\n")
    assert set(as_json) == {"user_id", "username", "created_at"}
    assert signs_in(cli.db, "alice", "newest password")

    cli.refuses("users", "set-password", "alice", stdin="\n", message="must not be empty")
    cli.refuses("users", "set-password", "alice", stdin="short\n", message="at least 8 characters")
    cli.refuses("users", "set-password", "nobody", stdin="pw\n", message="no user named 'nobody'")
    assert signs_in(cli.db, "alice", "newest password")
    for text in cli.printed:
        for password in ("old password", "new password", "newest password"):
            assert password not in text


def test_delete_user(cli: Cli) -> None:
    cli.ok("users", "create", "alice", stdin="alices password\n")
    cli.ok("users", "create", "bob", stdin="bobs password\n")
    assert (
        cli.ok("users", "delete", "alice").out
        == "deleted user 'alice' and everything issued on their behalf\n"
    )
    assert not signs_in(cli.db, "alice", "alices password")
    assert [u["username"] for u in cli.json("users", "list")] == ["bob"]
    cli.refuses("users", "delete", "alice", message="no user named 'alice'")
    assert cli.json("users", "delete", "bob") == {"deleted": "bob"}
    assert cli.json("users", "list") == []


def test_a_deleted_users_tokens_stop_working(cli: Cli) -> None:
    cli.ok("users", "create", "mallory", stdin="mallorys password\n")
    client_id, secret, issued = code_grant(cli.db, user_id_of(cli.db, "mallory"))
    assert issued.refresh_token is not None
    cli.ok("users", "delete", "mallory")
    access = stored_token(cli.db, issued.access_token)
    assert access is None or access.revoked_at is not None
    assert not refreshed(cli.db, client_id, secret, issued.refresh_token)


# -- tokens ----------------------------------------------------------------------------


def test_tokens_revoke_an_access_token(cli: Cli) -> None:
    created = cli.create_client("Billing", "--grant-type", "client_credentials")
    issued = client_credentials(cli.db, created["client_id"], created["client_secret"])
    assert issued is not None
    revoked = cli.json("tokens", "revoke", stdin=f"  {issued.access_token}  \n")
    assert revoked == {"revoked": 1, "client_id": created["client_id"], "kind": "access_token"}
    token = stored_token(cli.db, issued.access_token)
    assert token is not None and token.revoked_at is not None
    assert all(issued.access_token not in text for text in cli.printed)


def test_tokens_revoke_a_refresh_token_revokes_its_grant(cli: Cli) -> None:
    client_id, _, issued = code_grant(cli.db, "user-1")
    assert issued.refresh_token is not None
    revoked = cli.ok("tokens", "revoke", stdin=issued.refresh_token + "\n")
    assert revoked.out == f"revoked 2 token(s) of client {client_id}\n"
    for value in (issued.access_token, issued.refresh_token):
        token = stored_token(cli.db, value)
        assert token is not None and token.revoked_at is not None


def test_tokens_revoke_needs_a_known_token_on_stdin(cli: Cli) -> None:
    created = cli.create_client("Billing", "--grant-type", "client_credentials")
    assert client_credentials(cli.db, created["client_id"], created["client_secret"])
    cli.refuses("tokens", "revoke", stdin="", message="give the token on stdin")
    cli.refuses("tokens", "revoke", stdin="   \n", message="give the token on stdin")
    cli.refuses("tokens", "revoke", stdin="not-a-token\n", message="no such token")


# -- migrate and purge -----------------------------------------------------------------


def test_migrate_creates_the_database_and_may_run_again(tmp_path: Path) -> None:
    cli = Cli(tmp_path, tmp_path / "new.db")
    assert cli.ok("migrate").out == f"database ready: {cli.url}\n"
    assert cli.db.exists()
    assert cli.json("migrate") == {"database": cli.url, "ready": True}
    assert cli.json("clients", "list") == [] and cli.json("users", "list") == []


def test_purge_deletes_what_has_expired(cli: Cli) -> None:
    created = cli.create_client("Billing", "--grant-type", "client_credentials")

    async def issue_long_ago() -> str:
        async with server_on(cli.db, clock=lambda: time.time() - 10 * 24 * 3600) as server:
            request = OAuthRequest(
                form={"grant_type": "client_credentials"},
                authorization=basic_header(created["client_id"], created["client_secret"]),
            )
            return (await server.token(request)).access_token

    old = asyncio.run(issue_long_ago())
    live = client_credentials(cli.db, created["client_id"], created["client_secret"])
    assert live is not None and stored_token(cli.db, old) is not None
    assert cli.ok("purge").out == "purged 1 expired codes, device codes, tokens and signing keys\n"
    assert stored_token(cli.db, old) is None
    assert stored_token(cli.db, live.access_token) is not None
    assert cli.json("purge") == {"purged": 0}


def run_each(commands: Sequence[Sequence[str]], *args: str, cwd: Path, stdin: str) -> list[Run]:
    """Each command with ``args`` added, side by side (they only read, or fail)."""
    with ThreadPoolExecutor(len(commands)) as pool:
        runs = [pool.submit(run, *command, *args, cwd=cwd, stdin=stdin) for command in commands]
        return [r.result() for r in runs]


BAD_URLS = [
    ("sqlite:///no/such/dir/x.db", "unable to open database file"),
    ("mysql://x", "unsupported database URL: 'mysql://x'"),
]
COMMANDS = [
    ["migrate"],
    ["purge"],
    ["clients", "list"],
    ["clients", "create", "--name", "x", "--grant-type", "client_credentials"],
    ["users", "list"],
    ["users", "create", "alice"],
    ["tokens", "revoke"],
]


@pytest.mark.parametrize(("url", "message"), BAD_URLS, ids=["missing-dir", "mysql"])
def test_a_database_url_that_cannot_be_opened_is_one_line_and_exit_2(
    tmp_path: Path, url: str, message: str
) -> None:
    for result in run_each(COMMANDS, "--db", url, cwd=tmp_path, stdin="some secret\n"):
        assert_one_line_error(result, 2, message)
        assert "some secret" not in result.err
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_a_database_is_left_alone(tmp_path: Path) -> None:
    junk = tmp_path / "notes.db"
    content = b"Dear diary, this is not a database.\n" * 200
    junk.write_bytes(content)
    for result in run_each(COMMANDS, "--db", str(junk), cwd=tmp_path, stdin="some secret\n"):
        assert_one_line_error(result, 2, "file is not a database")
    assert junk.read_bytes() == content
    assert [p.name for p in tmp_path.iterdir()] == ["notes.db"]


def test_clients_on_postgresql(tmp_path: Path, pg_schema: str) -> None:
    url = f"{POSTGRES_URL}?schema={pg_schema}"
    created = run(
        "clients", "create", "--name", "Billing", "--grant-type", "client_credentials",
        "--json", "--db", url, cwd=tmp_path,
    ).json()  # fmt: skip
    listed = run("clients", "list", "--json", "--db", url, cwd=tmp_path).json()
    assert listed == [{k: v for k, v in created.items() if k != "client_secret"}]
    table = run("clients", "list", "--db", url, cwd=tmp_path)
    assert table.code == 0 and created["client_id"] in table.out
    assert list(tmp_path.iterdir()) == []  # no SQLite file on the side


def test_a_database_password_is_never_printed(tmp_path: Path, pg_schema: str) -> None:
    parts = urlsplit(POSTGRES_URL)
    password = parts.password or "pg-password-123"  # trust authentication ignores it
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port or 5432}"
    url = urlunsplit(parts._replace(netloc=netloc, query=f"schema={pg_schema}"))
    for args in (["migrate"], ["migrate", "--json"]):
        result = run(*args, "--db", url, cwd=tmp_path)
        assert result.code == 0, result
        assert password not in result.out + result.err


# -- where the database comes from -----------------------------------------------------


def test_the_database_is_db_then_the_environment_then_the_default(tmp_path: Path) -> None:
    env_db, flag_db = tmp_path / "env.db", tmp_path / "flag.db"
    env = clean_env(ASGI_OAUTH_DATABASE_URL=f"sqlite:///{env_db}")
    create = ["clients", "create", "--grant-type", "client_credentials", "--json"]
    from_env = run(*create, "--name", "From env", cwd=tmp_path, env=env).json()
    from_flag = run(
        *create, "--name", "From flag", "--db", f"sqlite:///{flag_db}", cwd=tmp_path, env=env
    ).json()
    default = run(*create, "--name", "Default", cwd=tmp_path).json()

    def names(*args: str, env: dict[str, str] | None = None) -> list[str]:
        listed = run("clients", "list", "--json", *args, cwd=tmp_path, env=env).json()
        return [c["name"] for c in listed]

    assert names(env=env) == ["From env"]
    assert names("--db", str(flag_db), env=env) == ["From flag"]
    assert names() == ["Default"]
    assert (tmp_path / "asgi_oauth.db").exists()
    assert len({from_env["client_id"], from_flag["client_id"], default["client_id"]}) == 3


@pytest.mark.parametrize(
    "command",
    [
        ["clients", "create", "--name", "Web", "--redirect-uri", "/relative"],
        ["clients", "show", "no-such-client"],
        ["users", "delete", "nobody"],
    ],
    ids=["create", "show", "delete-user"],
)
def test_a_refused_command_leaves_no_database_behind(tmp_path: Path, command: list[str]) -> None:
    result = run(*command, "--db", str(tmp_path / "typo.db"), cwd=tmp_path)
    # 1 for a refused change, 2 for a command that needs a database that is not there.
    assert result.code in (1, 2) and result.err.count("\n") == 1, result
    assert list(tmp_path.iterdir()) == []

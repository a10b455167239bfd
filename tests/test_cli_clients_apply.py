"""``asgi-oauth clients apply FILE``, and ``serve`` applying ``ASGI_OAUTH_CLIENTS_FILE``,
run as a person runs them: in a process of their own, on a SQLite file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from asgi_oauth.crypto import generate_token

from .test_cli import Run, assert_one_line_error, clean_env, free_port, run, serving

pytestmark = pytest.mark.slow

APP_SECRET, NEW_APP_SECRET = generate_token(), generate_token()

APP = """
[[client]]
client_id = "app"
name = "The app"
grant_types = ["client_credentials"]
scope = "read"
client_secret_env = "APP_SECRET"
"""

SPA = """
[[client]]
client_id = "spa"
redirect_uris = ["https://spa.example/cb"]
public = true
"""


def apply(tmp_path: Path, *options: str, secret: str = APP_SECRET) -> Run:
    db = f"sqlite:///{tmp_path / 'o.db'}"
    return run(
        "clients", "apply", "clients.toml", *options, "--db", db,
        cwd=tmp_path, env=clean_env(APP_SECRET=secret),
    )  # fmt: skip


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_apply_creates_leaves_updates_and_prunes(tmp_path: Path) -> None:
    clients = tmp_path / "clients.toml"
    clients.write_text(APP + SPA)
    assert apply(tmp_path) == Run(0, "created app\ncreated spa\n2 created\n", "")
    again = apply(tmp_path)
    assert again == Run(0, "unchanged app\nunchanged spa\n2 unchanged: nothing to do\n", "")
    plan = {"created": [], "updated": {}, "unchanged": ["app", "spa"], "deleted": []}
    assert apply(tmp_path, "--json").json() == {**plan, "dry_run": False}

    clients.write_text(APP.replace('"read"', '"read write"') + SPA)
    updated = apply(tmp_path, secret=NEW_APP_SECRET)
    assert updated == Run(
        0, "updated app (scope, secret)\nunchanged spa\n1 updated, 1 unchanged\n", ""
    )

    clients.write_text(APP.replace('"read"', '"read write"'))
    before = digest(tmp_path / "o.db")
    planned = apply(tmp_path, "--prune", "--dry-run", secret=NEW_APP_SECRET)
    assert planned == Run(
        0,
        "unchanged app\nwould delete spa\ndry run: 1 unchanged, 1 to delete; nothing written\n",
        "",
    )
    assert digest(tmp_path / "o.db") == before
    pruned = apply(tmp_path, "--prune", secret=NEW_APP_SECRET)
    assert pruned == Run(0, "unchanged app\ndeleted spa\n1 unchanged, 1 deleted\n", "")
    listed = run(
        "clients", "list", "--json", "--db", f"sqlite:///{tmp_path / 'o.db'}", cwd=tmp_path
    )
    assert [c["client_id"] for c in listed.json()] == ["app"]
    assert NEW_APP_SECRET not in updated.out + pruned.out  # a named secret is never printed


def test_a_refused_file_is_one_line_and_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    clients = tmp_path / "clients.toml"
    clients.write_text(APP + SPA.replace("public = true", 'client_secret = "x"'))
    refused = apply(tmp_path)
    assert_one_line_error(refused, 1, "client 'spa': name the secret with client_secret_env")
    assert not (tmp_path / "o.db").exists()  # not even created

    clients.write_text(APP)
    assert apply(tmp_path).code == 0
    before = digest(tmp_path / "o.db")
    clients.write_text(APP + SPA.replace("https://spa.example/cb", "http://spa.example/cb"))
    assert_one_line_error(apply(tmp_path), 1, "http redirect URI allowed on loopback only")
    clients.write_text(APP + SPA.replace("public = true", 'client_secret_env = "UNSET"'))
    assert_one_line_error(apply(tmp_path), 2, "the environment variable UNSET is not set")
    clients.unlink()
    assert_one_line_error(apply(tmp_path), 2, "clients file 'clients.toml': no such file")
    assert digest(tmp_path / "o.db") == before


def test_serve_applies_the_clients_file_before_it_listens(tmp_path: Path) -> None:
    (tmp_path / "clients.toml").write_text(APP)
    port = free_port()
    env = clean_env(ASGI_OAUTH_CLIENTS_FILE="clients.toml", APP_SECRET=APP_SECRET)
    db = f"sqlite:///{tmp_path / 'o.db'}"
    out = tmp_path / "serve.out"
    with serving(["--insecure-transport", "--db", db], port=port, cwd=tmp_path, out=out, env=env):
        issued = httpx.post(
            f"http://127.0.0.1:{port}/token",
            data={"grant_type": "client_credentials"},
            auth=("app", APP_SECRET),
        )
        assert issued.status_code == 200, issued.text
        assert issued.json()["scope"] == "read"
    printed = out.read_text()
    assert "clients file clients.toml: 1 created\n" in printed
    assert printed.index("clients file") < printed.index("listening on")
    assert APP_SECRET not in printed

"""A newcomer's first hour with ``asgi-oauth`` (issue 16).

A setup that cannot work is refused at once, in one line saying what to do: no https
(a certificate, a TLS proxy, or ``--insecure-transport``), a missing extra, a SQLite
file in a directory that is not there, a root path the issuer disagrees with, a port
already taken; also ``scripts/readme-check`` on a taken port. And ``--version``, the
demo credentials printed last and framed, the commands that replace them after a
restart, and dates people can read.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import shlex
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import asgi_oauth
from asgi_oauth.cli import main

from .test_cli import (
    REPO_ROOT,
    Run,
    assert_one_line_error,
    clean_env,
    demo_credentials,
    free_port,
    run,
    serving,
)


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs: no ASGI_OAUTH_* setting from the caller's environment."""
    for name in list(os.environ):
        if name.startswith("ASGI_OAUTH_"):
            monkeypatch.delenv(name)


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """``asgi-oauth ARGV`` refusing its setup: exit 2, one line on stderr (returned)."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "", captured
    assert captured.err.startswith("asgi-oauth: ") and captured.err.count("\n") == 1, captured
    return captured.err


# -- --version -------------------------------------------------------------------------


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"asgi-oauth {asgi_oauth.__version__}\n"


# -- serve: https, or say how ----------------------------------------------------------


@pytest.mark.parametrize(
    "issuer", [[], ["--issuer", "https://auth.example"]], ids=["default", "https-issuer"]
)
def test_serve_without_a_way_to_https_refuses_in_one_line_saying_the_ways(
    issuer: list[str], tmp_path: Path, no_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refused(["serve", *issuer, "--db", str(tmp_path / "oauth.db")], capsys)
    for way in ("--ssl-certfile", "--ssl-keyfile", "--behind-tls-proxy", "--insecure-transport"):
        assert way in err
    assert list(tmp_path.iterdir()) == []


def write_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


@pytest.mark.slow
def test_serve_with_a_certificate_listens_on_https_and_says_so(tmp_path: Path) -> None:
    certfile, keyfile = write_certificate(tmp_path)
    port, out = free_port(), tmp_path / "serve.out"
    tls = ["--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile)]
    with serving([*tls, "--db", str(tmp_path / "oauth.db")], port=port, cwd=tmp_path, out=out):
        printed = out.read_text().splitlines()
        trusted = ssl.create_default_context(cafile=str(certfile))
        base = f"https://127.0.0.1:{port}"
        metadata = httpx.get(base + "/.well-known/oauth-authorization-server", verify=trusted)
    assert printed[-1].startswith(f"listening on {base}  "), printed
    assert metadata.status_code == 200, metadata.text
    assert metadata.json()["issuer"] == base
    assert metadata.json()["token_endpoint"] == base + "/token"


@pytest.mark.slow
def test_serve_behind_a_tls_proxy_serves_http_and_publishes_the_proxys_urls(
    tmp_path: Path,
) -> None:
    issuer = "https://auth.example/oauth2"
    port, out = free_port(), tmp_path / "serve.out"
    # The proxy serves https://auth.example/oauth2/... and strips /oauth2 before forwarding.
    proxy = ["--behind-tls-proxy", "--issuer", issuer, "--root-path", "/oauth2"]
    with serving([*proxy, "--db", str(tmp_path / "oauth.db")], port=port, cwd=tmp_path, out=out):
        printed = out.read_text().splitlines()
        metadata = httpx.get(
            f"http://127.0.0.1:{port}/.well-known/oauth-authorization-server",
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"},
        )
    assert printed[-1].startswith(f"listening on http://127.0.0.1:{port} for the https proxy at ")
    assert issuer in printed[-1]
    assert metadata.status_code == 200, metadata.text
    assert metadata.json()["issuer"] == issuer
    assert metadata.json()["token_endpoint"] == issuer + "/token"


MISUSE = [
    (["--ssl-keyfile", "{tmp}/key.pem"], "--ssl-keyfile needs --ssl-certfile"),
    (["--ssl-certfile", "{tmp}/none.pem"], "cannot serve https with {tmp}/none.pem: no such file"),
    (["--ssl-certfile", "{tmp}/junk.pem"], "cannot serve https with {tmp}/junk.pem"),
    (
        ["--ssl-certfile", "{tmp}/junk.pem", "--behind-tls-proxy", "--issuer", "https://a.example"],
        "not both",
    ),
    (
        ["--ssl-certfile", "{tmp}/junk.pem", "--insecure-transport", "--issuer", "http://a"],
        "with --ssl-certfile the issuer is an https url",
    ),
    (["--behind-tls-proxy"], "--behind-tls-proxy needs --issuer"),
    (
        ["--behind-tls-proxy", "--insecure-transport", "--issuer", "http://a.example"],
        "needs the proxy's https url",
    ),
    (["--insecure-transport", "--forwarded-allow-ips", "10.0.0.1"], "with --behind-tls-proxy"),
    (["--insecure-transport", "--root-path", "oauth2"], "--root-path must start with /"),
    (
        ["--insecure-transport", "--root-path", "/api", "--issuer", "http://127.0.0.1:8000/oauth2"],
        "--root-path /api disagrees with the issuer's path /oauth2",
    ),
    (
        ["--insecure-transport", "--root-path", "/oauth", "--issuer", "http://127.0.0.1/oauth2"],
        "--root-path /oauth disagrees with the issuer's path /oauth2",
    ),
    (["--insecure-transport", "--root-path", "/oauth2"], "disagrees with the issuer's path /:"),
]


@pytest.mark.parametrize(
    ("options", "message"),
    MISUSE,
    ids=[
        "key-alone",
        "no-cert-file",
        "junk-cert",
        "cert-and-proxy",
        "cert-http-issuer",
        "proxy-no-issuer",
        "proxy-http-issuer",
        "forwarded-no-proxy",
        "relative-root",
        "root-elsewhere",
        "root-half-segment",
        "root-no-issuer-path",
    ],
)
def test_serve_refuses_options_that_cannot_work_together(
    options: list[str],
    message: str,
    tmp_path: Path,
    no_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    argv = [o.format(tmp=tmp_path) for o in options]
    err = refused(["serve", *argv, "--db", str(tmp_path / "oauth.db")], capsys)
    assert message.format(tmp=tmp_path) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.pem"]


# -- what cannot be opened or bound: before anything is written --------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "--insecure-transport"],
        ["migrate"],
        ["clients", "list"],
        ["users", "create", "alice", "--password-stdin"],
        ["keys", "rotate"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_a_sqlite_file_in_a_missing_directory_is_one_line_naming_it(
    command: list[str], tmp_path: Path, no_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "no" / "such" / "oauth.db"
    err = refused([*command, "--db", f"sqlite:///{path}"], capsys)
    assert f"unable to open database file {path}: there is no directory {path.parent}" in err
    assert list(tmp_path.iterdir()) == []


def test_serve_on_a_taken_port_is_one_line_before_anything_is_written(
    tmp_path: Path, no_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        argv = ["serve", "--demo", "--insecure-transport", "--port", str(port)]
        err = refused([*argv, "--db", str(tmp_path / "oauth.db")], capsys)
    assert f"cannot listen on 127.0.0.1:{port}: the port is taken" in err
    assert list(tmp_path.iterdir()) == []  # no database, no key file, no credentials


# -- a missing extra: one line naming the install command -------------------------------

POSTGRES = "postgresql://oauth@127.0.0.1:9/oauth"  # never reached: the driver is missing


def run_without(module: str, *args: str, cwd: Path) -> Run:
    """``asgi-oauth ARGS`` in a Python where ``import MODULE`` fails, as if not installed."""
    wrapper = (
        f"import sys; sys.modules[{module!r}] = None; "
        "from asgi_oauth.cli import main; sys.exit(main())"
    )
    done = subprocess.run(
        [sys.executable, "-c", wrapper, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize(
    ("module", "argv", "extra"),
    [
        ("asyncpg", ["clients", "list", "--db", POSTGRES], "postgres"),
        ("asyncpg", ["migrate", "--db", POSTGRES], "postgres"),
        ("asyncpg", ["serve", "--insecure-transport", "--db", POSTGRES], "postgres"),
        ("uvicorn", ["serve", "--insecure-transport"], "server"),
    ],
    ids=["clients", "migrate", "serve-postgres", "serve-uvicorn"],
)
def test_a_missing_extra_is_one_line_naming_the_install_command(
    module: str, argv: list[str], extra: str, tmp_path: Path
) -> None:
    result = run_without(module, *argv, cwd=tmp_path)
    assert_one_line_error(result, 2, f"needs {module}: pip install 'asgi-oauth[{extra}]'")
    assert list(tmp_path.iterdir()) == []


# -- the demo credentials ----------------------------------------------------------------

RULE = "-" * 72


@pytest.mark.slow
def test_serve_demo_frames_the_credentials_last_and_a_restart_says_how_to_renew_them(
    tmp_path: Path,
) -> None:
    db, port = f"sqlite:///{tmp_path / 'demo.db'}", free_port()
    args = ["--demo", "--insecure-transport", "--db", db]
    with serving(args, port=port, cwd=tmp_path, out=tmp_path / "first.out"):
        first = (tmp_path / "first.out").read_text().splitlines()
    listening = f"listening on http://127.0.0.1:{port}  (database {db})"
    assert first[-2:] == [RULE, listening], first
    top = first.index(next(line for line in first if " demo credentials " in line))
    assert first[top].startswith("-----") and first[top].endswith("-----")
    framed = [line.partition(":")[0] for line in first[top + 1 : -2]]
    assert framed == [
        "demo client_id",
        "demo client_secret",
        "demo public client",
        "demo user",
        "store them now",
    ]
    secret, password = demo_credentials("\n".join(first))

    with serving(args, port=port, cwd=tmp_path, out=tmp_path / "second.out"):
        second = (tmp_path / "second.out").read_text().splitlines()
    rotate = f"asgi-oauth clients rotate-secret demo-client --db {db}"
    new_password = f"asgi-oauth users set-password demo --db {db}"
    top = second.index(next(line for line in second if " demo credentials " in line))
    assert second[top + 1 :] == [
        f"demo client 'demo-client' exists; for a new secret: {rotate}",
        "demo public client: demo-app  (PKCE; redirect http://127.0.0.1/callback, any port)",
        f"demo user 'demo' exists; for a new password: {new_password}",
        RULE,
        listening,
    ]
    assert secret not in str(second) and password not in str(second)

    # The hints run as printed: a new secret, shown once; a new password, from stdin.
    rotated = run(*shlex.split(rotate)[1:], cwd=tmp_path)
    assert rotated.code == 0 and "client_secret: " in rotated.out, rotated
    assert secret not in rotated.out
    changed = run(*shlex.split(new_password)[1:], cwd=tmp_path, stdin="a new password\n")
    assert changed.code == 0 and "changed the password of 'demo'" in changed.out, changed


# -- dates -------------------------------------------------------------------------------


def test_clients_show_prints_dates_in_iso_8601_utc_and_json_keeps_epoch_seconds(
    tmp_path: Path, no_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--db", str(tmp_path / "oauth.db")]
    create = ["clients", "create", "--name", "Billing", "--grant-type", "client_credentials"]
    assert main([*create, *db, "--client-id", "billing"]) == 0
    capsys.readouterr()
    assert main(["clients", "show", "billing", "--json", *db]) == 0
    created_at = json.loads(capsys.readouterr().out)["created_at"]
    assert isinstance(created_at, int)
    assert main(["clients", "show", "billing", *db]) == 0
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("created_at:")]
    assert line.split() == [
        "created_at:",
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created_at)),
    ]


# -- scripts/readme-check ----------------------------------------------------------------


def test_readme_check_says_in_one_line_when_port_8000_is_taken() -> None:
    with contextlib.ExitStack() as stack:
        holder = stack.enter_context(socket.socket())
        with contextlib.suppress(OSError):  # taken already: the case under test all the same
            holder.bind(("127.0.0.1", 8000))
            holder.listen()
        done = subprocess.run(
            ["bash", str(REPO_ROOT / "scripts" / "readme-check")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1, done
    assert done.stdout == "", done
    assert done.stderr.count("\n") == 1 and "port 8000 is taken" in done.stderr, done

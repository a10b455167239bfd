"""``asgi-oauth serve``'s logs: text as before, an access log without query strings,
JSON lines for log shippers; never a secret, a code or a token in any of them."""

from __future__ import annotations

import ast
import json
import logging
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from asgi_oauth import __version__
from asgi_oauth.cli import main
from asgi_oauth.cli.logs import JSONFormatter, PathOnly, access_log_enabled, log_format
from asgi_oauth.events import security_event

from .test_cli import REPO_ROOT, clean_env, code_flow, demo_credentials, free_port, serving

# -- in-process: options, the formatter, what events may carry -------------------------


@pytest.mark.parametrize("argv", [["--version"], ["serve", "--version"]])
def test_version_is_printed_by_the_command_and_by_serve(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"asgi-oauth {__version__}\n"


def test_serve_help_names_the_log_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in (
        "--access-log",
        "--log-format",
        "ASGI_OAUTH_ACCESS_LOG",
        "ASGI_OAUTH_LOG_FORMAT",
    ):
        assert option in text


def test_flags_beat_the_environment_which_beats_the_default() -> None:
    assert access_log_enabled(None, {}) is False
    assert access_log_enabled(None, {"ASGI_OAUTH_ACCESS_LOG": "true"}) is True
    assert access_log_enabled(None, {"ASGI_OAUTH_ACCESS_LOG": "no"}) is False
    assert access_log_enabled(True, {"ASGI_OAUTH_ACCESS_LOG": "false"}) is True
    assert log_format(None, {}) == "text"
    assert log_format(None, {"ASGI_OAUTH_LOG_FORMAT": "json"}) == "json"
    assert log_format("text", {"ASGI_OAUTH_LOG_FORMAT": "json"}) == "text"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ASGI_OAUTH_ACCESS_LOG", "maybe", "ASGI_OAUTH_ACCESS_LOG must be true or false"),
        ("ASGI_OAUTH_LOG_FORMAT", "xml", "ASGI_OAUTH_LOG_FORMAT must be text or json"),
    ],
)
def test_a_bad_log_variable_is_one_line_and_exit_2(
    variable: str,
    value: str,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(variable, value)
    db = tmp_path / "oauth.db"
    argv = ["serve", "--insecure-transport", "--db", str(db), "--port", str(free_port())]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("asgi-oauth: ") and message in err and err.count("\n") == 1
    assert not db.exists()  # refused before anything was written


def test_a_bad_log_format_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--log-format", "xml"])
    assert exited.value.code == 2
    assert "invalid choice: 'xml'" in capsys.readouterr().err


def _access_record(target: str) -> logging.LogRecord:
    """An access record as uvicorn makes one."""
    return logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", target, "1.1", 302),
        None,
    )


def test_the_access_filter_keeps_the_path_and_drops_the_query() -> None:
    record = _access_record("/authorize?code=abc&state=xyz")
    assert PathOnly().filter(record) is True
    assert record.getMessage() == '127.0.0.1:5000 - "GET /authorize HTTP/1.1" 302'


def test_a_json_access_line_has_client_method_path_status_and_no_query() -> None:
    line = json.loads(JSONFormatter().format(_access_record("/token?code=abc")))
    assert line["logger"] == "uvicorn.access" and line["level"] == "INFO"
    assert (line["client"], line["method"], line["path"], line["status"]) == (
        "127.0.0.1:5000",
        "GET",
        "/token",
        302,
    )
    assert "abc" not in json.dumps(line)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]), line


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def _events() -> Iterator[list[logging.LogRecord]]:
    handler, events = _Kept(), logging.getLogger("asgi_oauth.events")
    level = events.level
    events.addHandler(handler)
    events.setLevel(logging.INFO)
    try:
        yield handler.records
    finally:
        events.removeHandler(handler)
        events.setLevel(level)


def test_a_json_security_event_has_its_name_and_each_field_as_keys() -> None:
    with _events() as records:
        security_event(
            "client_authentication_failed",
            level=logging.WARNING,
            client_id="billing app",
            address="10.0.0.1",
            message="a field named like a base key",
        )
    line = json.loads(JSONFormatter().format(records[0]))
    assert line["event"] == "client_authentication_failed" and line["level"] == "WARNING"
    assert line["logger"] == "asgi_oauth.events"
    assert line["client_id"] == "billing app" and line["address"] == "10.0.0.1"
    # The line's own message stays; the field of that name is kept under another key.
    assert line["message"].startswith("event=client_authentication_failed ")
    assert line["field_message"] == "a field named like a base key"


def test_a_json_line_carries_the_exception_on_one_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord(
            "uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application", (),
            sys.exc_info(),
        )  # fmt: skip
    text = JSONFormatter().format(record)
    assert "\n" not in text
    line = json.loads(text)
    assert line["message"] == "Exception in ASGI application"
    assert "RuntimeError: boom" in line["exception"]


#: Every field a security event may log: identifiers, names, counts and yes/no values.
#: A new field is added here once it is known to carry no secret, code or token.
_EVENT_FIELDS = {
    "address",
    "client_id",
    "dpop",  # a bool: the token is DPoP-bound
    "endpoint",  # which endpoint was rate limited
    "error",
    "grant_type",
    "kids",
    "provider",
    "reason",
    "refresh_token",  # a bool: whether one was issued, never the token
    "remembered",
    "response_type",
    "revoked_tokens",  # a count
    "scope",
    "source",
    "status",  # a back-channel logout's HTTP status, or why its address was refused
    "sub",
    "subject",
    "token_kind",
    "upstream_sub",
    "user_id",
    "username",
}


def test_no_security_event_logs_a_field_that_could_carry_a_secret() -> None:
    """JSON logs turn each field into a key: every field any event passes is on the list."""
    seen: dict[str, str] = {}
    for path in sorted((REPO_ROOT / "asgi_oauth").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "security_event":
                for keyword in node.keywords:
                    if keyword.arg not in (None, "level"):
                        seen.setdefault(keyword.arg, f"{path.name}:{node.lineno}")
    assert "client_id" in seen and "address" in seen, seen  # the walk found the calls
    assert {k: v for k, v in seen.items() if k not in _EVENT_FIELDS} == {}


# -- serve, as a process -------------------------------------------------------------


@dataclass(frozen=True)
class Demo:
    """A database ``serve --demo`` made, and the credentials it printed that once."""

    files: tuple[Path, ...]
    secret: str
    password: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    home = tmp_path_factory.mktemp("demo")
    args = ["--demo", "--insecure-transport", "--db", f"sqlite:///{home / 'demo.db'}"]
    with serving(args, port=free_port(), cwd=home, out=home / "demo.out"):
        secret, password = demo_credentials((home / "demo.out").read_text())
    files = tuple(p for p in home.iterdir() if p.name.startswith("demo.db"))
    return Demo(files, secret, password)


@dataclass(frozen=True)
class Output:
    out: str
    err: str


@contextmanager
def logged_serve(
    demo: Demo,
    args: Sequence[str],
    tmp_path: Path,
    env: Mapping[str, str] | None = None,
) -> Iterator[tuple[str, list[Output]]]:
    """``serve`` (no demo: its credentials stay unprinted) on a copy of the demo's
    database; stdout and stderr apart. The output is in the list once the block ends."""
    for file in demo.files:
        shutil.copy(file, tmp_path / file.name)
    port = free_port()
    command = [sys.executable, "-m", "asgi_oauth", "serve", "--insecure-transport"]
    command += ["--db", f"sqlite:///{tmp_path / 'demo.db'}", "--port", str(port), *args]
    out_path, err_path = tmp_path / "serve.out", tmp_path / "serve.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen(
            command,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=clean_env(**(env or {})),
        )
    output: list[Output] = []
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, err_path.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, err_path.read_text()
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", output
    finally:
        process.terminate()
        process.wait(timeout=10)
        output.append(Output(out_path.read_text(), err_path.read_text()))


#: The requests ``traffic`` sends: seven in the code flow, then three.
REQUESTS = 10


def traffic(base: str, demo: Demo) -> dict[str, str]:
    """Requests that carry secrets every way they can: a code flow with a wrong and a
    right password, a client secret, a failed client authentication, and a request with
    a code, a secret, a password and a state in its query string. What must never be
    logged, by name."""
    verifier = secrets.token_urlsafe(48)
    tokens = code_flow(base, demo.password, f"http://127.0.0.1:{free_port()}/callback", verifier)
    grant = {"grant_type": "client_credentials"}
    issued = httpx.post(base + "/token", data=grant, auth=("demo-client", demo.secret))
    assert issued.status_code == 200, issued.text
    wrong = "wrong-" + secrets.token_urlsafe(16)
    refused = httpx.post(base + "/token", data=grant, auth=("demo-client", wrong))
    assert refused.status_code == 401, refused.text
    state = secrets.token_urlsafe(12)
    query = {"code": tokens["code"], "client_secret": demo.secret, "state": state}
    httpx.get(base + "/token", params={**query, "password": demo.password})
    return {
        "client secret": demo.secret,
        "password": demo.password,
        "code": tokens["code"],
        "code verifier": verifier,
        "access token": tokens["access_token"],
        "refresh token": tokens["refresh_token"],
        "client credentials token": issued.json()["access_token"],
        "wrong client secret": wrong,
        "state": state,
    }


def assert_no_secret(output: Output, never: Mapping[str, str]) -> None:
    for name, value in never.items():
        assert value not in output.out and value not in output.err, name


def startup_lines(base: str, tmp_path: Path) -> list[str]:
    """What serve prints on stdout before it serves, as it always has."""
    return [
        f"metadata: {base}/.well-known/oauth-authorization-server",
        f"OpenID Connect: {base}/.well-known/openid-configuration",
        f"listening on {base}  (database sqlite:///{tmp_path / 'demo.db'})",
    ]


_ACCESS_LINE = re.compile(r'INFO: +127\.0\.0\.1:\d+ - "(GET|POST) (\S+) HTTP/1\.1" (\d{3}) .*')


@pytest.mark.slow
def test_text_output_is_as_before_without_access_log(demo: Demo, tmp_path: Path) -> None:
    with logged_serve(demo, [], tmp_path) as (base, output):
        never = traffic(base, demo)
    (result,) = output
    assert result.out.splitlines() == startup_lines(base, tmp_path)
    # The warnings among the security events, as the plain line they always were.
    assert "event=client_authentication_failed client_id=demo-client address=127.0.0.1\n" in (
        result.err
    )
    assert all(line.startswith("event=") for line in result.err.splitlines()), result.err
    assert_no_secret(result, never)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "env"), [(["--access-log"], {}), ([], {"ASGI_OAUTH_ACCESS_LOG": "true"})]
)
def test_the_access_log_has_one_line_per_request_and_no_query_string(
    demo: Demo, tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    with logged_serve(demo, args, tmp_path, env) as (base, output):
        never = traffic(base, demo)
    (result,) = output
    lines = result.out.splitlines()
    assert lines[:2] == startup_lines(base, tmp_path)[:2]
    access = [match for line in lines if (match := _ACCESS_LINE.fullmatch(line))]
    assert len(access) == REQUESTS, result.out
    assert (access[0].group(1, 2), access[-1].group(1, 2)) == (
        ("GET", "/authorize"),
        ("GET", "/token"),
    )
    assert "?" not in result.out and "code=" not in result.out
    assert_no_secret(result, never)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--log-format", "json", "--access-log"], {}),
        ([], {"ASGI_OAUTH_LOG_FORMAT": "json", "ASGI_OAUTH_ACCESS_LOG": "1"}),
    ],
)
def test_json_logs_are_one_object_per_line_with_events_and_requests(
    demo: Demo, tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    with logged_serve(demo, args, tmp_path, env) as (base, output):
        never = traffic(base, demo)
        # Not HTTP: uvicorn's own warning, which must be JSON too.
        with socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1]))) as sock:
            sock.sendall(b"NOT HTTP\r\n\r\n")
            sock.recv(1024)
    (result,) = output
    assert result.out.splitlines() == startup_lines(base, tmp_path)
    lines: list[dict[str, Any]] = [json.loads(line) for line in result.err.splitlines()]
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
        assert line["time"].endswith("Z"), line
    events = {line["event"]: line for line in lines if "event" in line}
    failed = events["client_authentication_failed"]
    assert failed["level"] == "WARNING" and failed["logger"] == "asgi_oauth.events"
    assert failed["client_id"] == "demo-client" and failed["address"] == "127.0.0.1"
    issued = {line["grant_type"] for line in lines if line.get("event") == "token_issued"}
    assert issued == {"authorization_code", "client_credentials"}  # info events too
    assert events["sign_in_failed"]["username"] == "demo"
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert len(access) == REQUESTS, access
    for line in access:
        assert line["method"] in ("GET", "POST") and isinstance(line["status"], int), line
        assert "?" not in line["path"] and "?" not in line["message"], line
    assert (access[-1]["method"], access[-1]["path"]) == ("GET", "/token")
    assert any(
        line["logger"] == "uvicorn.error" and "Invalid HTTP request" in line["message"]
        for line in lines
    ), lines
    assert_no_secret(result, never)

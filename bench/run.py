"""Load benchmark: asgi_oauth's endpoints under wrk, as ratios to a bare ASGI hello world.

Usage (from anywhere; paths are resolved from this file)::

    python bench/run.py [--duration 10] [--connections 64] [--rounds 3] [--only NAME ...]

Every server is ``uvicorn`` with one worker pinned to one core, every load is
one ``wrk`` thread pinned to another. Scenarios run ``--rounds`` times,
interleaved, each round on a fresh server (and a fresh SQLite file or
PostgreSQL schema) after a short warm-up; the table shows medians. PostgreSQL
(``BENCH_POSTGRES_URL``) is not pinned: it shares both cores, and the report
gives the CPU time it used. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import importlib.metadata
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from apps import (
    CLIENT_ID,
    CLIENT_SECRET,
    DEFAULT_POSTGRES_POOL,
    DEFAULT_POSTGRES_URL,
    RESOURCE_SERVER_ID,
    RESOURCE_SERVER_SECRET,
)
from peers.install import InstallError, Peers
from peers.install import install as install_peers

BENCH_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"
WARMUP_SECONDS = 2
MEMORY_SECONDS = 20
RESULT_PREFIX = "BENCH_RESULT "

Kind = Literal["hello", "token", "introspect"]
Store = Literal["-", "memory", "sqlite", "postgres"]
#: The peers of ``bench/peers/``, served as they ship instead of asgi_oauth.
Peer = Literal["aioauth", "oidc-provider"]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    store: Store
    kind: Kind
    #: The least acceptable ratio of this scenario's median req/s to bare's.
    target: float | None = None
    #: More environment for the server (``bench/apps.py``), beside the store's.
    env: tuple[tuple[str, str], ...] = ()
    #: Served by this peer (its own server command, its own URLs) instead of asgi_oauth.
    peer: Peer | None = None

    @property
    def app(self) -> str:
        return "apps:hello" if self.kind == "hello" else "apps:oauth"


BARE = Scenario("bare", "-", "hello")
NODE_ENV = (("NODE_ENV", "production"),)
SCENARIOS = (
    BARE,
    Scenario("token-memory", "memory", "token", 0.30),
    Scenario("token-sqlite", "sqlite", "token", 0.20),
    # token-sqlite with both rate limits on, set too high to refuse anything: what
    # counting each request in the store (per address, then per client) costs.
    Scenario("token-sqlite-limited", "sqlite", "token", env=(("BENCH_RATE_LIMIT", "1000000000"),)),
    # JWT access tokens (RFC 9068) on SQLite, one per signing algorithm: judged as
    # ratios to token-sqlite (JWT issuance >= 0.6 of opaque with the fastest).
    Scenario("token-sqlite-jwt-es256", "sqlite", "token", env=(("BENCH_JWT_ALG", "ES256"),)),
    Scenario("token-sqlite-jwt-eddsa", "sqlite", "token", env=(("BENCH_JWT_ALG", "EdDSA"),)),
    Scenario("token-sqlite-jwt-rs256", "sqlite", "token", env=(("BENCH_JWT_ALG", "RS256"),)),
    Scenario("token-postgres", "postgres", "token", 0.08),
    Scenario("introspect-memory", "memory", "introspect", 0.35),
    Scenario("introspect-sqlite", "sqlite", "introspect", 0.25),
    Scenario("introspect-postgres", "postgres", "introspect", 0.08),
    # The peers as they ship, each on its in-memory store (bench/peers/).
    Scenario("token-aioauth", "memory", "token", peer="aioauth"),
    Scenario("introspect-aioauth", "memory", "introspect", peer="aioauth"),
    Scenario("token-oidc-provider", "memory", "token", env=NODE_ENV, peer="oidc-provider"),
    Scenario(
        "introspect-oidc-provider", "memory", "introspect", env=NODE_ENV, peer="oidc-provider"
    ),
)
#: The least acceptable ratio of asgi_oauth on SQLite to a peer, issuance and introspection alike.
PEER_TARGETS: Mapping[Peer, float] = {"oidc-provider": 2.0}
MEMORY = "memory"
NAMES = (*(s.name for s in SCENARIOS), MEMORY)


class BenchError(Exception):
    """A scenario could not be measured (server crashed, wrong answer, wrk failed)."""


# -- wrk ------------------------------------------------------------------------------------

#: Counts non-2xx responses per thread and prints one JSON line in done().
LUA_REPORT = r"""
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
  statuses = {}
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local non2xx_total = 0
  local by_status = {}
  for _, thread in ipairs(threads) do
    non2xx_total = non2xx_total + thread:get("non2xx")
    for status, count in pairs(thread:get("statuses")) do
      by_status[status] = (by_status[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(by_status) do
    table.insert(parts, string.format('"%d":%d', status, count))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"socket_errors":%d,"non2xx":%d,' ..
    '"statuses":{%s},"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout,
    non2xx_total, table.concat(parts, ","),
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    duration_us: int
    socket_errors: int
    non2xx: int
    statuses: Mapping[str, int]
    p50_us: int
    p99_us: int
    max_us: int

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6) if self.duration_us else 0.0

    @property
    def errors(self) -> int:
        return self.socket_errors + self.non2xx

    @classmethod
    def parse(cls, output: str) -> WrkResult:
        for line in output.splitlines():
            if line.startswith(RESULT_PREFIX):
                data = json.loads(line[len(RESULT_PREFIX) :])
                statuses = {str(k): int(v) for k, v in data.pop("statuses").items()}
                return cls(statuses=statuses, **{k: int(v) for k, v in data.items()})
        raise BenchError(f"no {RESULT_PREFIX.strip()} line in wrk's output:\n{output}")


def _lua_string(text: str) -> str:
    if not text.isascii() or not text.isprintable():
        raise ValueError(f"not a plain ASCII string: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _basic(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: each part form-urlencoded, then RFC 7617 Basic."""
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def write_lua(
    script: Path, method: str, path: str, body: str = "", headers: Mapping[str, str] = {}
) -> Path:
    lines = [
        "-- generated by bench/run.py",
        f"wrk.method = {_lua_string(method)}",
        f"wrk.path = {_lua_string(path)}",
    ]
    if body:
        lines.append(f"wrk.body = {_lua_string(body)}")
    lines += [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n" + LUA_REPORT)
    return script


@contextlib.contextmanager
def wrk(
    url: str, lua: Path, *, duration: int, connections: int, cpu: int
) -> Iterator[subprocess.Popen[str]]:
    """A running wrk, killed on the way out if it has not finished."""
    command = [
        *("taskset", "-c", str(cpu), "wrk", "-t1", f"-c{connections}", f"-d{duration}s"),
        *("--latency", "-s", str(lua), url),
    ]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        yield proc
    finally:
        _stop(proc, signal.SIGKILL)


def finish_wrk(proc: subprocess.Popen[str], duration: int) -> WrkResult:
    try:
        out, err = proc.communicate(timeout=duration + 30)
    except subprocess.TimeoutExpired:
        raise BenchError("wrk did not finish in time") from None
    if proc.returncode != 0:
        raise BenchError(f"wrk exited with {proc.returncode}:\n{out}{err}")
    return WrkResult.parse(out)


def run_wrk(url: str, lua: Path, *, duration: int, connections: int, cpu: int) -> WrkResult:
    with wrk(url, lua, duration=duration, connections=connections, cpu=cpu) as proc:
        return finish_wrk(proc, duration)


# -- the server -----------------------------------------------------------------------------


@dataclass(slots=True)
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"the server exited with {self.proc.returncode}:\n{self.log()}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def server_command(
    app: str, port: int, cpu: int, python: str = sys.executable, app_dir: Path = BENCH_DIR
) -> list[str]:
    """The one uvicorn configuration every scenario runs under (aioauth's too, from its venv)."""
    return [
        *("taskset", "-c", str(cpu), python, "-m", "uvicorn", app),
        *("--app-dir", str(app_dir), "--host", HOST, "--port", str(port)),
        *("--loop", "uvloop", "--http", "httptools", "--workers", "1"),
        *("--lifespan", "on", "--no-access-log", "--log-level", "warning"),
    ]


def peer_command(peer: Peer, peers: Peers, cpu: int) -> Callable[[int], list[str]]:
    """A peer's server command for a port: aioauth under our uvicorn command, from its
    venv; oidc-provider's ``server.mjs`` on Node.js. Pinned to ``cpu`` like ours."""
    if peer == "aioauth":
        app_dir = BENCH_DIR / "peers"
        return lambda port: server_command("aioauth_app:app", port, cpu, str(peers.python), app_dir)
    return lambda port: [
        *("taskset", "-c", str(cpu), str(peers.node), str(peers.oidc_server), str(port))
    ]


@contextlib.contextmanager
def serve(
    app: str,
    env: Mapping[str, str],
    workdir: Path,
    cpu: int,
    command: Callable[[int], list[str]] | None = None,
) -> Iterator[Server]:
    """A server accepting connections (uvicorn serving ``app``, unless ``command`` gives the
    command for a port); SIGTERM (then SIGKILL) on the way out."""
    port = free_port()
    log_path = workdir / f"server-{port}.log"
    environ = {**os.environ, **env, "BENCH_ISSUER": f"http://{HOST}:{port}"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command(port) if command else server_command(app, port, cpu),
            cwd=BENCH_DIR.parent,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop it in order
        )
    server = Server(proc, port, log_path)
    try:
        _wait_for_port(server, timeout=30)
        yield server
    finally:
        _stop(proc, signal.SIGTERM)


def _wait_for_port(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        server.check_alive()
        with contextlib.suppress(OSError), socket.create_connection((HOST, server.port), 0.5):
            return
        if time.monotonic() > deadline:
            raise BenchError(f"the server did not accept within {timeout} s:\n{server.log()}")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[str] | subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rss_kib(pid: int) -> int:
    """The process's resident set size, from /proc/<pid>/status (VmRSS, in kB)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


# -- PostgreSQL -----------------------------------------------------------------------------


def postgres_url() -> str:
    """The database the PostgreSQL scenarios use: ``BENCH_POSTGRES_URL`` or the default."""
    return os.environ.get("BENCH_POSTGRES_URL") or DEFAULT_POSTGRES_URL


def redact(url: str) -> str:
    """``url`` without its password, for reports."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


def postgres_values(url: str, *statements: str) -> list[object]:
    """Run ``statements`` on a connection of the bench's own (not the server's pool),
    each one's first value; a failure is a ``BenchError``."""
    try:
        import asyncpg
    except ImportError:
        raise BenchError(
            "the PostgreSQL scenarios need asyncpg: pip install -e '.[postgres]'"
        ) from None

    async def run() -> list[object]:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            return [await conn.fetchval(statement) for statement in statements]
        finally:
            await conn.close()

    try:
        return asyncio.run(run())
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise BenchError(f"PostgreSQL at {redact(url)}: {type(exc).__name__}: {exc}") from exc


@contextlib.contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A fresh, empty schema, dropped (with everything in it) on the way out, whatever
    happened: an error, Ctrl-C, SIGTERM. Leave it only after the server has stopped."""
    name = f"asgi_oauth_bench_{secrets.token_hex(6)}"
    postgres_values(url, f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        try:
            postgres_values(url, f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        except BenchError as exc:
            print(
                f"WARNING: schema {name} was not dropped ({exc}); drop it by hand: "
                f'DROP SCHEMA "{name}" CASCADE',
                file=sys.stderr,
                flush=True,
            )


def postgres_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of every PostgreSQL process on this machine (``comm``
    ``postgres``: the postmaster, its background processes, the backends), by pid."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                text = stat.read()
        except OSError:
            continue  # gone meanwhile
        head, _, rest = text.rpartition(")")
        if head.partition("(")[2] != "postgres":
            continue
        fields = rest.split()  # fields[0] is the state; utime and stime follow at 11, 12
        found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    return found


def cpu_since(before: Mapping[int, float], after: Mapping[int, float]) -> float:
    """CPU seconds the processes of ``after`` used since ``before`` (new ones: all of it)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def postgres_env(schema: str, pool: int) -> dict[str, str]:
    return {
        "BENCH_STORE": "postgres",
        "BENCH_POSTGRES_URL": postgres_url(),
        "BENCH_POSTGRES_SCHEMA": schema,
        "BENCH_POSTGRES_POOL": str(pool),
    }


def postgres_environment(pool: int) -> list[str]:
    """The report's lines about the database, or why it cannot be used (``BenchError``)."""
    url = postgres_url()
    version, sync, fsync, delay = postgres_values(
        url, "SHOW server_version", "SHOW synchronous_commit", "SHOW fsync", "SHOW commit_delay"
    )
    local = "found" if postgres_cpu() else "not found (its CPU time cannot be reported)"
    return [
        f"- PostgreSQL {version} at {redact(url)}: synchronous_commit={sync}, fsync={fsync}, "
        f"commit_delay={delay}; a fresh schema per round, dropped after it; "
        f"PostgresStorage pool of {pool} connections (min_size = max_size)",
        "- PostgreSQL is NOT pinned: its processes run on either core, beside the server "
        f"and wrk; its processes on this machine: {local}",
    ]


# -- scenarios ------------------------------------------------------------------------------


def store_env(store: str, workdir: Path) -> dict[str, str]:
    """The environment of a memory or SQLite store (PostgreSQL's: ``postgres_env``)."""
    if store == "sqlite":
        return {"BENCH_STORE": "sqlite", "BENCH_DB": str(workdir / "oauth.db")}
    return {"BENCH_STORE": "memory"}


def issue_token(http: httpx.Client) -> str:
    response = http.post(
        "/token", data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, CLIENT_SECRET)
    )
    if response.status_code != 200:
        raise BenchError(f"POST /token: {response.status_code} {response.text}")
    token: str = response.json()["access_token"]
    return token


#: Each server's introspection path and what its request adds to ``token=...``: aioauth
#: looks a token up as an access token only with ``token_type_hint=access_token``.
INTROSPECTION: Mapping[Peer | None, tuple[str, str]] = {
    None: ("/introspect", ""),
    "aioauth": ("/introspect", "&token_type_hint=access_token"),
    "oidc-provider": ("/token/introspection", ""),
}


def prepare(kind: Kind, server: Server, workdir: Path, peer: Peer | None = None) -> Path:
    """Check the server answers this scenario's request; write its wrk script."""
    form = "application/x-www-form-urlencoded"
    with httpx.Client(base_url=server.url, timeout=10) as http:
        if kind == "hello":
            response = http.get("/")
            if response.status_code != 200 or response.text != "hello":
                raise BenchError(f"GET /: {response.status_code} {response.text!r}")
            return write_lua(workdir / "hello.lua", "GET", "/")
        token = issue_token(http)
        if kind == "token":
            auth = _basic(CLIENT_ID, CLIENT_SECRET)
            headers = {"Content-Type": form, "Authorization": auth}
            return write_lua(
                workdir / "token.lua", "POST", "/token", "grant_type=client_credentials", headers
            )
        path, extra = INTROSPECTION[peer]
        body = f"token={quote(token, safe='')}{extra}"
        auth = _basic(RESOURCE_SERVER_ID, RESOURCE_SERVER_SECRET)
        response = http.post(
            path, content=body, headers={"Content-Type": form, "Authorization": auth}
        )
        if response.status_code != 200 or response.json().get("active") is not True:
            raise BenchError(f"POST {path}: {response.status_code} {response.text}")
        headers = {"Content-Type": form, "Authorization": auth}
        return write_lua(workdir / "introspect.lua", "POST", path, body, headers)


@dataclass(slots=True)
class Outcome:
    scenario: Scenario
    results: list[WrkResult] = dataclasses.field(default_factory=list)
    failures: list[str] = dataclasses.field(default_factory=list)
    server_logs: list[str] = dataclasses.field(default_factory=list)
    #: Cores PostgreSQL kept busy during each measured run (CPU seconds / duration).
    db_cores: list[float] = dataclasses.field(default_factory=list)

    def median(self, values: Sequence[float]) -> float:
        return statistics.median(values) if values else float("nan")

    @property
    def rps(self) -> float:
        return self.median([r.rps for r in self.results])


def run_round(scenario: Scenario, outcome: Outcome, args: argparse.Namespace, tmp: Path) -> None:
    workdir = Path(tempfile.mkdtemp(prefix=f"{scenario.name}-", dir=tmp))
    try:
        with contextlib.ExitStack() as stack:  # unwinds in reverse: server, then schema
            if scenario.store == "postgres":
                schema = stack.enter_context(postgres_schema(postgres_url()))
                env = postgres_env(schema, args.postgres_pool)
            else:
                env = store_env(scenario.store, workdir)
            env |= dict(scenario.env)
            peer = scenario.peer
            command = peer_command(peer, args.peers, args.server_cpu) if peer else None
            server = stack.enter_context(
                serve(scenario.app, env, workdir, args.server_cpu, command)
            )
            try:
                lua = prepare(scenario.kind, server, workdir, peer)
                load = {"connections": args.connections, "cpu": args.wrk_cpu}
                run_wrk(server.url, lua, duration=WARMUP_SECONDS, **load)
                server.check_alive()
                db_before = postgres_cpu() if scenario.store == "postgres" else {}
                result = run_wrk(server.url, lua, duration=args.duration, **load)
                db_used = cpu_since(db_before, postgres_cpu()) if db_before else None
                server.check_alive()
            finally:
                log = server.log().strip()
                if log:
                    outcome.server_logs.append(log)
        outcome.results.append(result)
        db = ""
        if db_used is not None:
            outcome.db_cores.append(db_used / (result.duration_us / 1e6))
            db = f"  PostgreSQL {outcome.db_cores[-1]:.2f} cores"
        print(
            f"  {scenario.name:<19} {result.rps:>9.0f} req/s  p50 {result.p50_us / 1e3:6.2f} ms"
            f"  p99 {result.p99_us / 1e3:6.2f} ms  errors {result.errors}{db}",
            flush=True,
        )
    except (BenchError, httpx.HTTPError) as exc:
        outcome.failures.append(str(exc))
        print(f"  {scenario.name:<19} FAILED: {str(exc).splitlines()[0]}", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass(slots=True)
class MemoryReport:
    idle_kib: int
    samples: list[tuple[float, int]]
    result: WrkResult
    server_log: str
    store: Store = "memory"

    @property
    def levels_off(self) -> bool | None:
        """Whether RSS stopped growing: the second half's peak within 5 % (and 1 MiB)
        of the first half's; None without two samples."""
        kib = [k for _, k in self.samples]
        if len(kib) < 2:
            return None
        half = len(kib) // 2
        return max(kib[half:]) <= max(kib[:half]) * 1.05 + 1024


def run_memory(args: argparse.Namespace, tmp: Path, store: Store = "memory") -> MemoryReport:
    """Token issuance for MEMORY_SECONDS with short-lived tokens, sampling the server's RSS."""
    workdir = Path(tempfile.mkdtemp(prefix=f"memory-{store}-", dir=tmp))
    with contextlib.ExitStack() as stack:  # unwinds in reverse: server, then schema
        if store == "postgres":
            schema = stack.enter_context(postgres_schema(postgres_url()))
            env = postgres_env(schema, args.postgres_pool)
        else:
            env = store_env(store, workdir)
        env |= {"BENCH_ACCESS_TOKEN_LIFETIME": "2", "BENCH_PURGE_INTERVAL": "1"}
        return _sample_memory(args, env, workdir, store)


def _sample_memory(
    args: argparse.Namespace, env: dict[str, str], workdir: Path, store: Store
) -> MemoryReport:
    duration = args.memory_duration
    with serve("apps:oauth", env, workdir, args.server_cpu) as server:
        lua = prepare("token", server, workdir)
        idle = rss_kib(server.proc.pid)
        samples: list[tuple[float, int]] = []
        load = {"duration": duration, "connections": args.connections, "cpu": args.wrk_cpu}
        with wrk(server.url, lua, **load) as proc:
            start = time.monotonic()
            while proc.poll() is None:
                next_sample = start + len(samples) + 1
                time.sleep(max(0.0, next_sample - time.monotonic()))
                if proc.poll() is None:
                    server.check_alive()
                    samples.append((time.monotonic() - start, rss_kib(server.proc.pid)))
            result = finish_wrk(proc, duration)
        server.check_alive()
        log = server.log().strip()
    return MemoryReport(idle, samples, result, log, store)


# -- reporting ------------------------------------------------------------------------------


def environment(args: argparse.Namespace) -> list[str]:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    cpu_model = platform.processor() or "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu_model = line.partition(":")[2].strip()
                break
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    wrk_line = (wrk_version.stdout or wrk_version.stderr).splitlines()[0:1] or ["wrk ?"]
    load_avg = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"- python: {platform.python_implementation()} {platform.python_version()} "
        f"({sys.executable})",
        f"- uvicorn {version('uvicorn')}: one worker, --loop uvloop ({version('uvloop')}), "
        f"--http httptools ({version('httptools')}), --no-access-log, --log-level warning",
        f"- load: {' '.join(wrk_line[0].split()[:2])}, -t1 -c{args.connections} "
        f"-d{args.duration}s --latency, {WARMUP_SECONDS} s warm-up before every measured run",
        f"- CPU: {cpu_model}, {os.cpu_count()} cores; server pinned to core {args.server_cpu} "
        f"(taskset -c {args.server_cpu}), wrk to core {args.wrk_cpu} "
        f"(taskset -c {args.wrk_cpu}); load average before the run: {load_avg}",
        f"- rounds: {args.rounds}, interleaved, each on a fresh server; medians reported",
    ]


def table(outcomes: Sequence[Outcome]) -> list[str]:
    bare = next((o for o in outcomes if o.scenario is BARE and o.results), None)
    lines = [
        "| scenario | store | req/s (median) | p50 ms | p99 ms | errors | ratio to bare "
        "| target | result |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for o in outcomes:
        s = o.scenario
        target = f"≥ {s.target:.2f}" if s.target is not None else "—"
        if not o.results:
            lines.append(f"| {s.name} | {s.store} | — | — | — | — | — | {target} | FAILED |")
            continue
        ratio = o.rps / bare.rps if bare is not None else float("nan")
        if s.target is None:
            verdict = "—"
        elif bare is None:
            verdict = "n/a"
        else:
            verdict = "PASS" if ratio >= s.target else "BELOW"
        if o.failures:
            verdict += f" ({len(o.failures)} round(s) failed)"
        p50 = o.median([r.p50_us / 1e3 for r in o.results])
        p99 = o.median([r.p99_us / 1e3 for r in o.results])
        errors = sum(r.errors for r in o.results)
        lines.append(
            f"| {s.name} | {s.store} | {o.rps:,.0f} | {p50:.2f} | {p99:.2f} | {errors} "
            f"| {ratio:.2f} | {target} | {verdict} |"
        )
    return lines


def rounds_table(outcomes: Sequence[Outcome], rounds: int) -> list[str]:
    header = " | ".join(f"round {i + 1}" for i in range(rounds))
    lines = [f"| scenario | {header} |", "| --- |" + " ---: |" * rounds]
    for o in outcomes:
        cells = [f"{r.rps:,.0f}" for r in o.results]
        cells += ["failed"] * (rounds - len(cells))
        lines.append(f"| {o.scenario.name} | {' | '.join(cells)} |")
    return lines


def peers_environment(peers: Peers, cpu: int) -> list[str]:
    v = peers.versions
    return [
        f"- peers (bench/peers/, installed under {peers.python.parents[2]}): aioauth "
        f"{v['aioauth']} in its own venv under the same uvicorn command and versions; "
        f"oidc-provider {v['oidc-provider']} on Node.js {v['node']} (NODE_ENV=production, "
        f"taskset -c {cpu}); both on their in-memory stores",
    ]


def peer_lines(outcomes: Sequence[Outcome]) -> list[str]:
    """``<kind>-sqlite`` (durable) against each peer's ``<kind>-<peer>``, with its target."""
    measured = {o.scenario.name: o for o in outcomes if o.results}
    lines = []
    for kind in ("token", "introspect"):
        ours = measured.get(f"{kind}-sqlite")
        for peer in ("aioauth", "oidc-provider"):
            theirs = measured.get(f"{kind}-{peer}")
            if ours is None or theirs is None:
                continue
            ratio = ours.rps / theirs.rps
            line = f"- {kind}-sqlite / {kind}-{peer}: {ratio:.2f}"
            target = PEER_TARGETS.get(peer)
            if target is not None:
                line += f" (target ≥ {target:.2f}: {'PASS' if ratio >= target else 'BELOW'})"
            lines.append(line)
    return lines


def database_lines(outcomes: Sequence[Outcome]) -> list[str]:
    """How much of the two cores PostgreSQL (unpinned) took from the server and wrk."""
    lines = []
    for o in outcomes:
        if o.db_cores:
            rounds = ", ".join(f"{c:.2f}" for c in o.db_cores)
            lines.append(
                f"- {o.scenario.name}: PostgreSQL's processes used {o.median(o.db_cores):.2f} "
                f"cores (median; per round {rounds}) of the 2 that the server and wrk also use"
            )
    return lines


def error_details(outcomes: Sequence[Outcome]) -> list[str]:
    lines: list[str] = []
    for o in outcomes:
        for i, r in enumerate(o.results, 1):
            if r.errors:
                statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r.statuses.items()))
                lines.append(
                    f"- {o.scenario.name} round {i}: {r.socket_errors} socket errors, "
                    f"{r.non2xx} non-2xx ({statuses or 'none'})"
                )
        lines += [f"- {o.scenario.name} failed: {f}" for f in o.failures]
        lines += [
            f"- {o.scenario.name} server output:\n```\n{_tail(log)}\n```" for log in o.server_logs
        ]
    return lines


def memory_lines(report: MemoryReport, args: argparse.Namespace) -> list[str]:
    mib = [kib / 1024 for _, kib in report.samples]
    r = report.result
    store = {"memory": "MemoryStorage", "sqlite": "SQLiteStorage", "postgres": "PostgresStorage"}
    lines = [
        f"Token issuance on {store.get(report.store, report.store)}, "
        "access_token_lifetime=2 s, purge_interval=1 s, "
        f"{args.memory_duration} s under wrk -c{args.connections}: {r.requests:,} tokens "
        f"({r.rps:,.0f} req/s), {r.errors} errors.",
        "",
    ]
    if not mib:
        return [*lines, "No RSS samples (the load ended within a second)."]
    half = len(mib) // 2
    lines += [
        "| RSS MiB | idle | first (1 s) | peak | last | peak of 1st half | peak of 2nd half |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| server | {report.idle_kib / 1024:.1f} | {mib[0]:.1f} | {max(mib):.1f} | {mib[-1]:.1f} "
        f"| {max(mib[: half or 1]):.1f} | {max(mib[half:]):.1f} |",
        "",
        "Samples (MiB, one a second): " + " ".join(f"{m:.1f}" for m in mib),
        "",
        "Levels off (peak of the 2nd half within 5 % + 1 MiB of the 1st half's): "
        + ("yes" if report.levels_off else "NO"),
    ]
    if r.errors:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r.statuses.items()))
        lines.append(f"Errors: {r.socket_errors} socket, {r.non2xx} non-2xx ({statuses}).")
    if report.server_log:
        lines.append(f"Server output:\n```\n{_tail(report.server_log)}\n```")
    return lines


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per scenario")
    parser.add_argument(
        "--only", nargs="+", choices=NAMES, metavar="NAME", help=f"one or more of {NAMES}"
    )
    parser.add_argument(
        "--memory-duration", type=int, default=MEMORY_SECONDS, help="seconds of the memory run"
    )
    parser.add_argument(
        "--memory-stores",
        nargs="+",
        choices=("memory", "sqlite", "postgres"),
        default=("memory", "sqlite", "postgres"),
        metavar="STORE",
        help="the stores of the memory run, each in turn (all three)",
    )
    parser.add_argument("--server-cpu", type=int, default=0, help="core the server runs on")
    parser.add_argument("--wrk-cpu", type=int, default=1, help="core wrk runs on")
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="use the peers already installed (bench/peers/install.py) instead of installing",
    )
    add_postgres_pool_argument(parser)
    args = parser.parse_args(argv)
    if min(args.duration, args.connections, args.rounds, args.memory_duration) < 1:
        parser.error("--duration, --connections, --rounds and --memory-duration must be >= 1")
    if args.postgres_pool < 1:
        parser.error("--postgres-pool must be >= 1")
    if args.server_cpu == args.wrk_cpu:
        parser.error("the server and wrk must run on different cores")
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        parser.error(f"not installed: {', '.join(missing)}")
    cores = os.sched_getaffinity(0)
    if not {args.server_cpu, args.wrk_cpu} <= cores:
        parser.error(f"cores {args.server_cpu} and {args.wrk_cpu} must be among {sorted(cores)}")
    return args


def add_postgres_pool_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--postgres-pool",
        type=int,
        default=DEFAULT_POSTGRES_POOL,
        metavar="N",
        help=f"connections in PostgresStorage's pool ({DEFAULT_POSTGRES_POOL}); "
        "the database is BENCH_POSTGRES_URL",
    )


POSTGRES_MISSING = (
    "(start PostgreSQL, point BENCH_POSTGRES_URL at one, "
    "or leave the postgres scenarios out with --only)"
)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every cleanup, like Ctrl-C


@dataclass(slots=True)
class Measured:
    """What one run measured: its environment, the throughput scenarios, the memory runs."""

    header: list[str]
    outcomes: list[Outcome]
    memory: list[MemoryReport | str]

    @property
    def failed(self) -> bool:
        return any(o.failures for o in self.outcomes) or any(
            isinstance(m, str) for m in self.memory
        )


def measure(args: argparse.Namespace) -> Measured | int:
    """Run the scenarios ``args`` select; an exit status when they cannot start."""
    names = set(args.only or NAMES)
    selected = [s for s in SCENARIOS if s.name in names]
    if selected and BARE not in selected:
        selected.insert(0, BARE)  # ratios need the ceiling, measured alongside
        print("(bare added: the ratios need it)")
    header = environment(args)
    memory_postgres = MEMORY in names and "postgres" in args.memory_stores
    if memory_postgres or any(s.store == "postgres" for s in selected):
        try:
            header += postgres_environment(args.postgres_pool)
        except BenchError as exc:
            print(f"error: {exc}\n{POSTGRES_MISSING}", file=sys.stderr)
            return 2
    if any(s.peer for s in selected):
        try:
            args.peers = install_peers(install=not args.no_install)
        except InstallError as exc:
            print(f"error: {exc}\n(or leave the peer scenarios out with --only)", file=sys.stderr)
            return 2
        header += peers_environment(args.peers, args.server_cpu)
    with tempfile.TemporaryDirectory(prefix="asgi-oauth-bench-") as tmp_name:
        tmp = Path(tmp_name)
        outcomes = [Outcome(s) for s in selected]
        for round_no in range(1, args.rounds + 1 if selected else 1):
            print(f"round {round_no}/{args.rounds}", flush=True)
            for outcome in outcomes:
                run_round(outcome.scenario, outcome, args, tmp)
        memory: list[MemoryReport | str] = []
        for store in args.memory_stores if MEMORY in names else ():
            print(f"memory ({store}): {args.memory_duration} s of token issuance", flush=True)
            try:
                memory.append(run_memory(args, tmp, store))
            except (BenchError, httpx.HTTPError) as exc:
                memory.append(f"{store} FAILED: {exc}")
    return Measured(header, outcomes, memory)


def report_lines(measured: Measured, args: argparse.Namespace) -> list[str]:
    load_after = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    report = ["", "## asgi_oauth load benchmark", "", *measured.header]
    report += [f"- load average after the run: {load_after}", ""]
    outcomes = measured.outcomes
    if outcomes:
        report += [
            *table(outcomes),
            "",
            "Per round, req/s:",
            "",
            *rounds_table(outcomes, args.rounds),
        ]
        against = peer_lines(outcomes)
        if against:
            title = "asgi_oauth on SQLite against the peers (ratios of median req/s):"
            report += ["", title, "", *against]
        database = database_lines(outcomes)
        if database:
            report += ["", "PostgreSQL (not pinned) during the measured runs:", "", *database]
        details = error_details(outcomes)
        report += ["", "Errors and server output:", "", *(details or ["- none"])]
    if measured.memory:
        report += ["", "## memory: is the store bounded when tokens expire?"]
    for each in measured.memory:
        report += ["", *([each] if isinstance(each, str) else memory_lines(each, args))]
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        measured = measure(args)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    if isinstance(measured, int):
        return measured
    print("\n".join(report_lines(measured, args)))
    return 1 if measured.failed else 0


INTERRUPTED = "\ninterrupted: servers stopped, temporary files and schemas removed"


if __name__ == "__main__":
    sys.exit(main())

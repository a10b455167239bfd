"""Middleware benchmark: a Starlette route behind BearerTokenMiddleware, as a ratio to bare.

Usage (from anywhere; paths are resolved from this file)::

    python bench/middleware.py [--duration 10] [--connections 64] [--rounds 3] [--profile]
                               [--only NAME ...] [--cache-ttl SECONDS] [--postgres-pool N]

Scenarios measured in one run on the same cores, each round on fresh servers
(and a fresh SQLite file or PostgreSQL schema), interleaved; the table shows
medians (see ``bench/README.md``):

- ``bare``: ``GET /api/hello`` → ``{"hello": "world"}``, a plain Starlette route;
- ``bare-auth``: the same, sent the protected scenarios' ``Authorization`` header;
- ``local``, ``local-postgres``: the same app behind ``BearerTokenMiddleware`` with a
  ``LocalIntrospector`` (the authorization server in the same process, on SQLite
  or on PostgreSQL);
- ``local-jwt``: ``local`` with a JWT access token (RFC 9068), which the
  ``LocalIntrospector`` checks locally (signature, claims, revocation list);
- ``local-jwt-uncached``: the same with 1000 distinct JWTs sent in turn and the
  introspector's cache too small to hold them: every request verifies an RS256
  signature (the cost of a JWT seen for the first time);
- ``remote``, ``remote-postgres``: the same app behind ``BearerTokenMiddleware``
  with a ``RemoteIntrospector`` asking ``apps:oauth`` (on SQLite or PostgreSQL)
  in another process over HTTP.

wrk sends one valid access token with every request; the introspectors' caches
are warm (a warm-up run precedes every measured run), unless ``--cache-ttl``
changes them (``0``: every request misses the cache). It reuses ``run.py``'s
uvicorn command, wrk scripts and environment report. Before each round's
warm-up it waits (a while) for the machine to be quiet, and it reports how much
CPU other processes took during each measured run. ``--profile`` adds, after
the measurements, one run per scenario under ``py-spy`` and says where the
middleware's time goes.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import linecache
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
from run import (
    LUA_REPORT,
    POSTGRES_MISSING,
    WARMUP_SECONDS,
    BenchError,
    Server,
    Store,
    WrkResult,
    add_postgres_pool_argument,
    cpu_since,
    environment,
    issue_token,
    postgres_cpu,
    postgres_env,
    postgres_environment,
    postgres_schema,
    postgres_url,
    run_wrk,
    serve,
    write_lua,
)

import asgi_oauth.middleware.bearer
from asgi_oauth.crypto import time_ordered_token

APP = "middleware_apps:app"
AS_APP = "apps:oauth"
PATH = "/api/hello"
TOKEN_WAIT_SECONDS = 30
PROFILE_RATE = 250
#: The uncached JWT scenario: this many distinct tokens sent in turn, through caches
#: holding at most ``UNCACHED_CACHE_SIZE`` (cleared when full), so none is still
#: cached when its turn comes again.
UNCACHED_TOKENS = 1000
UNCACHED_CACHE_SIZE = 100

Name = Literal[
    "bare",
    "bare-auth",
    "local",
    "local-jwt",
    "local-jwt-uncached",
    "local-postgres",
    "remote",
    "remote-postgres",
]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: Name
    introspector: str
    #: The store of the authorization server behind the introspector.
    store: Store = "-"
    #: The least acceptable ratio of this scenario's median req/s to bare's.
    target: float | None = None
    #: ``middleware_apps``' ``BENCH_SCENARIO`` when it is not ``kind``.
    app: str | None = None
    #: Distinct access tokens wrk sends in turn.
    tokens: int = 1
    #: The local introspector's ``max_cache_size``; None: its default.
    max_cache_size: int | None = None

    @property
    def kind(self) -> str:
        """How the scenario is set up: ``bare``, ``local`` or ``remote``."""
        return self.name.partition("-")[0]

    @property
    def jwt(self) -> bool:
        return self.app == "local-jwt"

    @property
    def protected(self) -> bool:
        return self.kind in ("local", "remote")


BARE = Scenario("bare", "—")
#: The bare app, sent the same Authorization header as the protected ones (nothing
#: reads it): what carrying the header costs uvicorn, apart from the middleware.
BARE_AUTH = Scenario("bare-auth", "— (header sent, not read)")
#: With a warm cache the store is not on the hot path: the same targets hold for both.
SCENARIOS = (
    BARE,
    BARE_AUTH,
    Scenario("local", "LocalIntrospector (SQLite, same process)", "sqlite", 0.90),
    #: The issue's target is "as fast as warm-cache introspection": local's target, and
    #: the comparison table below the main one.
    Scenario(
        "local-jwt",
        "LocalIntrospector, one JWT access token checked here (SQLite)",
        "sqlite",
        0.90,
        app="local-jwt",
    ),
    Scenario(
        "local-jwt-uncached",
        f"LocalIntrospector, {UNCACHED_TOKENS} JWTs in turn, none cached: RS256 verified "
        "per request (SQLite)",
        "sqlite",
        app="local-jwt",
        tokens=UNCACHED_TOKENS,
        max_cache_size=UNCACHED_CACHE_SIZE,
    ),
    Scenario("local-postgres", "LocalIntrospector (PostgreSQL, same process)", "postgres", 0.90),
    Scenario("remote", "RemoteIntrospector (HTTP to apps:oauth, SQLite)", "sqlite", 0.85),
    Scenario(
        "remote-postgres", "RemoteIntrospector (HTTP to apps:oauth, PostgreSQL)", "postgres", 0.85
    ),
)
NAMES = tuple(s.name for s in SCENARIOS)


@dataclass(slots=True)
class Outcome:
    scenario: Scenario
    results: list[WrkResult] = dataclasses.field(default_factory=list)
    #: The round each result comes from.
    rounds: list[int] = dataclasses.field(default_factory=list)
    #: Share of both cores' time other processes used during each measured run.
    foreign: list[float] = dataclasses.field(default_factory=list)
    failures: list[str] = dataclasses.field(default_factory=list)
    #: Non-2xx answers or socket errors of a protected route, warm-up included.
    errors: list[str] = dataclasses.field(default_factory=list)
    server_logs: list[str] = dataclasses.field(default_factory=list)
    #: CPU seconds the authorization server used during each measured run (remote only).
    as_cpu: list[float] = dataclasses.field(default_factory=list)
    #: Cores PostgreSQL kept busy during each measured run (PostgreSQL scenarios only).
    db_cores: list[float] = dataclasses.field(default_factory=list)
    #: CPU microseconds the measured server spent per request, each measured run: on a
    #: shared machine this moves far less than throughput, which neighbours' load sways.
    cpu_us: list[float] = dataclasses.field(default_factory=list)
    profile: list[str] = dataclasses.field(default_factory=list)

    def median(self, values: Sequence[float]) -> float:
        return statistics.median(values) if values else float("nan")

    @property
    def rps(self) -> float:
        return self.median([r.rps for r in self.results])


# -- CPU accounting -------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    # fields[0] is the state (field 3 of stat(5)): utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of every core since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = values
    busy = user + nice + system + irq + softirq + steal
    tick = os.sysconf("SC_CLK_TCK")
    return busy / tick, (busy + idle + iowait) / tick


def children_cpu() -> float:
    """CPU seconds of the waited-for children (wrk, once it has finished)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_for_quiet(threshold: float, limit: float) -> tuple[float, float]:
    """Wait until the machine was at most ``threshold`` busy for one second (our servers
    idle), or ``limit`` seconds passed; returns (seconds waited, last busy share)."""
    started = time.monotonic()
    while True:
        busy0, total0 = machine_busy()
        time.sleep(1)
        busy1, total1 = machine_busy()
        share = (busy1 - busy0) / max(total1 - total0, 1e-9)
        waited = time.monotonic() - started
        if share <= threshold or waited >= limit:
            return waited, share


# -- one round of one scenario --------------------------------------------------------------


def wait_for_tokens(path: Path, server: Server) -> list[str]:
    """The tokens the ``local`` apps write at startup, one per line."""
    deadline = time.monotonic() + TOKEN_WAIT_SECONDS
    while not path.exists():
        server.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"no token in {path} after {TOKEN_WAIT_SECONDS} s:\n{server.log()}")
        time.sleep(0.05)
    return path.read_text().split()


def prepare(scenario: Scenario, server: Server, tokens: Sequence[str], workdir: Path) -> Path:
    """Check the route answers as it should (and refuses without a token); write the script.

    With several tokens, the first and the last are checked, and wrk sends them in turn.
    """
    with httpx.Client(base_url=server.url, timeout=10) as http:
        checked: list[str | None] = [tokens[0], tokens[-1]] if tokens else [None]
        for token in dict.fromkeys(checked):
            headers = {} if token is None else {"Authorization": f"Bearer {token}"}
            response = http.get(PATH, headers=headers)
            if response.status_code != 200 or response.json() != {"hello": "world"}:
                raise BenchError(f"GET {PATH}: {response.status_code} {response.text!r}")
        if scenario.protected:
            refused = http.get(PATH)
            if refused.status_code != 401:
                raise BenchError(f"GET {PATH} without a token: {refused.status_code}, not 401")
    script = workdir / f"{scenario.name}.lua"
    if len(tokens) > 1:
        return write_rotating_lua(script, tokens)
    headers = {"Authorization": f"Bearer {tokens[0]}"} if tokens else {}
    return write_lua(script, "GET", PATH, headers=headers)


_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")


def write_rotating_lua(script: Path, tokens: Sequence[str]) -> Path:
    """A wrk script sending ``GET PATH`` with each token in turn; each request is
    formatted once per wrk thread and then reused, so wrk's Lua costs little."""
    for token in tokens:
        if _TOKEN.fullmatch(token) is None:
            raise BenchError(f"not a bearer token: {token[:40]!r}")
    listed = ",\n".join(f'  "{token}"' for token in tokens)
    lines = [
        "-- generated by bench/middleware.py: one token after another",
        'wrk.method = "GET"',
        f'wrk.path = "{PATH}"',
        f"local tokens = {{\n{listed}\n}}",
        "local formatted = {}",
        "local turn = 0",
        "function request()",
        "  turn = turn % #tokens + 1",
        "  local ready = formatted[turn]",
        "  if ready == nil then",
        '    wrk.headers["Authorization"] = "Bearer " .. tokens[turn]',
        "    ready = wrk.format()",
        "    formatted[turn] = ready",
        "  end",
        "  return ready",
        "end",
    ]
    script.write_text("\n".join(lines) + "\n" + LUA_REPORT)
    return script


def check_errors(scenario: Scenario, outcome: Outcome, phase: str, result: WrkResult) -> None:
    if not scenario.protected or not result.errors:
        return
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(result.statuses.items()))
    message = (
        f"{scenario.name} {phase}: {result.non2xx} non-2xx ({statuses or 'none'}), "
        f"{result.socket_errors} socket errors"
    )
    outcome.errors.append(message)
    print(f"ERROR: protected route failed under load: {message}", flush=True)


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise BenchError("--profile needs py-spy (pip install py-spy)")
    return found


def run_round(
    outcome: Outcome, args: argparse.Namespace, tmp: Path, round_no: int, *, profile: bool = False
) -> None:
    """Fresh servers, a sanity check, a warm-up, one measured wrk run (under py-spy if
    ``profile``: then only the profile is kept, not the throughput)."""
    scenario = outcome.scenario
    workdir = Path(tempfile.mkdtemp(prefix=f"{scenario.name}-", dir=tmp))
    servers: list[Server] = []
    try:
        with contextlib.ExitStack() as stack:  # unwinds in reverse: servers, then the schema
            env: dict[str, str] = {"BENCH_SCENARIO": scenario.app or scenario.kind}
            if args.cache_ttl is not None:
                env["BENCH_CACHE_TTL"] = str(args.cache_ttl)
            if scenario.tokens > 1:
                env["BENCH_TOKENS"] = str(scenario.tokens)
            if scenario.max_cache_size is not None:
                env["BENCH_MAX_CACHE_SIZE"] = str(scenario.max_cache_size)
            store_env: dict[str, str] = {}
            if scenario.store == "sqlite":
                db = "local.db" if scenario.kind == "local" else "as.db"
                store_env = {"BENCH_STORE": "sqlite", "BENCH_DB": str(workdir / db)}
            elif scenario.store == "postgres":
                schema = stack.enter_context(postgres_schema(postgres_url()))
                store_env = postgres_env(schema, args.postgres_pool)
            tokens: list[str] = []
            if scenario is BARE_AUTH:
                tokens = [time_ordered_token()]  # the shape and length of a real one
            auth_server: Server | None = None
            token_file = workdir / "token"
            if scenario.kind == "local":
                env |= {**store_env, "BENCH_TOKEN_FILE": str(token_file)}
            elif scenario.kind == "remote":
                as_env = store_env
                auth_server = stack.enter_context(serve(AS_APP, as_env, workdir, args.as_cpu))
                servers.append(auth_server)
                env["BENCH_INTROSPECTION_URL"] = auth_server.url + "/introspect"
                with httpx.Client(base_url=auth_server.url, timeout=10) as http:
                    tokens = [issue_token(http)]
            server = stack.enter_context(serve(APP, env, workdir, args.server_cpu))
            servers.append(server)
            if scenario.kind == "local":
                tokens = wait_for_tokens(token_file, server)
                if len(tokens) != scenario.tokens:
                    raise BenchError(f"{len(tokens)} tokens in {token_file}, not {scenario.tokens}")
            lua = prepare(scenario, server, tokens, workdir)
            waited, share = wait_for_quiet(args.quiet_threshold, args.quiet_timeout)
            if share > args.quiet_threshold:
                print(f"  (still {share:.0%} busy after waiting {waited:.0f} s)", flush=True)
            load = {"connections": args.connections, "cpu": args.wrk_cpu}
            warmup = run_wrk(server.url, lua, duration=WARMUP_SECONDS, **load)
            check_errors(scenario, outcome, "warm-up", warmup)

            spy: subprocess.Popen[bytes] | None = None
            raw = workdir / "profile.txt"
            if profile:
                spy = subprocess.Popen(
                    [
                        *("taskset", "-c", str(args.wrk_cpu), py_spy(), "record"),
                        *("-p", str(server.proc.pid), "-d", str(args.duration)),
                        *("-r", str(PROFILE_RATE), "-f", "raw", "-o", str(raw)),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            as_before = cpu_seconds(auth_server.proc.pid) if auth_server else 0.0
            db_before = postgres_cpu() if scenario.store == "postgres" else None
            server_before = cpu_seconds(server.proc.pid)
            busy_before, total_before = machine_busy()
            wrk_before = children_cpu()
            result = run_wrk(server.url, lua, duration=args.duration, **load)
            server_cpu = cpu_seconds(server.proc.pid) - server_before
            busy_after, total_after = machine_busy()
            ours = children_cpu() - wrk_before + cpu_seconds(server.proc.pid) - server_before
            db_used = None if db_before is None else cpu_since(db_before, postgres_cpu())
            if db_used is not None:
                ours += db_used  # the database works for this scenario: not a neighbour
            if auth_server is not None:
                as_used = cpu_seconds(auth_server.proc.pid) - as_before
                ours += as_used
                if not profile:
                    outcome.as_cpu.append(as_used)
            foreign = max(0.0, busy_after - busy_before - ours) / (total_after - total_before)
            check_errors(scenario, outcome, "measured run", result)
            if spy is not None:
                _, spy_err = spy.communicate(timeout=30)
                if spy.returncode != 0:
                    raise BenchError(f"py-spy failed: {spy_err.decode(errors='replace')}")
                outcome.profile = summarize_profile(raw.read_text(), args.top)
            for running in servers:
                running.check_alive()
        if profile:
            print(f"  {scenario.name:<15} profiled ({result.rps:.0f} req/s under py-spy)")
            return
        outcome.results.append(result)
        outcome.cpu_us.append(server_cpu / max(result.requests, 1) * 1e6)
        outcome.rounds.append(round_no)
        outcome.foreign.append(foreign)
        db = ""
        if db_used is not None:
            outcome.db_cores.append(db_used / (result.duration_us / 1e6))
            db = f"  PostgreSQL {outcome.db_cores[-1]:.2f} cores"
        print(
            f"  {scenario.name:<15} {result.rps:>9.0f} req/s  p50 {result.p50_us / 1e3:6.2f} ms"
            f"  p99 {result.p99_us / 1e3:6.2f} ms  errors {result.errors}"
            f"  other processes {foreign:.0%} of the CPUs{db}",
            flush=True,
        )
    except (BenchError, httpx.HTTPError, ValueError, subprocess.SubprocessError) as exc:
        outcome.failures.append(str(exc))
        print(f"  {scenario.name:<15} FAILED: {str(exc).splitlines()[0]}", flush=True)
    finally:
        outcome.server_logs += [log for s in servers if (log := s.log().strip())]
        shutil.rmtree(workdir, ignore_errors=True)


# -- profiles -------------------------------------------------------------------------------

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?):(?P<line>\d+)\)$")


def _downstream_line() -> int:
    """The line of ``BearerTokenMiddleware.__call__`` that calls the wrapped app."""
    source = Path(asgi_oauth.middleware.bearer.__file__).read_text().splitlines()
    lines = [
        i for i, text in enumerate(source, 1) if "await self.app(scope, receive, send)" in text
    ]
    return lines[-1]


def _source_line(file: str, line: int) -> str:
    """The text of ``line`` in ``file``, a path as py-spy prints it (relative to sys.path)."""
    root = Path(asgi_oauth.middleware.bearer.__file__).parents[2]
    for directory in [str(root), *sys.path]:
        path = Path(directory or ".") / file
        if path.is_file():
            return linecache.getline(str(path), line).strip()
    return "?"


def summarize_profile(raw: str, top: int) -> list[str]:
    """Where the server's main thread spent its samples, and the middleware's own lines.

    A sample is the middleware's own when its stack holds a frame of
    ``asgi_oauth/middleware/`` but is not inside the wrapped app (the line of
    ``BearerTokenMiddleware.__call__`` that awaits it); the rest of the server's
    work (uvicorn, Starlette, the route, the event loop) is everything else.
    """
    downstream = f"asgi_oauth/middleware/bearer.py:{_downstream_line()})"
    total = own = 0
    own_lines: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    for entry in raw.splitlines():
        stack, _, count = entry.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if any("threading.py" in f for f in frames):
            continue  # another thread (SQLite's writer): not the event loop's time
        n = int(count)
        total += n
        leaf = _FRAME.match(frames[-1])
        leaf_file = leaf.group("file") if leaf else frames[-1]
        groups[leaf_file.split("/")[0] if "/" in leaf_file else leaf_file] += n
        if any(downstream in f for f in frames):
            continue
        if any("asgi_oauth/middleware/" in f for f in frames):
            own += n
            if leaf is not None:
                own_lines[f"{leaf.group('file')}:{leaf.group('line')}"] += n
    if not total:
        return ["no samples"]
    lines = [
        f"- {total} samples of the main thread; the middleware's own work (outside the "
        f"wrapped app): {own} samples, **{own / total:.1%}**",
        "- self time by package of the leaf frame: "
        + ", ".join(f"{name or '(native)'} {n / total:.1%}" for name, n in groups.most_common(6)),
    ]
    if own_lines:
        lines += ["", "| share of all samples | middleware line | source |", "| ---: | --- | --- |"]
        for where, n in own_lines.most_common(top):
            file, _, line = where.rpartition(":")
            text = _source_line(file, int(line)).replace("|", "\\|")
            lines.append(f"| {n / total:.1%} | {where} | `{text}` |")
    return lines


# -- reporting ------------------------------------------------------------------------------


def table(outcomes: Sequence[Outcome], cache_ttl: float | None) -> list[str]:
    bare = next((o for o in outcomes if o.scenario is BARE and o.results), None)
    lines = [
        "| scenario | introspector | req/s (median) | p50 ms | p99 ms | errors "
        "| ratio to bare | target | result |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for o in outcomes:
        s = o.scenario
        target = f"≥ {s.target:.2f}" if s.target is not None else "—"
        if not o.results:
            lines.append(f"| {s.name} | {s.introspector} | — | — | — | — | — | {target} | FAILED |")
            continue
        ratio = o.rps / bare.rps if bare is not None else float("nan")
        if s.target is None:
            verdict = "—"
        elif bare is None:
            verdict = "n/a"
        elif cache_ttl is not None:
            verdict = "n/a (the targets assume the default cache)"
        else:
            verdict = "PASS" if ratio >= s.target else "BELOW"
        if o.failures:
            verdict += f" ({len(o.failures)} round(s) failed)"
        if o.errors:
            verdict += " (ERROR: non-2xx under load)"
        p50 = o.median([r.p50_us / 1e3 for r in o.results])
        p99 = o.median([r.p99_us / 1e3 for r in o.results])
        errors = sum(r.errors for r in o.results)
        lines.append(
            f"| {s.name} | {s.introspector} | {o.rps:,.0f} | {p50:.2f} | {p99:.2f} | {errors} "
            f"| {ratio:.3f} | {target} | {verdict} |"
        )
    return lines


def ratios(outcomes: Sequence[Outcome]) -> list[str]:
    """The protected scenarios against both baselines, and paired within rounds."""
    by_name = {o.scenario.name: o for o in outcomes if o.results}
    lines = [
        "| scenario | ratio to bare | ratio to bare-auth (the middleware alone) "
        "| per-round ratios to bare (same round) | their median "
        "| CPU µs per request | CPU ratio (bare's CPU per request / this) |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for o in outcomes:
        if not o.scenario.protected or not o.results:
            continue
        cells = []
        for base in ("bare", "bare-auth"):
            other = by_name.get(base)
            cells.append(f"{o.rps / other.rps:.3f}" if other is not None else "—")
        bare = by_name.get("bare")
        paired = []
        if bare is not None:
            bare_rps = {n: r.rps for n, r in zip(bare.rounds, bare.results, strict=True)}
            paired = [
                r.rps / bare_rps[n]
                for n, r in zip(o.rounds, o.results, strict=True)
                if n in bare_rps
            ]
        listed = ", ".join(f"{p:.2f}" for p in paired) or "—"
        median = f"{statistics.median(paired):.3f}" if paired else "—"
        cpu = o.median(o.cpu_us)
        cpu_ratio = f"{bare.median(bare.cpu_us) / cpu:.3f}" if bare is not None else "—"
        lines.append(
            f"| {o.scenario.name} | {cells[0]} | {cells[1]} | {listed} | {median} "
            f"| {cpu:.1f} | {cpu_ratio} |"
        )
    return lines


#: The issue's target for a JWT checked locally: at least warm-cache introspection's speed.
JWT_TARGET = 1.00


def jwt_versus_introspection(outcomes: Sequence[Outcome]) -> list[str]:
    """The JWT scenarios against ``local`` (warm-cache introspection) of the same run."""
    by_name = {o.scenario.name: o for o in outcomes if o.results}
    local = by_name.get("local")
    jwts = [o for o in outcomes if o.scenario.jwt and o.results]
    if local is None or not jwts:
        return []
    lines = [
        "JWT access tokens against warm-cache introspection (`local`, same run):",
        "",
        "| scenario | req/s ratio to local (medians) | per-round ratios to local "
        "| their median | CPU ratio (local's CPU per request / this) | target | result |",
        "| --- | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    local_rps = {n: r.rps for n, r in zip(local.rounds, local.results, strict=True)}
    for o in jwts:
        paired = [
            r.rps / local_rps[n] for n, r in zip(o.rounds, o.results, strict=True) if n in local_rps
        ]
        median = statistics.median(paired) if paired else float("nan")
        cpu_ratio = local.median(local.cpu_us) / o.median(o.cpu_us)
        # Only the cached path is held to the issue's target; the uncached one shows
        # what verifying a signature per request costs.
        judged = o.scenario.tokens == 1
        target = f"≥ {JWT_TARGET:.2f}" if judged else "—"
        verdict = ("PASS" if median >= JWT_TARGET else "BELOW") if judged else "—"
        lines.append(
            f"| {o.scenario.name} | {o.rps / local.rps:.3f} "
            f"| {', '.join(f'{p:.2f}' for p in paired) or '—'} | {median:.3f} "
            f"| {cpu_ratio:.3f} | {target} | {verdict} |"
        )
    return [*lines, ""]


def rounds_table(outcomes: Sequence[Outcome], rounds: int) -> list[str]:
    header = " | ".join(f"round {i + 1}" for i in range(rounds))
    lines = [f"| scenario | {header} |", "| --- |" + " ---: |" * rounds]
    for o in outcomes:
        measured = zip(o.rounds, o.results, o.foreign, strict=True)
        by_round = {n: f"{r.rps:,.0f} ({f:.0%})" for n, r, f in measured}
        cells = [by_round.get(n, "failed") for n in range(rounds)]
        lines.append(f"| {o.scenario.name} | {' | '.join(cells)} |")
    return lines


def placement(args: argparse.Namespace, outcomes: Sequence[Outcome]) -> list[str]:
    as_cpu = [c for o in outcomes for c in o.as_cpu]
    used = (
        f"it used {max(as_cpu):.2f} CPU s at most in a {args.duration} s measured run"
        if as_cpu
        else "not measured"
    )
    if args.cache_ttl is None:
        cache = (
            f"introspectors' default cache; a {WARMUP_SECONDS} s warm-up fills it before "
            "each measured run"
        )
        why = (
            "- why the authorization server may share wrk's core: with a warm cache (default "
            "cache_ttl=10 s) the resource server asks it at most once per 10 s, all concurrent "
            f"requests for the token sharing that one call; {used}"
        )
    else:
        cache = (
            f"introspectors' cache_ttl={args.cache_ttl:g} s (--cache-ttl; 0: every request "
            "misses the cache, concurrent requests sharing one lookup); the targets assume "
            "the default cache and are not judged"
        )
        why = (
            "- the authorization server shares wrk's core (--as-cpu to move it); with this "
            f"cache it works during the whole run: {used}"
        )
    lines = [
        f"- resource server (the measured uvicorn): core {args.server_cpu}; wrk: core "
        f"{args.wrk_cpu}; remote's authorization server (`{AS_APP}` on the scenario's "
        f"store, same uvicorn settings): core {args.as_cpu}",
        why,
        "- protected routes: `BearerTokenMiddleware` defaults (every path needs a valid "
        f"token), `Authorization: Bearer <token>` on every request, {cache}",
        f"- noise: before each warm-up the script waits (≤ {args.quiet_timeout:.0f} s) for the "
        f"machine to be ≤ {args.quiet_threshold:.0%} busy for a second; the per-round table "
        "shows, in parentheses, the share of both cores other processes used during the "
        "measured run (/proc/stat busy time minus the servers' and wrk's own CPU time)",
        "- scenario order rotates from round to round",
    ]
    for o in outcomes:
        if o.db_cores:
            rounds = ", ".join(f"{c:.2f}" for c in o.db_cores)
            lines.append(
                f"- {o.scenario.name}: PostgreSQL (not pinned) used {o.median(o.db_cores):.2f} "
                f"cores during the measured runs (median; per round {rounds}); counted as the "
                "scenario's own, not as other processes'"
            )
    return lines


def error_details(outcomes: Sequence[Outcome]) -> list[str]:
    lines: list[str] = []
    for o in outcomes:
        lines += [f"- ERROR {e}" for e in o.errors]
        if not o.scenario.protected:
            for i, r in enumerate(o.results, 1):
                if r.errors:
                    lines.append(
                        f"- {o.scenario.name} round {i}: {r.socket_errors} socket, "
                        f"{r.non2xx} non-2xx"
                    )
        lines += [f"- {o.scenario.name} failed: {f}" for f in o.failures]
        tails = ["\n".join(log.splitlines()[-40:]) for log in o.server_logs]
        lines += [f"- {o.scenario.name} server output:\n```\n{t}\n```" for t in tails]
    return lines


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per scenario")
    parser.add_argument("--server-cpu", type=int, default=0, help="core the resource server uses")
    parser.add_argument("--wrk-cpu", type=int, default=1, help="core wrk runs on")
    parser.add_argument(
        "--as-cpu", type=int, default=None, help="core of remote's authorization server (wrk's)"
    )
    parser.add_argument(
        "--quiet-threshold", type=float, default=0.10, help="busy share deemed quiet (0.10)"
    )
    parser.add_argument(
        "--quiet-timeout", type=float, default=60, help="longest wait for quiet, seconds (60)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="then profile each scenario once with py-spy"
    )
    parser.add_argument("--top", type=int, default=12, help="middleware lines to list (12)")
    parser.add_argument(
        "--only", nargs="+", choices=NAMES, metavar="NAME", help=f"one or more of {NAMES}"
    )
    parser.add_argument(
        "--cache-ttl",
        type=float,
        default=None,
        metavar="SECONDS",
        help="the introspectors' cache_ttl (default: theirs, 10 s); 0: every request misses",
    )
    add_postgres_pool_argument(parser)
    args = parser.parse_args(argv)
    if args.as_cpu is None:
        args.as_cpu = args.wrk_cpu
    if min(args.duration, args.connections, args.rounds, args.postgres_pool) < 1:
        parser.error("--duration, --connections, --rounds and --postgres-pool must be >= 1")
    if args.cache_ttl is not None and args.cache_ttl < 0:
        parser.error("--cache-ttl must be >= 0")
    if args.server_cpu == args.wrk_cpu:
        parser.error("the resource server and wrk must run on different cores")
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        parser.error(f"not installed: {', '.join(missing)}")
    cores = os.sched_getaffinity(0)
    if not {args.server_cpu, args.wrk_cpu, args.as_cpu} <= cores:
        parser.error(f"the cores must be among {sorted(cores)}")
    return args


def _on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every cleanup, like Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    names = set(args.only or NAMES)
    selected = [s for s in SCENARIOS if s.name in names]
    if BARE not in selected:
        selected.insert(0, BARE)  # ratios need the ceiling, measured alongside
        print("(bare added: the ratios need it)")
    header = environment(args)
    if any(s.store == "postgres" for s in selected):
        try:
            header += postgres_environment(args.postgres_pool)
        except BenchError as exc:
            print(f"error: {exc}\n{POSTGRES_MISSING}", file=sys.stderr)
            return 2
    outcomes = [Outcome(s) for s in selected]
    try:
        with tempfile.TemporaryDirectory(prefix="asgi-oauth-middleware-bench-") as tmp_name:
            for round_no in range(args.rounds):
                print(f"round {round_no + 1}/{args.rounds}", flush=True)
                shift = round_no % len(outcomes)
                for outcome in outcomes[shift:] + outcomes[:shift]:
                    run_round(outcome, args, Path(tmp_name), round_no)
            if args.profile:
                print("profiles (py-spy, not counted in the table)", flush=True)
                for outcome in outcomes:
                    run_round(outcome, args, Path(tmp_name), args.rounds, profile=True)
    except KeyboardInterrupt:
        print(
            "\ninterrupted: servers stopped, temporary files and schemas removed", file=sys.stderr
        )
        return 130

    load_after = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    report = ["", "## BearerTokenMiddleware load benchmark", "", *header]
    report += [*placement(args, outcomes), f"- load average after the run: {load_after}", ""]
    report += [*table(outcomes, args.cache_ttl), "", *ratios(outcomes), ""]
    report += jwt_versus_introspection(outcomes)
    report += ["Per round, req/s (other processes' share of the CPUs):"]
    report += ["", *rounds_table(outcomes, args.rounds)]
    for outcome in outcomes:
        if outcome.profile:
            title = f"### where `{outcome.scenario.name}`'s server spends its time (py-spy, "
            report += ["", title + f"{PROFILE_RATE} Hz, {args.duration} s)", "", *outcome.profile]
    details = error_details(outcomes)
    report += ["", "Errors and server output:", "", *(details or ["- none"])]
    print("\n".join(report))
    errors = [e for o in outcomes for e in o.errors]
    for error in errors:
        print(f"ERROR: protected route returned non-2xx under load: {error}", file=sys.stderr)
    failed = any(o.failures for o in outcomes) or bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Scale benchmark: throughput as the store grows, the purge under load, memory over time.

Usage (from anywhere; paths are resolved from this file)::

    python bench/scale.py [--tokens 1000000] [--only flat purge rss] [--stores sqlite postgres]

- ``flat``: token issuance and introspection on SQLite and PostgreSQL with ``--small``
  (1,000) and ``--tokens`` (1,000,000) live tokens stored, rounds interleaved; the
  ratio of the two rates against 0.9.
- ``purge``: ``--tokens`` expired tokens (and ``--small`` live ones) stored, token
  issuance under wrk, then ``server.purge_expired()`` (``POST /bench/purge`` of
  ``apps:oauth_purge``); wrk's latency just before the purge and while it runs,
  against a p99 of 100 ms.
- ``rss``: ``run.py``'s memory run on every store (memory, SQLite, PostgreSQL).

Servers, wrk and the PostgreSQL schemas are ``run.py``'s; see ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from base64 import urlsafe_b64encode
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import httpx
from apps import CLIENT_ID, RESOURCE_SERVER_ID, RESOURCE_SERVER_SECRET
from run import (
    WARMUP_SECONDS,
    BenchError,
    MemoryReport,
    WrkResult,
    _basic,
    _stop,
    add_postgres_pool_argument,
    environment,
    memory_lines,
    postgres_env,
    postgres_environment,
    postgres_schema,
    postgres_url,
    prepare,
    run_memory,
    run_wrk,
    serve,
    store_env,
    write_lua,
)

from asgi_oauth import Settings
from asgi_oauth.crypto import hash_token
from asgi_oauth.models import Token
from asgi_oauth.storage import SQLiteStorage, _rows
from asgi_oauth.storage.sqlite import schema as sqlite_schema

SQLStore = Literal["sqlite", "postgres"]
Kind = Literal["token", "introspect"]
#: A summary row: name, what was measured, the target, the verdict.
SummaryRow = tuple[str, str, str, str]

FLAT_TARGET = 0.90
PURGE_P99_TARGET_MS = 100.0
#: Live tokens were issued over the last half hour, with the default lifetime (1 h):
#: every one stays live for the rest of the run.
LIFETIME = Settings(issuer="https://as.example").access_token_lifetime
LIVE_SPAN = 1800
#: Expired tokens were issued over the hour before that lifetime began.
EXPIRED_SPAN = 3600
CHUNK = 50_000
TOKEN_COLUMNS = (
    "token_hash",
    "kind",
    "client_id",
    "scope",
    "family_id",
    "issued_at",
    "expires_at",
    "subject",
    "audience",
    "parent_hash",
    "replaced_by",
    "rotated_at",
    "revoked_at",
    "jkt",
)
FORM = "application/x-www-form-urlencoded"


# -- prefilling a store -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fill:
    live: int
    expired: int
    #: The time (seconds) the live tokens were issued up to.
    now: int


def token_rows(fill: Fill, picked: list[str]) -> Iterator[_rows.Row]:
    """Rows as ``client_credentials`` stores them for ``bench-client`` (``mint_tokens``:
    time-ordered values, stored by ``hash_token``; a time-ordered family id), oldest
    first, expired ones before live ones. Appends to ``picked`` the value of the live
    token in the middle, the one the introspection scenarios ask about."""
    live_from = (fill.now - LIVE_SPAN) * 1000
    expired_from = live_from - (EXPIRED_SPAN + LIFETIME) * 1000
    spans = (
        (fill.expired, expired_from, EXPIRED_SPAN * 1000, None),
        (fill.live, live_from, LIVE_SPAN * 1000, fill.live // 2),
    )
    for count, first_ms, span_ms, pick in spans:
        for i in range(count):
            ms = first_ms + span_ms * i // max(count, 1)
            prefix = f"{ms:011x}"  # crypto.time_ordered_token's
            random = os.urandom(44)
            value = prefix + urlsafe_b64encode(random[:32]).rstrip(b"=").decode()
            if i == pick:
                picked.append(value)
            issued_at = ms // 1000
            row: _rows.Row = (
                *(prefix + sha256(value.encode()).hexdigest(), "access_token", CLIENT_ID, ""),
                *(prefix + urlsafe_b64encode(random[32:]).decode(), issued_at),
                *(issued_at + LIFETIME, None, "", None, None, None, None, None),
            )
            if i == 0:  # the tuple is built by hand for speed: check it against the store's
                _check_shape(row, value)
            yield row


def _check_shape(row: _rows.Row, value: str) -> None:
    token = Token(
        token_hash=hash_token(value),
        kind="access_token",
        client_id=CLIENT_ID,
        scope=frozenset(),
        family_id=str(row[4]),
        issued_at=int(str(row[5])),
        expires_at=int(str(row[6])),
    )
    if _rows.token_row(token) != row:
        raise BenchError(f"prefilled rows are not shaped as the store's: {row}")


def _chunks(rows: Iterator[_rows.Row]) -> Iterator[list[_rows.Row]]:
    while chunk := list(itertools.islice(rows, CHUNK)):
        yield chunk


def prefill_sqlite(path: Path, fill: Fill) -> str:
    """Create the file through ``SQLiteStorage`` (its migrations), then bulk-insert the
    rows in big transactions; returns the picked token's value."""

    async def migrate() -> None:
        store = SQLiteStorage(path, synchronous="FULL")
        await store.migrate()
        await store.close()

    asyncio.run(migrate())
    picked: list[str] = []
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")  # a load, not a server: no fsync per chunk
        insert = sqlite_schema.insert_tokens(1)
        for chunk in _chunks(token_rows(fill, picked)):
            conn.execute("BEGIN")
            conn.executemany(insert, chunk)
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the server starts on an empty WAL
    finally:
        conn.close()
    return picked[0] if picked else ""


def prefill_postgres(schema: str, fill: Fill) -> str:
    """Create the schema's tables through ``PostgresStorage`` (its migrations), then COPY
    the rows and ``VACUUM (ANALYZE)`` them; returns the picked token's value.

    The vacuum gives the table what autovacuum gives one that grew over hours
    (statistics, a visibility map) instead of running in the middle of a measurement."""
    from asgi_oauth.storage.postgres import PostgresStorage

    async def load() -> str:
        store = PostgresStorage(postgres_url(), schema=schema, min_size=1, max_size=1)
        await store.migrate()
        await store.close()
        import asyncpg

        picked: list[str] = []
        conn = await asyncpg.connect(postgres_url(), server_settings={"search_path": schema})
        try:
            for chunk in _chunks(token_rows(fill, picked)):
                await conn.copy_records_to_table(
                    "tokens", records=chunk, columns=TOKEN_COLUMNS, schema_name=schema
                )
            await conn.execute("VACUUM (ANALYZE) tokens")
        finally:
            await conn.close()
        return picked[0] if picked else ""

    return asyncio.run(load())


@contextlib.contextmanager
def filled_store(
    store: SQLStore, fill: Fill, workdir: Path, args: argparse.Namespace
) -> Iterator[tuple[dict[str, str], str, float]]:
    """A fresh SQLite file or PostgreSQL schema holding ``fill``: the server's environment,
    the picked token and the seconds the load took. The schema is dropped on the way out."""
    with contextlib.ExitStack() as stack:
        start = time.perf_counter()
        if store == "postgres":
            schema = stack.enter_context(postgres_schema(postgres_url()))
            picked = prefill_postgres(schema, fill)
            env = postgres_env(schema, args.postgres_pool)
        else:
            env = store_env("sqlite", workdir)
            picked = prefill_sqlite(Path(env["BENCH_DB"]), fill)
        yield env, picked, time.perf_counter() - start


def count_tokens(store: SQLStore, env: dict[str, str], now: int) -> tuple[int, int]:
    """(expired, live) tokens in the store, read on a connection of the bench's own."""
    sql = (
        "SELECT count(*) FILTER (WHERE expires_at <= {0}),"
        " count(*) FILTER (WHERE expires_at > {0}) FROM tokens"
    )
    if store == "sqlite":
        with contextlib.closing(sqlite3.connect(env["BENCH_DB"])) as conn:
            expired, live = conn.execute(sql.format("?"), (now, now)).fetchone()
            return int(expired), int(live)

    async def read() -> tuple[int, int]:
        import asyncpg

        conn = await asyncpg.connect(
            postgres_url(), server_settings={"search_path": env["BENCH_POSTGRES_SCHEMA"]}
        )
        try:
            row = await conn.fetchrow(sql.format("$1"), now)
            return int(row[0]), int(row[1])
        finally:
            await conn.close()

    return asyncio.run(read())


# -- flat: 1,000 against 1,000,000 stored -------------------------------------------------


@dataclass(slots=True)
class Flat:
    store: SQLStore
    kind: Kind
    small: list[WrkResult] = dataclasses.field(default_factory=list)
    large: list[WrkResult] = dataclasses.field(default_factory=list)
    fill_seconds: list[float] = dataclasses.field(default_factory=list)
    failures: list[str] = dataclasses.field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.store}"

    @property
    def ratio(self) -> float:
        if not self.small or not self.large:
            return float("nan")
        small = statistics.median(r.rps for r in self.small)
        return statistics.median(r.rps for r in self.large) / small


def introspection_script(server_url: str, token: str, workdir: Path) -> Path:
    """Check the stored ``token`` introspects as active; the wrk script asking about it."""
    body = f"token={quote(token, safe='')}"
    headers = {
        "Content-Type": FORM,
        "Authorization": _basic(RESOURCE_SERVER_ID, RESOURCE_SERVER_SECRET),
    }
    response = httpx.post(f"{server_url}/introspect", content=body, headers=headers, timeout=10)
    if response.status_code != 200 or response.json().get("active") is not True:
        raise BenchError(f"POST /introspect: {response.status_code} {response.text}")
    return write_lua(workdir / "introspect.lua", "POST", "/introspect", body, headers)


def flat_round(flat: Flat, size: int, args: argparse.Namespace, tmp: Path) -> None:
    workdir = Path(tempfile.mkdtemp(prefix=f"{flat.name}-{size}-", dir=tmp))
    fill = Fill(live=size, expired=0, now=int(time.time()))
    label = f"{flat.name} with {size:,}"
    try:
        with contextlib.ExitStack() as stack:  # unwinds in reverse: server, then store
            env, picked, seconds = stack.enter_context(
                filled_store(flat.store, fill, workdir, args)
            )
            server = stack.enter_context(serve("apps:oauth", env, workdir, args.server_cpu))
            if flat.kind == "token":
                lua = prepare("token", server, workdir)
            else:
                lua = introspection_script(server.url, picked, workdir)
            load = {"connections": args.connections, "cpu": args.wrk_cpu}
            run_wrk(server.url, lua, duration=WARMUP_SECONDS, **load)
            result = run_wrk(server.url, lua, duration=args.duration, **load)
            server.check_alive()
        (flat.large if size == args.tokens else flat.small).append(result)
        if size == args.tokens:
            flat.fill_seconds.append(seconds)
        print(
            f"  {label:<30} {result.rps:>8.0f} req/s  p99 {result.p99_us / 1e3:6.2f} ms"
            f"  errors {result.errors}  (filled in {seconds:.1f} s)",
            flush=True,
        )
    except (BenchError, httpx.HTTPError, OSError, sqlite3.Error) as exc:
        flat.failures.append(f"{label}: {exc}")
        print(f"  {label:<30} FAILED: {str(exc).splitlines()[0]}", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# -- purge under load ---------------------------------------------------------------------


@dataclass(slots=True)
class Purge:
    store: SQLStore
    purged: int = 0
    seconds: float = float("nan")
    #: wrk just before the purge, and from its start to its end.
    control: WrkResult | None = None
    during: WrkResult | None = None
    #: (expired, live) tokens left after it.
    left: tuple[int, int] = (0, 0)
    failure: str | None = None


def wrk_command(args: argparse.Namespace, lua: Path, url: str, duration: int) -> list[str]:
    """``run.py``'s wrk, with a timeout long enough that a stalled request is timed,
    not dropped as a socket error."""
    return [
        *("taskset", "-c", str(args.wrk_cpu), "wrk", "-t1", f"-c{args.purge_connections}"),
        *(f"-d{duration}s", "--timeout", "60s", "--latency", "-s", str(lua), url),
    ]


def wrk_during_purge(
    args: argparse.Namespace, lua: Path, url: str
) -> tuple[WrkResult, dict[str, float]]:
    """wrk from just before ``POST /bench/purge`` until it answers (SIGINT: wrk reports the
    requests it completed); the purge's answer."""
    command = wrk_command(args, lua, url, 3600)
    wrk = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        time.sleep(0.5)  # connected and loading
        response = httpx.post(f"{url}/bench/purge", timeout=3600)
        wrk.send_signal(signal.SIGINT)
        out, err = wrk.communicate(timeout=30)
    finally:
        _stop(wrk, signal.SIGKILL)
    if response.status_code != 200:
        raise BenchError(f"POST /bench/purge: {response.status_code} {response.text}")
    answer: dict[str, float] = response.json()
    return WrkResult.parse(out + err), answer


def purge_run(store: SQLStore, args: argparse.Namespace, tmp: Path) -> Purge:
    report = Purge(store)
    workdir = Path(tempfile.mkdtemp(prefix=f"purge-{store}-", dir=tmp))
    fill = Fill(live=args.small, expired=args.tokens, now=int(time.time()))
    try:
        with contextlib.ExitStack() as stack:  # unwinds in reverse: server, then store
            env, _, seconds = stack.enter_context(filled_store(store, fill, workdir, args))
            print(f"  purge-{store}: {args.tokens:,} expired tokens stored in {seconds:.1f} s")
            server = stack.enter_context(serve("apps:oauth_purge", env, workdir, args.server_cpu))
            lua = prepare("token", server, workdir)
            run_wrk(
                server.url,
                lua,
                duration=WARMUP_SECONDS,
                connections=args.purge_connections,
                cpu=args.wrk_cpu,
            )
            control = subprocess.run(
                wrk_command(args, lua, server.url, args.purge_control),
                capture_output=True,
                text=True,
                timeout=args.purge_control + 60,
                check=True,
            )
            report.control = WrkResult.parse(control.stdout)
            report.during, answer = wrk_during_purge(args, lua, server.url)
            server.check_alive()
            report.purged, report.seconds = int(answer["purged"]), float(answer["seconds"])
            report.left = count_tokens(store, env, fill.now)
        r = report.during
        print(
            f"  purge-{store}: {report.purged:,} rows in {report.seconds:.1f} s; p99 "
            f"{report.control.p99_us / 1e3:.1f} ms before, {r.p99_us / 1e3:.1f} ms during, "
            f"max {r.max_us / 1e3:.0f} ms",
            flush=True,
        )
    except (BenchError, httpx.HTTPError, OSError, sqlite3.Error, subprocess.SubprocessError) as exc:
        report.failure = str(exc)
        print(f"  purge-{store} FAILED: {str(exc).splitlines()[0]}", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return report


# -- the report ---------------------------------------------------------------------------


@dataclass(slots=True)
class ScaleReport:
    flats: list[Flat] = dataclasses.field(default_factory=list)
    purges: list[Purge] = dataclasses.field(default_factory=list)
    memory: list[MemoryReport | str] = dataclasses.field(default_factory=list)


def summary_rows(report: ScaleReport, tokens: int) -> list[SummaryRow]:
    """(name, measured, target, verdict) for each result: what a summary table shows."""
    rows: list[SummaryRow] = []
    for f in report.flats:
        target = f"≥ {FLAT_TARGET:.2f}"
        if f.failures or not f.small or not f.large:
            rows.append((f"flat {f.name}", "—", target, "FAILED"))
            continue
        verdict = "PASS" if f.ratio >= FLAT_TARGET else "BELOW"
        rows.append((f"flat {f.name} ({tokens:,} / 1k stored)", f"{f.ratio:.2f}", target, verdict))
    for p in report.purges:
        target = f"p99 ≤ {PURGE_P99_TARGET_MS:.0f} ms"
        if p.failure is not None or p.during is None:
            rows.append((f"purge {p.store}", "—", target, "FAILED"))
            continue
        p99 = p.during.p99_us / 1e3
        complete = p.left[0] == 0 and p.purged >= tokens
        verdict = "PASS" if p99 <= PURGE_P99_TARGET_MS and complete else "BELOW"
        if not complete:
            verdict += f" (expired rows left: {p.left[0]}, purged {p.purged:,})"
        measured = f"p99 {p99:.1f} ms, max {p.during.max_us / 1e3:.0f} ms, {p.seconds:.1f} s"
        rows.append((f"purge {p.store} ({tokens:,} expired)", measured, target, verdict))
    for m in report.memory:
        if isinstance(m, str):
            rows.append((f"rss {m.split()[0]}", "—", "levels off", "FAILED"))
            continue
        kib = [k for _, k in m.samples]
        half = len(kib) // 2
        measured = (
            f"peak {max(kib[half:]) / 1024:.1f} MiB (2nd half) vs {max(kib[:half]) / 1024:.1f}"
            if half
            else "—"
        )
        verdict = {True: "PASS", False: "GROWS", None: "n/a"}[m.levels_off]
        rows.append((f"rss {m.store}", measured, "levels off", verdict))
    return rows


def report_lines(report: ScaleReport, args: argparse.Namespace) -> list[str]:
    lines = ["| check | measured | target | result |", "| --- | --- | --- | --- |"]
    lines += [f"| {' | '.join(row)} |" for row in summary_rows(report, args.tokens)]
    if report.flats:
        lines += ["", "Throughput (req/s, per round) with 1k and with the large store:", ""]
        lines += [
            "| scenario | stored | rounds | median | p99 ms (median) |",
            "| --- | ---: | --- | ---: | ---: |",
        ]
        for f in report.flats:
            for size, results in ((args.small, f.small), (args.tokens, f.large)):
                rps = ", ".join(f"{r.rps:,.0f}" for r in results)
                med = statistics.median(r.rps for r in results) if results else float("nan")
                p99 = (
                    statistics.median(r.p99_us / 1e3 for r in results) if results else float("nan")
                )
                lines.append(f"| {f.name} | {size:,} | {rps} | {med:,.0f} | {p99:.2f} |")
        fills = [
            f"{f.name} {statistics.median(f.fill_seconds):.1f} s"
            for f in report.flats
            if f.fill_seconds
        ]
        lines += ["", f"Prefill of {args.tokens:,} tokens (median): " + ", ".join(fills)]
        lines += [f"- {f.name}: {x}" for f in report.flats for x in f.failures]
    for p in report.purges:
        lines += [
            "",
            f"Purge on {p.store}: {args.tokens:,} expired + {args.small:,} live tokens stored, "
            f"token issuance under wrk -c{args.purge_connections}:",
            "",
        ]
        if p.failure is not None or p.control is None or p.during is None:
            lines.append(f"FAILED: {p.failure}")
            continue
        lines += [
            "| wrk | req/s | p50 ms | p99 ms | max ms | errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for label, r in ((f"{args.purge_control} s before", p.control), ("during", p.during)):
            lines.append(
                f"| {label} | {r.rps:,.0f} | {r.p50_us / 1e3:.1f} | {r.p99_us / 1e3:.1f} "
                f"| {r.max_us / 1e3:.0f} | {r.errors} |"
            )
        lines += [
            "",
            f"Purged {p.purged:,} rows in {p.seconds:.2f} s; left after it: {p.left[0]} expired, "
            f"{p.left[1]:,} live tokens.",
        ]
    for m in report.memory:
        lines += ["", *([m] if isinstance(m, str) else memory_lines(m, args))]
    return lines


# -- main ---------------------------------------------------------------------------------

PARTS = ("flat", "purge", "rss")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tokens", type=int, default=1_000_000, help="the large store's tokens")
    parser.add_argument("--small", type=int, default=1_000, help="the small store's tokens")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=PARTS, metavar="PART")
    parser.add_argument(
        "--stores", nargs="+", choices=("sqlite", "postgres"), default=("sqlite", "postgres")
    )
    parser.add_argument("--duration", type=int, default=8, help="seconds per measured run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument(
        "--purge-control", type=int, default=5, help="seconds of wrk before the purge"
    )
    parser.add_argument(
        "--purge-connections", type=int, default=16, help="wrk connections of the purge run"
    )
    parser.add_argument("--memory-duration", type=int, default=30, help="seconds of each RSS run")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--wrk-cpu", type=int, default=1)
    add_postgres_pool_argument(parser)
    args = parser.parse_args(argv)
    if min(args.tokens, args.small, args.duration, args.rounds, args.memory_duration) < 1:
        parser.error("sizes, durations and rounds must be >= 1")
    return args


def measure(args: argparse.Namespace) -> ScaleReport:
    """Run the parts ``args.only`` names on ``args.stores``."""
    report = ScaleReport()
    with tempfile.TemporaryDirectory(prefix="asgi-oauth-scale-") as tmp_name:
        tmp = Path(tmp_name)
        if "flat" in args.only:
            report.flats = [Flat(s, k) for s in args.stores for k in ("token", "introspect")]
            for round_no in range(1, args.rounds + 1):
                print(f"flat: round {round_no}/{args.rounds}", flush=True)
                for flat in report.flats:
                    for size in (args.small, args.tokens):
                        flat_round(flat, size, args, tmp)
        if "purge" in args.only:
            print("purge:", flush=True)
            report.purges = [purge_run(store, args, tmp) for store in args.stores]
        if "rss" in args.only:
            for store in ("memory", *args.stores):
                print(f"rss ({store}): {args.memory_duration} s of token issuance", flush=True)
                try:
                    report.memory.append(run_memory(args, tmp, store))
                except (BenchError, httpx.HTTPError) as exc:
                    report.memory.append(f"{store} FAILED: {exc}")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    header = environment(args)
    if "postgres" in args.stores:
        try:
            header += postgres_environment(args.postgres_pool)
        except BenchError as exc:
            print(f"error: {exc}\n(leave PostgreSQL out with --stores sqlite)", file=sys.stderr)
            return 2
    report = measure(args)
    print(
        "\n".join(
            ["", "## asgi_oauth scale benchmark", "", *header, "", *report_lines(report, args)]
        )
    )
    failed = any(r[3] == "FAILED" for r in summary_rows(report, args.tokens))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

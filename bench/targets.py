"""Every performance target in one run and one table: ``python bench/targets.py``.

It runs ``run.py``'s scenarios (ours on each store, JWT access tokens by algorithm,
the peers aioauth and oidc-provider, which it installs) and its memory runs on every
store, then ``scale.py``'s flatness and purge runs, prints both reports, and ends with
one table: each target, what was measured, what is required, PASS or BELOW. Options:

    python bench/targets.py                          # 3 rounds of 8 s; about 30 minutes
    python bench/targets.py --rounds 5 --duration 10 # steadier
    python bench/targets.py --tokens 100000          # a smaller large store, for a try

Ratios come from medians of interleaved rounds measured in this run; see
``bench/README.md`` for how each part measures and ``docs/performance.md`` for a run.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run
import scale

#: (target, measured, required, result).
Row = tuple[str, str, str, str]

#: ``token-sqlite-jwt-rs256``'s ratio to bare when the targets were set: RS256 is to
#: issue at twice that rate.
RS256_BEFORE = 0.036

#: One RS256 access token's JWS as the server signs it (``CompactSigner``: the claims'
#: JSON, base64url, the RSA-2048 signature), timed in a child on the server's core:
#: prints the µs of one, the best of five batches of 200.
_SIGN_RS256 = """
import time, timeit
from asgi_oauth.jws_algorithms import CompactSigner, generate_key
from asgi_oauth.jwt_access_tokens import access_token_claims
signer = CompactSigner("RS256", "bench", generate_key("RS256"))
claims = access_token_claims(
    jti="0" * 33, issuer="http://127.0.0.1:8000", audience=("http://127.0.0.1:8000",),
    client_id="bench-client", subject=None, scope=frozenset(), now=int(time.time()),
    lifetime=3600,
)
best = min(timeit.repeat(lambda: signer.sign(claims, "at+jwt"), number=200, repeat=5))
print(best / 200 * 1e6)
"""


def _ratio_row(
    name: str, rps: Mapping[str, float], top: str, bottom: str, least: float, note: str = ""
) -> Row | None:
    if top not in rps or bottom not in rps:
        return None
    ratio = rps[top] / rps[bottom]
    verdict = "PASS" if ratio >= least else "BELOW"
    return (name, f"{ratio:.2f}{note}", f"≥ {least:.2f}", verdict)


def throughput_rows(outcomes: Sequence[run.Outcome]) -> list[Row]:
    """The targets judged on ``run.py``'s scenarios, from their median req/s."""
    rps = {o.scenario.name: o.rps for o in outcomes if o.results and not o.failures}
    cores = {o.scenario.name: o.median(o.db_cores) for o in outcomes if o.db_cores}
    rows: list[Row | None] = []
    jwt = {"token-sqlite-jwt-es256": "ES256", "token-sqlite-jwt-eddsa": "EdDSA"}
    measured = [n for n in jwt if n in rps]
    if measured:
        fastest = max(measured, key=lambda n: rps[n])
        name = f"JWT issuance, fastest algorithm ({jwt[fastest]}) / opaque, SQLite"
        rows.append(_ratio_row(name, rps, fastest, "token-sqlite", 0.60))
    if "token-sqlite-jwt-rs256" in rps and "bare" in rps:
        ratio = rps["token-sqlite-jwt-rs256"] / rps["bare"]
        rows.append(
            (
                f"JWT issuance, RS256, ratio to bare (was {RS256_BEFORE:.3f})",
                f"{ratio:.3f} ({ratio / RS256_BEFORE:.2f} times)",
                f"≥ {2 * RS256_BEFORE:.3f} (twice)",
                "PASS" if ratio >= 2 * RS256_BEFORE else "BELOW",
            )
        )
    for kind, word in (("token", "token issuance"), ("introspect", "introspection")):
        rows.append(
            _ratio_row(
                f"{word}, SQLite / oidc-provider",
                rps,
                f"{kind}-sqlite",
                f"{kind}-oidc-provider",
                2.00,
            )
        )
    for kind, word in (("token", "token issuance"), ("introspect", "introspection")):
        used = cores.get(f"{kind}-postgres")
        note = "" if used is None else f" (PostgreSQL used {used:.2f} cores)"
        rows.append(
            _ratio_row(
                f"{word}, PostgreSQL / SQLite",
                rps,
                f"{kind}-postgres",
                f"{kind}-sqlite",
                0.70,
                note,
            )
        )
    return [row for row in rows if row is not None]


def rs256_signature_micros(cpu: int) -> float | None:
    """What signing one RS256 access token costs on core ``cpu``, in µs (None if the
    child failed: the table then goes without the budget below)."""
    command = ["taskset", "-c", str(cpu), sys.executable, "-c", _SIGN_RS256]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
        return float(done.stdout.strip())
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def rs256_budget(outcomes: Sequence[run.Outcome], signature: float | None) -> list[str]:
    """Where an RS256 issuance's time goes on one core, against the RS256 target: the
    signature alone, and an opaque issuance plus the signature."""
    rps = {o.scenario.name: o.rps for o in outcomes if o.results and not o.failures}
    names = ("bare", "token-sqlite", "token-sqlite-jwt-rs256")
    if signature is None or not all(name in rps for name in names):
        return []
    bare, opaque, rs256 = (1e6 / rps[name] for name in names)
    return [
        f"RS256 on one core: signing one access token took {signature:.0f} µs there, a bare "
        f"request {bare:.1f} µs and an opaque issuance {opaque:.1f} µs. The signature alone "
        f"caps RS256 issuance at {bare / signature:.3f} of bare; an issuance costing an "
        f"opaque one plus the signature would reach {bare / (opaque + signature):.3f}; it "
        f"took {rs256:.0f} µs, {rs256 - opaque - signature:.0f} µs more than that. Twice "
        f"{RS256_BEFORE:.3f} leaves {bare / (2 * RS256_BEFORE) - signature:.0f} µs for all "
        "but the signature."
    ]


def memory_rows(memory: Sequence[run.MemoryReport | str]) -> list[Row]:
    """RSS under sustained issuance, per store: whether it levels off."""
    report = scale.ScaleReport(memory=list(memory))
    return [
        (f"RSS levels off, {name.removeprefix('rss ')}", measured, required, verdict)
        for name, measured, required, verdict in scale.summary_rows(report, 0)
    ]


def table(rows: Sequence[Row]) -> list[str]:
    lines = ["| target | measured | required | result |", "| --- | --- | --- | --- |"]
    return lines + [f"| {' | '.join(row)} |" for row in rows]


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--duration", type=int, default=8, help="seconds per measured run (8)")
    parser.add_argument("--tokens", type=int, default=1_000_000, help="the large store (1e6)")
    parser.add_argument("--memory-duration", type=int, default=20, help="seconds per RSS run")
    parser.add_argument("--no-install", action="store_true", help="use the installed peers")
    args = parser.parse_args(argv)
    common = ["--rounds", str(args.rounds), "--duration", str(args.duration)]
    memory = ["--memory-duration", str(args.memory_duration)]
    run_args = run.parse_args([*common, *memory, *(["--no-install"] if args.no_install else [])])
    scale_args = scale.parse_args(
        [*common, *memory, "--tokens", str(args.tokens), "--only", "flat", "purge"]
    )
    return run_args, scale_args


def main(argv: Sequence[str] | None = None) -> int:
    run_args, scale_args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        measured = run.measure(run_args)
        if isinstance(measured, int):
            return measured
        report = scale.measure(scale_args)
    except KeyboardInterrupt:
        print(run.INTERRUPTED, file=sys.stderr)
        return 130
    rows = [
        *throughput_rows(measured.outcomes),
        *[
            (f"{name[0].upper()}{name[1:]}", measured_value, required, verdict)
            for name, measured_value, required, verdict in scale.summary_rows(
                report, scale_args.tokens
            )
        ],
        *memory_rows(measured.memory),
    ]
    lines = run.report_lines(measured, run_args)
    lines += ["", "## asgi_oauth scale benchmark", "", *scale.report_lines(report, scale_args)]
    budget = rs256_budget(measured.outcomes, rs256_signature_micros(run_args.server_cpu))
    lines += ["", "## Targets", "", *table(rows), *(["", *budget] if budget else [])]
    print("\n".join(lines))
    failed = measured.failed or any(row[3] == "FAILED" for row in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

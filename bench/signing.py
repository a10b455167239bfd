"""What signing a JWT access token (RFC 9068) costs, counted in CPU instructions.

Usage (from anywhere; paths are resolved from this file)::

    python bench/signing.py [--requests 200] [--only opaque EdDSA ...] [--native 2000]

Each scenario issues tokens by ``client_credentials`` through ``OAuth2App`` on a
``MemoryStorage``, called in-process as raw ASGI (no server, no sockets), under
``valgrind --tool=callgrind``: once with ``--warmup`` requests, once with
``--warmup`` + ``--requests``; the difference divided by ``--requests`` is the
instructions of one issuance, with start-up, imports and the warm-up cancelled
out. The signing keys are made once, before any run, and loaded into every
store, so the randomness of key generation is not counted either. The table
gives each JWT scenario as a ratio to ``opaque`` (the same settings, opaque
tokens). Instruction counts do not depend on the machine's load or clock, unlike
wall time; ``--native N`` adds the wall time of N more requests without valgrind,
for scale. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from asgi_oauth import AuthorizationServer, Settings
from asgi_oauth.app import OAuth2App
from asgi_oauth.keys import KeyEncryption, generate_signing_key
from asgi_oauth.models import SigningKey
from asgi_oauth.storage import MemoryStorage
from asgi_oauth.types import SIGNING_ALGORITHMS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from apps import CLIENT_ID, CLIENT_SECRET, BenchApp

SCENARIOS = ("opaque", *SIGNING_ALGORITHMS)
ISSUER = "http://127.0.0.1:8000"
KEK = "bench-key-encryption-key-0123456789abcdef"
_BODY = b"grant_type=client_credentials"
_AUTH = b"Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode())
_SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/token",
    "raw_path": b"/token",
    "query_string": b"",
    "root_path": "",
    "headers": [
        (b"host", b"127.0.0.1:8000"),
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-length", str(len(_BODY)).encode()),
        (b"authorization", _AUTH),
    ],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}


async def _issue(app: OAuth2App) -> bytes:
    """One ``POST /token``; the response body (checked by the caller)."""
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": _BODY, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app(dict(_SCOPE), receive, send)
    assert sent[0]["status"] == 200, sent
    body = sent[-1]["body"]
    assert isinstance(body, bytes)
    return body


async def _child(scenario: str, keys: list[SigningKey], warmup: int, requests: int) -> float:
    """Issue ``warmup`` then ``requests`` tokens; the seconds the latter took."""
    jwt = scenario != "opaque"
    settings = Settings(
        issuer=ISSUER,
        insecure_transport=True,
        key_encryption_key=KEK,
        access_token_format="jwt" if jwt else "opaque",
        access_token_signing_alg=scenario if jwt else "RS256",  # type: ignore[arg-type]
    )
    storage = MemoryStorage()
    now = int(time.time())
    for key in keys:
        await storage.add_signing_key(key, retire_active_until=None, now=now)
    server = AuthorizationServer(storage, settings)
    bench = BenchApp(server)
    await bench.register_clients()
    for _ in range(warmup):
        body = await _issue(bench.app)
    token = json.loads(body)["access_token"]
    assert (token.count(".") == 2) == jwt, token
    if jwt:
        header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
        assert header["alg"] == scenario, header
    started = time.perf_counter()
    for _ in range(requests):
        await _issue(bench.app)
    elapsed = time.perf_counter() - started
    await server.close()
    return elapsed


def _callgrind(scenario: str, keys_file: Path, warmup: int, requests: int, tmp: Path) -> int:
    """The instructions a child run executed, as callgrind counted them."""
    out = tmp / f"callgrind.{scenario}.{requests}"
    command = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
        sys.executable, __file__, "--child", scenario, "--keys", str(keys_file),
        "--warmup", str(warmup), "--requests", str(requests),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    subprocess.run(command, check=True, env=env, capture_output=True)
    found = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
    assert found, f"no total in {out}"
    return int(found.group(1))


def _make_keys(path: Path) -> None:
    encryption = KeyEncryption(KEK)
    now = int(time.time())
    keys = [generate_signing_key(alg, encryption, now=now) for alg in SIGNING_ALGORITHMS]
    path.write_text(json.dumps([dataclasses.asdict(k) for k in keys]))


def _read_keys(path: Path) -> list[SigningKey]:
    return [SigningKey(**fields) for fields in json.loads(path.read_text())]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="measured requests per run")
    parser.add_argument("--warmup", type=int, default=20, help="requests before measuring")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, default=SCENARIOS)
    parser.add_argument("--native", type=int, default=0, help="also time N requests natively")
    parser.add_argument("--child", choices=SCENARIOS, help=argparse.SUPPRESS)
    parser.add_argument("--keys", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(_child(args.child, _read_keys(args.keys), args.warmup, args.requests))
        return 0
    if args.warmup < 1 or args.requests < 1:
        parser.error("--warmup and --requests must be at least 1")
    if shutil.which("valgrind") is None:
        print("valgrind is not on the PATH (Debian: apt-get install valgrind)", file=sys.stderr)
        return 1
    scenarios = ["opaque", *(s for s in args.only if s != "opaque")]
    rows: dict[str, tuple[float, float | None]] = {}
    with tempfile.TemporaryDirectory(prefix="asgi_oauth_signing_") as name:
        tmp = Path(name)
        keys_file = tmp / "keys.json"
        _make_keys(keys_file)
        for scenario in scenarios:
            base = _callgrind(scenario, keys_file, args.warmup, 0, tmp)
            total = _callgrind(scenario, keys_file, args.warmup, args.requests, tmp)
            native = None
            if args.native:
                keys = _read_keys(keys_file)
                seconds = asyncio.run(_child(scenario, keys, args.warmup, args.native))
                native = seconds / args.native * 1e6
            rows[scenario] = ((total - base) / args.requests, native)
            print(f"{scenario}: {rows[scenario][0]:,.0f} instructions/request", file=sys.stderr)
    opaque = rows["opaque"][0]
    python = sys.version.split()[0]
    print(f"\n{args.requests} requests per run after {args.warmup} warm-up, Python {python}\n")
    print("| access token | instructions per issuance | ratio to opaque | µs (native) |")
    print("| --- | ---: | ---: | ---: |")
    for scenario, (instructions, native) in rows.items():
        label = "opaque" if scenario == "opaque" else f"JWT {scenario}"
        micros = "-" if native is None else f"{native:,.0f}"
        print(f"| {label} | {instructions:,.0f} | {instructions / opaque:.2f} | {micros} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

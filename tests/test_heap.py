"""Once started, a server leaves its start-up heap out of garbage collection
(``asgi_oauth.app.heap``): in a real server process when ``OAuth2App`` runs the
lifespan (alone, under uvicorn and hypercorn, or as ``asgi-oauth serve``), never when
an application that mounts it does, and once per process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.servers.process import REPO_ROOT, STARTUP_TIMEOUT, _free_port, stop_process


@contextmanager
def _running(server: str, app: str, tmp_path: Path) -> Iterator[str]:
    """``tests.servers.heap:<app>`` under ``server`` in a subprocess; its base URL."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    target = f"tests.servers.heap:{app}"
    if server == "uvicorn":
        args = ["uvicorn", target, "--host", "127.0.0.1", "--port", str(port), "--lifespan", "on"]
    else:
        args = ["hypercorn", target, "--bind", f"127.0.0.1:{port}"]
    env = {**os.environ, "HEAP_TEST_DB": str(tmp_path / "heap.db"), "HEAP_TEST_ISSUER": base}
    log = tmp_path / f"{server}-{app}.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                httpx.get(f"{base}/__heap", timeout=1.0)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"{server} did not start:\n{log.read_text()}") from None
                time.sleep(0.05)
        yield base
    finally:
        stop_process(process)


def _frozen(base: str) -> int:
    response = httpx.get(f"{base}/__heap", timeout=5.0)
    assert response.status_code == 200
    frozen: int = response.json()["frozen"]
    return frozen


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
def test_oauth2app_served_alone_freezes_the_start_up_heap(server: str, tmp_path: Path) -> None:
    with _running(server, "alone", tmp_path) as base:
        # The imported modules' objects: tens of thousands.
        assert _frozen(base) > 10_000
        # The server serves as before.
        metadata = httpx.get(f"{base}/.well-known/oauth-authorization-server", timeout=5.0)
        assert metadata.status_code == 200
        assert metadata.json()["issuer"] == base


def test_asgi_oauth_serve_freezes_the_start_up_heap(tmp_path: Path) -> None:
    with _running("uvicorn", "served", tmp_path) as base:
        assert _frozen(base) > 10_000


def test_an_application_that_mounts_it_keeps_its_own_garbage_collection(
    tmp_path: Path,
) -> None:
    with _running("uvicorn", "mounted", tmp_path) as base:
        assert _frozen(base) == 0


def test_the_heap_is_settled_once_per_process() -> None:
    script = """
import gc
from asgi_oauth.app.heap import settle_heap
settle_heap()
first = gc.get_freeze_count()
kept = [[i] for i in range(10_000)]  # tracked objects made after start-up
settle_heap()
print(first, gc.get_freeze_count())
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    first, second = map(int, done.stdout.split())
    assert first > 0
    assert second == first

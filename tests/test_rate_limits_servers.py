"""A client's rate limit holds across real server processes sharing one store: two
uvicorn instances on one PostgreSQL schema, and two uvicorn workers on one SQLite file.

A burst of concurrent token requests, spread over the processes, gets exactly the
budget through; every other request is a 429 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from tests.postgres import POSTGRES_URL
from tests.servers.process import TOKEN, Deployment, deploy, serve_all

from .test_multi_instance import with_schema

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

BUDGET, BURST = 20, 100
#: A window far longer than the burst; the burst waits out the last seconds of one.
WINDOW = 600
SETTINGS = json.dumps({"rate_limit_per_client": BUDGET, "rate_limit_window": WINDOW})


async def burst(deployment: Deployment, urls: list[str]) -> Counter[int]:
    """``BURST`` concurrent client_credentials requests, spread evenly over ``urls``;
    the statuses they got. Every refusal must say when to retry."""
    if time.time() % WINDOW > WINDOW - 10:  # the burst must fit in one window
        await asyncio.sleep(WINDOW - time.time() % WINDOW + 0.5)
    limits = httpx.Limits(max_connections=BURST)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        responses = await asyncio.gather(
            *(
                http.post(
                    urls[i % len(urls)] + TOKEN,
                    data={"grant_type": "client_credentials"},
                    auth=deployment.client,
                )
                for i in range(BURST)
            )
        )
    for response in responses:
        if response.status_code == 429:
            assert response.json()["error"] == "temporarily_unavailable"
            assert 0 < int(response.headers["retry-after"]) <= WINDOW
    return Counter(response.status_code for response in responses)


@pytest.fixture
def on_postgresql(tmp_path: Path, pg_schema: str) -> Deployment:
    """A deployment on a fresh PostgreSQL schema (prepared before the event loop runs)."""
    database = with_schema(POSTGRES_URL, pg_schema)
    return replace(deploy(tmp_path, database), settings_json=SETTINGS)


@pytest.fixture
def on_sqlite(tmp_path: Path) -> Deployment:
    """A deployment on a SQLite file, served by two uvicorn workers."""
    return replace(deploy(tmp_path), workers=2, settings_json=SETTINGS)


async def test_two_instances_on_one_postgresql_schema_share_a_clients_budget(
    on_postgresql: Deployment,
) -> None:
    with serve_all("uvicorn", [on_postgresql, on_postgresql.instance()]) as servers:
        statuses = await burst(on_postgresql, [server.url for server in servers])
    assert statuses == {200: BUDGET, 429: BURST - BUDGET}


async def test_two_workers_on_one_sqlite_file_share_a_clients_budget(
    on_sqlite: Deployment,
) -> None:
    with serve_all("uvicorn", [on_sqlite]) as (server,):
        statuses = await burst(on_sqlite, [server.url])
    assert statuses == {200: BUDGET, 429: BURST - BUDGET}

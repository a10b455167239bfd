"""A revoked access token is inactive at every instance and worker at once, even where
its introspection was answered a moment before (SQLite keeps access-token rows in
memory until the store's revocation signal moves; see ``storage/_token_cache.py``)."""

from __future__ import annotations

import httpx
import pytest

from tests.servers.process import INTROSPECT

from .conftest import Cluster
from .flows import refresh, revoke, token_pair

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

#: Requests per round, spread over the connections, so every worker answers some.
SPREAD = 40


async def introspected(cluster: Cluster, token: str) -> list[bool]:
    async def ask(http: httpx.AsyncClient, _: int) -> httpx.Response:
        return await http.post(
            INTROSPECT, data={"token": token}, auth=cluster.deployment.resource_server
        )

    responses = await cluster.spread(SPREAD, ask)
    assert {r.status_code for r in responses} == {200}, [r.text for r in responses]
    return [r.json()["active"] for r in responses]


@pytest.mark.parametrize("by", ["revoke", "reuse"])
async def test_a_revoked_access_token_is_inactive_everywhere_at_once(
    cluster: Cluster, by: str
) -> None:
    pair = await token_pair(cluster)
    access = pair["access_token"]
    for _ in range(3):  # every worker has looked it up, and kept it if it keeps any
        assert await introspected(cluster, access) == [True] * SPREAD
    async with cluster.http(0) as http:
        client = cluster.deployment.client
        if by == "revoke":
            assert (await revoke(http, client, access)).status_code == 200
        else:  # RFC 9700 §4.14.2: the refresh token used twice ends the family
            assert (await refresh(http, client, pair["refresh_token"])).status_code == 200
            reused = await refresh(http, client, pair["refresh_token"])
            assert reused.status_code == 400, reused.text
    assert await introspected(cluster, access) == [False] * SPREAD

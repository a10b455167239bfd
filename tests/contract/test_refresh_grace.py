"""The refresh grace period (``refresh_token_grace_period``) under concurrency: a retry
repeats what the lost response carried, and once its successor was used, a replay is
reuse that revokes the family (RFC 9700 §4.14.2)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from .conftest import Cluster, StoreKind, start_cluster
from .flows import active, refresh, token_pair

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

GRACE = 60


@pytest.fixture(scope="module")
def grace_cluster(
    store_kind: StoreKind, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    with ExitStack() as stack:
        yield start_cluster(
            store_kind,
            tmp_path_factory.mktemp(f"grace-{store_kind}"),
            stack,
            refresh_token_grace_period=GRACE,
        )


async def test_concurrent_retries_in_the_grace_period_get_the_same_response(
    grace_cluster: Cluster,
) -> None:
    cluster = grace_cluster
    first = await token_pair(cluster)
    client = cluster.deployment.client

    responses = await cluster.spread(
        20, lambda http, _: refresh(http, client, first["refresh_token"])
    )

    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses]
    bodies = [r.json() for r in responses]
    pairs = {(b["access_token"], b["refresh_token"]) for b in bodies}
    assert len(pairs) == 1, "each retry got tokens of its own"
    assert {b["scope"] for b in bodies} == {"read write"}
    ((access_token, refresh_token),) = pairs
    assert await active(cluster, [access_token, refresh_token]) == [access_token, refresh_token]


async def test_a_thief_replaying_in_the_grace_period_cannot_keep_the_grant(
    grace_cluster: Cluster,
) -> None:
    cluster = grace_cluster
    client = cluster.deployment.client
    first = await token_pair(cluster)
    async with cluster.http(0) as victim, cluster.http(1) as thief:
        # The victim rotates; the thief, holding the rotated-out token, replays it
        # inside the grace period.
        rotated = await refresh(victim, client, first["refresh_token"])
        assert rotated.status_code == 200, rotated.text
        stolen = await refresh(thief, client, first["refresh_token"])
        assert stolen.status_code == 200, stolen.text
        # What the thief got is what the victim got: nothing of the victim's was
        # revoked behind its back, and the thief holds nothing of its own. (The repeat
        # counts expires_in down from the same expiry: a second may have passed.)
        repeated, original = stolen.json(), rotated.json()
        assert 0 <= original.pop("expires_in") - repeated.pop("expires_in") <= 2
        assert repeated == original
        second = await refresh(victim, client, rotated.json()["refresh_token"])
        third = await refresh(victim, client, second.json()["refresh_token"])
        assert third.status_code == 200, third.text
        # The thief comes back with what it has: its successor was used, so this is
        # reuse, and the whole family goes.
        thief_next = await refresh(thief, client, stolen.json()["refresh_token"])
        assert thief_next.status_code == 400, thief_next.text
        assert thief_next.json()["error"] == "invalid_grant"

    assert (
        await active(cluster, [third.json()["access_token"], third.json()["refresh_token"]]) == []
    )
    assert cluster.events("refresh_token_reuse_detected")


async def test_a_replay_after_the_successor_was_used_revokes_the_family(
    grace_cluster: Cluster,
) -> None:
    cluster = grace_cluster
    client = cluster.deployment.client
    first = await token_pair(cluster)
    async with cluster.http(0) as http:
        second = await refresh(http, client, first["refresh_token"])
        third = await refresh(http, client, second.json()["refresh_token"])
        assert third.status_code == 200, third.text
        replayed = await refresh(http, client, first["refresh_token"])

    assert replayed.status_code == 400, replayed.text
    assert replayed.json()["error"] == "invalid_grant"
    latest = [third.json()["access_token"], third.json()["refresh_token"]]
    assert await active(cluster, latest) == []

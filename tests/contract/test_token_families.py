"""A revoked token family never again holds a live token (RFC 9700 §4.14.2), whatever
runs at the same moment: a thief rotating a stolen refresh token in a loop while the
victim's replay revokes the family, ``/revoke``, or the user's deletion."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import httpx
import pytest

from asgi_oauth import AuthorizationServer

from .conftest import Cluster
from .flows import active, new_user, refresh, revoke, token_pair, username_of

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

#: Races per test: each one a chance for a rotation to slip past the revocation.
TRIALS = 12
#: A thief that is never stopped gives up after this many rotations (and fails the test).
MAX_ROTATIONS = 2000


async def rotate_until_refused(
    cluster: Cluster, refresh_token: str, issued: list[str], started: asyncio.Event
) -> httpx.Response:
    """The thief: rotate the family's newest refresh token until the server refuses,
    alternating instances; every token it gets goes into ``issued``."""
    clients = [cluster.http(i) for i in range(len(cluster.urls))]
    try:
        for rotation in range(MAX_ROTATIONS):
            response = await refresh(
                clients[rotation % len(clients)], cluster.deployment.client, refresh_token
            )
            started.set()
            if response.status_code != 200:
                return response
            body = response.json()
            issued += [body["access_token"], body["refresh_token"]]
            refresh_token = body["refresh_token"]
            await asyncio.sleep(0)  # in-process (memory), nothing else would run between
        pytest.fail(f"the family was still rotating after {MAX_ROTATIONS} rotations")
    finally:
        for client in clients:
            await client.aclose()


async def at_a_random_moment(started: asyncio.Event, revocation: Awaitable[object]) -> None:
    """The victim's side: ``revocation`` a few milliseconds into the thief's loop."""
    await started.wait()
    await asyncio.sleep(random.uniform(0, 0.03))
    await revocation


async def race(
    cluster: Cluster,
    revoke_family: Callable[[str], Awaitable[object]],
    *,
    subject: str = "alice",
    trials: int = TRIALS,
) -> None:
    """Trials of a thief rotating while ``revoke_family`` (given the victim's rotated-out
    refresh token) revokes the family; afterwards none of the thief's tokens is live."""
    for _ in range(trials):
        victim = await token_pair(cluster, subject)
        async with cluster.http() as http:
            stolen = await refresh(http, cluster.deployment.client, victim["refresh_token"])
        assert stolen.status_code == 200, stolen.text
        issued = [stolen.json()["access_token"], stolen.json()["refresh_token"]]
        started = asyncio.Event()

        refused, _ = await asyncio.gather(
            rotate_until_refused(cluster, issued[1], issued, started),
            at_a_random_moment(started, revoke_family(victim["refresh_token"])),
        )

        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == "invalid_grant"
        assert await active(cluster, issued) == [], "a revoked family kept a live token"


async def test_a_replay_revokes_the_family_while_a_thief_rotates(cluster: Cluster) -> None:
    async def replay(rotated_out: str) -> None:
        async with cluster.http(1) as http:
            response = await refresh(http, cluster.deployment.client, rotated_out)
        assert response.status_code == 400, response.text

    await race(cluster, replay)
    assert cluster.events("refresh_token_reuse_detected")


async def test_revoking_a_refresh_token_revokes_its_family_while_it_rotates(
    cluster: Cluster,
) -> None:
    async def revoke_it(rotated_out: str) -> None:
        async with cluster.http(1) as http:
            response = await revoke(http, cluster.deployment.client, rotated_out)
        assert response.status_code == 200, response.text

    await race(cluster, revoke_it)


async def test_deleting_the_user_ends_their_families_while_they_rotate(cluster: Cluster) -> None:
    for _ in range(3):
        user_id = await new_user(cluster)
        await race(
            cluster,
            deletion_of(cluster, await username_of(cluster, user_id)),
            subject=user_id,
            trials=1,
        )


def deletion_of(cluster: Cluster, username: str) -> Callable[[str], Awaitable[object]]:
    """A revocation that deletes the user (as ``asgi-oauth users delete`` does)."""

    async def delete_user(rotated_out: str) -> None:
        async def delete(server: AuthorizationServer) -> bool:
            return await server.storage.delete_user(username)

        assert await cluster.on_store(delete)

    return delete_user

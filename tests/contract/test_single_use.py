"""What may be used once is used once, however many requests race for it: an
authorization code (RFC 6749 §4.1.2), a refresh token without a grace period (RFC 9700
§4.14.2), a DPoP proof (RFC 9449 §11.1) and a device code (RFC 8628 §3.5), whose polls
are counted one at a time."""

from __future__ import annotations

import secrets
import time

import pytest

from asgi_oauth import AuthorizationServer
from asgi_oauth.device import hash_user_code, normalize_user_code
from asgi_oauth.types import DEVICE_CODE
from tests.dpop_helpers import DPoPKey
from tests.servers.process import TOKEN

from .conftest import Cluster, statuses
from .flows import active, code_for, code_form, refresh, token_pair

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_a_code_is_redeemed_once_and_its_replays_revoke_what_it_issued(
    cluster: Cluster,
) -> None:
    verifier = secrets.token_urlsafe(48)
    deployment = cluster.deployment
    form = code_form(await code_for(cluster, verifier, scope="read"), verifier)

    responses = await cluster.spread(
        40, lambda http, _: http.post(TOKEN, data=form, auth=deployment.client)
    )

    winners = [r.json() for r in responses if r.status_code == 200]
    assert len(winners) == 1, statuses(responses)
    assert sorted(statuses(responses)) == [(200, None)] + [(400, "invalid_grant")] * 39
    assert await active(cluster, [winners[0]["access_token"], winners[0]["refresh_token"]]) == []


async def test_a_refresh_token_rotates_once_and_the_losers_revoke_the_family(
    cluster: Cluster,
) -> None:
    pair = await token_pair(cluster)
    client = cluster.deployment.client

    responses = await cluster.spread(
        30, lambda http, _: refresh(http, client, pair["refresh_token"])
    )

    winners = [r.json() for r in responses if r.status_code == 200]
    assert len(winners) == 1, statuses(responses)
    assert sorted(statuses(responses)) == [(200, None)] + [(400, "invalid_grant")] * 29
    assert await active(cluster, [winners[0]["access_token"], winners[0]["refresh_token"]]) == []


async def test_a_dpop_proof_is_accepted_once(cluster: Cluster) -> None:
    key = DPoPKey()
    proof = key.proof(cluster.deployment.issuer + "/token", iat=int(time.time()))
    client = cluster.deployment.client

    responses = await cluster.spread(
        30,
        lambda http, _: http.post(
            TOKEN,
            data={"grant_type": "client_credentials"},
            auth=client,
            headers={"DPoP": proof},
        ),
    )

    assert sorted(statuses(responses)) == [(200, None)] + [(400, "invalid_dpop_proof")] * 29
    (issued,) = [r.json() for r in responses if r.status_code == 200]
    assert issued["token_type"] == "DPoP"


async def test_device_polls_are_counted_one_at_a_time_and_the_code_redeemed_once(
    cluster: Cluster,
) -> None:
    form = {"client_id": cluster.deployment.public_client_id}
    async with cluster.http() as http:
        started = await http.post("/oauth2/device_authorization", data={**form, "scope": "read"})
    assert started.status_code == 200, started.text
    codes = started.json()
    poll = {**form, "grant_type": DEVICE_CODE, "device_code": codes["device_code"]}

    polls = await cluster.spread(20, lambda http, _: http.post(TOKEN, data=poll))

    # The first poll finds the request pending; every other came too soon (§3.5).
    assert sorted(statuses(polls)) == [(400, "authorization_pending")] + [(400, "slow_down")] * 19

    async def approve(server: AuthorizationServer) -> bool:
        user_code = normalize_user_code(codes["user_code"])
        assert user_code is not None
        return await server.storage.decide_device_authorization(
            hash_user_code(user_code), subject="alice", approved=True, now=int(time.time())
        )

    assert await cluster.on_store(approve)
    redeemed = await cluster.spread(20, lambda http, _: http.post(TOKEN, data=poll))

    assert sorted(statuses(redeemed)) == [(200, None)] + [(400, "invalid_grant")] * 19

"""Guessing limits count and decide in one atomic step, across workers and instances:
no more wrong passwords or user codes are evaluated than the limit, however many come
at once; and a correct client secret always passes, so nobody can lock a client out."""

from __future__ import annotations

import secrets

import pytest

from asgi_oauth import AuthorizationServer
from tests.servers.process import TOKEN, Credentials

from .conftest import Cluster, statuses
from .flows import login_form, new_user, signed_in_browser, username_of

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

#: ``Settings.max_failed_attempts`` of the test servers (the default).
LIMIT = 10


async def test_no_more_wrong_passwords_are_evaluated_than_the_limit(cluster: Cluster) -> None:
    username = await username_of(cluster, await new_user(cluster))
    cookie, csrf = await login_form(cluster)
    form = {"csrf_token": csrf, "username": username, "password": "wrong"}

    responses = await cluster.spread(
        60, lambda http, _: http.post("/oauth2/login", data=form, headers={"Cookie": cookie})
    )

    codes = sorted(r.status_code for r in responses)
    assert codes == [400] * LIMIT + [429] * (60 - LIMIT)
    assert all(r.headers["retry-after"].isdigit() for r in responses if r.status_code == 429)


async def test_no_more_wrong_user_codes_are_evaluated_than_the_limit(cluster: Cluster) -> None:
    cookie, csrf = await signed_in_browser(cluster)

    def guess(_: int) -> dict[str, str]:
        return {"csrf_token": csrf, "user_code": secrets.token_hex(4).upper()}

    responses = await cluster.spread(
        30,
        lambda http, i: http.post("/oauth2/device", data=guess(i), headers={"Cookie": cookie}),
    )

    codes = sorted(r.status_code for r in responses)
    assert codes == [400] * LIMIT + [429] * (30 - LIMIT)


async def test_a_correct_client_secret_always_passes(cluster: Cluster) -> None:
    async def register(server: AuthorizationServer) -> Credentials:
        registered = await server.register_client(
            name="victim", grant_types=["client_credentials"], scope=["read"]
        )
        assert registered.client_secret is not None
        return Credentials(registered.client.client_id, registered.client_secret)

    client = await cluster.on_store(register)
    form = {"grant_type": "client_credentials"}
    wrong = (client.client_id, "not-the-secret")
    # Enough wrong secrets that every worker of every instance saw more than the limit.
    refused = await cluster.spread(
        LIMIT * 8, lambda http, _: http.post(TOKEN, data=form, auth=wrong)
    )
    assert {status for status, _ in statuses(refused)} <= {401, 429}
    assert all(error == "invalid_client" for _, error in statuses(refused))

    answered = await cluster.spread(16, lambda http, _: http.post(TOKEN, data=form, auth=client))

    assert statuses(answered) == [(200, None)] * 16

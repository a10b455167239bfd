"""A name is taken once: of two sign-ups or registrations racing for one username or
``client_id``, from two processes, one wins and the other is refused; nothing is replaced."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable

import pytest

from asgi_oauth import AuthorizationServer, OAuthRequest

from .conftest import Cluster

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_two_sign_ups_for_one_username_have_one_winner(cluster: Cluster) -> None:
    username = f"user-{secrets.token_hex(4)}"

    def sign_up(password: str) -> Awaitable[object]:
        async def create(server: AuthorizationServer) -> object:
            try:
                return await server.create_user(username, password)
            except ValueError as exc:
                return exc

        return cluster.on_store(create)

    outcomes = await asyncio.gather(*(sign_up(f"password {i}") for i in range(4)))

    refused = [o for o in outcomes if isinstance(o, ValueError)]
    assert len(refused) == 3, outcomes
    assert all("already taken" in str(exc) for exc in refused)
    winner = outcomes.index(next(o for o in outcomes if not isinstance(o, ValueError)))

    async def sign_in(server: AuthorizationServer) -> str:
        user = await server.authenticate_user(OAuthRequest(), username, f"password {winner}")
        return user.user_id

    assert await cluster.on_store(sign_in)


async def test_two_registrations_of_one_client_id_have_one_winner(cluster: Cluster) -> None:
    client_id = f"client-{secrets.token_hex(4)}"

    def register(name: str) -> Awaitable[object]:
        async def add(server: AuthorizationServer) -> object:
            try:
                return await server.register_client(
                    name=name, client_id=client_id, grant_types=["client_credentials"]
                )
            except ValueError as exc:
                return exc

        return cluster.on_store(add)

    outcomes = await asyncio.gather(*(register(f"app {i}") for i in range(4)))

    assert sum(isinstance(o, ValueError) for o in outcomes) == 3, outcomes

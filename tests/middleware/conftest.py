"""Fixtures of the middleware tests: a server on the wall clock, and a calling client."""

from __future__ import annotations

import time

import pytest

from asgi_oauth import AuthorizationServer

from ..conftest import REDIRECT_URI, Credentials, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """The server's clock agrees with the cache's wall clock, so answers are cached."""
    return FakeClock(time.time())


async def register_caller(server: AuthorizationServer) -> Credentials:
    """A confidential client that may ask for read, write and admin."""
    registered = await server.register_client(
        name="Caller",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "client_credentials", "refresh_token"],
        scope=["read", "write", "admin"],
    )
    return Credentials(registered.client.client_id, registered.client_secret)


@pytest.fixture
async def caller(server: AuthorizationServer) -> Credentials:
    return await register_caller(server)

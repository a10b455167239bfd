"""The issuing endpoints' tests (RFC 8707, RFC 9126, RFC 9449): a server on a store
that records every token and pushed request it saves, so a refusal can be shown to
have issued nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from asgi_oauth import AuthorizationServer, Settings, User

from ..conftest import FakeClock
from ..dpop_helpers import PASSWORD, USERNAME, LedgerStorage


@pytest.fixture
async def server(settings: Settings, clock: FakeClock) -> AsyncIterator[AuthorizationServer]:
    server = AuthorizationServer(LedgerStorage(), settings, clock=clock)
    yield server
    await server.close()


@pytest.fixture
def ledger(server: AuthorizationServer) -> LedgerStorage:
    assert isinstance(server.storage, LedgerStorage)
    return server.storage


@pytest.fixture
async def alice(server: AuthorizationServer) -> User:
    return await server.create_user(USERNAME, PASSWORD)

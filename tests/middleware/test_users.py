"""What routes see: BearerUser, Starlette's UnauthenticatedUser and BearerCredentials."""

from __future__ import annotations

import pytest
from starlette.authentication import UnauthenticatedUser
from starlette.types import Message, Receive, Scope, Send

from asgi_oauth import AuthorizationServer, IntrospectionResult
from asgi_oauth.middleware import (
    BearerCredentials,
    BearerError,
    BearerTokenMiddleware,
    BearerUser,
)


@pytest.mark.parametrize(
    ("sub", "client_id", "name"),
    [("user-1", "c1", "user-1"), (None, "c1", "c1"), (None, None, "")],
)
def test_bearer_user_is_named_by_subject_then_client(
    sub: str | None, client_id: str | None, name: str
) -> None:
    user = BearerUser(IntrospectionResult(active=True, sub=sub, client_id=client_id))
    assert user.is_authenticated
    assert user.display_name == name
    assert user.identity == name
    assert user.subject == sub
    assert user.client_id == client_id


@pytest.mark.anyio
async def test_a_public_path_without_a_token_sees_starlettes_anonymous_user(
    server: AuthorizationServer,
) -> None:
    seen: list[object] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["user"])

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        pass

    middleware = BearerTokenMiddleware(app, introspector=server, public=["/"])
    await middleware({"type": "http", "path": "/", "headers": []}, receive, send)
    (user,) = seen
    assert isinstance(user, UnauthenticatedUser)
    assert not user.is_authenticated
    assert user.display_name == ""


def test_credentials_carry_sorted_scopes_and_the_introspection() -> None:
    info = IntrospectionResult(active=True, scope=frozenset({"write", "read"}))
    credentials = BearerCredentials(info)
    assert credentials.scopes == ["read", "write"]
    assert credentials.introspection is info
    assert credentials.error is None


def test_credentials_without_a_token_say_why() -> None:
    error = BearerError.invalid_token()
    credentials = BearerCredentials(error=error)
    assert credentials.scopes == []
    assert credentials.introspection is None
    assert credentials.error is error

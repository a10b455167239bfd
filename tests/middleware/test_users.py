"""What routes see: BearerUser, AnonymousUser and BearerCredentials."""

from __future__ import annotations

import pytest

from asgi_oauth import IntrospectionResult
from asgi_oauth.middleware import AnonymousUser, BearerCredentials, BearerError, BearerUser


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


def test_anonymous_user_is_not_authenticated_and_has_no_name() -> None:
    user = AnonymousUser()
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

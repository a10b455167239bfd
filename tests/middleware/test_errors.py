"""BearerError: statuses, JSON bodies and ``WWW-Authenticate`` challenges (RFC 6750 §3)."""

from __future__ import annotations

import re

import pytest

from asgi_oauth.middleware import BearerError

METADATA = "https://api.example/.well-known/oauth-protected-resource"


@pytest.mark.parametrize(
    ("error", "status", "challenge"),
    [
        (BearerError.missing(), 401, 'Bearer realm="api"'),
        (
            BearerError.invalid_token(),
            401,
            'Bearer realm="api", error="invalid_token", '
            'error_description="the access token is not valid"',
        ),
        (
            BearerError.insufficient_scope(["write", "read"]),
            403,
            'Bearer realm="api", error="insufficient_scope", '
            'error_description="the access token lacks scope", scope="read write"',
        ),
        (
            BearerError.invalid_request("repeated Authorization header"),
            400,
            'Bearer realm="api", error="invalid_request", '
            'error_description="repeated Authorization header"',
        ),
        (BearerError.unavailable(), 503, 'Bearer realm="api"'),
    ],
    ids=["missing", "invalid_token", "insufficient_scope", "invalid_request", "unavailable"],
)
def test_each_error_has_its_status_and_challenge(
    error: BearerError, status: int, challenge: str
) -> None:
    assert error.status == status
    assert error.challenge("api") == challenge


def test_resource_metadata_comes_last() -> None:
    error = BearerError.insufficient_scope(["read"])
    assert error.challenge("api", METADATA).endswith(
        f'scope="read", resource_metadata="{METADATA}"'
    )
    assert BearerError.missing().challenge("api", METADATA) == (
        f'Bearer realm="api", resource_metadata="{METADATA}"'
    )


@pytest.mark.parametrize(
    ("description", "quoted"),
    [
        ('say "hi"', "say hi"),
        ("back\\slash", "backslash"),
        ("tab\tnew\nline\r", "tabnewline"),
        ("café ünïcode", "caf ncode"),
        ("del\x7f nul\x00", "del nul"),
        ("ok: !#$%&'()*+,-./0-9:;<=>?@[]^_`{|}~", "ok: !#$%&'()*+,-./0-9:;<=>?@[]^_`{|}~"),
    ],
)
def test_challenge_values_are_quoted_without_forbidden_characters(
    description: str, quoted: str
) -> None:
    challenge = BearerError.invalid_token(description).challenge("api")
    assert challenge.endswith(f'error_description="{quoted}"')


def test_challenge_keeps_exactly_the_characters_rfc_6750_allows() -> None:
    every = "".join(map(chr, range(0x180)))
    allowed = "".join(
        c for c in every if c in " !" or 0x23 <= ord(c) <= 0x5B or 0x5D <= ord(c) <= 0x7E
    )
    assert BearerError.missing().challenge(every) == f'Bearer realm="{allowed}"'
    # What is left can be parsed back: one quoted string per attribute.
    assert re.fullmatch(r'Bearer realm="[^"\\]*"', BearerError.missing().challenge(every))


def test_body_names_the_error_first_and_leaves_it_out_when_there_is_none() -> None:
    assert list(BearerError.invalid_token().body().items()) == [
        ("error", "invalid_token"),
        ("error_description", "the access token is not valid"),
    ]
    assert BearerError.missing().body() == {"error_description": "a bearer token is required"}


def test_bearer_error_is_an_exception_carrying_its_description() -> None:
    error = BearerError(418, "teapot", "short and stout", scope=["b", "a"])
    assert str(error) == "short and stout"
    assert error.scope == ("a", "b")
    with pytest.raises(BearerError, match="short and stout"):
        raise error

"""``Settings`` checks each value against its field's type when it is made and refuses
one that does not fit, naming the setting; ``from_env`` still turns the environment's
strings into those types; ``create_user`` holds passwords to ``min_password_length``."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from asgi_oauth import AuthorizationServer, Settings
from asgi_oauth.config import SettingsError, SettingsTypeError
from asgi_oauth.types import DEVICE_CODE

from .conftest import ISSUER
from .openid_helpers import KEK

pytestmark = pytest.mark.anyio


def make(**values: Any) -> Settings:
    """Settings at the test issuer with these values (``issuer`` among them overrides it)."""
    return Settings(**{"issuer": ISSUER, **values})


# -- the wrong type: refused when the settings are made ------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        # int
        ("access_token_lifetime", "3600", "an int (seconds), got '3600' (str)"),
        ("access_token_lifetime", 3600.0, "an int (seconds), got 3600.0 (float)"),
        ("max_body_size", True, "an int (bytes), got True (bool)"),
        ("max_failed_attempts", None, "an int, got None (NoneType)"),
        ("min_password_length", "8", "an int (characters), got '8' (str)"),
        # bool
        ("insecure_transport", "false", "a bool, got 'false' (str)"),
        ("require_pkce", 1, "a bool, got 1 (int)"),
        # str, and optional str: the value stays out of the message (secrets, passwords in URLs)
        ("issuer", b"https://as.example", "a str, got bytes"),
        ("issuer", None, "a str, got NoneType"),
        ("secret_key", b"s" * 40, "a str or None, got bytes"),
        ("access_token_audience", 42, "a str or None, got int"),
        # a tuple of str, and an optional one
        (
            "scopes_supported",
            "read write",
            "a tuple of str, got 'read write' (str); write ('read', 'write')",
        ),
        ("scopes_supported", ("read", 7), "a tuple of str, got ('read', 7) (tuple)"),
        ("scopes_supported", {"read"}, "a tuple of str, got {'read'} (set)"),
        ("scopes_supported", iter(["read"]), "a tuple of str, got <list_iterator"),
        ("resources", "https://api.example", "a tuple of str, got 'https://api.example' (str)"),
        (
            "registration_scopes",
            "read",
            "a tuple of str or None, got 'read' (str); write ('read',)",
        ),
        # a frozenset of grant types
        (
            "enabled_grants",
            "password",
            "a frozenset of grant types, got 'password' (str); write frozenset({'password'})",
        ),
        ("registration_grant_types", [1], "a frozenset of grant types, got [1] (list)"),
        # a mapping of str to str
        (
            "scope_descriptions",
            [("read", "Read")],
            "a mapping of str to str or to {language: str}, got [('read', 'Read')] (list)",
        ),
        (
            "scope_descriptions",
            {"read": 1},
            "a mapping of str to str or to {language: str}, got {'read': 1} (dict)",
        ),
        (
            "scope_descriptions",
            {1: "Read"},
            "a mapping of str to str or to {language: str}, got {1: 'Read'} (dict)",
        ),
        (
            "scope_descriptions",
            {"read": {"fr": 1}},
            "a mapping of str to str or to {language: str}, got {'read': {'fr': 1}} (dict)",
        ),
        # a Literal
        ("access_token_format", 1, "one of 'opaque', 'jwt', got 1 (int)"),
        (
            "client_registration",
            False,
            "one of 'off', 'open', 'initial_access_token', got False (bool)",
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_the_setting(
    name: str, value: object, message: str
) -> None:
    with pytest.raises(SettingsTypeError) as refused:
        make(**{name: value})
    assert str(refused.value).startswith(f"{name} must be {message}")
    # A TypeError, as Python says of a wrong type, and a ValueError, as every refused setting.
    assert isinstance(refused.value, TypeError) and isinstance(refused.value, ValueError)


@pytest.mark.parametrize("name", [field.name for field in dataclasses.fields(Settings)])
def test_every_setting_has_its_type_checked(name: str) -> None:
    with pytest.raises(SettingsTypeError, match=f"^{name} must be "):
        make(**{name: object()})


def test_one_string_is_never_split_into_words() -> None:
    with pytest.raises(SettingsTypeError, match="scopes_supported"):
        make(scopes_supported="read")
    with pytest.raises(SettingsTypeError, match="enabled_grants"):
        make(enabled_grants="authorization_code")


def test_the_value_of_a_str_setting_stays_out_of_the_message() -> None:
    secret = b"a key-encryption key given as bytes, forty"
    with pytest.raises(SettingsTypeError) as refused:
        make(key_encryption_key=secret)
    assert str(refused.value) == "key_encryption_key must be a str or None, got bytes"


# -- the right type, the wrong value: refused too, as a ValueError ------------------------


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("access_token_format", "JWT", "access_token_format must be one of 'opaque', 'jwt'"),
        ("access_token_signing_alg", "HS256", "access_token_signing_alg must be one of 'RS256'"),
        ("client_registration", "closed", "client_registration must be one of 'off'"),
        (
            "enabled_grants",
            frozenset({"authorization_code", "telepathy", "magic"}),
            "enabled_grants has unknown grant types: ['magic', 'telepathy']",
        ),
        (
            "registration_grant_types",
            ["implicit", "magic"],
            "registration_grant_types has unknown grant types: ['magic']",
        ),
        ("access_token_lifetime", 0, "access_token_lifetime must be positive, got 0"),
        ("device_poll_interval", -1, "device_poll_interval must be positive, got -1"),
        ("min_password_length", 0, "min_password_length must be positive, got 0"),
        ("clock_skew", -1, "clock_skew must be >= 0 (0 turns it off), got -1"),
        ("purge_interval", -600, "purge_interval must be >= 0 (0 turns it off), got -600"),
    ],
)
def test_a_value_of_the_right_type_out_of_range_is_refused_naming_the_setting(
    name: str, value: object, message: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        make(**{name: value})
    assert str(refused.value).startswith(message)
    assert not isinstance(refused.value, TypeError)


# -- the right types: kept ------------------------------------------------------------------


def test_values_of_the_right_types_are_kept() -> None:
    settings = make(
        database_url="memory:",
        access_token_lifetime=120,
        require_pkce=True,
        enabled_grants=frozenset({"authorization_code", DEVICE_CODE}),
        scopes_supported=("read", "write"),
        scope_descriptions={"read": "Read your files"},
        secret_key="s" * 32,
        key_encryption_key=KEK,
        access_token_format="jwt",
        access_token_signing_alg="ES256",
        access_token_audience="https://api.example",
        clock_skew=0,
        resources=("https://api.example",),
        client_registration="initial_access_token",
        initial_access_token="t" * 32,
        registration_scopes=("read",),
        min_password_length=12,
    )
    assert settings.access_token_lifetime == 120 and settings.require_pkce is True
    assert settings.enabled_grants == {"authorization_code", DEVICE_CODE}
    assert settings.scopes_supported == ("read", "write")
    assert settings.scope_descriptions == {"read": "Read your files"}
    assert settings.access_token_signing_alg == "ES256" and settings.clock_skew == 0
    assert settings.registration_scopes == ("read",) and settings.min_password_length == 12


def test_the_defaults_pass_their_own_checks() -> None:
    settings = make()
    assert settings.min_password_length == 8
    assert settings.registration_scopes is None and settings.secret_key is None


def test_lists_become_the_tuple_or_frozenset_the_setting_holds() -> None:
    settings = make(
        scopes_supported=["read", "write"],
        resources=["https://api.example"],
        enabled_grants=["authorization_code", "refresh_token"],
        registration_grant_types={"authorization_code"},
    )
    assert type(settings.scopes_supported) is tuple and type(settings.resources) is tuple
    assert type(settings.enabled_grants) is frozenset
    assert type(settings.registration_grant_types) is frozenset
    assert settings == make(
        scopes_supported=("read", "write"),
        resources=("https://api.example",),
        enabled_grants=frozenset({"authorization_code", "refresh_token"}),
        registration_grant_types=frozenset({"authorization_code"}),
    )


def test_replace_checks_the_new_values_and_keeps_the_old() -> None:
    settings = make(scope_descriptions={"read": "Read your files"})
    replaced = dataclasses.replace(settings, access_token_lifetime=60)
    assert replaced.scope_descriptions == {"read": "Read your files"}
    with pytest.raises(SettingsTypeError, match=r"^access_token_lifetime must be an int"):
        dataclasses.replace(settings, access_token_lifetime="60")  # type: ignore[arg-type]


# -- the environment's strings ---------------------------------------------------------------


def test_the_environment_strings_become_the_settings_types() -> None:
    settings = Settings.from_env(
        {
            "ASGI_OAUTH_ISSUER": ISSUER,
            "ASGI_OAUTH_MIN_PASSWORD_LENGTH": "12",
            "ASGI_OAUTH_CLOCK_SKEW": "0",
            "ASGI_OAUTH_REQUIRE_PKCE": "yes",
            "ASGI_OAUTH_SCOPES_SUPPORTED": "read write",
            "ASGI_OAUTH_REGISTRATION_SCOPES": "read",
            "ASGI_OAUTH_ENABLED_GRANTS": "authorization_code password",
            "ASGI_OAUTH_ACCESS_TOKEN_SIGNING_ALG": "ES256",
            "ASGI_OAUTH_SECRET_KEY": "s" * 32,
        }
    )
    assert settings.min_password_length == 12 and settings.clock_skew == 0
    assert settings.require_pkce is True
    assert settings.scopes_supported == ("read", "write")
    assert settings.registration_scopes == ("read",)
    assert settings.enabled_grants == frozenset({"authorization_code", "password"})
    assert settings.access_token_signing_alg == "ES256" and settings.secret_key == "s" * 32


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("MIN_PASSWORD_LENGTH", "eight", "ASGI_OAUTH_MIN_PASSWORD_LENGTH must be an integer"),
        ("MIN_PASSWORD_LENGTH", "0", "min_password_length must be positive"),
        ("ACCESS_TOKEN_FORMAT", "JWT", "access_token_format must be one of 'opaque', 'jwt'"),
        ("ENABLED_GRANTS", "telepathy", "enabled_grants has unknown grant types"),
    ],
)
def test_a_bad_environment_value_is_refused_naming_it(
    variable: str, raw: str, message: str
) -> None:
    environ = {"ASGI_OAUTH_ISSUER": ISSUER, f"ASGI_OAUTH_{variable}": raw}
    with pytest.raises(SettingsError, match=f"^{message}"):
        Settings.from_env(environ)


# -- the minimum password length -------------------------------------------------------------


@pytest.mark.parametrize("password", ["seven77", "é" * 7, " " * 7])
async def test_a_password_shorter_than_the_minimum_is_refused(
    server: AuthorizationServer, password: str
) -> None:
    with pytest.raises(ValueError, match=r"^the password must be at least 8 characters$"):
        await server.create_user("alice", password)
    assert await server.storage.list_users() == []


@pytest.mark.parametrize("password", ["eight888", "é" * 8, "correct horse battery staple"])
async def test_a_password_of_the_minimum_length_or_more_is_taken(
    server: AuthorizationServer, password: str
) -> None:
    user = await server.create_user("alice", password)
    assert [u.username for u in await server.storage.list_users()] == [user.username]


@pytest.mark.parametrize("settings", [Settings(issuer=ISSUER, min_password_length=12)])
async def test_the_minimum_is_the_setting(server: AuthorizationServer) -> None:
    with pytest.raises(ValueError, match="at least 12 characters"):
        await server.create_user("alice", "eleven char")
    await server.create_user("alice", "twelve chars")

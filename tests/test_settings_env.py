"""``Settings.from_env`` (``ASGI_OAUTH_*`` variables) and the store
``AuthorizationServer.from_settings`` opens for ``Settings.database_url``."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path

import pytest

from asgi_oauth import AuthorizationServer, Settings
from asgi_oauth.storage import DEFAULT_DATABASE_URL, MemoryStorage, SQLiteStorage

from .conftest import ISSUER
from .postgres import POSTGRES_URL

pytestmark = pytest.mark.anyio


def from_env(**variables: str) -> Settings:
    """Settings from exactly these variables (``issuer`` → ``ASGI_OAUTH_ISSUER``)."""
    environ = {"ASGI_OAUTH_ISSUER": ISSUER}
    environ.update({f"ASGI_OAUTH_{name.upper()}": value for name, value in variables.items()})
    return Settings.from_env(environ)


# -- reading the environment ---------------------------------------------------------------


def test_unset_variables_keep_the_defaults() -> None:
    assert Settings.from_env({"ASGI_OAUTH_ISSUER": ISSUER}) == Settings(issuer=ISSUER)


def test_issuer_and_database_url_are_read() -> None:
    settings = Settings.from_env(
        {
            "ASGI_OAUTH_ISSUER": "https://api.example.com/oauth2/",
            "ASGI_OAUTH_DATABASE_URL": "postgresql://oauth@db/oauth?schema=auth",
        }
    )
    assert settings.issuer == "https://api.example.com/oauth2"
    assert settings.database_url == "postgresql://oauth@db/oauth?schema=auth"


def test_the_process_environment_is_read_when_no_mapping_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for field in dataclasses.fields(Settings):
        monkeypatch.delenv(f"ASGI_OAUTH_{field.name.upper()}", raising=False)
    monkeypatch.setenv("ASGI_OAUTH_ISSUER", ISSUER)
    monkeypatch.setenv("ASGI_OAUTH_ACCESS_TOKEN_LIFETIME", "120")
    settings = Settings.from_env()
    assert settings.issuer == ISSUER and settings.access_token_lifetime == 120


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("Yes", True),
        ("0", False),
        ("false", False),
        ("False", False),
        ("no", False),
        ("NO", False),
    ],
)
def test_booleans_read_the_usual_words(raw: str, expected: bool) -> None:
    settings = from_env(require_pkce=raw, allow_plain_pkce=raw)
    assert settings.require_pkce is expected and settings.allow_plain_pkce is expected


@pytest.mark.parametrize("raw", ["maybe", "2", "tru", "yes please", "-1"])
def test_a_junk_boolean_is_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(ValueError, match="ASGI_OAUTH_REQUIRE_PKCE"):
        from_env(require_pkce=raw)


def test_integers_are_read() -> None:
    settings = from_env(access_token_lifetime="120", refresh_token_grace_period="0")
    assert settings.access_token_lifetime == 120 and settings.refresh_token_grace_period == 0


@pytest.mark.parametrize("raw", ["ten", "1.5", "3600s", "0x10"])
def test_a_junk_integer_is_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(ValueError, match="ASGI_OAUTH_ACCESS_TOKEN_LIFETIME"):
        from_env(access_token_lifetime=raw)


def test_an_empty_variable_counts_as_unset() -> None:
    settings = from_env(access_token_lifetime="", require_pkce="", database_url="")
    assert settings.access_token_lifetime == 3600
    assert settings.require_pkce is False and settings.database_url is None


def test_an_integer_out_of_range_is_refused_like_an_argument() -> None:
    with pytest.raises(ValueError, match="access_token_lifetime must be positive"):
        from_env(access_token_lifetime="-5")


def test_collections_are_space_separated_words() -> None:
    settings = from_env(
        enabled_grants="authorization_code  refresh_token\tpassword",
        scopes_supported="read write\n admin",
    )
    assert settings.enabled_grants == {"authorization_code", "refresh_token", "password"}
    assert settings.scopes_supported == ("read", "write", "admin")


def test_an_unknown_grant_in_the_environment_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown grant types"):
        from_env(enabled_grants="authorization_code telepathy")


def test_overrides_beat_the_environment_which_beats_the_defaults() -> None:
    environ = {
        "ASGI_OAUTH_ISSUER": "https://env.example",
        "ASGI_OAUTH_ACCESS_TOKEN_LIFETIME": "120",
        "ASGI_OAUTH_DEVICE_POLL_INTERVAL": "9",
    }
    settings = Settings.from_env(
        environ, issuer="https://override.example", access_token_lifetime=60
    )
    assert settings.issuer == "https://override.example"
    assert settings.access_token_lifetime == 60
    assert settings.device_poll_interval == 9
    assert settings.refresh_token_lifetime == Settings(issuer=ISSUER).refresh_token_lifetime


def test_an_issuer_given_only_as_an_override_is_enough() -> None:
    assert Settings.from_env({}, issuer=ISSUER).issuer == ISSUER


def test_a_missing_issuer_is_refused_naming_the_variable() -> None:
    with pytest.raises(ValueError, match="ASGI_OAUTH_ISSUER"):
        Settings.from_env({"ASGI_OAUTH_ACCESS_TOKEN_LIFETIME": "120"})


def test_variables_that_are_no_setting_are_ignored() -> None:
    settings = Settings.from_env({"ASGI_OAUTH_ISSUER": ISSUER, "ASGI_OAUTH_REQUIRE_ALL": "1"})
    assert settings == Settings(issuer=ISSUER)


# -- the store a database URL opens --------------------------------------------------------


async def test_memory_url_gives_a_memory_store() -> None:
    server = AuthorizationServer.from_settings(Settings(issuer=ISSUER, database_url="memory:"))
    assert isinstance(server.storage, MemoryStorage)
    await server.close()


async def test_settings_from_the_environment_choose_the_store() -> None:
    settings = Settings.from_env(
        {"ASGI_OAUTH_ISSUER": ISSUER, "ASGI_OAUTH_DATABASE_URL": "memory:"}
    )
    server = AuthorizationServer.from_settings(settings)
    assert isinstance(server.storage, MemoryStorage)
    await server.close()


async def test_sqlite_url_gives_a_sqlite_store_at_that_path(tmp_path: Path) -> None:
    path = tmp_path / "oauth.db"
    server = AuthorizationServer.from_settings(
        Settings(issuer=ISSUER, database_url=f"sqlite:///{path}")
    )
    try:
        assert isinstance(server.storage, SQLiteStorage)
        assert server.storage._path == str(path)
        await server.register_client(name="Example", grant_types=["client_credentials"])
    finally:
        await server.close()
    assert path.exists()


async def test_postgres_url_gives_a_postgres_store_on_the_named_schema() -> None:
    pytest.importorskip("asyncpg")
    from asgi_oauth.storage.postgres import PostgresStorage

    url = POSTGRES_URL + ("&" if "?" in POSTGRES_URL else "?") + "schema=oauth"
    server = AuthorizationServer.from_settings(Settings(issuer=ISSUER, database_url=url))
    assert isinstance(server.storage, PostgresStorage)
    assert server.storage._schema == "oauth"
    await server.close()  # never connected: nothing to release


async def test_no_url_gives_the_default_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # should anything be written after all, not in the repository
    server = AuthorizationServer.from_settings(Settings(issuer=ISSUER))
    assert DEFAULT_DATABASE_URL == "sqlite:///asgi_oauth.db"
    assert isinstance(server.storage, SQLiteStorage)
    assert server.storage._path == "asgi_oauth.db"
    await server.close()
    assert await asyncio.to_thread(os.listdir, tmp_path) == []  # nothing was opened

"""The rules around upstream sign-in that need no upstream: configuration refused at
start, people without a password, and the scope limit of a person on the device flow."""

from __future__ import annotations

from pathlib import Path

import pytest

from asgi_oauth import AuthorizationServer, OAuthRequest, Settings
from asgi_oauth.crypto import NO_PASSWORD, hash_password, verify_password
from asgi_oauth.errors import AccessDeniedError, InvalidGrantError
from asgi_oauth.federation import ProviderConfigError, UpstreamProvider, github, load_providers
from asgi_oauth.models import ResourceOwner, User
from asgi_oauth.scopes import grantable_by
from asgi_oauth.setting_checks import SettingsError
from asgi_oauth.storage import MemoryStorage

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"id": "Has Spaces"}, "id must be"),
        ({"protocol": "oauth2"}, r"needs \['authorization_endpoint'"),
        ({"issuer": ""}, "issuer is required"),
        ({"allowed_organizations": ("acme",)}, "needs organizations_endpoint"),
    ],
)
def test_a_provider_that_cannot_work_is_refused_when_made(
    fields: dict[str, object], message: str
) -> None:
    values: dict[str, object] = {
        "id": "corp",
        "name": "Corp",
        "client_id": "x",
        "issuer": "https://id.corp.example",
        **fields,
    }
    with pytest.raises(ProviderConfigError, match=message):
        UpstreamProvider(**values)  # type: ignore[arg-type]


def test_openid_connect_always_asks_openid_and_oauth2_asks_only_what_is_given() -> None:
    corp = UpstreamProvider(id="c", name="C", client_id="x", issuer="https://i", scopes=("email",))
    assert corp.scopes == ("openid", "email")
    assert github("id", "secret").scopes == ("read:user", "user:email")
    # GitHub lists an OAuth App user's organisations only with read:org.
    with_orgs = github("id", "secret", allowed_organizations=("acme",))
    assert with_orgs.scopes == ("read:user", "user:email", "read:org")
    assert github("id", "s", allowed_organizations=("a",), scopes=("user",)).scopes == ("user",)


def test_settings_refuse_http_providers_and_kept_tokens_without_a_key() -> None:
    plain = UpstreamProvider(id="c", name="C", client_id="x", issuer="http://id.example")
    with pytest.raises(ProviderConfigError, match="needs https"):
        AuthorizationServer(
            MemoryStorage(), Settings(issuer="https://as.example", upstream_providers=(plain,))
        )
    kept = github("id", "secret", keep_tokens=True)
    with pytest.raises(ValueError, match="keep_tokens needs key_encryption_key"):
        AuthorizationServer(
            MemoryStorage(), Settings(issuer="https://as.example", upstream_providers=(kept,))
        )
    with pytest.raises(SettingsError, match="each id once"):
        Settings(
            issuer="https://as.example", upstream_providers=(github("a", "b"), github("c", "d"))
        )
    with pytest.raises(SettingsError, match="password_sign_in=False needs upstream_providers"):
        Settings(issuer="https://as.example", password_sign_in=False)


def test_a_providers_file_with_unknown_fields_or_presets_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('[{"preset": "gitlab", "client_id": "x"}]')
    with pytest.raises(ProviderConfigError, match="unknown preset"):
        load_providers(path, {})
    path.write_text('[{"preset": "github", "client_id": "x", "colour": "blue"}]')
    with pytest.raises(ProviderConfigError, match=r"unknown fields \['colour'\]"):
        load_providers(path, {})
    path.write_text("not json")
    with pytest.raises(ProviderConfigError, match=r"p\.json"):
        load_providers(path, {})


async def test_someone_without_a_password_cannot_sign_in_with_one() -> None:
    assert not verify_password("", NO_PASSWORD)
    assert not verify_password("none", NO_PASSWORD)
    assert verify_password("right", hash_password("right"))
    storage = MemoryStorage()
    server = AuthorizationServer(storage, Settings(issuer="https://as.example"))
    await storage.add_user(User(user_id="u1", username="github:octocat", password_hash=NO_PASSWORD))
    with pytest.raises(InvalidGrantError):
        await server.authenticate_user(OAuthRequest(), "github:octocat", "none")


def test_a_scope_limit_leaves_the_scopes_about_the_person_alone() -> None:
    asked = frozenset({"openid", "profile", "offline_access", "read", "write"})
    assert grantable_by(asked, None) == asked
    assert grantable_by(asked, frozenset({"read"})) == asked - {"write"}


async def test_a_person_may_not_approve_a_device_beyond_their_limit() -> None:
    server = AuthorizationServer(MemoryStorage(), Settings(issuer="https://as.example"))
    registered = await server.register_client(
        name="TV",
        grant_types=["urn:ietf:params:oauth:grant-type:device_code"],
        scope=["read", "write"],
        public=True,
    )
    started = await server.device_authorization(
        OAuthRequest(form={"client_id": registered.client.client_id, "scope": "read write"})
    )
    device, _ = await server.find_device_authorization(str(started["user_code"]), OAuthRequest())
    limited = ResourceOwner(subject="u1", scopes=frozenset({"read"}))
    with pytest.raises(AccessDeniedError):
        await server.decide_device_authorization(device, limited, approved=True)
    # Denying is always allowed, and someone without a limit may approve.
    await server.decide_device_authorization(device, ResourceOwner(subject="u2"), approved=True)

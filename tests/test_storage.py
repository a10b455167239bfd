"""The ``Storage`` contract, run against every backend."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest

from asgi_oauth.errors import StorageError
from asgi_oauth.models import (
    AuthorizationCode,
    BrowserSession,
    Client,
    DeviceAuthorization,
    PushedAuthorizationRequest,
    SigningKey,
    Token,
    User,
)
from asgi_oauth.storage import Storage
from asgi_oauth.storage.base import FAILURE_RETENTION
from asgi_oauth.types import SigningAlgorithm

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_client(client_id: str = "client-1", **kw: Any) -> Client:
    fields: dict[str, Any] = {
        "secret_hash": "scrypt$secret",
        "name": "Example",
        "redirect_uris": ("https://app.example/cb", "http://127.0.0.1:8000/cb"),
        "scope": frozenset({"openid", "profile"}),
        "allowed_origins": ("https://app.example",),
        "created_at": NOW,
    }
    return Client(client_id=client_id, **{**fields, **kw})


def make_user(user_id: str = "user-1", username: str = "alice", **kw: Any) -> User:
    fields: dict[str, Any] = {"password_hash": "scrypt$pw", "created_at": NOW}
    return User(user_id=user_id, username=username, **{**fields, **kw})


def make_code(code_hash: str = "code-1", **kw: Any) -> AuthorizationCode:
    fields: dict[str, Any] = {
        "client_id": "client-1",
        "subject": "user-1",
        "scope": frozenset({"openid"}),
        "redirect_uri": "https://app.example/cb",
        "family_id": f"family-{code_hash}",
        "issued_at": NOW,
        "expires_at": NOW + 60,
    }
    return AuthorizationCode(code_hash=code_hash, **{**fields, **kw})


def make_device(
    device_code_hash: str = "device-1", user_code_hash: str = "user-code-1", **kw: Any
) -> DeviceAuthorization:
    fields: dict[str, Any] = {
        "client_id": "client-1",
        "scope": frozenset({"openid", "profile"}),
        "family_id": f"family-{device_code_hash}",
        "issued_at": NOW,
        "expires_at": NOW + 600,
        "interval": 5,
    }
    return DeviceAuthorization(
        device_code_hash=device_code_hash, user_code_hash=user_code_hash, **{**fields, **kw}
    )


def make_token(token_hash: str = "token-1", **kw: Any) -> Token:
    fields: dict[str, Any] = {
        "kind": "access_token",
        "client_id": "client-1",
        "scope": frozenset({"openid"}),
        "family_id": "family-1",
        "issued_at": NOW,
        "expires_at": NOW + 3600,
        "subject": "user-1",
    }
    return Token(token_hash=token_hash, **{**fields, **kw})


def make_pair(prefix: str, family_id: str = "family-1", parent: str | None = None) -> list[Token]:
    """An access token and a refresh token, as one grant or rotation issues them."""
    return [
        make_token(f"{prefix}-at", family_id=family_id, parent_hash=parent),
        make_token(
            f"{prefix}-rt",
            kind="refresh_token",
            family_id=family_id,
            parent_hash=parent,
            expires_at=NOW + 86400,
        ),
    ]


def make_key(
    kid: str, alg: SigningAlgorithm = "RS256", created_at: int = NOW, **kw: Any
) -> SigningKey:
    fields: dict[str, Any] = {"public_jwk": f'{{"kid": "{kid}"}}', "private_jwk": f"sealed-{kid}"}
    return SigningKey(kid=kid, alg=alg, created_at=created_at, **{**fields, **kw})


def make_pushed(request_uri_hash: str = "par-1", **kw: Any) -> PushedAuthorizationRequest:
    fields: dict[str, Any] = {
        "client_id": "client-1",
        "params": {"response_type": "code", "redirect_uri": "https://app.example/cb"},
        "issued_at": NOW,
        "expires_at": NOW + 60,
    }
    return PushedAuthorizationRequest(request_uri_hash=request_uri_hash, **{**fields, **kw})


async def exist(storage: Storage, hashes: list[str]) -> list[bool]:
    return [await storage.get_token(h) is not None for h in hashes]


# -- clients -------------------------------------------------------------------------------


async def test_client_round_trips_every_field(storage: Storage) -> None:
    client = make_client(
        grant_types=frozenset({"authorization_code", "refresh_token", "client_credentials"}),
        is_resource_server=True,
        require_pkce=True,
        access_token_format="jwt",
        id_token_signed_response_alg="ES256",
        require_pushed_authorization_requests=True,
        dpop_bound_access_tokens=True,
        registration_access_token_hash="sha256$registration",
        registration_metadata='{"client_uri":"https://app.example","contacts":["ops@x"]}',
    )
    public = make_client("client-2", secret_hash=None, redirect_uris=(), allowed_origins=())
    opaque = make_client("client-3", access_token_format="opaque")
    for each in (client, public, opaque):
        await storage.save_client(each)
    assert await storage.get_client("client-1") == client
    assert await storage.get_client("client-2") == public
    assert (public.access_token_format, public.id_token_signed_response_alg) == (None, "RS256")
    defaults = (
        public.require_pushed_authorization_requests,
        public.dpop_bound_access_tokens,
        public.registration_access_token_hash,
        public.registration_metadata,
    )
    assert defaults == (False, False, None, "")
    assert await storage.get_client("client-3") == opaque
    assert await storage.get_client("nobody") is None
    assert await storage.list_clients() == [client, public, opaque]


async def test_save_client_replaces_the_token_formats_too(storage: Storage) -> None:
    await storage.save_client(make_client(access_token_format="jwt"))
    await storage.save_client(make_client(id_token_signed_response_alg="ES256"))
    assert await storage.get_client("client-1") == make_client(id_token_signed_response_alg="ES256")


async def test_save_client_replaces_the_registration_fields_too(storage: Storage) -> None:
    registered = make_client(
        require_pushed_authorization_requests=True,
        dpop_bound_access_tokens=True,
        registration_access_token_hash="sha256$old",
        registration_metadata='{"client_uri":"https://old.example"}',
    )
    await storage.save_client(registered)
    await storage.save_client(make_client(registration_access_token_hash="sha256$new"))
    assert await storage.get_client("client-1") == make_client(
        registration_access_token_hash="sha256$new"
    )


async def test_save_client_replaces_the_one_with_the_same_id(storage: Storage) -> None:
    await storage.save_client(make_client(name="Old"))
    await storage.save_client(make_client(name="New", scope=frozenset({"email"})))
    assert await storage.get_client("client-1") == make_client(
        name="New", scope=frozenset({"email"})
    )
    assert await storage.list_clients() == [make_client(name="New", scope=frozenset({"email"}))]


async def test_list_clients_is_ordered_by_id(storage: Storage) -> None:
    assert await storage.list_clients() == []
    for client_id in ("c", "a", "b"):
        await storage.save_client(make_client(client_id))
    assert [c.client_id for c in await storage.list_clients()] == ["a", "b", "c"]


async def test_delete_client_removes_its_codes_and_refresh_tokens_only(storage: Storage) -> None:
    await storage.save_client(make_client("client-1"))
    await storage.save_client(make_client("client-2"))
    await storage.save_authorization_code(make_code("code-1", client_id="client-1"))
    await storage.save_authorization_code(make_code("code-2", client_id="client-2"))
    await storage.save_tokens(make_pair("c1", family_id="f1"))
    await storage.save_tokens(
        [dataclasses.replace(t, client_id="client-2") for t in make_pair("c2")]
    )

    assert await storage.delete_client("client-1") is True

    assert await storage.get_client("client-1") is None
    assert await storage.get_authorization_code("code-1") is None
    assert await exist(storage, ["c1-rt"]) == [False]
    assert await storage.get_client("client-2") is not None
    assert await storage.get_authorization_code("code-2") is not None
    assert await storage.get_token("c2-at") == make_token("c2-at", client_id="client-2")
    assert await exist(storage, ["c2-rt"]) == [True]
    assert await storage.delete_client("client-1") is False
    assert await storage.delete_client("nobody") is False


async def test_delete_client_revokes_its_access_tokens_for_the_revocation_list(
    storage: Storage,
) -> None:
    await storage.save_client(make_client("client-1"))
    await storage.save_tokens(
        [make_token("t-live"), make_token("t-revoked", revoked_at=NOW - 5), make_token("t-other")]
    )
    await storage.revoke_token("t-other", now=NOW - 1)
    await storage.save_tokens([make_token("t-kept", client_id="client-2")])
    before = int(time.time())

    assert await storage.delete_client("client-1") is True

    revoked = await storage.get_token("t-live")
    assert revoked is not None
    assert revoked.revoked_at is not None and before <= revoked.revoked_at <= time.time()
    assert revoked == make_token("t-live", revoked_at=revoked.revoked_at)
    assert await storage.get_token("t-revoked") == make_token("t-revoked", revoked_at=NOW - 5)
    assert await storage.get_token("t-kept") == make_token("t-kept", client_id="client-2")
    listed = await storage.list_revoked_access_tokens(now=NOW)
    assert sorted(listed) == ["t-live", "t-other", "t-revoked"]
    assert await storage.purge_expired(now=NOW + 3600) == 4
    assert await storage.list_revoked_access_tokens(now=NOW) == []


async def test_is_allowed_origin_follows_the_registered_clients(storage: Storage) -> None:
    assert await storage.is_allowed_origin("https://app.example") is False
    await storage.save_client(
        make_client(allowed_origins=("https://a.example", "https://b.example"))
    )
    await storage.save_client(make_client("client-2", allowed_origins=("https://c.example",)))
    for origin in ("https://a.example", "https://b.example", "https://c.example"):
        assert await storage.is_allowed_origin(origin) is True
    assert await storage.is_allowed_origin("https://evil.example") is False
    assert await storage.is_allowed_origin("https://a.example/") is False

    await storage.save_client(make_client(allowed_origins=("https://b.example",)))
    assert await storage.is_allowed_origin("https://a.example") is False
    assert await storage.is_allowed_origin("https://b.example") is True

    await storage.delete_client("client-2")
    assert await storage.is_allowed_origin("https://c.example") is False


# -- users ---------------------------------------------------------------------------------


async def test_user_is_found_by_username(storage: Storage) -> None:
    await storage.save_user(make_user())
    await storage.save_user(make_user("user-2", "bob"))
    assert await storage.get_user("alice") == make_user()
    assert await storage.get_user("bob") == make_user("user-2", "bob")
    assert await storage.get_user("carol") is None


async def test_save_user_replaces_the_one_with_the_same_id(storage: Storage) -> None:
    await storage.save_user(make_user("user-1", "alice"))
    renamed = make_user("user-1", "alicia", password_hash="scrypt$new")
    await storage.save_user(renamed)
    assert await storage.get_user("alice") is None
    assert await storage.get_user("alicia") == renamed


async def test_user_is_found_by_id(storage: Storage) -> None:
    await storage.save_user(make_user())
    await storage.save_user(make_user("user-2", "bob"))
    assert await storage.get_user_by_id("user-1") == make_user()
    assert await storage.get_user_by_id("user-2") == make_user("user-2", "bob")
    assert await storage.get_user_by_id("alice") is None
    assert await storage.get_user_by_id("user-3") is None

    renamed = make_user("user-1", "alicia")
    await storage.save_user(renamed)
    assert await storage.get_user_by_id("user-1") == renamed


async def test_users_are_listed_by_username(storage: Storage) -> None:
    assert await storage.list_users() == []
    await storage.save_user(make_user("user-2", "bob"))
    await storage.save_user(make_user("user-1", "alice"))
    assert [u.username for u in await storage.list_users()] == ["alice", "bob"]


async def test_deleting_a_user_deletes_what_was_issued_on_their_behalf(
    storage: Storage,
) -> None:
    await storage.save_user(make_user("user-1", "alice"))
    await storage.save_tokens(make_pair("alice", family_id="f-alice"))
    bobs = [dataclasses.replace(t, subject="user-2") for t in make_pair("bob", family_id="f-bob")]
    await storage.save_tokens(bobs)
    await storage.save_authorization_code(make_code("c-alice", subject="user-1"))
    await storage.save_authorization_code(make_code("c-bob", subject="user-2"))
    await storage.save_device_authorization(make_device("d-alice", "u-alice", subject="user-1"))
    await storage.save_device_authorization(make_device("d-bob", "u-bob", subject="user-2"))
    before = int(time.time())

    assert await storage.delete_user("alice") is True

    assert await exist(storage, ["alice-rt"]) == [False]
    revoked = await storage.get_token("alice-at")
    assert revoked is not None
    assert revoked.revoked_at is not None and before <= revoked.revoked_at <= time.time()
    assert await storage.list_revoked_access_tokens(now=NOW) == ["alice-at"]
    assert await storage.get_authorization_code("c-alice") is None
    assert await storage.get_device_authorization("u-alice") is None
    assert [await storage.get_token(t.token_hash) for t in bobs] == bobs
    assert await storage.get_authorization_code("c-bob") is not None
    assert await storage.get_device_authorization("u-bob") is not None
    assert await storage.revoke_family("f-alice", now=NOW) == 0


async def test_deleting_a_user_forgets_their_consents_only(storage: Storage) -> None:
    await storage.save_user(make_user("user-1", "alice"))
    await storage.save_user(make_user("user-2", "bob"))
    await storage.save_consent("user-1", "client-1", frozenset({"read"}))
    await storage.save_consent("user-2", "client-1", frozenset({"read"}))
    assert await storage.delete_user("alice") is True
    assert await storage.get_user("alice") is None
    assert await storage.get_user_by_id("user-1") is None
    assert await storage.get_consent("user-1", "client-1") is None
    assert await storage.get_consent("user-2", "client-1") == frozenset({"read"})
    assert await storage.delete_user("alice") is False
    assert [u.username for u in await storage.list_users()] == ["bob"]


async def test_lookups_of_text_with_a_nul_find_nothing(storage: Storage) -> None:
    """A client id or username typed with %00 is no error (PostgreSQL text holds no NUL)."""
    assert await storage.get_client("client\x00-1") is None
    assert await storage.get_user("al\x00ice") is None
    assert await storage.get_user_by_id("user\x00") is None
    assert await storage.get_token("t\x00") is None
    assert await storage.get_consent("u\x00", "c") is None
    assert await storage.is_allowed_origin("https://a\x00.example") is False


# -- adding users and clients, sign-in sessions ---------------------------------------------


async def test_a_taken_username_or_user_id_is_not_added(storage: Storage) -> None:
    alice = make_user()
    assert await storage.add_user(alice) is True
    assert await storage.add_user(make_user("user-2", "alice", password_hash="scrypt$x")) is False
    assert await storage.add_user(make_user("user-1", "mallory")) is False
    assert await storage.get_user("alice") == alice
    assert await storage.get_user("mallory") is None
    assert await storage.list_users() == [alice]


async def test_concurrent_sign_ups_for_one_name_have_one_winner(storage: Storage) -> None:
    added = await asyncio.gather(
        *(storage.add_user(make_user(f"user-{i}", "alice")) for i in range(10))
    )
    assert added.count(True) == 1
    user = await storage.get_user("alice")
    assert user is not None
    assert user.user_id == f"user-{added.index(True)}"


async def test_save_user_replaces_by_id_and_never_takes_another_users_name(
    storage: Storage,
) -> None:
    assert await storage.add_user(make_user("user-1", "alice"))
    assert await storage.add_user(make_user("user-2", "bob"))
    await storage.save_user(make_user("user-1", "alice", password_hash="scrypt$new"))
    alice = await storage.get_user("alice")
    assert alice is not None
    assert alice.password_hash == "scrypt$new"
    with pytest.raises(StorageError):
        await storage.save_user(make_user("user-1", "bob"))
    assert await storage.get_user("bob") == make_user("user-2", "bob")
    assert await storage.get_user_by_id("user-1") == alice


async def test_a_taken_client_id_is_not_added(storage: Storage) -> None:
    first = make_client()
    assert await storage.add_client(first) is True
    assert await storage.add_client(make_client(name="Impostor", allowed_origins=())) is False
    assert await storage.get_client("client-1") == first
    assert await storage.is_allowed_origin("https://app.example") is True


def make_session(session_hash: str = "session-1", **kw: Any) -> BrowserSession:
    fields: dict[str, Any] = {"user_id": "user-1", "auth_time": NOW, "expires_at": NOW + 3600}
    return BrowserSession(session_hash=session_hash, **{**fields, **kw})


async def test_a_session_lives_until_deleted(storage: Storage) -> None:
    session = make_session()
    await storage.save_session(session)
    await storage.save_session(make_session("session-2"))
    assert await storage.get_session("session-1") == session
    assert await storage.delete_session("session-1") is True
    assert await storage.delete_session("session-1") is False
    assert await storage.get_session("session-1") is None
    assert await storage.get_session("session-2") is not None


async def test_deleting_a_user_ends_their_sessions(storage: Storage) -> None:
    assert await storage.add_user(make_user())
    assert await storage.add_user(make_user("user-2", "bob"))
    await storage.save_session(make_session())
    await storage.save_session(make_session("bobs", user_id="user-2"))
    assert await storage.delete_user("alice")
    assert await storage.get_session("session-1") is None
    assert await storage.get_session("bobs") is not None


# -- failed guesses ------------------------------------------------------------------------


async def test_attempts_are_counted_per_key_until_the_limit(storage: Storage) -> None:
    for at in (NOW - 400, NOW - 200, NOW - 100):
        assert await storage.take_attempt("user:alice", limit=3, since=NOW - 500, now=at) is None
    assert await storage.take_attempt("user:bob", limit=3, since=NOW - 500, now=NOW) is None
    # The limit reached: nothing is counted, and the earliest failure in the window is told.
    assert await storage.take_attempt("user:alice", limit=3, since=NOW - 500, now=NOW) == NOW - 400
    assert await storage.take_attempt("user:alice", limit=3, since=NOW - 300, now=NOW) is None
    assert await storage.take_attempt("user:alice", limit=3, since=NOW - 300, now=NOW) == NOW - 200
    await storage.clear_failures("user:alice")
    assert await storage.take_attempt("user:alice", limit=1, since=0, now=NOW) is None
    assert await storage.take_attempt("user:bob", limit=1, since=0, now=NOW) == NOW


async def test_a_forgotten_failure_is_one_failure_only(storage: Storage) -> None:
    for _ in range(2):
        assert await storage.take_attempt("k", limit=2, since=0, now=NOW) is None
    await storage.forget_failure("k", at=NOW)
    await storage.forget_failure("k", at=NOW - 1)  # none then: nothing happens
    assert await storage.take_attempt("k", limit=2, since=0, now=NOW + 1) is None
    assert await storage.take_attempt("k", limit=2, since=0, now=NOW + 2) == NOW


async def test_concurrent_attempts_are_counted_up_to_the_limit(storage: Storage) -> None:
    taken = await asyncio.gather(
        *(storage.take_attempt("k", limit=5, since=0, now=NOW) for _ in range(30))
    )
    assert taken.count(None) == 5
    assert taken.count(NOW) == 25


async def test_purge_drops_failures_older_than_the_retention_only(storage: Storage) -> None:
    old = NOW - FAILURE_RETENTION - 1
    assert await storage.take_attempt("k", limit=5, since=0, now=old) is None
    assert await storage.take_attempt("k", limit=5, since=0, now=NOW - 10) is None
    assert await storage.purge_expired(now=NOW) == 1
    assert await storage.take_attempt("k", limit=1, since=0, now=NOW) == NOW - 10


# -- consents ------------------------------------------------------------------------------


async def test_consent_round_trips_and_is_replaced(storage: Storage) -> None:
    assert await storage.get_consent("user-1", "client-1") is None
    await storage.save_consent("user-1", "client-1", frozenset({"openid", "profile"}))
    assert await storage.get_consent("user-1", "client-1") == frozenset({"openid", "profile"})

    await storage.save_consent("user-1", "client-1", frozenset({"email"}))
    assert await storage.get_consent("user-1", "client-1") == frozenset({"email"})

    await storage.save_consent("user-1", "client-1", frozenset())
    assert await storage.get_consent("user-1", "client-1") == frozenset()


async def test_consent_is_kept_per_user_and_client(storage: Storage) -> None:
    await storage.save_consent("user-1", "client-1", frozenset({"openid"}))
    await storage.save_consent("user-2", "client-2", frozenset({"email"}))
    assert await storage.get_consent("user-1", "client-1") == frozenset({"openid"})
    assert await storage.get_consent("user-2", "client-2") == frozenset({"email"})
    assert await storage.get_consent("user-1", "client-2") is None
    assert await storage.get_consent("user-2", "client-1") is None


# -- authorization codes -------------------------------------------------------------------


async def test_code_round_trips_every_field(storage: Storage) -> None:
    code = make_code(
        scope=frozenset({"openid", "profile", "email"}),
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        code_challenge_method="S256",
        nonce="n-0S6_WzA2Mj",
        auth_time=NOW - 30,
        acr="urn:mace:incommon:iap:silver",
        amr=("pwd", "otp", "mfa"),
        resource=("https://b.example/api", "https://a.example/"),
        dpop_jkt="0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
    )
    bare = make_code("code-2", redirect_uri=None, scope=frozenset())
    single = make_code("code-3", amr=("pwd",), auth_time=NOW, resource=("urn:example:api",))
    for each in (code, bare, single):
        await storage.save_authorization_code(each)
    assert await storage.get_authorization_code("code-1") == code
    assert await storage.get_authorization_code("code-2") == bare
    assert (bare.auth_time, bare.acr, bare.amr) == (None, None, ())
    assert (bare.resource, bare.dpop_jkt) == ((), None)
    assert await storage.get_authorization_code("code-3") == single
    assert await storage.get_authorization_code("nothing") is None


async def test_a_redeemed_code_keeps_how_the_user_signed_in(storage: Storage) -> None:
    code = make_code(
        auth_time=NOW - 30, acr="1", amr=("pwd",), resource=("https://api.example",), dpop_jkt="j"
    )
    await storage.save_authorization_code(code)
    assert await storage.redeem_authorization_code("code-1", tokens=make_pair("x"), now=NOW)
    assert await storage.get_authorization_code("code-1") == dataclasses.replace(
        code, consumed_at=NOW
    )


async def test_a_code_redeems_once_and_writes_the_tokens(storage: Storage) -> None:
    await storage.save_authorization_code(make_code())
    tokens = make_pair("first", family_id="family-code-1")

    assert await storage.redeem_authorization_code("code-1", tokens=tokens, now=NOW + 1) is True
    code = await storage.get_authorization_code("code-1")
    assert code == make_code(consumed_at=NOW + 1)
    assert [await storage.get_token(t.token_hash) for t in tokens] == tokens

    again = make_pair("second", family_id="family-code-1")
    assert await storage.redeem_authorization_code("code-1", tokens=again, now=NOW + 2) is False
    assert await exist(storage, ["second-at", "second-rt"]) == [False, False]
    assert await storage.get_authorization_code("code-1") == make_code(consumed_at=NOW + 1)


async def test_an_expired_code_does_not_redeem(storage: Storage) -> None:
    await storage.save_authorization_code(make_code(expires_at=NOW))
    tokens = make_pair("late")
    assert await storage.redeem_authorization_code("code-1", tokens=tokens, now=NOW) is False
    assert await storage.get_authorization_code("code-1") == make_code(expires_at=NOW)
    assert await exist(storage, ["late-at", "late-rt"]) == [False, False]


async def test_an_unknown_code_does_not_redeem(storage: Storage) -> None:
    tokens = make_pair("ghost")
    assert await storage.redeem_authorization_code("nothing", tokens=tokens, now=NOW) is False
    assert await exist(storage, ["ghost-at", "ghost-rt"]) == [False, False]


async def test_concurrent_redemptions_have_one_winner(storage: Storage) -> None:
    await storage.save_authorization_code(make_code())
    attempts = [make_pair(f"try{i}") for i in range(50)]
    results = await asyncio.gather(
        *(
            storage.redeem_authorization_code("code-1", tokens=tokens, now=NOW)
            for tokens in attempts
        )
    )
    assert results.count(True) == 1
    winner = results.index(True)
    for i, tokens in enumerate(attempts):
        hashes = [t.token_hash for t in tokens]
        assert await exist(storage, hashes) == [i == winner] * 2


# -- tokens --------------------------------------------------------------------------------


async def test_token_round_trips_every_field(storage: Storage) -> None:
    token = make_token(
        scope=frozenset({"openid", "profile"}),
        audience=("https://api.example", "https://other.example"),
        parent_hash="parent",
        replaced_by="next",
        rotated_at=NOW + 5,
        revoked_at=NOW + 6,
        jkt="0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
    )
    machine = make_token("token-2", subject=None, scope=frozenset(), kind="refresh_token")
    await storage.save_tokens([token, machine])
    assert await storage.get_token("token-1") == token
    assert await storage.get_token("token-2") == machine
    assert (machine.audience, machine.jkt) == ((), None)
    assert await storage.get_token("nothing") is None


def bound_pair(prefix: str, parent: str | None = None) -> list[Token]:
    """A pair whose both tokens carry resources and a DPoP key (RFC 8707, RFC 9449)."""
    audience = ("https://api.example", "https://other.example/")
    return [
        dataclasses.replace(t, audience=audience, jkt=f"jkt-{prefix}")
        for t in make_pair(prefix, parent=parent)
    ]


async def test_audience_and_key_binding_round_trip_on_every_way_tokens_are_saved(
    storage: Storage,
) -> None:
    saved = bound_pair("g0")
    await storage.save_tokens(saved)
    await storage.save_authorization_code(make_code())
    redeemed = bound_pair("code")
    assert await storage.redeem_authorization_code("code-1", tokens=redeemed, now=NOW)
    rotated = bound_pair("g1", parent="g0-rt")
    assert await storage.rotate_refresh_token("g0-rt", tokens=rotated, now=NOW)
    await storage.save_device_authorization(make_device(status="approved", subject="user-1"))
    device = bound_pair("device")
    assert await storage.redeem_device_code("device-1", tokens=device, now=NOW)

    for token in saved[:1] + redeemed + rotated + device:
        assert await storage.get_token(token.token_hash) == token
    refresh = await storage.get_token("g0-rt")
    assert refresh is not None
    assert (refresh.audience, refresh.jkt) == (saved[1].audience, "jkt-g0")


async def test_save_tokens_with_nothing_is_fine(storage: Storage) -> None:
    await storage.save_tokens([])
    assert await storage.get_token("token-1") is None


async def test_first_rotation(storage: Storage) -> None:
    await storage.save_tokens(make_pair("g0"))
    new = make_pair("g1", parent="g0-rt")

    rotated = await storage.rotate_refresh_token(
        "g0-rt", tokens=new, now=NOW + 10, sealed_response="v1.sealed"
    )

    assert rotated is True
    old = await storage.get_token("g0-rt")
    assert old is not None
    assert (old.replaced_by, old.rotated_at, old.revoked_at) == ("g1-rt", NOW + 10, None)
    assert old.sealed_response == "v1.sealed"
    assert [await storage.get_token(t.token_hash) for t in new] == new
    # A new token has nothing sealed; only a rotation gives it something.
    assert {t.sealed_response for t in new} == {None}


async def test_a_rotated_token_does_not_rotate_again(storage: Storage) -> None:
    await storage.save_tokens(make_pair("g0"))
    assert await storage.rotate_refresh_token(
        "g0-rt", tokens=make_pair("g1", parent="g0-rt"), now=NOW
    )
    again = make_pair("g2", parent="g0-rt")
    assert await storage.rotate_refresh_token("g0-rt", tokens=again, now=NOW + 1) is False
    assert await exist(storage, ["g2-at", "g2-rt"]) == [False, False]


async def test_no_token_of_a_revoked_family_rotates(storage: Storage) -> None:
    await storage.save_tokens(make_pair("g0"))
    assert await storage.rotate_refresh_token(
        "g0-rt", tokens=make_pair("g1", parent="g0-rt"), now=NOW
    )
    assert await storage.revoke_family("family-1", now=NOW + 1) == 4

    late = make_pair("g2", parent="g1-rt")
    assert await storage.rotate_refresh_token("g1-rt", tokens=late, now=NOW + 2) is False
    assert await exist(storage, ["g2-at", "g2-rt"]) == [False, False]


async def test_a_second_first_rotation_loses(storage: Storage) -> None:
    await storage.save_tokens(make_pair("g0"))
    first = make_pair("g1", parent="g0-rt")
    await storage.rotate_refresh_token("g0-rt", tokens=first, now=NOW)
    before = await storage.get_token("g0-rt")

    second = make_pair("g1b", parent="g0-rt")
    rotated = await storage.rotate_refresh_token("g0-rt", tokens=second, now=NOW + 1)

    assert rotated is False
    assert await storage.get_token("g0-rt") == before
    assert await exist(storage, ["g1b-at", "g1b-rt"]) == [False, False]


async def test_a_revoked_or_unknown_token_does_not_rotate(storage: Storage) -> None:
    await storage.save_tokens(make_pair("g0"))
    await storage.revoke_token("g0-rt", now=NOW)
    new = make_pair("g1", parent="g0-rt")
    for token_hash in ("g0-rt", "nothing"):
        assert await storage.rotate_refresh_token(token_hash, tokens=new, now=NOW + 1) is False
    assert await exist(storage, ["g1-at", "g1-rt"]) == [False, False]
    old = await storage.get_token("g0-rt")
    assert old is not None
    assert (old.replaced_by, old.rotated_at) == (None, None)


async def test_rotation_must_issue_a_refresh_token(storage: Storage) -> None:
    await storage.save_tokens(make_pair("g0"))
    with pytest.raises(ValueError, match="refresh token"):
        await storage.rotate_refresh_token("g0-rt", tokens=[make_token("g1-at")], now=NOW)
    assert await storage.get_token("g1-at") is None
    old = await storage.get_token("g0-rt")
    assert old is not None
    assert old.replaced_by is None


async def test_a_duplicate_token_hash_is_refused_and_nothing_is_written(
    storage: Storage,
) -> None:
    await storage.save_tokens([make_token("dup")])
    with pytest.raises(StorageError):
        await storage.save_tokens([make_token("fresh"), make_token("dup", subject="other")])
    assert await exist(storage, ["fresh"]) == [False]
    stored = await storage.get_token("dup")
    assert stored is not None
    assert stored.subject == "user-1"
    await storage.save_authorization_code(make_code("c"))
    with pytest.raises(StorageError):
        await storage.save_authorization_code(make_code("c", subject="other"))
    code = await storage.get_authorization_code("c")
    assert code is not None
    assert code.subject == "user-1"


async def test_concurrent_rotations_have_one_winner(storage: Storage) -> None:
    await storage.save_tokens(make_pair("g0"))
    attempts = [make_pair(f"try{i}", parent="g0-rt") for i in range(20)]
    results = await asyncio.gather(
        *(storage.rotate_refresh_token("g0-rt", tokens=tokens, now=NOW) for tokens in attempts)
    )
    assert results.count(True) == 1
    winner = results.index(True)
    old = await storage.get_token("g0-rt")
    assert old is not None
    assert old.replaced_by == f"try{winner}-rt"
    for i, tokens in enumerate(attempts):
        assert await exist(storage, [t.token_hash for t in tokens]) == [i == winner] * 2


async def test_revoke_token(storage: Storage) -> None:
    await storage.save_tokens([make_token()])
    assert await storage.revoke_token("token-1", now=NOW + 1) is True
    assert await storage.get_token("token-1") == make_token(revoked_at=NOW + 1)
    assert await storage.revoke_token("token-1", now=NOW + 2) is False
    assert await storage.get_token("token-1") == make_token(revoked_at=NOW + 1)
    assert await storage.revoke_token("nothing", now=NOW) is False


async def test_revoke_family_counts_what_it_revoked(storage: Storage) -> None:
    await storage.save_tokens(make_pair("a", family_id="family-1"))
    await storage.save_tokens([make_token("a-old", family_id="family-1", revoked_at=NOW - 1)])
    await storage.save_tokens(make_pair("b", family_id="family-2"))

    assert await storage.revoke_family("family-1", now=NOW) == 2

    for token_hash, revoked_at in [("a-at", NOW), ("a-rt", NOW), ("a-old", NOW - 1)]:
        token = await storage.get_token(token_hash)
        assert token is not None
        assert token.revoked_at == revoked_at
    for token_hash in ("b-at", "b-rt"):
        token = await storage.get_token(token_hash)
        assert token is not None
        assert token.revoked_at is None
    assert await storage.revoke_family("family-1", now=NOW + 1) == 0
    assert await storage.revoke_family("nothing", now=NOW) == 0


async def test_purge_expired_removes_only_expired_rows(storage: Storage) -> None:
    await storage.save_authorization_code(make_code("code-old", expires_at=NOW - 1))
    await storage.save_authorization_code(make_code("code-edge", expires_at=NOW))
    await storage.save_authorization_code(make_code("code-live", expires_at=NOW + 1))
    await storage.save_tokens(
        [
            make_token("t-old", expires_at=NOW - 100),
            make_token("t-edge", expires_at=NOW),
            make_token("t-live", expires_at=NOW + 1),
            make_token("t-revoked-live", expires_at=NOW + 1, revoked_at=NOW - 1),
        ]
    )

    assert await storage.purge_expired(now=NOW) == 4

    for code_hash, kept in [("code-old", False), ("code-edge", False), ("code-live", True)]:
        assert (await storage.get_authorization_code(code_hash) is not None) is kept
    assert await exist(storage, ["t-old", "t-edge", "t-live", "t-revoked-live"]) == [
        False,
        False,
        True,
        True,
    ]
    assert await storage.purge_expired(now=NOW) == 0


async def test_revoked_access_tokens_are_listed_until_they_expire(storage: Storage) -> None:
    await storage.save_tokens(
        [
            make_token("revoked", revoked_at=NOW - 10),
            make_token("revoked-edge", revoked_at=NOW - 10, expires_at=NOW + 1),
            make_token("revoked-expired", revoked_at=NOW - 10, expires_at=NOW),
            make_token("unrevoked"),
            make_token("rotated", rotated_at=NOW - 10),
            make_token("revoked-refresh", kind="refresh_token", revoked_at=NOW - 10),
        ]
    )
    await storage.save_tokens(make_pair("family", family_id="family-2"))
    assert await storage.revoke_family("family-2", now=NOW) == 2

    listed = await storage.list_revoked_access_tokens(now=NOW)
    assert sorted(listed) == ["family-at", "revoked", "revoked-edge"]
    assert sorted(await storage.list_revoked_access_tokens(now=NOW + 1)) == [
        "family-at",
        "revoked",
    ]
    assert await storage.list_revoked_access_tokens(now=NOW + 3600) == []


# -- signing keys --------------------------------------------------------------------------


async def active_keys(storage: Storage) -> list[SigningKey]:
    return [k for k in await storage.list_signing_keys(now=NOW) if k.is_active]


async def test_a_first_signing_key_is_added_once_per_algorithm(storage: Storage) -> None:
    assert await storage.list_signing_keys(now=NOW) == []
    first = make_key("rs-1")
    assert await storage.add_signing_key(first, retire_active_until=None, now=NOW) is True
    late = make_key("rs-2", created_at=NOW + 1)
    assert await storage.add_signing_key(late, retire_active_until=None, now=NOW + 1) is False
    assert await storage.list_signing_keys(now=NOW) == [first]

    other = make_key("es-1", "ES256", created_at=NOW + 2)
    assert await storage.add_signing_key(other, retire_active_until=None, now=NOW + 2) is True
    assert await storage.list_signing_keys(now=NOW) == [first, other]


async def test_a_rotation_retires_the_active_key_until_the_given_time(storage: Storage) -> None:
    old, es = make_key("rs-1"), make_key("es-1", "ES256")
    await storage.add_signing_key(old, retire_active_until=None, now=NOW)
    await storage.add_signing_key(es, retire_active_until=None, now=NOW)
    new = make_key("rs-2", created_at=NOW + 10)

    assert await storage.add_signing_key(new, retire_active_until=NOW + 900, now=NOW + 10) is True

    retired = dataclasses.replace(old, retired_at=NOW + 10, expires_at=NOW + 900)
    assert await storage.list_signing_keys(now=NOW + 10) == [es, retired, new]
    assert await active_keys(storage) == [es, new]
    refused = make_key("rs-3", created_at=NOW + 11)
    assert await storage.add_signing_key(refused, retire_active_until=None, now=NOW + 11) is False
    assert await active_keys(storage) == [es, new]


async def test_signing_keys_are_listed_oldest_first_until_they_expire(storage: Storage) -> None:
    """Keys made in the same second come in code point order of their kid ("B" < "a")."""
    rs_1, es = make_key("a-rs"), make_key("B-es", "ES256")
    rs_2, rs_3 = make_key("c-rs", created_at=NOW + 10), make_key("d-rs", created_at=NOW + 20)
    await storage.add_signing_key(rs_1, retire_active_until=None, now=NOW)
    await storage.add_signing_key(es, retire_active_until=None, now=NOW)
    await storage.add_signing_key(rs_2, retire_active_until=NOW + 50, now=NOW + 10)
    await storage.add_signing_key(rs_3, retire_active_until=NOW + 60, now=NOW + 20)
    rs_1 = dataclasses.replace(rs_1, retired_at=NOW + 10, expires_at=NOW + 50)
    rs_2 = dataclasses.replace(rs_2, retired_at=NOW + 20, expires_at=NOW + 60)

    assert await storage.list_signing_keys(now=NOW + 49) == [es, rs_1, rs_2, rs_3]
    assert await storage.list_signing_keys(now=NOW + 50) == [es, rs_2, rs_3]
    assert await storage.list_signing_keys(now=NOW + 60) == [es, rs_3]


async def test_purge_deletes_expired_signing_keys_and_counts_them(storage: Storage) -> None:
    await storage.add_signing_key(make_key("rs-1"), retire_active_until=None, now=NOW)
    await storage.add_signing_key(
        make_key("rs-2", created_at=NOW + 1), retire_active_until=NOW + 5, now=NOW + 1
    )
    await storage.add_signing_key(
        make_key("rs-3", created_at=NOW + 2), retire_active_until=NOW + 10, now=NOW + 2
    )
    await storage.save_tokens([make_token("t-old", expires_at=NOW + 5)])

    assert await storage.purge_expired(now=NOW + 4) == 0
    assert await storage.purge_expired(now=NOW + 5) == 2
    assert [k.kid for k in await storage.list_signing_keys(now=0)] == ["rs-2", "rs-3"]
    assert await storage.purge_expired(now=NOW + 1000) == 1
    assert await storage.list_signing_keys(now=0) == [make_key("rs-3", created_at=NOW + 2)]


async def test_a_duplicate_kid_is_refused_and_nothing_is_written(storage: Storage) -> None:
    first = make_key("kid-1")
    await storage.add_signing_key(first, retire_active_until=None, now=NOW)
    with pytest.raises(StorageError):
        await storage.add_signing_key(make_key("kid-1", "ES256"), retire_active_until=None, now=NOW)
    with pytest.raises(StorageError):
        await storage.add_signing_key(
            make_key("kid-1", created_at=NOW + 1), retire_active_until=NOW + 50, now=NOW + 1
        )
    assert await storage.list_signing_keys(now=NOW) == [first]


async def test_concurrent_first_signing_keys_have_one_winner(storage: Storage) -> None:
    keys = [make_key(f"rs-{i:02}") for i in range(10)]
    results = await asyncio.gather(
        *(storage.add_signing_key(k, retire_active_until=None, now=NOW) for k in keys)
    )
    assert results.count(True) == 1
    assert await storage.list_signing_keys(now=NOW) == [keys[results.index(True)]]


async def test_concurrent_rotations_leave_one_active_key(storage: Storage) -> None:
    await storage.add_signing_key(make_key("rs-old"), retire_active_until=None, now=NOW)
    keys = [make_key(f"rs-{i:02}", created_at=NOW + 1) for i in range(10)]
    results = await asyncio.gather(
        *(storage.add_signing_key(k, retire_active_until=NOW + 99, now=NOW + 1) for k in keys)
    )
    listed = await storage.list_signing_keys(now=NOW + 1)
    added = {k.kid for k, won in zip(keys, results, strict=True) if won}
    assert added and {k.kid for k in listed} == {"rs-old"} | added
    active = await active_keys(storage)
    assert len(active) == 1 and active[0].kid in added


# -- device authorizations (RFC 8628) ------------------------------------------------------


async def test_device_authorization_is_found_by_user_code(storage: Storage) -> None:
    pending = make_device()
    decided = make_device(
        "device-2",
        "user-code-2",
        scope=frozenset(),
        status="approved",
        subject="user-1",
        last_polled_at=NOW + 3,
        interval=10,
        resource=("https://b.example/api", "https://a.example/"),
    )
    await storage.save_device_authorization(pending)
    await storage.save_device_authorization(decided)
    assert await storage.get_device_authorization("user-code-1") == pending
    assert pending.resource == ()
    assert await storage.get_device_authorization("user-code-2") == decided
    polled = await storage.poll_device_authorization("device-2", client_id="client-1", now=NOW)
    assert polled == decided
    assert await storage.get_device_authorization("device-1") is None
    assert await storage.get_device_authorization("nothing") is None


async def test_a_duplicate_device_or_user_code_is_refused(storage: Storage) -> None:
    await storage.save_device_authorization(make_device())
    with pytest.raises(StorageError):
        await storage.save_device_authorization(make_device("device-1", "user-code-2"))
    with pytest.raises(StorageError):
        await storage.save_device_authorization(make_device("device-2", "user-code-1"))
    assert await storage.get_device_authorization("user-code-1") == make_device()
    assert await storage.get_device_authorization("user-code-2") is None
    assert await storage.redeem_device_code("device-2", tokens=make_pair("x"), now=NOW) is False


@pytest.mark.parametrize("approved", [True, False])
async def test_a_device_request_is_decided_once(storage: Storage, approved: bool) -> None:
    await storage.save_device_authorization(make_device())
    decided = make_device(status="approved" if approved else "denied", subject="user-1")

    assert await storage.decide_device_authorization(
        "user-code-1", subject="user-1", approved=approved, now=NOW + 1
    )
    assert await storage.get_device_authorization("user-code-1") == decided

    for again in (True, False):
        assert not await storage.decide_device_authorization(
            "user-code-1", subject="user-2", approved=again, now=NOW + 2
        )
    assert await storage.get_device_authorization("user-code-1") == decided


async def test_an_expired_or_unknown_device_request_is_not_decided(storage: Storage) -> None:
    await storage.save_device_authorization(make_device(expires_at=NOW))
    assert not await storage.decide_device_authorization(
        "user-code-1", subject="user-1", approved=True, now=NOW
    )
    assert await storage.get_device_authorization("user-code-1") == make_device(expires_at=NOW)
    assert not await storage.decide_device_authorization(
        "nothing", subject="user-1", approved=True, now=NOW
    )


async def test_concurrent_decisions_have_one_winner(storage: Storage) -> None:
    await storage.save_device_authorization(make_device())
    results = await asyncio.gather(
        *(
            storage.decide_device_authorization(
                "user-code-1", subject=f"user-{i}", approved=i % 2 == 0, now=NOW
            )
            for i in range(20)
        )
    )
    assert results.count(True) == 1
    winner = results.index(True)
    assert await storage.get_device_authorization("user-code-1") == make_device(
        status="approved" if winner % 2 == 0 else "denied", subject=f"user-{winner}"
    )


async def test_poll_returns_the_request_as_it_was_and_slows_a_hasty_device(
    storage: Storage,
) -> None:
    await storage.save_device_authorization(make_device())
    # (poll time, interval it finds, interval it leaves): a poll sooner than the
    # interval after the previous one adds five seconds (RFC 8628 §3.5).
    polls = [(NOW, 5, 5), (NOW + 5, 5, 5), (NOW + 9, 5, 10), (NOW + 18, 10, 15), (NOW + 33, 15, 15)]
    last_polled_at = None
    for now, found, left in polls:
        before = await storage.poll_device_authorization("device-1", client_id="client-1", now=now)
        assert before == make_device(interval=found, last_polled_at=last_polled_at)
        after = await storage.get_device_authorization("user-code-1")
        assert after == make_device(interval=left, last_polled_at=now)
        last_polled_at = now
    assert await storage.poll_device_authorization("nothing", client_id="client-1", now=NOW) is None


async def test_poll_by_another_client_finds_nothing_and_writes_nothing(storage: Storage) -> None:
    await storage.save_device_authorization(make_device())
    assert await storage.poll_device_authorization("device-1", client_id="other", now=NOW) is None
    assert await storage.get_device_authorization("user-code-1") == make_device()


async def test_poll_leaves_the_decision_alone(storage: Storage) -> None:
    await storage.save_device_authorization(make_device())
    await storage.decide_device_authorization(
        "user-code-1", subject="user-1", approved=True, now=NOW
    )
    before = await storage.poll_device_authorization("device-1", client_id="client-1", now=NOW + 1)
    assert before == make_device(status="approved", subject="user-1")
    assert await storage.get_device_authorization("user-code-1") == make_device(
        status="approved", subject="user-1", last_polled_at=NOW + 1
    )


async def test_concurrent_polls_each_see_the_one_before(storage: Storage) -> None:
    await storage.save_device_authorization(make_device())
    seen = await asyncio.gather(
        *(
            storage.poll_device_authorization("device-1", client_id="client-1", now=NOW)
            for _ in range(10)
        )
    )
    assert sorted((d.interval, d.last_polled_at is None) for d in seen if d is not None) == [
        (5, False),
        (5, True),
        *[(5 * i, False) for i in range(2, 10)],
    ]
    after = await storage.get_device_authorization("user-code-1")
    assert after == make_device(interval=50, last_polled_at=NOW)


async def test_an_approved_device_code_redeems_once_and_writes_the_tokens(
    storage: Storage,
) -> None:
    await storage.save_device_authorization(make_device())
    await storage.decide_device_authorization(
        "user-code-1", subject="user-1", approved=True, now=NOW
    )
    tokens = make_pair("first", family_id="family-device-1")

    assert await storage.redeem_device_code("device-1", tokens=tokens, now=NOW + 1) is True
    consumed = make_device(status="consumed", subject="user-1")
    assert await storage.get_device_authorization("user-code-1") == consumed
    assert [await storage.get_token(t.token_hash) for t in tokens] == tokens

    again = make_pair("second", family_id="family-device-1")
    assert await storage.redeem_device_code("device-1", tokens=again, now=NOW + 2) is False
    assert await exist(storage, ["second-at", "second-rt"]) == [False, False]
    assert await storage.get_device_authorization("user-code-1") == consumed


@pytest.mark.parametrize(
    "device",
    [
        make_device(),
        make_device(status="denied", subject="user-1"),
        make_device(status="consumed", subject="user-1"),
        make_device(status="approved", subject="user-1", expires_at=NOW),
    ],
    ids=["pending", "denied", "consumed", "expired"],
)
async def test_a_device_code_redeems_only_when_approved_and_unexpired(
    storage: Storage, device: DeviceAuthorization
) -> None:
    await storage.save_device_authorization(device)
    tokens = make_pair("late")
    assert await storage.redeem_device_code("device-1", tokens=tokens, now=NOW) is False
    assert await storage.redeem_device_code("nothing", tokens=tokens, now=NOW) is False
    assert await storage.get_device_authorization("user-code-1") == device
    assert await exist(storage, ["late-at", "late-rt"]) == [False, False]


async def test_a_device_redemption_that_fails_writes_nothing(storage: Storage) -> None:
    await storage.save_device_authorization(make_device(status="approved", subject="user-1"))
    await storage.save_tokens([make_token("dup")])
    with pytest.raises(StorageError):
        await storage.redeem_device_code(
            "device-1", tokens=[make_token("fresh"), make_token("dup")], now=NOW
        )
    assert await exist(storage, ["fresh"]) == [False]
    approved = await storage.get_device_authorization("user-code-1")
    assert approved == make_device(status="approved", subject="user-1")
    assert await storage.redeem_device_code("device-1", tokens=make_pair("ok"), now=NOW)


async def test_concurrent_device_redemptions_have_one_winner(storage: Storage) -> None:
    await storage.save_device_authorization(make_device(status="approved", subject="user-1"))
    attempts = [make_pair(f"try{i}") for i in range(20)]
    results = await asyncio.gather(
        *(storage.redeem_device_code("device-1", tokens=tokens, now=NOW) for tokens in attempts)
    )
    assert results.count(True) == 1
    winner = results.index(True)
    for i, tokens in enumerate(attempts):
        assert await exist(storage, [t.token_hash for t in tokens]) == [i == winner] * 2


async def test_delete_client_removes_its_device_requests_and_consents_only(
    storage: Storage,
) -> None:
    await storage.save_client(make_client("client-1"))
    await storage.save_client(make_client("client-2"))
    await storage.save_device_authorization(make_device("d1", "u1", client_id="client-1"))
    await storage.save_device_authorization(make_device("d2", "u2", client_id="client-2"))
    await storage.save_consent("user-1", "client-1", frozenset({"openid"}))
    await storage.save_consent("user-1", "client-2", frozenset({"email"}))

    assert await storage.delete_client("client-1") is True

    assert await storage.get_device_authorization("u1") is None
    assert await storage.poll_device_authorization("d1", client_id="client-1", now=NOW) is None
    assert await storage.get_consent("user-1", "client-1") is None
    assert await storage.get_device_authorization("u2") == make_device(
        "d2", "u2", client_id="client-2"
    )
    assert await storage.get_consent("user-1", "client-2") == frozenset({"email"})
    # the user code is free again: a stale row must not keep holding it
    await storage.save_device_authorization(make_device("d3", "u1", client_id="client-2"))
    assert await storage.get_device_authorization("u1") == make_device(
        "d3", "u1", client_id="client-2"
    )


async def test_purge_expired_removes_expired_device_requests_only(storage: Storage) -> None:
    devices = [
        make_device("d-old", "u-old", expires_at=NOW - 1),
        make_device("d-edge", "u-edge", expires_at=NOW, status="consumed", subject="user-1"),
        make_device("d-live", "u-live", expires_at=NOW + 1),
        make_device("d-used", "u-used", expires_at=NOW + 1, status="consumed", subject="user-1"),
    ]
    for device in devices:
        await storage.save_device_authorization(device)
    await storage.save_consent("user-1", "client-1", frozenset({"openid"}))
    await storage.save_tokens([make_token("t-old", expires_at=NOW - 1)])

    assert await storage.purge_expired(now=NOW) == 3

    kept = [await storage.get_device_authorization(d.user_code_hash) for d in devices]
    assert kept == [None, None, devices[2], devices[3]]
    assert await storage.poll_device_authorization("d-old", client_id="client-1", now=NOW) is None
    assert await storage.get_consent("user-1", "client-1") == frozenset({"openid"})
    assert await storage.purge_expired(now=NOW) == 0
    await storage.save_device_authorization(make_device("d-new", "u-old"))
    assert await storage.get_device_authorization("u-old") == make_device("d-new", "u-old")


# -- pushed authorization requests (RFC 9126) ----------------------------------------------


async def test_pushed_request_round_trips(storage: Storage) -> None:
    pushed = make_pushed(
        params={
            "response_type": "code",
            "scope": "openid profile",
            "state": 'a "quoted" & = value',
            "login_hint": "zoë@example.com \u2603 \x00",
            "resource": "",
        },
        consumed_at=NOW + 1,
    )
    empty = make_pushed("par-2", params={})
    for each in (pushed, empty):
        await storage.save_pushed_authorization_request(each)
    assert await storage.get_pushed_authorization_request("par-1") == pushed
    assert await storage.get_pushed_authorization_request("par-2") == empty
    found = await storage.get_pushed_authorization_request("par-1")
    assert found is not None and list(found.params) == list(pushed.params)
    assert await storage.get_pushed_authorization_request("nothing") is None
    assert await storage.get_pushed_authorization_request("par\x00") is None


async def test_a_pushed_request_keeps_its_parameters_as_they_were_saved(
    storage: Storage,
) -> None:
    params = {"response_type": "code"}
    await storage.save_pushed_authorization_request(make_pushed(params=params))
    params["redirect_uri"] = "https://evil.example/cb"
    assert await storage.get_pushed_authorization_request("par-1") == make_pushed(
        params={"response_type": "code"}
    )


async def test_a_duplicate_pushed_request_is_refused(storage: Storage) -> None:
    await storage.save_pushed_authorization_request(make_pushed())
    with pytest.raises(StorageError):
        await storage.save_pushed_authorization_request(make_pushed(client_id="client-2"))
    assert await storage.get_pushed_authorization_request("par-1") == make_pushed()


async def test_a_pushed_request_is_consumed_once(storage: Storage) -> None:
    await storage.save_pushed_authorization_request(make_pushed())
    assert await storage.consume_pushed_authorization_request("par-1", now=NOW + 1) is True
    assert await storage.get_pushed_authorization_request("par-1") == make_pushed(
        consumed_at=NOW + 1
    )
    assert await storage.consume_pushed_authorization_request("par-1", now=NOW + 2) is False
    assert await storage.get_pushed_authorization_request("par-1") == make_pushed(
        consumed_at=NOW + 1
    )


async def test_an_expired_or_unknown_pushed_request_is_not_consumed(storage: Storage) -> None:
    await storage.save_pushed_authorization_request(make_pushed(expires_at=NOW))
    assert await storage.consume_pushed_authorization_request("par-1", now=NOW) is False
    assert await storage.get_pushed_authorization_request("par-1") == make_pushed(expires_at=NOW)
    assert await storage.consume_pushed_authorization_request("nothing", now=NOW) is False


async def test_concurrent_consumptions_of_a_pushed_request_have_one_winner(
    storage: Storage,
) -> None:
    await storage.save_pushed_authorization_request(make_pushed())
    results = await asyncio.gather(
        *(storage.consume_pushed_authorization_request("par-1", now=NOW + i) for i in range(20))
    )
    assert results.count(True) == 1
    consumed = await storage.get_pushed_authorization_request("par-1")
    assert consumed == make_pushed(consumed_at=NOW + results.index(True))


async def test_delete_client_removes_its_pushed_requests_only(storage: Storage) -> None:
    await storage.save_client(make_client("client-1"))
    await storage.save_client(make_client("client-2"))
    await storage.save_pushed_authorization_request(make_pushed("par-1", client_id="client-1"))
    await storage.save_pushed_authorization_request(make_pushed("par-2", client_id="client-2"))

    assert await storage.delete_client("client-1") is True

    assert await storage.get_pushed_authorization_request("par-1") is None
    assert await storage.consume_pushed_authorization_request("par-1", now=NOW) is False
    assert await storage.get_pushed_authorization_request("par-2") == make_pushed(
        "par-2", client_id="client-2"
    )


async def test_purge_removes_expired_pushed_requests_and_counts_them(storage: Storage) -> None:
    pushed = [
        make_pushed("par-old", expires_at=NOW - 1),
        make_pushed("par-edge", expires_at=NOW, consumed_at=NOW - 5),
        make_pushed("par-live", expires_at=NOW + 1),
        make_pushed("par-used", expires_at=NOW + 1, consumed_at=NOW - 5),
    ]
    for each in pushed:
        await storage.save_pushed_authorization_request(each)

    assert await storage.purge_expired(now=NOW) == 2

    kept = [await storage.get_pushed_authorization_request(p.request_uri_hash) for p in pushed]
    assert kept == [None, None, pushed[2], pushed[3]]
    assert await storage.purge_expired(now=NOW) == 0
    await storage.save_pushed_authorization_request(make_pushed("par-old"))
    assert await storage.get_pushed_authorization_request("par-old") == make_pushed("par-old")


# -- keys used once (RFC 9449 §11.1) -------------------------------------------------------


async def test_a_key_is_used_once_until_it_expires(storage: Storage) -> None:
    assert await storage.use_once("jti-1", expires_at=NOW + 60, now=NOW) is True
    assert await storage.use_once("jti-1", expires_at=NOW + 60, now=NOW) is False
    assert await storage.use_once("jti-1", expires_at=NOW + 120, now=NOW + 59) is False
    assert await storage.use_once("jti-2", expires_at=NOW + 60, now=NOW) is True
    # Expired at NOW + 60: remembered again, until its new expiry.
    assert await storage.use_once("jti-1", expires_at=NOW + 120, now=NOW + 60) is True
    assert await storage.use_once("jti-1", expires_at=NOW + 180, now=NOW + 119) is False
    assert await storage.use_once("jti-1", expires_at=NOW + 180, now=NOW + 120) is True


async def test_concurrent_uses_of_a_key_have_one_winner(storage: Storage) -> None:
    assert await storage.use_once("stale", expires_at=NOW - 1, now=NOW - 10) is True
    for key in ("fresh", "stale"):
        results = await asyncio.gather(
            *(storage.use_once(key, expires_at=NOW + 60, now=NOW) for _ in range(20))
        )
        assert results.count(True) == 1


async def test_purge_removes_expired_keys_used_once_and_counts_them(storage: Storage) -> None:
    for key, expires_at in (("old", NOW - 1), ("edge", NOW), ("live", NOW + 1)):
        assert await storage.use_once(key, expires_at=expires_at, now=NOW - 10) is True

    assert await storage.purge_expired(now=NOW) == 2

    assert await storage.use_once("live", expires_at=NOW + 60, now=NOW) is False
    assert await storage.purge_expired(now=NOW) == 0
    assert await storage.use_once("old", expires_at=NOW + 60, now=NOW) is True
    assert await storage.purge_expired(now=NOW + 60) == 2


async def test_purge_counts_every_kind_of_row_together(storage: Storage) -> None:
    await storage.save_authorization_code(make_code(expires_at=NOW))
    await storage.save_tokens([make_token(expires_at=NOW)])
    await storage.save_device_authorization(make_device(expires_at=NOW))
    await storage.save_pushed_authorization_request(make_pushed(expires_at=NOW))
    await storage.use_once("jti", expires_at=NOW, now=NOW - 1)
    await storage.take_attempt("k", limit=1, since=0, now=NOW - FAILURE_RETENTION)
    await storage.save_session(make_session(expires_at=NOW))
    assert await storage.purge_expired(now=NOW) == 7


async def test_close_is_idempotent(storage: Storage) -> None:
    await storage.save_tokens([make_token()])
    await storage.close()
    await storage.close()

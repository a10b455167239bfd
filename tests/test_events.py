"""Security events (``asgi_oauth.events``): the line format, and each event of a real
flow emitted once, at its level, with its fields, while no log record of any logger
carries a secret, a password, a code or a token.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from asgi_oauth import AuthorizationServer, Settings, User
from asgi_oauth.app import OAuth2App
from asgi_oauth.events import security_event
from asgi_oauth.types import DEVICE_CODE

from . import device_helpers
from .browser_helpers import (
    CHALLENGE,
    LOGIN,
    PASSWORD,
    TOKEN,
    VERIFIER,
    approved,
    consent_page,
    decide,
    exchange,
    parse_page,
    redirect_params,
    redirect_target,
    sign_in,
    start,
    submit,
)
from .conftest import ISSUER, REDIRECT_URI, Credentials

pytestmark = pytest.mark.anyio

INFO, WARNING = logging.INFO, logging.WARNING
EVENTS = "asgi_oauth.events"
ADDRESS = "127.0.0.1"  # where httpx.ASGITransport says requests come from


@dataclass
class Events:
    """The security events logged so far, a step at a time; and every value that must
    never reach a log record."""

    caplog: pytest.LogCaptureFixture
    secrets: set[str] = field(default_factory=set)
    _seen: int = 0

    def step(self) -> list[tuple[str, int, dict[str, object]]]:
        """(name, level, fields) of each event since the last step, in order."""
        records = self.caplog.records[self._seen :]
        self._seen = len(self.caplog.records)
        events = []
        for record in records:
            if record.name != EVENTS:
                continue
            line = record.getMessage()
            name: str = record.event  # type: ignore[attr-defined]
            assert line.startswith(f"event={name}") and "\n" not in line, line
            events.append((name, record.levelno, dict(record.fields)))  # type: ignore[attr-defined]
        return events

    def last_line(self) -> str:
        """The message of the latest event."""
        return [r for r in self.caplog.records if r.name == EVENTS][-1].getMessage()

    def keep_secret(self, *values: str | None) -> None:
        for value in values:
            if value is not None:
                assert len(value) >= 8, value  # long enough not to match by chance
                self.secrets.add(value)

    def assert_no_secret_logged(self) -> None:
        assert self.secrets
        for when in ("setup", "call"):
            for record in self.caplog.get_records(when):
                texts = [
                    record.getMessage(),
                    str(record.msg),
                    repr(record.args),
                    repr(getattr(record, "fields", None)),
                    record.exc_text or "",
                ]
                for value in self.secrets:
                    for text in texts:
                        assert value not in text, (record.name, value, text)


@pytest.fixture
def events(caplog: pytest.LogCaptureFixture) -> Events:
    """Every logger at DEBUG, so the search for secrets sees everything anyone logs."""
    caplog.set_level(logging.DEBUG)
    return Events(caplog)


@pytest.fixture
async def alice(server: AuthorizationServer) -> User:
    return await server.create_user("alice", PASSWORD)


def pkce(client: Credentials, **params: str) -> dict[str, str]:
    return {
        "client_id": client.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        **params,
    }


def json_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# -- the line ------------------------------------------------------------------------


def test_one_line_of_key_value_pairs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(INFO, EVENTS)
    security_event(
        "example",
        plain="abc-123_x.y:z/é",
        spaced="two words",
        quoted='say "hi"',
        equals="a=b",
        newline="one\nevent=forged two",
        tab="a\tb",
        backslash="C:\\x",
        empty="",
        dropped=None,
        number=3,
        flag=True,
        scope=frozenset({"write", "read"}),
        single=("only",),
        listed=["b", "a", "c"],
    )
    (record,) = caplog.records
    assert record.name == EVENTS and record.levelno == INFO
    assert record.getMessage() == (
        "event=example plain=abc-123_x.y:z/é "
        'spaced="two words" quoted="say \\"hi\\"" equals="a=b" '
        'newline="one\\nevent=forged two" tab="a\\tb" backslash="C:\\\\x" empty="" '
        'number=3 flag=true scope="read write" single=only listed="a b c"'
    )
    # The same values, unquoted, for a JSON formatter; None fields are dropped there too.
    assert record.event == "example"  # type: ignore[attr-defined]
    assert "dropped" not in record.fields  # type: ignore[attr-defined]
    assert record.fields["scope"] == "read write"  # type: ignore[attr-defined]
    assert record.fields["flag"] == "true" and record.fields["number"] == "3"  # type: ignore[attr-defined]


def parse_line(line: str) -> dict[str, str]:
    """A line back into its fields (what a log pipeline would do)."""
    fields: dict[str, str] = {}
    decoder = json.JSONDecoder()
    rest = line
    while rest:
        key, _, rest = rest.partition("=")
        if rest.startswith('"'):
            value, end = decoder.raw_decode(rest)
            rest = rest[end:]
        else:
            value, _, rest = rest.partition(" ")
            rest = " " + rest if rest else ""
        fields[key] = value
        rest = rest.removeprefix(" ")
    return fields


@pytest.mark.parametrize(
    "value",
    [
        "a" * 500,
        "word " * 100,
        '"' * 300,
        "\n" * 200,
        "x=" * 100,
        "é" * 200,
    ],
    ids=["plain", "spaces", "quotes", "newlines", "equals", "non-ascii"],
)
def test_long_values_are_cut_to_128_characters(
    caplog: pytest.LogCaptureFixture, value: str
) -> None:
    caplog.set_level(INFO, EVENTS)
    security_event("long", value=value, after="ok")
    line = caplog.records[0].getMessage()
    assert "\n" not in line
    assert parse_line(line) == {"event": "long", "value": value[:128], "after": "ok"}


def test_collections_are_joined_sorted_before_they_are_cut(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(INFO, EVENTS)
    scope = frozenset(f"scope{i:03d}" for i in range(100))
    security_event("many", scope=scope, none=frozenset())
    fields = parse_line(caplog.records[0].getMessage())
    assert fields["scope"] == " ".join(sorted(scope))[:128]
    assert fields["none"] == ""


def test_events_below_the_loggers_level_cost_nothing(caplog: pytest.LogCaptureFixture) -> None:
    class Exploding:
        def __str__(self) -> str:
            raise AssertionError("formatted although nobody listens")

    caplog.set_level(WARNING, EVENTS)
    security_event("quiet", value=Exploding())
    assert caplog.records == []
    security_event("loud", level=WARNING, value="x")
    assert [r.getMessage() for r in caplog.records] == ["event=loud value=x"]


# -- events of real flows ---------------------------------------------------------------


async def test_client_credentials_token_issued_and_revoked(
    http: httpx.AsyncClient, confidential: Credentials, events: Events
) -> None:
    events.keep_secret(confidential.client_secret)
    token = json_of(
        await http.post(TOKEN, data={"grant_type": "client_credentials"}, auth=confidential.basic)
    )["access_token"]
    events.keep_secret(token)
    issued = {
        "client_id": confidential.client_id,
        "grant_type": "client_credentials",
        "scope": "read write",
        "refresh_token": "false",
    }
    assert events.step() == [("token_issued", INFO, issued)]
    assert events.last_line() == (
        f"event=token_issued client_id={confidential.client_id} grant_type=client_credentials "
        'scope="read write" refresh_token=false'
    )

    narrowed = json_of(
        await http.post(
            TOKEN,
            data={"grant_type": "client_credentials", "scope": "read"},
            auth=confidential.basic,
        )
    )
    events.keep_secret(narrowed["access_token"])
    assert events.step() == [("token_issued", INFO, {**issued, "scope": "read"})]

    revoke = await http.post(ISSUER + "/revoke", data={"token": token}, auth=confidential.basic)
    assert revoke.status_code == 200
    assert events.step() == [
        (
            "token_revoked",
            INFO,
            {"client_id": confidential.client_id, "token_kind": "access_token"},
        )
    ]
    # Revoking what does not exist, or is not this client's, revokes nothing: no event.
    await http.post(ISSUER + "/revoke", data={"token": "unknown-token"}, auth=confidential.basic)
    assert events.step() == []
    events.assert_no_secret_logged()


async def test_failed_client_authentication_then_throttled(
    server: AuthorizationServer, confidential: Credentials, events: Events
) -> None:
    assert confidential.client_secret is not None
    events.keep_secret(confidential.client_secret, "wrong-secret-1", "wrong-secret-2")
    limit = server.settings.max_failed_attempts
    async with device_helpers.browser_at(OAuth2App(server), address="203.0.113.9") as http:
        for attempt in range(limit):
            response = await http.post(
                TOKEN,
                data={"grant_type": "client_credentials"},
                auth=(confidential.client_id, f"wrong-secret-{attempt % 2 + 1}"),
            )
            assert response.status_code == 401
            failed = {"client_id": confidential.client_id, "address": "203.0.113.9"}
            assert events.step() == [("client_authentication_failed", WARNING, failed)]
        # Past the limit a wrong secret is a failure and a "throttled" (429)...
        blocked = await http.post(
            TOKEN,
            data={"grant_type": "client_credentials"},
            auth=(confidential.client_id, "wrong-secret-1"),
        )
        assert blocked.status_code == 429
        subject = {"subject": f"client:{confidential.client_id}", "address": "203.0.113.9"}
        assert events.step() == [
            ("client_authentication_failed", WARNING, failed),
            ("throttled", WARNING, subject),
        ]
        # ...and the right one still passes.
        issued = await http.post(
            TOKEN, data={"grant_type": "client_credentials"}, auth=confidential.basic
        )
        assert issued.status_code == 200
        assert [name for name, *_ in events.step()] == ["token_issued"]

    # An unknown client, by client_secret_post: its id is logged, cut and quoted.
    async with device_helpers.browser_at(OAuth2App(server)) as other:
        forged = "ghost\nevent=token_issued client_id=x " + "y" * 100
        response = await other.post(
            TOKEN,
            data={
                "grant_type": "client_credentials",
                "client_id": forged,
                "client_secret": "s" * 9,
            },
        )
        assert response.status_code == 401
        events.keep_secret("s" * 9)
        assert events.step() == [
            (
                "client_authentication_failed",
                WARNING,
                {"client_id": forged[:64], "address": ADDRESS},
            )
        ]
        line = events.last_line()
        assert "\n" not in line and line.count("event=") == 2  # the second one is quoted
        assert parse_line(line)["client_id"] == forged[:64]
    events.assert_no_secret_logged()


async def test_sign_in_failed_signed_in_and_throttled(
    http: httpx.AsyncClient, server: AuthorizationServer, alice: User, events: Events
) -> None:
    events.keep_secret(PASSWORD, "not alices password")
    events.step()
    wrong = await sign_in(http, "alice", "not alices password")
    assert wrong.status_code == 400
    failed = {"username": "alice", "address": ADDRESS}
    assert events.step() == [("sign_in_failed", WARNING, failed)]

    right = await sign_in(http, "alice")
    assert right.status_code == 200 and parse_page(right.text).title == "Signed in"
    assert events.step() == [("signed_in", INFO, {"user_id": alice.user_id, "address": ADDRESS})]

    for _ in range(server.settings.max_failed_attempts):
        await sign_in(http, "alice", "not alices password")
    assert [e[0] for e in events.step()] == ["sign_in_failed"] * server.settings.max_failed_attempts
    blocked = await sign_in(http, "alice")
    assert blocked.status_code == 429
    assert events.step() == [("throttled", WARNING, {"subject": "user:alice", "address": ADDRESS})]
    events.assert_no_secret_logged()


async def test_consent_granted_code_redeemed_then_replayed(
    http: httpx.AsyncClient, public: Credentials, alice: User, events: Events
) -> None:
    events.keep_secret(PASSWORD, VERIFIER)
    response = await approved(http, "alice", **pkce(public, scope="read", state="s1"))
    code = redirect_params(response, REDIRECT_URI)["code"]
    events.keep_secret(code)
    granted = {"client_id": public.client_id, "sub": alice.user_id, "scope": "read"}
    assert events.step() == [
        ("signed_in", INFO, {"user_id": alice.user_id, "address": ADDRESS}),
        ("consent_granted", INFO, {**granted, "remembered": "false"}),
        ("authorization_granted", INFO, {**granted, "response_type": "code"}),
    ]

    tokens = json_of(
        await exchange(
            http, code, client_id=public.client_id, redirect_uri=REDIRECT_URI, verifier=VERIFIER
        )
    )
    events.keep_secret(tokens["access_token"], tokens["refresh_token"])
    assert events.step() == [
        (
            "token_issued",
            INFO,
            {
                "client_id": public.client_id,
                "grant_type": "authorization_code",
                "scope": "read",
                "refresh_token": "true",
            },
        )
    ]

    replay = await exchange(
        http, code, client_id=public.client_id, redirect_uri=REDIRECT_URI, verifier=VERIFIER
    )
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert events.step() == [
        (
            "authorization_code_replayed",
            WARNING,
            {"client_id": public.client_id, "revoked_tokens": "2"},
        )
    ]
    events.assert_no_secret_logged()


async def test_refresh_token_reuse_detected(
    http: httpx.AsyncClient, confidential: Credentials, alice: User, events: Events
) -> None:
    events.keep_secret(confidential.client_secret, PASSWORD)
    response = await approved(http, "alice", client_id=confidential.client_id, response_type="code")
    code = redirect_params(response, REDIRECT_URI)["code"]
    first = json_of(await exchange(http, code, **vars(confidential)))
    events.keep_secret(code, first["access_token"], first["refresh_token"])
    events.step()

    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    second = json_of(await http.post(TOKEN, data=form, auth=confidential.basic))
    events.keep_secret(second["access_token"], second["refresh_token"])
    assert events.step() == [
        (
            "token_issued",
            INFO,
            {
                "client_id": confidential.client_id,
                "grant_type": "refresh_token",
                "scope": "read write",
                "refresh_token": "true",
            },
        )
    ]

    reused = await http.post(TOKEN, data=form, auth=confidential.basic)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert events.step() == [
        (
            "refresh_token_reuse_detected",
            WARNING,
            # The whole family: both pairs (the first access token was still live).
            {"client_id": confidential.client_id, "sub": alice.user_id, "revoked_tokens": "4"},
        )
    ]
    introspected = await http.post(
        ISSUER + "/introspect", data={"token": second["access_token"]}, auth=confidential.basic
    )
    assert introspected.json() == {"active": False}
    events.assert_no_secret_logged()


async def test_consent_denied_and_authorization_refused(
    http: httpx.AsyncClient, public: Credentials, alice: User, events: Events
) -> None:
    events.keep_secret(PASSWORD)
    # Not signed in and not to be asked: refused, without a page.
    silent = await start(http, **pkce(public, prompt="none"))
    assert redirect_params(silent, REDIRECT_URI)["error"] == "login_required"
    assert events.step() == [
        ("authorization_refused", INFO, {"client_id": public.client_id, "error": "login_required"})
    ]

    page = await consent_page(http, "alice", **pkce(public, state="s2"))
    events.step()
    denied = await decide(http, page, "deny")
    assert redirect_params(denied, REDIRECT_URI)["error"] == "access_denied"
    assert events.step() == [("consent_denied", INFO, {"client_id": public.client_id})]

    # The consent form again, approved, remembered.
    page = await consent_page(http, "alice", **pkce(public, state="s3"))
    remembered = await decide(http, page, "approve", remember=True)
    events.keep_secret(redirect_params(remembered, REDIRECT_URI)["code"])
    assert [(e[0], e[2].get("remembered")) for e in events.step()] == [
        ("consent_granted", "true"),
        ("authorization_granted", None),
    ]
    events.assert_no_secret_logged()


async def test_device_authorization_granted_and_denied(
    http: httpx.AsyncClient, server: AuthorizationServer, events: Events
) -> None:
    user = await server.create_user(device_helpers.USERNAME, device_helpers.PASSWORD)
    registered = await server.register_client(
        name="TV", grant_types=[DEVICE_CODE], scope=["read", "write"]
    )
    tv = Credentials(registered.client.client_id, registered.client_secret)
    events.keep_secret(tv.client_secret, device_helpers.PASSWORD)
    signed_in = await device_helpers.sign_in(http)
    assert signed_in.status_code == 200
    events.step()

    decisions = [
        ("approve", "device_authorization_granted"),
        ("deny", "device_authorization_denied"),
    ]
    for decision, name in decisions:
        codes = await device_helpers.start_ok(http, tv, scope="read")
        user_code = codes["user_code"]
        events.keep_secret(codes["device_code"], user_code, user_code.replace("-", ""))
        answered = await device_helpers.decide(http, user_code, decision)
        assert answered.status_code == 200, answered.text
        fields = {"client_id": tv.client_id, "sub": user.user_id, "scope": "read"}
        assert events.step() == [(name, INFO, fields)]

        polled = await device_helpers.poll(http, tv, codes["device_code"])
        if decision == "approve":
            events.keep_secret(json_of(polled)["access_token"])
            assert events.step() == [
                (
                    "token_issued",
                    INFO,
                    {
                        "client_id": tv.client_id,
                        "grant_type": DEVICE_CODE,
                        "scope": "read",
                        "refresh_token": "false",
                    },
                )
            ]
        else:
            assert device_helpers.error_of(polled) == "access_denied"
            assert events.step() == []

    # A wrong user code is no event (only a throttle count), and is not logged either.
    wrong = await device_helpers.submit_code(http, "WXYZ-WXYZ")
    assert wrong.status_code == 400
    assert events.step() == []
    events.keep_secret("WXYZ-WXYZ")
    events.assert_no_secret_logged()


async def test_the_login_page_flow_logs_no_secret_of_any_kind(
    http: httpx.AsyncClient, confidential: Credentials, alice: User, events: Events
) -> None:
    """The login form posted by hand: the password and the session cookie stay out of logs."""
    events.keep_secret(confidential.client_secret, PASSWORD)
    start_response = await start(http, client_id=confidential.client_id, response_type="code")
    login_url = redirect_target(start_response)
    assert login_url.startswith(LOGIN)
    form = parse_page((await http.get(login_url)).text).form
    signed_in = await submit(http, form, {"username": "alice", "password": PASSWORD})
    for cookie in http.cookies.values():
        events.keep_secret(cookie)
    consent = await http.get(redirect_target(signed_in))
    events.keep_secret(parse_page(consent.text).form.fields["csrf_token"])
    code = redirect_params(await decide(http, consent, "approve"), REDIRECT_URI)["code"]
    tokens = json_of(await exchange(http, code, **vars(confidential)))
    events.keep_secret(code, tokens["access_token"], tokens["refresh_token"])
    assert [e[0] for e in events.step()] == [
        "signed_in",
        "consent_granted",
        "authorization_granted",
        "token_issued",
    ]
    events.assert_no_secret_logged()


WITH_PASSWORD_GRANT = Settings(
    issuer=ISSUER,
    enabled_grants=frozenset({"authorization_code", "client_credentials", "password"}),
)


@pytest.mark.parametrize("settings", [WITH_PASSWORD_GRANT], ids=["password-grant"])
async def test_the_password_grant_signs_in_with_the_same_events(
    http: httpx.AsyncClient, confidential: Credentials, alice: User, events: Events
) -> None:
    events.keep_secret(confidential.client_secret, PASSWORD, "a wrong password")
    form = {"grant_type": "password", "username": "alice", "password": "a wrong password"}
    wrong = await http.post(TOKEN, data=form, auth=confidential.basic)
    assert wrong.status_code == 400
    failed = {"username": "alice", "address": ADDRESS}
    assert events.step() == [("sign_in_failed", WARNING, failed)]
    right = json_of(
        await http.post(TOKEN, data={**form, "password": PASSWORD}, auth=confidential.basic)
    )
    events.keep_secret(right["access_token"], right.get("refresh_token"))
    assert [e[0] for e in events.step()] == ["signed_in", "token_issued"]
    events.assert_no_secret_logged()

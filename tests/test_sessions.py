"""The session cookie on its own: its name and attributes, and reading it back from a
Cookie header that carries other cookies of the same name."""

from __future__ import annotations

import time

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from asgi_oauth import Settings
from asgi_oauth.app.sessions import Session, SessionCookie

KEY = "k" * 40
HTTPS = Settings(issuer="https://as.example/oauth2", secret_key=KEY)
HTTP = Settings(issuer="http://as.example/oauth2", secret_key=KEY, insecure_transport=True)
HOST_NAME = "__Host-asgi_oauth_session"
PLAIN_NAME = "asgi_oauth_session"


def name_of(settings: Settings) -> str:
    return PLAIN_NAME if settings.insecure_transport else HOST_NAME


def parts(set_cookie: str) -> tuple[str, str, list[str]]:
    """A Set-Cookie value's name, value and attributes."""
    pair, *attributes = (part.strip() for part in set_cookie.split(";"))
    name, _, value = pair.partition("=")
    return name, value, attributes


def value_for(cookie: SessionCookie, session: Session) -> str:
    return parts(cookie.set_cookie(session))[1]


def expired_value(session: Session) -> str:
    """A cookie value for ``session`` signed with our key, longer ago than it lasts."""

    class Signer(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - HTTPS.session_lifetime - 10

    serializer = URLSafeTimedSerializer(KEY, salt="asgi_oauth.session", signer=Signer)
    return serializer.dumps({"c": session.csrf})


def test_an_https_issuer_names_the_cookie_with_the_host_prefix() -> None:
    # RFC 6265bis §4.1.3.2: __Host- is accepted only with Secure, Path=/ and no Domain.
    name, _, attributes = parts(SessionCookie(HTTPS).set_cookie(Session.anonymous()))
    assert name == HOST_NAME
    assert "Path=/" in attributes and "Secure" in attributes
    assert not [a for a in attributes if a.lower().startswith("domain")]


def test_insecure_transport_keeps_the_plain_name_and_the_issuers_path() -> None:
    name, _, attributes = parts(SessionCookie(HTTP).set_cookie(Session.anonymous()))
    assert name == PLAIN_NAME
    assert "Path=/oauth2" in attributes and "Secure" not in attributes


@pytest.mark.parametrize("settings", [HTTPS, HTTP], ids=["https", "insecure"])
def test_clearing_uses_the_name_and_attributes_of_setting(settings: Settings) -> None:
    cookie = SessionCookie(settings)
    set_name, _, set_attributes = parts(cookie.set_cookie(Session.anonymous()))
    clear_name, clear_value, clear_attributes = parts(cookie.clear_cookie())
    assert (clear_name, clear_value) == (set_name, "")
    assert "Max-Age=0" in clear_attributes
    assert [a for a in clear_attributes if not a.startswith("Max-Age")] == [
        a for a in set_attributes if not a.startswith("Max-Age")
    ]


@pytest.mark.parametrize("settings", [HTTPS, HTTP], ids=["https", "insecure"])
def test_a_value_read_back_is_the_session_written(settings: Settings) -> None:
    cookie, session = SessionCookie(settings), Session.anonymous()
    header = f"{name_of(settings)}={value_for(cookie, session)}"
    assert cookie.load(header) == session


@pytest.mark.parametrize("settings", [HTTPS, HTTP], ids=["https", "insecure"])
@pytest.mark.parametrize("ours_first", [True, False], ids=["ours-first", "ours-second"])
@pytest.mark.parametrize(
    "junk",
    ["junk", "", "a.b.c", '"quoted"', "x" * 300],
    ids=["word", "empty", "dots", "quoted", "long"],
)
def test_a_junk_value_of_the_same_name_does_not_hide_ours(
    settings: Settings, ours_first: bool, junk: str
) -> None:
    cookie, session = SessionCookie(settings), Session.anonymous()
    name = name_of(settings)
    values = [value_for(cookie, session), junk]
    header = "; ".join(f"{name}={v}" for v in (values if ours_first else values[::-1]))
    assert cookie.load(header) == session


@pytest.mark.parametrize("settings", [HTTPS, HTTP], ids=["https", "insecure"])
def test_a_value_signed_with_another_key_does_not_hide_ours(settings: Settings) -> None:
    cookie, session = SessionCookie(settings), Session.anonymous()
    other = SessionCookie(
        Settings(issuer=settings.issuer, secret_key="z" * 40, insecure_transport=True)
    )
    name = name_of(settings)
    forged = value_for(other, Session.anonymous())
    header = f"{name}={forged}; theme=dark; {name}={value_for(cookie, session)}"
    assert cookie.load(header) == session


def test_an_expired_value_does_not_hide_a_fresh_one() -> None:
    cookie, session = SessionCookie(HTTPS), Session.anonymous()
    stale = expired_value(Session.anonymous())
    assert cookie.load(f"{HOST_NAME}={stale}") is None
    assert cookie.load(f"{HOST_NAME}={stale}; {HOST_NAME}={value_for(cookie, session)}") == session


def test_of_two_valid_values_the_first_is_used() -> None:
    cookie = SessionCookie(HTTPS)
    first, second = Session.anonymous(), Session.anonymous()
    header = f"{HOST_NAME}={value_for(cookie, first)}; {HOST_NAME}={value_for(cookie, second)}"
    assert cookie.load(header) == first


@pytest.mark.parametrize("settings", [HTTPS, HTTP], ids=["https", "insecure"])
def test_only_junk_under_our_name_is_no_session(settings: Settings) -> None:
    name = name_of(settings)
    assert SessionCookie(settings).load(f"{name}=junk; {name}=; {name}") is None


@pytest.mark.parametrize(
    ("settings", "other_name"), [(HTTPS, PLAIN_NAME), (HTTP, HOST_NAME)], ids=["https", "insecure"]
)
def test_a_valid_value_under_the_other_name_is_not_read(
    settings: Settings, other_name: str
) -> None:
    cookie, session = SessionCookie(settings), Session.anonymous()
    assert cookie.load(f"{other_name}={value_for(cookie, session)}") is None


@pytest.mark.parametrize("header", [None, "", "theme=dark", ";;;=", "asgi_oauth_session"])
def test_no_value_of_ours_is_no_session(header: str | None) -> None:
    assert SessionCookie(HTTPS).load(header) is None

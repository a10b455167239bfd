"""The built-in sign-in session: a cookie signed with itsdangerous, and its CSRF secret.

The cookie holds no secret a thief could use elsewhere: the user's id, when
they signed in, the id of the sign-in the store keeps (so signing out, a new
password or deleting the user ends it for every copy of the cookie), and a
random CSRF value that every form must echo. It is
HttpOnly, SameSite=Lax, and honoured for ``session_lifetime`` seconds at most.
Over https it is ``__Host-asgi_oauth_session``: Secure, at ``Path=/``, host-only,
so no subdomain can set it and no cookie at another path can shadow it (RFC 6265bis
§4.1.3.2); under ``insecure_transport`` it keeps the plain name, scoped to the
issuer's path. Of several values of its name, the first that verifies is used.
Signing in issues a new one, so a session fixed before sign-in is worthless after.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass

from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.requests import cookie_parser

from ..config import Settings
from ..models import User

logger = logging.getLogger("asgi_oauth")

COOKIE_NAME = "asgi_oauth_session"
HOST_COOKIE_NAME = "__Host-" + COOKIE_NAME
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True, slots=True)
class Session:
    """One browser's session; ``user_id`` is None until someone signs in."""

    csrf: str
    user_id: str | None = None
    auth_time: int | None = None
    #: A digest of the user's password hash at sign-in: a new password ends the session.
    credential: str | None = None
    #: The sign-in the store keeps (``AuthorizationServer.open_session``).
    session_id: str | None = None
    #: When this browser was last sent to the host's ``login_url`` to sign in anew,
    #: for a ``current_user`` hook that cannot say when (OpenID Connect ``max_age``).
    reauth_at: int | None = None
    #: How they signed in (RFC 8176): None for the password form, else what the
    #: upstream provider said.
    amr: tuple[str, ...] | None = None
    #: The scopes they may grant (their upstream groups'); None: any.
    scopes: frozenset[str] | None = None

    @classmethod
    def anonymous(cls) -> Session:
        return cls(csrf=secrets.token_urlsafe(32))

    @classmethod
    def signed_in(
        cls,
        user: User,
        auth_time: int,
        session_id: str,
        *,
        amr: tuple[str, ...] | None = None,
        scopes: frozenset[str] | None = None,
    ) -> Session:
        return cls(
            csrf=secrets.token_urlsafe(32),
            user_id=user.user_id,
            auth_time=auth_time,
            credential=credential_of(user),
            session_id=session_id,
            amr=amr,
            scopes=scopes,
        )

    def check_csrf(self, submitted: str | None) -> bool:
        if submitted is None:
            return False
        return hmac.compare_digest(submitted.encode(), self.csrf.encode())

    def belongs_to(self, user: User) -> bool:
        """Whether this session was opened with the user's current password."""
        return self.credential is not None and hmac.compare_digest(
            self.credential, credential_of(user)
        )


def credential_of(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:32]


class SessionCookie:
    """Reads and writes the session cookie under the server's settings."""

    def __init__(self, settings: Settings) -> None:
        key = settings.secret_key
        if key is None:
            logger.info("no secret_key set: sign-in sessions end when this process does")
            key = secrets.token_urlsafe(32)
        self._serializer = URLSafeTimedSerializer(key, salt="asgi_oauth.session")
        self._max_age = settings.session_lifetime
        self.name, self._attributes = cookie_attributes(settings, COOKIE_NAME)
        #: Signs other short-lived cookies of the pages with the same key.
        self.key = key

    def load(self, cookie_header: str | None) -> Session | None:
        """The session in a Cookie header; None when absent, expired or tampered with."""
        if not cookie_header:
            return None
        # Another path or domain's cookie of the same name may come first or last.
        for value in values_named(self.name, cookie_header):
            session = self._session_in(value)
            if session is not None:
                return session
        return None

    def _session_in(self, value: str) -> Session | None:
        try:
            data = self._serializer.loads(value, max_age=self._max_age)
            if not isinstance(data, dict):
                return None
            return Session(
                csrf=str(data["c"]),
                user_id=None if data.get("u") is None else str(data["u"]),
                auth_time=None if data.get("t") is None else int(data["t"]),
                credential=None if data.get("p") is None else str(data["p"]),
                reauth_at=None if data.get("r") is None else int(data["r"]),
                session_id=None if data.get("s") is None else str(data["s"]),
                amr=None if data.get("m") is None else tuple(str(v) for v in data["m"]),
                scopes=None if data.get("g") is None else frozenset(str(v) for v in data["g"]),
            )
        except (BadData, KeyError, TypeError, ValueError):
            return None

    def set_cookie(self, session: Session) -> str:
        """A Set-Cookie value carrying ``session``."""
        data: dict[str, object] = {"c": session.csrf}
        if session.user_id is not None:
            data["u"], data["t"], data["p"] = session.user_id, session.auth_time, session.credential
            data["s"] = session.session_id
            if session.amr is not None:
                data["m"] = list(session.amr)
            if session.scopes is not None:
                data["g"] = sorted(session.scopes)
        if session.reauth_at is not None:
            data["r"] = session.reauth_at
        value = self._serializer.dumps(data)
        return f"{self.name}={value}; Max-Age={self._max_age}; {self._attributes}"

    def clear_cookie(self) -> str:
        return f"{self.name}=; Max-Age=0; {self._attributes}"


def cookie_attributes(settings: Settings, name: str) -> tuple[str, str]:
    """A cookie's name and attributes: ``__Host-`` and Secure over https, else the
    plain name scoped to the issuer's path."""
    if settings.insecure_transport:
        name, path = name, settings.issuer_path or "/"
    else:
        # RFC 6265bis §4.1.3.2: browsers keep a __Host- cookie only if it is
        # Secure, at Path=/ and without Domain.
        name, path = "__Host-" + name, "/"
    attributes = [f"Path={path}", "HttpOnly", "SameSite=Lax"]
    if not settings.insecure_transport:
        attributes.append("Secure")
    return name, "; ".join(attributes)


def values_named(name: str, cookie_header: str) -> list[str]:
    """Every value of the cookie ``name`` in a Cookie header, in order. Each pair goes
    through Starlette's lenient parser: one odd cookie of the host's must not hide ours."""
    return [
        value
        for pair in cookie_header.split(";")
        for key, value in cookie_parser(pair).items()
        if key == name
    ]

"""The built-in sign-in session: a cookie signed with itsdangerous, and its CSRF secret.

The cookie holds no secret a thief could use elsewhere: the user's id, when
they signed in, and a random CSRF value that every form must echo. It is
HttpOnly, SameSite=Lax, Secure unless ``insecure_transport``, scoped to the
issuer's path, and honoured for ``session_lifetime`` seconds at most. Signing
in issues a new one, so a session fixed before sign-in is worthless after.
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
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True, slots=True)
class Session:
    """One browser's session; ``user_id`` is None until someone signs in."""

    csrf: str
    user_id: str | None = None
    auth_time: int | None = None
    #: A digest of the user's password hash at sign-in: a new password ends the session.
    credential: str | None = None

    @classmethod
    def anonymous(cls) -> Session:
        return cls(csrf=secrets.token_urlsafe(32))

    @classmethod
    def signed_in(cls, user: User, auth_time: int) -> Session:
        return cls(
            csrf=secrets.token_urlsafe(32),
            user_id=user.user_id,
            auth_time=auth_time,
            credential=credential_of(user),
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
        attributes = [f"Path={settings.issuer_path or '/'}", "HttpOnly", "SameSite=Lax"]
        if not settings.insecure_transport:
            attributes.append("Secure")
        self._attributes = "; ".join(attributes)

    def load(self, cookie_header: str | None) -> Session | None:
        """The session in a Cookie header; None when absent, expired or tampered with."""
        if not cookie_header:
            return None
        # Starlette's lenient parser: one odd cookie of the host's must not hide ours.
        value = cookie_parser(cookie_header).get(COOKIE_NAME)
        if value is None:
            return None
        try:
            data = self._serializer.loads(value, max_age=self._max_age)
            if not isinstance(data, dict):
                return None
            return Session(
                csrf=str(data["c"]),
                user_id=None if data.get("u") is None else str(data["u"]),
                auth_time=None if data.get("t") is None else int(data["t"]),
                credential=None if data.get("p") is None else str(data["p"]),
            )
        except (BadData, KeyError, TypeError, ValueError):
            return None

    def set_cookie(self, session: Session) -> str:
        """A Set-Cookie value carrying ``session``."""
        data: dict[str, object] = {"c": session.csrf}
        if session.user_id is not None:
            data["u"], data["t"], data["p"] = session.user_id, session.auth_time, session.credential
        value = self._serializer.dumps(data)
        return f"{COOKIE_NAME}={value}; Max-Age={self._max_age}; {self._attributes}"

    def clear_cookie(self) -> str:
        return f"{COOKIE_NAME}=; Max-Age=0; {self._attributes}"

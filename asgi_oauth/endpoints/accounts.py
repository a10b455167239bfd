"""The people who sign in: their accounts, passwords and sign-in sessions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from ..config import Settings
from ..crypto import generate_token, hash_password, hash_token, time_ordered_token
from ..errors import storage_guard
from ..models import BrowserSession, User
from ..requests import OAuthRequest
from ..storage.base import Storage
from ..throttle import SharedThrottle
from ..users import authenticate_user, check_new_password


@dataclass(frozen=True, slots=True)
class Accounts:
    """Creates users, checks their passwords and keeps their sessions on the server."""

    storage: Storage
    settings: Settings
    guesses: SharedThrottle
    clock: Callable[[], float]

    async def create_user(self, username: str, password: str) -> User:
        """Add a resource owner; the password is kept as an scrypt hash only.

        A username that is taken is refused (``ValueError``), never replaced: the
        user who has it keeps their password, sessions and tokens. A password shorter
        than ``Settings.min_password_length`` is refused too (``ValueError``).
        """
        if not username or not password:
            raise ValueError("username and password must not be empty")
        if not username.isprintable() or username != username.strip():
            raise ValueError("the username must be printable, without blanks around it")
        check_new_password(password, self.settings.min_password_length)
        password_hash = await asyncio.to_thread(hash_password, password)
        user = User(
            user_id=generate_token(16),
            username=username,
            password_hash=password_hash,
            created_at=int(self.clock()),
        )
        if not await self.storage.add_user(user):
            raise ValueError(f"username already taken: {username!r}")
        return user

    async def authenticate(self, request: OAuthRequest, username: str, password: str) -> User:
        """The user these credentials name, for a sign-in page (throttled like the grant)."""
        with storage_guard:
            return await authenticate_user(request, self.storage, self.guesses, username, password)

    async def open_session(self, user: User, *, auth_time: int | None = None) -> tuple[str, int]:
        """Record a sign-in: the session id its cookie carries (the store keeps only its
        hash) and the time of the sign-in (``auth_time``: an upstream provider's, else now)."""
        session_id, now = time_ordered_token(), int(self.clock())
        if auth_time is None:
            auth_time = now
        session = BrowserSession(
            session_hash=hash_token(session_id),
            user_id=user.user_id,
            auth_time=auth_time,
            expires_at=now + self.settings.session_lifetime,
        )
        with storage_guard:
            await self.storage.save_session(session)
        return session_id, auth_time

    async def session_user(self, session_id: str) -> User | None:
        """The user of a live session; None once it was ended (signed out, the user
        deleted) or expired."""
        with storage_guard:
            session = await self.storage.get_session(hash_token(session_id))
            if session is None or session.expires_at <= int(self.clock()):
                return None
            return await self.storage.get_user_by_id(session.user_id)

    async def close_session(self, session_id: str) -> None:
        """End a session on the server: a copy of its cookie signs in no one."""
        with storage_guard:
            await self.storage.delete_session(hash_token(session_id))

"""Checking a resource owner's password: one path for the login page and the password grant."""

from __future__ import annotations

import asyncio
import logging

from .crypto import verify_password
from .errors import N_, InvalidGrantError
from .events import security_event
from .models import User
from .requests import OAuthRequest
from .storage.base import Storage
from .throttle import SharedThrottle


async def authenticate_user(
    request: OAuthRequest,
    storage: Storage,
    throttle: SharedThrottle,
    username: str,
    password: str,
) -> User:
    """The user these credentials name, or ``invalid_grant`` (429 once throttled).

    Guesses count per username and client address, each before it is checked;
    scrypt runs off the event loop, and an unknown username costs the same scrypt
    as a known one.
    """
    throttle_key = request.throttle_key(f"user:{username}")
    await throttle.attempt(
        throttle_key, InvalidGrantError, N_("too many failed sign-ins; retry later")
    )
    user = await storage.get_user(username)
    stored = user.password_hash if user is not None else None
    if not await asyncio.to_thread(verify_password, password, stored) or user is None:
        security_event(
            "sign_in_failed",
            level=logging.WARNING,
            username=username[:64],
            address=request.client_address,
        )
        raise InvalidGrantError(N_("invalid username or password"))
    await throttle.succeeded(throttle_key)
    security_event("signed_in", user_id=user.user_id, address=request.client_address)
    return user


def check_new_password(password: str, min_length: int) -> None:
    """Refuse a password too short to set (``ValueError``): one rule for the API and the CLI."""
    if len(password) < min_length:
        raise ValueError(f"the password must be at least {min_length} characters")

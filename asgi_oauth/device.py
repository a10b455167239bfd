"""User codes for the device authorization grant (RFC 8628 §6.1).

Eight letters from twenty consonants: no vowels (no words), nothing that looks
like a digit, about 34.6 bits. People may type them in either case, with or
without the dash; guesses are throttled, and a code lives minutes.
"""

from __future__ import annotations

import hashlib
import secrets

USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
_LENGTH = 8


def generate_user_code() -> str:
    """A fresh user code as people see it: ``WDJB-MJHT``."""
    return format_user_code("".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(_LENGTH)))


def normalize_user_code(typed: str) -> str | None:
    """The canonical form of what someone typed, or None when it cannot be a code."""
    if not typed.isascii():
        return None
    letters = "".join(typed.split()).replace("-", "").upper()
    if len(letters) != _LENGTH or not all(c in USER_CODE_ALPHABET for c in letters):
        return None
    return letters


def format_user_code(canonical: str) -> str:
    """A canonical user code as people read it: ``WDJB-MJHT``."""
    return f"{canonical[:4]}-{canonical[4:]}"


def hash_user_code(user_code: str) -> str:
    """The key a user code is stored by (of its canonical form)."""
    return hashlib.sha256(user_code.encode()).hexdigest()

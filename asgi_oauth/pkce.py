"""Proof Key for Code Exchange (RFC 7636): checking a verifier against its challenge."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from .types import CodeChallengeMethod

# RFC 7636 §4.1: 43 to 128 characters from the unreserved set.
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
# RFC 7636 §4.2: the S256 challenge is BASE64URL(SHA256(verifier)) without padding.
_S256_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")


def s256_challenge(verifier: str) -> str:
    """BASE64URL-ENCODE(SHA256(ASCII(code_verifier))) (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def is_valid_verifier(verifier: str) -> bool:
    return _VERIFIER.fullmatch(verifier) is not None


def is_valid_challenge(challenge: str, method: CodeChallengeMethod) -> bool:
    """A plain challenge has the verifier's syntax; an S256 one is 43 base64url characters."""
    pattern = _S256_CHALLENGE if method == "S256" else _VERIFIER
    return pattern.fullmatch(challenge) is not None


def verify(verifier: str, challenge: str, method: CodeChallengeMethod) -> bool:
    """RFC 7636 §4.6: transform the verifier and compare it with the challenge."""
    if not is_valid_verifier(verifier):
        return False
    computed = s256_challenge(verifier) if method == "S256" else verifier
    return hmac.compare_digest(computed.encode(), challenge.encode())

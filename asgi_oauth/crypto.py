"""Random values, hashing at rest, constant-time comparison, password hashing, and
sealing (authenticated encryption under a key derived from a secret).

Codes, tokens and client secrets carry 256 random bits, so one SHA-256 is
enough to make a stored copy useless (nothing to brute-force); client secrets
get a per-client salt as well. Passwords are people's and guessable, so they
get scrypt (memory-hard, RFC 7914).

Codes and tokens begin with the time they were issued, as UUIDv7 and ULID do,
and their stored key keeps that prefix before the digest: new keys land at the
right edge of a store's index instead of on a random page, which measured on
SQLite more than halves the cost of an insert. The time is no secret.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024


#: Hex digits of milliseconds since the epoch at the start of a code or token.
_TIME_PREFIX = 11


def generate_token(nbytes: int = 32) -> str:
    """A URL-safe random string with ``nbytes`` of entropy (RFC 6749 §10.10)."""
    return secrets.token_urlsafe(nbytes)


def time_ordered_token(nbytes: int = 32) -> str:
    """A code or token: the issuing time in hex, then ``nbytes`` of entropy."""
    return f"{time.time_ns() // 1_000_000:0{_TIME_PREFIX}x}{secrets.token_urlsafe(nbytes)}"


def hash_token(value: str) -> str:
    """The key a code or token is stored and looked up by: time prefix + SHA-256."""
    return value[:_TIME_PREFIX] + hashlib.sha256(value.encode()).hexdigest()


def hash_secret(secret: str) -> str:
    """A salted hash of a client secret: ``sha256$<salt>$<digest>``."""
    salt = secrets.token_hex(16)
    digest = hashlib.sha256(f"{salt}${secret}".encode()).hexdigest()
    return f"sha256${salt}${digest}"


def verify_secret(secret: str, stored: str | None) -> bool:
    """Check a client secret against its stored hash, in constant time.

    With nothing stored (unknown client) it still hashes, so the answer takes
    as long either way.
    """
    _, salt, digest = (stored or "sha256$$").split("$", 2)
    candidate = hashlib.sha256(f"{salt}${secret}".encode()).hexdigest()
    return hmac.compare_digest(candidate, digest) and stored is not None


def hash_password(password: str) -> str:
    """An scrypt hash: ``scrypt$n$r$p$<salt>$<key>`` (all parameters kept for later upgrades)."""
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, maxmem=_SCRYPT_MAXMEM
    )
    return "$".join(
        ("scrypt", str(_SCRYPT_N), str(_SCRYPT_R), str(_SCRYPT_P), _b64(salt), _b64(key))
    )


@functools.cache
def _dummy_password_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


#: The password hash of someone who signs in only through an upstream provider:
#: no password verifies against it.
NO_PASSWORD = "none"


def verify_password(password: str, stored: str | None) -> bool:
    """Check a password in constant time; an unknown user, or one without a password,
    costs one scrypt too."""
    if stored is not None and not stored.startswith("scrypt$"):
        verify_password(password, None)
        return False
    scheme, n, r, p, salt, key = (stored or _dummy_password_hash()).split("$")
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(
        password.encode(),
        salt=_unb64(salt),
        n=int(n),
        r=int(r),
        p=int(p),
        maxmem=_SCRYPT_MAXMEM,
    )
    return hmac.compare_digest(candidate, _unb64(key)) and stored is not None


class Sealer:
    """AES-256-GCM under a key derived from ``secret`` for one ``purpose`` (HKDF-SHA256):
    what it seals, only the holder of the secret opens. ``context`` is authenticated
    with each sealed value (a key id, a token hash), so one cannot stand in for another.
    """

    _VERSION = "v1"

    def __init__(self, secret: str, *, purpose: bytes) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
            secret.encode()
        )
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, *, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext, context.encode())
        return f"{self._VERSION}.{_b64(nonce + sealed)}"

    def open(self, text: str, *, context: str) -> bytes:
        """The plaintext; ``ValueError`` if ``text`` was not sealed with this secret,
        purpose and context, or was changed since."""
        version, _, body = text.partition(".")
        if version != self._VERSION or not body.isascii() or "=" in body:
            raise ValueError("not a sealed value")
        try:
            data = _unb64(body)
            return self._aead.decrypt(data[:12], data[12:], context.encode())
        except (InvalidTag, ValueError) as exc:
            raise ValueError("cannot open a sealed value") from exc


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))

"""Signing keys: made in the store on first use, private halves encrypted at rest,
published as a JWK Set, rotated without breaking a token already issued.

One key per algorithm signs at a time (RS256 always, OpenID Connect Core §15.1;
ES256 and EdDSA for clients that ask for them or for JWT access tokens; see
``jws_algorithms``). The private JWK is stored encrypted with AES-256-GCM under a
key derived from ``Settings.key_encryption_key``, with the key id as associated
data, so a stolen database signs nothing and a ciphertext cannot be moved to
another key's row. A rotation retires the active key; it stays published until
every token it signed has expired.

JWS is left to joserfc; every verification pins the algorithm to the one the
key was made for, so ``alg=none`` and HMAC-with-a-public-key cannot pass.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError

from .crypto import Sealer
from .errors import StorageError
from .jws_algorithms import CompactSigner, SigningJWK, fits, generate_key, import_key, registry
from .models import SigningKey
from .revocation_signal import signal_of
from .storage.base import Storage
from .types import SIGNING_ALGORITHMS, SigningAlgorithm

logger = logging.getLogger("asgi_oauth")

#: A signed token we read is refused before any parsing when it is longer.
MAX_JWT_LENGTH = 16 * 1024
_MAX_HEADER_LENGTH = 1024
#: Seconds between reloads of the key set from the store (another instance may rotate).
RELOAD_INTERVAL = 60.0
#: An unknown ``kid`` reloads the key set at most this often (a flood of junk must not).
_UNKNOWN_KID_RELOAD_INTERVAL = 5.0


class KeyEncryptionError(Exception):
    """A stored private key cannot be decrypted: the key-encryption key is not the one
    it was encrypted with. A configuration mistake, never the client's."""


class InvalidJWTError(ValueError):
    """A JWT that is malformed, signed by no key of ours, or signed the wrong way."""


class UnknownKeyError(InvalidJWTError):
    """A JWT whose ``kid`` names no key we know (yet: another instance may have rotated)."""


class KeyEncryption:
    """AES-256-GCM under a key derived from the configured secret (HKDF-SHA256)."""

    def __init__(self, secret: str) -> None:
        self._sealer = Sealer(secret, purpose=b"asgi_oauth signing keys")

    def encrypt(self, plaintext: bytes, *, kid: str) -> str:
        return self._sealer.seal(plaintext, context=kid)

    def decrypt(self, text: str, *, kid: str) -> bytes:
        try:
            return self._sealer.open(text, context=kid)
        except ValueError as exc:
            raise KeyEncryptionError(
                f"signing key {kid} cannot be decrypted: is key_encryption_key the one "
                "it was stored with?"
            ) from exc


def generate_signing_key(
    alg: SigningAlgorithm, encryption: KeyEncryption, *, now: int
) -> SigningKey:
    """A new key pair for ``alg``; its id is its RFC 7638 thumbprint."""
    key = generate_key(alg)
    kid = key.thumbprint()
    public = {**key.as_dict(private=False), "kid": kid, "alg": alg, "use": "sig"}
    private = json.dumps(key.as_dict(private=True)).encode()
    return SigningKey(
        kid=kid,
        alg=alg,
        public_jwk=json.dumps(public, sort_keys=True),
        private_jwk=encryption.encrypt(private, kid=kid),
        created_at=now,
    )


class PublicKeys:
    """Published public keys by id, each with the one algorithm it may verify."""

    def __init__(self, keys: Mapping[str, tuple[SigningAlgorithm, SigningJWK]]) -> None:
        self._keys = dict(keys)

    @classmethod
    def from_jwks(cls, document: object) -> PublicKeys:
        """Keys from a JWK Set (RFC 7517 §5). A key without a ``kid``, or whose ``alg``
        is not one we verify, is left out: the algorithm is never guessed."""
        found: dict[str, tuple[SigningAlgorithm, SigningJWK]] = {}
        entries = document.get("keys") if isinstance(document, dict) else None
        for entry in entries if isinstance(entries, list) else ():
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            kid, alg = entry.get("kid"), entry.get("alg")
            if not isinstance(kid, str) or alg not in SIGNING_ALGORITHMS:
                continue
            try:
                key = import_key(entry)
            except (JoseError, ValueError, TypeError):
                continue
            if fits(alg, key):
                found[kid] = (alg, key)
        return cls(found)

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys

    def verify(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The header and claims of a JWT one of these keys signed.

        Raises ``InvalidJWTError`` for anything else: wrong shape, a ``kid`` not
        here (``UnknownKeyError``), an algorithm other than the key's own.
        """
        header = _peek_header(token)
        entry = self._keys.get(header["kid"])
        if entry is None:
            raise UnknownKeyError("unknown kid")
        alg, key = entry
        if header["alg"] != alg:
            raise InvalidJWTError("algorithm does not match the key")
        try:
            decoded = jwt.decode(token, key, registry=registry(alg))
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidJWTError(f"bad signature or encoding: {type(exc).__name__}") from None
        if not isinstance(decoded.claims, dict):
            raise InvalidJWTError("claims are not a JSON object")
        return dict(decoded.header), dict(decoded.claims)


@dataclass(frozen=True, slots=True)
class _Loaded:
    """The key set as last read from the store."""

    public: PublicKeys
    #: The active key of each algorithm: its id and private JWK, decrypted.
    signing: Mapping[SigningAlgorithm, tuple[str, bytes]]
    jwks: Mapping[str, Any]
    #: The signers made so far, by algorithm: importing an RSA key checks it, which
    #: takes tens of milliseconds, so only a process that signs pays for it.
    signers: dict[SigningAlgorithm, CompactSigner]

    def signer(self, alg: SigningAlgorithm) -> CompactSigner:
        found = self.signers.get(alg)
        if found is None:
            kid, private = self.signing[alg]
            found = self.signers[alg] = CompactSigner(alg, kid, import_key(json.loads(private)))
        return found


class KeySet:
    """The signing keys of one server, read from its store and cached in memory.

    ``ready()`` before signing: it makes the first keys when the store has
    none, and rereads the store when the store's revocation signal moved (a
    new or retired key anywhere moves it) and now and then in case it missed
    that, so a rotation by another process is seen at once. Signing and
    verifying are then synchronous. ``generation`` counts the changes seen.
    """

    def __init__(
        self,
        storage: Storage,
        encryption: KeyEncryption,
        *,
        clock: Callable[[], float] = time.time,
        algorithms: Iterable[SigningAlgorithm] = SIGNING_ALGORITHMS,
    ) -> None:
        self._storage = storage
        self._encryption = encryption
        self._clock = clock
        self._algorithms = tuple(algorithms)
        self._loaded: _Loaded | None = None
        #: The keys ``_loaded`` was made of, so a reread finding them unchanged is cheap.
        self._stored: list[SigningKey] = []
        #: Moves when the set of keys changed: what was verified before may not be now.
        self.generation = 0
        self._signal = signal_of(storage)
        self._signal_seen: object = None
        self._next_reload = 0.0
        self._next_unknown_kid_reload = 0.0
        self._lock = asyncio.Lock()

    async def ready(self) -> None:
        """Load the keys if they never were, or are due a reread.

        A reread that fails keeps the keys already loaded: they still sign and
        verify, and only a rotation elsewhere goes unseen a while longer.
        """
        if self._loaded is None:
            await self.reload()
            return
        seen = self._signal.version()
        if time.monotonic() >= self._next_reload or seen != self._signal_seen:
            try:
                await self.reload()
            except StorageError as exc:
                logger.warning("rereading the signing keys failed, keeping them: %s", exc)
                # Not at every request meanwhile: again in a few seconds.
                self._signal_seen = seen
                self._next_reload = time.monotonic() + _UNKNOWN_KID_RELOAD_INTERVAL

    async def reload(self) -> None:
        """Read the store again, making a first key for any algorithm without one."""
        async with self._lock:
            now = int(self._clock())
            seen = self._signal.version()  # before reading: a later move rereads again
            keys = await self._storage.list_signing_keys(now=now)
            missing = [
                a for a in self._algorithms if not any(k.alg == a and k.is_active for k in keys)
            ]
            if missing:
                for alg in missing:
                    new = await asyncio.to_thread(
                        generate_signing_key, alg, self._encryption, now=now
                    )
                    await self._storage.add_signing_key(new, retire_active_until=None, now=now)
                keys = await self._storage.list_signing_keys(now=now)
            if self._loaded is None or keys != self._stored:
                self._loaded, self._stored = self._load(keys), keys
                self.generation += 1
            self._signal_seen = seen
            self._next_reload = time.monotonic() + RELOAD_INTERVAL

    async def rotate(
        self, *, keep_published: int, algorithms: Iterable[SigningAlgorithm] | None = None
    ) -> list[SigningKey]:
        """Replace the active key of each algorithm (or make the first one); the old
        ones stay published for ``keep_published`` seconds (the longest lifetime of
        what they signed) plus the time other instances may take to notice."""
        keep_published += int(RELOAD_INTERVAL)
        now = int(self._clock())
        # Decrypt the keys in use first: with a wrong key-encryption key, rotating
        # would store keys that the running servers cannot read.
        self._load(await self._storage.list_signing_keys(now=now))
        rotated = []
        for alg in algorithms or self._algorithms:
            new = await asyncio.to_thread(generate_signing_key, alg, self._encryption, now=now)
            if await self._storage.add_signing_key(
                new, retire_active_until=now + keep_published, now=now
            ):
                rotated.append(new)
        await self.reload()
        return rotated

    def jwks(self) -> Mapping[str, Any]:
        """The JWK Set document (RFC 7517 §5): every published public key."""
        return self._require().jwks

    def sign(self, claims: Mapping[str, object], *, alg: SigningAlgorithm, typ: str) -> str:
        """A compact JWS of ``claims`` by the active key of ``alg``."""
        return self._require().signer(alg).sign(claims, typ)

    def verify(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The header and claims of a JWT one of our published keys signed."""
        return self._require().public.verify(token)

    async def verify_fresh(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """``verify``, rereading the store once when the ``kid`` is new to us
        (another instance rotated), but not more often than every few seconds."""
        await self.ready()
        try:
            return self.verify(token)
        except UnknownKeyError:
            if time.monotonic() < self._next_unknown_kid_reload:
                raise
        self._next_unknown_kid_reload = time.monotonic() + _UNKNOWN_KID_RELOAD_INTERVAL
        await self.reload()
        return self.verify(token)

    def _require(self) -> _Loaded:
        if self._loaded is None:
            raise RuntimeError("KeySet.ready() was not awaited")
        return self._loaded

    def _load(self, keys: list[SigningKey]) -> _Loaded:
        public: dict[str, tuple[SigningAlgorithm, SigningJWK]] = {}
        signing: dict[SigningAlgorithm, tuple[str, bytes]] = {}
        documents = []
        for stored in keys:
            document = json.loads(stored.public_jwk)
            public[stored.kid] = (stored.alg, import_key(document))
            documents.append(document)
            if stored.is_active:
                private = self._encryption.decrypt(stored.private_jwk, kid=stored.kid)
                signing[stored.alg] = (stored.kid, private)
        return _Loaded(PublicKeys(public), signing, {"keys": documents}, {})


def _peek_header(token: str) -> dict[str, Any]:
    """The JOSE header, checked for shape before any cryptography runs."""
    if len(token) > MAX_JWT_LENGTH:
        raise InvalidJWTError("token too long")
    parts = token.split(".")
    if len(parts) != 3 or len(parts[0]) > _MAX_HEADER_LENGTH:
        raise InvalidJWTError("not a compact JWS")
    try:
        header = json.loads(_b64decode(parts[0]))
    except (ValueError, UnicodeDecodeError):
        raise InvalidJWTError("malformed header") from None
    if (
        not isinstance(header, dict)
        or header.get("alg") not in SIGNING_ALGORITHMS
        or not isinstance(header.get("kid"), str)
        or "crit" in header
    ):
        raise InvalidJWTError("header must name one of our algorithms and a kid")
    return header


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    if not text.isascii() or "=" in text:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def read_key_file(path: str) -> str:
    """The key-encryption key kept in ``path``, made (mode 0600) if there is none.

    For the zero-setup command line only: a deployment passes the key in
    ``ASGI_OAUTH_KEY_ENCRYPTION_KEY`` from its secret store instead.
    """
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except FileNotFoundError:
        pass
    secret = _b64encode(os.urandom(32))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return read_key_file(path)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(secret + "\n")
    return secret

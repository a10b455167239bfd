"""DPoP (RFC 9449): checking a proof, server nonces and a replay memory, free of any
web framework.

``verify_dpop_proof`` applies the checks of §4.3 to one ``DPoP`` header value
and returns what the token endpoint binds (§5, ``jkt``) or the resource
server compares (§7.1). The cheap structural checks run first; the signature
is checked with joserfc against the proof's own ``jwk``, its algorithm pinned
to the key's type and curve. ``DPoPNonces`` makes the server nonces of §8 and
§9 without a store, and ``ReplayCache`` remembers proofs seen (§11.1).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote, urlsplit

from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwa import JWSAlgModel
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from .errors import InvalidDPoPProofError, UseDPoPNonceError
from .jwt_access_tokens import is_json_int
from .types import DPOP_SIGNING_ALGORITHMS

#: A proof longer than this is refused before any parsing.
MAX_PROOF_LENGTH = 8 * 1024
_MAX_HEADER_LENGTH = 4096
_MAX_SIGNATURE_LENGTH = 2048
_MAX_JTI_LENGTH = 256
_MIN_RSA_BITS, _MAX_RSA_BITS = 2048, 8192

#: The key type and curve each algorithm may be used with (RFC 7518 §3, RFC 8037 §3.1).
_KEY_TYPES: Mapping[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "EdDSA": ("OKP", "Ed25519"),
    "RS256": ("RSA", None),
    "PS256": ("RSA", None),
}
_KEY_CLASSES: Mapping[str, type[ECKey] | type[RSAKey] | type[OKPKey]] = {
    "EC": ECKey,
    "RSA": RSAKey,
    "OKP": OKPKey,
}
#: RFC 7518 §6.2.2, §6.3.2 and §6.4, RFC 8037 §2: members of private or symmetric keys.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class DPoPProof:
    """A checked proof: the thumbprint of its key and the claims that were checked."""

    jkt: str
    jti: str
    htm: str
    htu: str
    iat: int
    nonce: str | None
    ath: str | None


class _ProofRegistry(JWSRegistry):
    """The DPoP algorithms only, with room for an RSA key in the header."""

    max_header_length = _MAX_HEADER_LENGTH
    max_signature_length = _MAX_SIGNATURE_LENGTH

    def get_alg(self, name: str) -> JWSAlgModel:
        # RFC 9864 deprecates "EdDSA" for naming no curve; the key is pinned to Ed25519
        # before this runs, so joserfc's warning about it says nothing here.
        if name == "EdDSA":
            return self.algorithms[name]
        return super().get_alg(name)


# RFC 7515 §4: header members not understood are ignored unless listed in ``crit``.
_REGISTRY = _ProofRegistry(algorithms=DPOP_SIGNING_ALGORITHMS, strict_check_header=False)


def verify_dpop_proof(
    proof: str,
    *,
    method: str,
    url: str,
    now: int,
    leeway: int,
    access_token: str | None = None,
    nonces: DPoPNonces | None = None,
) -> DPoPProof:
    """The proof, checked against the request (RFC 9449 §4.3).

    ``url`` is the request's target as received (percent-encoded path); its
    query and fragment are ignored. With ``access_token``, the proof must carry
    its hash (§7.1); with ``nonces``, a current server nonce (§8, §9).
    Raises ``InvalidDPoPProofError``, or ``UseDPoPNonceError`` carrying a fresh nonce.
    """
    header = _peek_header(proof)
    key, jkt = _header_key(header)
    try:
        signed = jws.deserialize_compact(proof, key, registry=_REGISTRY)
    except BadSignatureError:
        raise InvalidDPoPProofError("the DPoP proof signature does not verify") from None
    except (JoseError, ValueError, TypeError):
        raise InvalidDPoPProofError("the DPoP proof is not a valid JWS") from None
    try:
        claims = json.loads(signed.payload)
    except (ValueError, RecursionError):
        claims = None
    if not isinstance(claims, dict):
        raise InvalidDPoPProofError("the DPoP proof claims are not a JSON object")

    jti, htm, htu, iat = (claims.get(name) for name in ("jti", "htm", "htu", "iat"))
    if not isinstance(jti, str) or not 0 < len(jti) <= _MAX_JTI_LENGTH:
        raise InvalidDPoPProofError("the DPoP proof needs a jti of 1 to 256 characters")
    if htm != method:
        raise InvalidDPoPProofError("the DPoP proof htm does not match the request method")
    if not isinstance(htu, str) or not _same_target(htu, url):
        raise InvalidDPoPProofError("the DPoP proof htu does not match the request URL")
    # RFC 7519 §2: a NumericDate may have a fraction; whole seconds are enough here.
    if isinstance(iat, float) and math.isfinite(iat):
        iat = int(iat)
    if not is_json_int(iat):
        raise InvalidDPoPProofError("the DPoP proof iat is not a number")
    if iat > now + leeway:
        raise InvalidDPoPProofError("the DPoP proof is issued in the future")
    if iat < now - leeway:
        raise InvalidDPoPProofError("the DPoP proof is too old")

    ath, nonce = claims.get("ath"), claims.get("nonce")
    if ath is not None and not isinstance(ath, str):
        raise InvalidDPoPProofError("the DPoP proof ath is not a string")
    if access_token is not None and (ath is None or not _ath_matches(ath, access_token)):
        raise InvalidDPoPProofError("the DPoP proof ath does not match the access token")
    if nonce is not None and not isinstance(nonce, str):
        raise InvalidDPoPProofError("the DPoP proof nonce is not a string")
    if nonces is not None and (nonce is None or not nonces.is_valid(nonce)):
        raise UseDPoPNonceError(nonces.issue())
    return DPoPProof(jkt=jkt, jti=jti, htm=htm, htu=htu, iat=iat, nonce=nonce, ath=ath)


def access_token_hash(access_token: str) -> str:
    """The ``ath`` claim (RFC 9449 §4.2): base64url SHA-256 of the ASCII token.

    Raises ``ValueError`` for a token that is not ASCII (RFC 6750 §2.1 allows none).
    """
    return _b64encode(hashlib.sha256(access_token.encode("ascii")).digest())


def jwk_thumbprint(jwk: Mapping[str, object]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK: what ``cnf.jkt`` holds (RFC 9449 §6).

    Raises ``ValueError`` for a JWK that is not an EC, RSA or OKP key.
    """
    kty = jwk.get("kty")
    key_class = _KEY_CLASSES.get(kty) if isinstance(kty, str) else None
    if key_class is None:
        raise ValueError("not an EC, RSA or OKP key")
    try:
        key = key_class.import_key(cast("dict[str, Any]", dict(jwk)))
    except (JoseError, TypeError) as exc:
        raise ValueError(f"not a valid JWK: {type(exc).__name__}") from None
    thumbprint: str = key.thumbprint()
    return thumbprint


def replay_key(proof: DPoPProof) -> str:
    """The key a proof is remembered by: the same ``jti`` under another key is another proof."""
    digest = hashlib.sha256(f"{proof.jkt}:{proof.jti}".encode()).digest()
    return _b64encode(digest[:16])


class DPoPNonces:
    """Stateless server nonces (RFC 9449 §8, §9): an HMAC of a time step, so every instance
    sharing ``secret`` accepts every other's, with no store.

    A nonce is accepted during its own step and the next, so for between one and
    two ``lifetime``s.
    """

    def __init__(
        self, secret: bytes | str, *, lifetime: int = 300, clock: Callable[[], float] = time.time
    ) -> None:
        if not secret:
            raise ValueError("the DPoP nonce secret must not be empty")
        if lifetime <= 0:
            raise ValueError("the DPoP nonce lifetime must be positive")
        self._secret = secret.encode() if isinstance(secret, str) else secret
        self._lifetime = lifetime
        self._clock = clock

    def issue(self) -> str:
        """The nonce of the current step: every caller within it gets the same one."""
        return self._nonce(self._step())

    def is_valid(self, nonce: str) -> bool:
        """Whether ``nonce`` is this step's or the previous one's."""
        if not isinstance(nonce, str) or not nonce.isascii():
            return False
        step = self._step()
        given = nonce.encode()
        current = hmac.compare_digest(given, self._nonce(step).encode())
        previous = hmac.compare_digest(given, self._nonce(step - 1).encode())
        return current or previous

    def _step(self) -> int:
        return int(self._clock() // self._lifetime)

    def _nonce(self, step: int) -> str:
        message = f"asgi_oauth DPoP nonce {step}".encode()
        return _b64encode(hmac.new(self._secret, message, hashlib.sha256).digest()[:24])


class ReplayCache:
    """In-process memory of DPoP proofs seen (RFC 9449 §11.1) for a resource server: bounded.

    When full, expired entries go first and then the oldest: a flood of fresh
    proofs can at worst shorten how long a proof is remembered, never grow the
    memory. Server nonces narrow the window in which a forgotten proof is usable.
    Each call costs O(1) amortised: a full sweep runs only when the cache is full,
    and frees a tenth of it.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._low_water = max_entries - max(1, max_entries // 10)
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def use_once(self, key: str, *, expires_at: float, now: float) -> bool:
        """Remember ``key`` until ``expires_at``; False if it is remembered already."""
        seen = self._expiry.get(key)
        if seen is not None:
            if seen > now:
                return False
            del self._expiry[key]
        while self._expiry and next(iter(self._expiry.values())) <= now:
            self._expiry.popitem(last=False)
        if len(self._expiry) >= self._max:
            self._make_room(now)
        self._expiry[key] = expires_at
        return True

    def _make_room(self, now: float) -> None:
        self._expiry = OrderedDict((k, t) for k, t in self._expiry.items() if t > now)
        while len(self._expiry) > self._low_water:
            self._expiry.popitem(last=False)


def _peek_header(proof: str) -> dict[str, Any]:
    """The JOSE header, checked for shape before any cryptography runs."""
    if len(proof) > MAX_PROOF_LENGTH:
        raise InvalidDPoPProofError("the DPoP proof is too large")
    parts = proof.split(".")
    if len(parts) != 3 or not all(_B64URL.fullmatch(part) for part in parts):
        raise InvalidDPoPProofError("the DPoP proof is not a compact JWS")
    if len(parts[0]) > _MAX_HEADER_LENGTH:
        raise InvalidDPoPProofError("the DPoP proof header is too large")
    try:
        header = json.loads(_b64decode(parts[0]))
    except (ValueError, RecursionError):
        header = None
    if not isinstance(header, dict):
        raise InvalidDPoPProofError("the DPoP proof header is not a JSON object")
    if header.get("typ") != "dpop+jwt":
        raise InvalidDPoPProofError("the DPoP proof typ must be dpop+jwt")
    if header.get("alg") not in DPOP_SIGNING_ALGORITHMS:
        raise InvalidDPoPProofError("the DPoP proof alg is not supported")
    if "crit" in header:
        raise InvalidDPoPProofError("the DPoP proof header has critical extensions")
    return header


def _header_key(header: dict[str, Any]) -> tuple[ECKey | RSAKey | OKPKey, str]:
    """The public key in the header (RFC 9449 §4.2), of the type its ``alg`` needs."""
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise InvalidDPoPProofError("the DPoP proof header has no jwk")
    if jwk.get("kty") == "oct" or not _PRIVATE_MEMBERS.isdisjoint(jwk):
        raise InvalidDPoPProofError("the DPoP proof jwk must be a public key")
    kty, crv = _KEY_TYPES[header["alg"]]
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        raise InvalidDPoPProofError("the DPoP proof jwk does not fit its alg")
    bits = _modulus_bits(jwk) if kty == "RSA" else None
    if bits is not None and not _MIN_RSA_BITS <= bits <= _MAX_RSA_BITS:
        raise InvalidDPoPProofError("the DPoP proof RSA key must have 2048 to 8192 bits")
    try:
        key = _KEY_CLASSES[kty].import_key(jwk)
        jkt = key.thumbprint()
    except (JoseError, ValueError, TypeError):
        raise InvalidDPoPProofError("the DPoP proof jwk is not a valid key") from None
    return key, jkt


def _modulus_bits(jwk: dict[str, Any]) -> int | None:
    """The size of an RSA key, measured before import (joserfc warns of small ones);
    None when ``n`` is no base64url, which the import then refuses."""
    n = jwk.get("n")
    try:
        if isinstance(n, str) and _B64URL.fullmatch(n):
            return int.from_bytes(_b64decode(n), "big").bit_length()
    except ValueError:
        pass
    return None


def _same_target(htu: str, url: str) -> bool:
    """RFC 9449 §4.3: ``htu`` names the request's URL, ignoring query and fragment, after
    syntax- and scheme-based normalisation (RFC 3986 §6.2.2, §6.2.3)."""
    claimed = _normalise(htu)
    return claimed is not None and claimed == _normalise(url)


def _normalise(url: str) -> tuple[str, str, int | None, str] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
        path = quote(parts.path or "/", safe="/:@!$&'()*+,;=%")
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    if port == _DEFAULT_PORTS[scheme]:
        port = None
    return scheme, parts.hostname, port, _PERCENT.sub(_percent_case, path)


def _percent_case(match: re.Match[str]) -> str:
    """RFC 3986 §6.2.2.1-2: an unreserved character stands for itself; hex is upper case."""
    byte = int(match.group()[1:], 16)
    return chr(byte) if byte in _UNRESERVED else match.group().upper()


def _ath_matches(ath: str, access_token: str) -> bool:
    try:
        expected = access_token_hash(access_token)
    except ValueError:
        return False
    return hmac.compare_digest(ath.encode("utf-8", "surrogatepass"), expected.encode())


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

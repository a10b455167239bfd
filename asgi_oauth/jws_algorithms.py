"""The JWS algorithms the server signs with, each bound to one kind of key: RS256 (RSA,
RFC 7518 §3.3), ES256 (P-256, RFC 7518 §3.4) and EdDSA over Ed25519 (RFC 8037 §3.1).

A key is made, read back and trusted here only for the algorithm it was made for,
so no header can make an RSA key check an HMAC or an Ed448 key pass for Ed25519.
RFC 9864 deprecates the name "EdDSA" for not naming the curve; the key names it
here (Ed25519, and nothing else), and "EdDSA" is the name relying parties and
resource servers know, so it is the one signed and published.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Collection, Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc.jwa import JWSAlgModel
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from .types import SIGNING_ALGORITHMS, SigningAlgorithm

#: A key of one of the kinds below, public or private.
SigningJWK = RSAKey | ECKey | OKPKey

#: The curve each elliptic algorithm is pinned to.
_CURVES: dict[SigningAlgorithm, str] = {"ES256": "P-256", "EdDSA": "Ed25519"}


def generate_key(alg: SigningAlgorithm) -> SigningJWK:
    """A new private key for ``alg``: RSA 2048, P-256 or Ed25519."""
    key: SigningJWK
    if alg == "RS256":
        key = RSAKey.generate_key(2048)
    elif alg == "ES256":
        key = ECKey.generate_key("P-256")
    else:
        key = OKPKey.generate_key("Ed25519")
    return key


def import_key(document: dict[str, Any]) -> SigningJWK:
    """A key from its JWK (RFC 7517 §4), by its ``kty``; ``ValueError`` for any other."""
    kty = document.get("kty")
    key: SigningJWK
    if kty == "RSA":
        key = RSAKey.import_key(document)
    elif kty == "EC":
        key = ECKey.import_key(document)
    elif kty == "OKP":
        key = OKPKey.import_key(document)
    else:
        raise ValueError(f"unsupported key type {kty!r}")
    return key


def fits(alg: SigningAlgorithm, key: SigningJWK) -> bool:
    """Whether ``key`` is the kind ``alg`` signs with (type and curve)."""
    if alg == "RS256":
        return isinstance(key, RSAKey)
    if alg == "ES256":
        return isinstance(key, ECKey) and key.curve_name == _CURVES[alg]
    return isinstance(key, OKPKey) and key.curve_name == _CURVES[alg]


class _Registry(JWSRegistry):
    """The algorithms allowed, "EdDSA" among them without joserfc's RFC 9864 warning
    at every use: the name is deprecated for leaving the curve to the key, which
    names it (and ours is pinned to Ed25519, see ``fits``); it is not unsafe."""

    def get_alg(self, name: str) -> JWSAlgModel:
        if name == "EdDSA" and self.allowed and name in self.allowed:
            return self.algorithms[name]
        return super().get_alg(name)


_REGISTRIES = {alg: _Registry(algorithms=[alg]) for alg in SIGNING_ALGORITHMS}


def registry(alg: SigningAlgorithm) -> JWSRegistry:
    """The joserfc registry that allows ``alg`` and nothing else."""
    return _REGISTRIES[alg]


def registry_of(algorithms: Collection[str]) -> JWSRegistry:
    """A joserfc registry allowing ``algorithms`` (an upstream provider's, say)."""
    return _Registry(algorithms=list(algorithms))


def half_hash(value: str, alg: SigningAlgorithm) -> str:
    """``at_hash`` / ``c_hash`` (OpenID Connect Core §3.3.2.11): the left half of the
    digest by the hash of ``alg``: SHA-256 for RS256 and ES256, SHA-512 for EdDSA over
    Ed25519 (RFC 8032 §5.1; what the OpenID Connect working group settled on)."""
    digest = hashes.Hash(hashes.SHA512() if alg == "EdDSA" else hashes.SHA256())
    digest.update(value.encode("ascii"))
    full = digest.finalize()
    return base64.urlsafe_b64encode(full[: len(full) // 2]).rstrip(b"=").decode()


class CompactSigner:
    """Signs compact JWS (RFC 7515 §7.1) with one private key, for the hot path of token
    issuance: the key object is taken out of its JWK once, each ``typ``'s header is
    encoded once, and the signing input goes straight to ``cryptography``. What remains
    per token is one JSON encoding, two base64url encodings and the signature itself.
    (joserfc's ``jwt.encode`` checks and encodes the header and resolves the algorithm
    at every call, which cost more than an ES256 or EdDSA signature.)"""

    def __init__(self, alg: SigningAlgorithm, kid: str, key: SigningJWK) -> None:
        if not fits(alg, key):
            raise ValueError(f"a {type(key).__name__} does not sign {alg}")
        self.alg, self.kid = alg, kid
        self._sign = _raw_signer(alg, key)
        self._headers: dict[str, bytes] = {}

    def sign(self, claims: Mapping[str, object], typ: str) -> str:
        """The compact JWS of ``claims``, its header ``{"alg", "kid", "typ"}``."""
        header = self._headers.get(typ)
        if header is None:
            document = {"alg": self.alg, "kid": self.kid, "typ": typ}
            header = self._headers[typ] = _b64(json.dumps(document, separators=(",", ":")).encode())
        payload = json.dumps(claims, ensure_ascii=False, separators=(",", ":")).encode()
        signing_input = header + b"." + _b64(payload)
        return (signing_input + b"." + _b64(self._sign(signing_input))).decode("ascii")


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def _raw_signer(alg: SigningAlgorithm, key: SigningJWK) -> Callable[[bytes], bytes]:
    """The JWS Signature of a signing input (RFC 7518 §3.3, §3.4; RFC 8037 §3.1)."""
    private: Any = key.private_key
    if private is None:
        raise ValueError("a public key cannot sign")
    if alg == "RS256":
        return lambda data: bytes(private.sign(data, _PKCS1V15, _SHA256))
    if alg == "ES256":

        def es256(data: bytes) -> bytes:
            # RFC 7518 §3.4: R and S as 32-byte big-endian integers, not DER.
            r, s = decode_dss_signature(private.sign(data, _ECDSA_SHA256))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")

        return es256
    return lambda data: bytes(private.sign(data))

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
from collections.abc import Collection
from typing import Any

from cryptography.hazmat.primitives import hashes
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

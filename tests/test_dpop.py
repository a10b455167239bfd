"""DPoP proofs (RFC 9449), server nonces and the replay memory, without HTTP.

Proofs are built here with PyJWT's signing primitives and ``cryptography``
keys, not with the server's JOSE code; thumbprints are computed from the key
numbers as RFC 7638 §3 spells out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, replace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from asgi_oauth.dpop import (
    MAX_PROOF_LENGTH,
    DPoPNonces,
    DPoPProof,
    ReplayCache,
    access_token_hash,
    jwk_thumbprint,
    replay_key,
    verify_dpop_proof,
)
from asgi_oauth.errors import InvalidDPoPProofError, UseDPoPNonceError

from .conftest import FakeClock

NOW = 1_700_000_000
LEEWAY = 60
URL = "https://as.example/oauth2/token"
ACCESS_TOKEN = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class Signer:
    alg: str
    key: PrivateKey

    @property
    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = jwt.get_algorithm_by_name(self.alg).to_jwk(
            self.key.public_key(), as_dict=True
        )
        return jwk

    def proof(
        self,
        claims: object = None,
        *,
        header: object = None,
        signature: bytes | None = None,
        **changes: object,
    ) -> str:
        """A proof of ``claims`` (by default good ones for URL, with ``changes``; a
        value of ``None`` drops the claim), signed unless a ``signature`` is given."""
        if header is None:
            header = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.jwk}
        if claims is None:
            claims = {"jti": "proof-1", "htm": "POST", "htu": URL, "iat": NOW}
            claims.update(changes)
            claims = {k: v for k, v in claims.items() if v is not None}
        return encode(header, claims, self, signature)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def encode(header: object, claims: object, signer: Signer, signature: bytes | None) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    if signature is None:
        algorithm = jwt.get_algorithm_by_name(signer.alg)
        signature = algorithm.sign(signing_input.encode(), signer.key)
    return f"{signing_input}.{b64(signature)}"


def verify(proof: str, **kwargs: Any) -> DPoPProof:
    options: dict[str, Any] = {"method": "POST", "url": URL, "now": NOW, "leeway": LEEWAY}
    return verify_dpop_proof(proof, **{**options, **kwargs})


def thumbprint(members: dict[str, str]) -> str:
    """RFC 7638 §3: SHA-256 of the required members, sorted, without whitespace."""
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"))
    return b64(hashlib.sha256(canonical.encode()).digest())


def required_members(key: PrivateKey) -> dict[str, str]:
    """The RFC 7638 §3.2 members of a public key, from its numbers (RFC 7518 §6, RFC 8037)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        numbers = key.public_key().public_numbers()
        size = (key.curve.key_size + 7) // 8
        crv = {256: "P-256", 384: "P-384"}[key.curve.key_size]
        x, y = (b64(n.to_bytes(size, "big")) for n in (numbers.x, numbers.y))
        return {"crv": crv, "kty": "EC", "x": x, "y": y}
    if isinstance(key, rsa.RSAPrivateKey):
        rsa_numbers = key.public_key().public_numbers()
        n, e = rsa_numbers.n, rsa_numbers.e
        return {
            "e": b64(e.to_bytes((e.bit_length() + 7) // 8, "big")),
            "kty": "RSA",
            "n": b64(n.to_bytes((n.bit_length() + 7) // 8, "big")),
        }
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"crv": "Ed25519", "kty": "OKP", "x": b64(raw)}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def signers(rsa_key: rsa.RSAPrivateKey) -> dict[str, Signer]:
    return {
        "ES256": Signer("ES256", ec.generate_private_key(ec.SECP256R1())),
        "ES384": Signer("ES384", ec.generate_private_key(ec.SECP384R1())),
        "EdDSA": Signer("EdDSA", ed25519.Ed25519PrivateKey.generate()),
        "RS256": Signer("RS256", rsa_key),
        "PS256": Signer("PS256", rsa_key),
    }


@pytest.fixture
def es256(signers: dict[str, Signer]) -> Signer:
    return signers["ES256"]


# --- accepted proofs ---------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "ES384", "EdDSA", "RS256", "PS256"])
def test_accepts_a_proof(signers: dict[str, Signer], alg: str) -> None:
    signer = signers[alg]
    proof = verify(signer.proof())
    assert proof == DPoPProof(
        jkt=thumbprint(required_members(signer.key)),
        jti="proof-1",
        htm="POST",
        htu=URL,
        iat=NOW,
        nonce=None,
        ath=None,
    )


def test_accepts_a_proof_for_an_access_token(es256: Signer) -> None:
    ath = access_token_hash(ACCESS_TOKEN)
    proof = verify(es256.proof(ath=ath, htm="GET"), method="GET", access_token=ACCESS_TOKEN)
    assert proof.ath == ath


def test_accepts_unknown_header_members(es256: Signer) -> None:
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": es256.jwk, "kid": "k", "x-extra": 1}
    assert verify(es256.proof(header=header)).jti == "proof-1"


# --- the JWS and its header --------------------------------------------------


def test_refuses_an_oversized_proof(es256: Signer) -> None:
    proof = es256.proof(padding="x" * MAX_PROOF_LENGTH)
    with pytest.raises(InvalidDPoPProofError, match="too large"):
        verify(proof)


@pytest.mark.parametrize(
    "proof", ["", "abc", "a.b", "a.b.c.d", "a b.c.d", "a.b.c=", "é.b.c", "a+b.c.d"]
)
def test_refuses_what_is_not_a_compact_jws(proof: str) -> None:
    with pytest.raises(InvalidDPoPProofError, match="not a compact JWS"):
        verify(proof)


def test_refuses_an_oversized_header(es256: Signer) -> None:
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": es256.jwk, "x": "y" * 4000}
    with pytest.raises(InvalidDPoPProofError, match="header is too large"):
        verify(es256.proof(header=header))


@pytest.mark.parametrize("header", [b"[1, 2]", b'"dpop+jwt"', b"{nope", b"\xff\xfe", b"[" * 3000])
def test_refuses_a_header_that_is_not_a_json_object(header: bytes) -> None:
    with pytest.raises(InvalidDPoPProofError, match="header is not a JSON object"):
        verify(f"{b64(header)}.{b64(b'{}')}.{b64(b'sig')}")


@pytest.mark.parametrize("typ", [None, "JWT", "at+jwt", "DPoP+JWT", "application/dpop+jwt"])
def test_refuses_another_typ(es256: Signer, typ: str | None) -> None:
    header = {"typ": typ, "alg": "ES256", "jwk": es256.jwk}
    with pytest.raises(InvalidDPoPProofError, match="typ"):
        verify(es256.proof(header={k: v for k, v in header.items() if v is not None}))


@pytest.mark.parametrize("alg", [None, "none", "HS256", "ES512", "RS512", "es256", ["ES256"]])
def test_refuses_an_algorithm_not_allowed(es256: Signer, alg: object) -> None:
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": es256.jwk}
    with pytest.raises(InvalidDPoPProofError, match="alg is not supported"):
        verify(es256.proof(header=header, signature=b""))


def test_refuses_an_hmac_proof_keyed_with_the_public_key(es256: Signer) -> None:
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": es256.jwk}
    signing_input = es256.proof(header=header, signature=b"").rstrip(".")
    secret = json.dumps(es256.jwk).encode()
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    proof = f"{signing_input}.{b64(signature)}"
    with pytest.raises(InvalidDPoPProofError, match="alg is not supported"):
        verify(proof)


@pytest.mark.parametrize("jwk", [None, "a key", ["EC"]])
def test_refuses_a_header_without_a_jwk(es256: Signer, jwk: object) -> None:
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}
    with pytest.raises(InvalidDPoPProofError, match="no jwk"):
        verify(es256.proof(header={k: v for k, v in header.items() if v is not None}))


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "oth", "k"])
def test_refuses_a_jwk_with_private_members(es256: Signer, member: str) -> None:
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": {**es256.jwk, member: "AQAB"}}
    with pytest.raises(InvalidDPoPProofError, match="must be a public key"):
        verify(es256.proof(header=header))


def test_refuses_a_private_jwk(es256: Signer) -> None:
    private = jwt.get_algorithm_by_name("ES256").to_jwk(es256.key, as_dict=True)
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": private}
    with pytest.raises(InvalidDPoPProofError, match="must be a public key"):
        verify(es256.proof(header=header))


def test_refuses_a_symmetric_jwk(es256: Signer) -> None:
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "oct"}}
    with pytest.raises(InvalidDPoPProofError, match="must be a public key"):
        verify(es256.proof(header=header))


@pytest.mark.parametrize(
    ("alg", "key_of"),
    [
        ("ES256", "ES384"),
        ("ES384", "ES256"),
        ("ES256", "RS256"),
        ("RS256", "ES256"),
        ("PS256", "EdDSA"),
        ("EdDSA", "ES256"),
    ],
)
def test_refuses_a_jwk_that_does_not_fit_the_alg(
    signers: dict[str, Signer], alg: str, key_of: str
) -> None:
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": signers[key_of].jwk}
    with pytest.raises(InvalidDPoPProofError, match="does not fit its alg"):
        verify(signers[key_of].proof(header=header, signature=b"x" * 64))


def test_refuses_an_okp_key_on_another_curve(signers: dict[str, Signer]) -> None:
    jwk = {**signers["EdDSA"].jwk, "crv": "Ed448"}
    header = {"typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk}
    with pytest.raises(InvalidDPoPProofError, match="does not fit its alg"):
        verify(signers["EdDSA"].proof(header=header))


def test_refuses_an_rsa_key_under_2048_bits() -> None:
    signer = Signer("RS256", rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with pytest.raises(InvalidDPoPProofError, match="2048"):
        verify(signer.proof())


def test_refuses_an_rsa_key_over_8192_bits(signers: dict[str, Signer]) -> None:
    n = (1 << 8200) | 1
    jwk = {"kty": "RSA", "e": "AQAB", "n": b64(n.to_bytes(1026, "big"))}
    header = {"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk}
    with pytest.raises(InvalidDPoPProofError, match="8192"):
        verify(signers["RS256"].proof(header=header))


@pytest.mark.parametrize(
    "change",
    [{"x": b64(b"\x01" * 32)}, {"y": "!!"}, {"x": 5}, {"y": None}],
)
def test_refuses_a_jwk_that_is_not_a_valid_key(es256: Signer, change: dict[str, Any]) -> None:
    jwk = {k: v for k, v in {**es256.jwk, **change}.items() if v is not None}
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}
    with pytest.raises(InvalidDPoPProofError, match="not a valid key"):
        verify(es256.proof(header=header))


@pytest.mark.parametrize("n", ["AAAAA", "!!", 5])
def test_refuses_an_rsa_jwk_that_is_not_a_valid_key(signers: dict[str, Signer], n: object) -> None:
    header = {"typ": "dpop+jwt", "alg": "RS256", "jwk": {**signers["RS256"].jwk, "n": n}}
    with pytest.raises(InvalidDPoPProofError, match="not a valid key"):
        verify(signers["RS256"].proof(header=header))


def test_refuses_critical_header_extensions(es256: Signer) -> None:
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": es256.jwk, "crit": ["exp"], "exp": 1}
    with pytest.raises(InvalidDPoPProofError, match="critical"):
        verify(es256.proof(header=header))


def test_refuses_a_signature_by_another_key(signers: dict[str, Signer]) -> None:
    other = Signer("ES256", ec.generate_private_key(ec.SECP256R1()))
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": signers["ES256"].jwk}
    with pytest.raises(InvalidDPoPProofError, match="signature does not verify"):
        verify(other.proof(header=header))


def test_refuses_altered_claims(es256: Signer) -> None:
    header, _, signature = es256.proof().split(".")
    claims = {"jti": "proof-1", "htm": "POST", "htu": URL, "iat": NOW + 1}
    with pytest.raises(InvalidDPoPProofError, match="signature does not verify"):
        verify(f"{header}.{b64(json.dumps(claims).encode())}.{signature}")


def test_refuses_a_jwk_made_for_another_alg(es256: Signer) -> None:
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": {**es256.jwk, "alg": "ES384"}}
    with pytest.raises(InvalidDPoPProofError, match="not a valid JWS"):
        verify(es256.proof(header=header))


@pytest.mark.parametrize("claims", [[1], "jti", 7])
def test_refuses_claims_that_are_not_a_json_object(es256: Signer, claims: object) -> None:
    with pytest.raises(InvalidDPoPProofError, match="claims are not a JSON object"):
        verify(es256.proof(claims))


def test_refuses_claims_that_are_not_json(es256: Signer) -> None:
    header = b64(json.dumps({"typ": "dpop+jwt", "alg": "ES256", "jwk": es256.jwk}).encode())
    signing_input = f"{header}.{b64(b'{not json')}"
    signature = jwt.get_algorithm_by_name("ES256").sign(signing_input.encode(), es256.key)
    with pytest.raises(InvalidDPoPProofError, match="claims are not a JSON object"):
        verify(f"{signing_input}.{b64(signature)}")


# --- the claims --------------------------------------------------------------


@pytest.mark.parametrize("jti", [None, "", 5, ["a"], "x" * 257])
def test_refuses_a_missing_or_ill_typed_jti(es256: Signer, jti: object) -> None:
    with pytest.raises(InvalidDPoPProofError, match="jti"):
        verify(es256.proof(jti=jti))


def test_accepts_a_jti_of_256_characters(es256: Signer) -> None:
    assert verify(es256.proof(jti="x" * 256)).jti == "x" * 256


@pytest.mark.parametrize("htm", [None, "post", "GET", "POST ", ["POST"]])
def test_refuses_another_method(es256: Signer, htm: object) -> None:
    with pytest.raises(InvalidDPoPProofError, match="htm"):
        verify(es256.proof(htm=htm))


@pytest.mark.parametrize(
    ("htu", "url"),
    [
        (URL, URL),
        (URL, URL + "?a=1#f"),
        (URL + "?b=2#g", URL),
        ("HTTPS://AS.Example/oauth2/token", URL),
        ("https://as.example:443/oauth2/token", URL),
        ("http://as.example:80/oauth2/token", "http://as.example/oauth2/token"),
        ("https://as.example:8443/token", "https://as.example:8443/token"),
        ("https://as.example", "https://as.example/"),
        ("https://as.example?x", "https://as.example/"),
        ("https://as.example/a%7eb/%3a", "https://as.example/a~b/%3A"),
        ("https://as.example/a%20b", "https://as.example/a b"),
        ("https://as.example/caf%C3%A9", "https://as.example/café"),
        ("https://[::1]:8000/t", "https://[::1]:8000/t"),
    ],
)
def test_htu_matches_after_normalisation(es256: Signer, htu: str, url: str) -> None:
    assert verify(es256.proof(htu=htu), url=url).htu == htu


@pytest.mark.parametrize(
    ("htu", "url"),
    [
        ("https://as.example/oauth2/Token", URL),
        ("https://as.example/oauth2/token/", URL),
        ("http://as.example/oauth2/token", URL),
        ("https://as.example:8443/oauth2/token", URL),
        ("https://other.example/oauth2/token", URL),
        ("https://user@as.example/oauth2/token", URL),
        ("https://as.example/a%2Fb", "https://as.example/a/b"),
        ("/oauth2/token", URL),
        ("ftp://as.example/oauth2/token", "ftp://as.example/oauth2/token"),
        ("https://as.example:99999/t", "https://as.example:99999/t"),
        ("https://as.example/\ud800", "https://as.example/\ud800"),
        ("", URL),
    ],
)
def test_refuses_another_htu(es256: Signer, htu: str, url: str) -> None:
    with pytest.raises(InvalidDPoPProofError, match="htu"):
        verify(es256.proof(htu=htu), url=url)


@pytest.mark.parametrize("htu", [None, 5, [URL]])
def test_refuses_a_missing_or_ill_typed_htu(es256: Signer, htu: object) -> None:
    with pytest.raises(InvalidDPoPProofError, match="htu"):
        verify(es256.proof(htu=htu))


@pytest.mark.parametrize("iat", [None, str(NOW), True, [NOW]])
def test_refuses_an_iat_that_is_not_a_number(es256: Signer, iat: object) -> None:
    with pytest.raises(InvalidDPoPProofError, match="iat is not a number"):
        verify(es256.proof(iat=iat))


def test_accepts_a_fractional_iat_as_its_whole_seconds(es256: Signer) -> None:
    # RFC 7519 §2: a NumericDate may carry a fraction of a second.
    assert verify(es256.proof(iat=NOW + 0.75)).iat == NOW


@pytest.mark.parametrize("iat", [NOW - LEEWAY, NOW + LEEWAY])
def test_accepts_an_iat_within_the_leeway(es256: Signer, iat: int) -> None:
    assert verify(es256.proof(iat=iat)).iat == iat


def test_refuses_a_proof_from_the_future(es256: Signer) -> None:
    with pytest.raises(InvalidDPoPProofError, match="future"):
        verify(es256.proof(iat=NOW + LEEWAY + 1))


def test_refuses_an_old_proof(es256: Signer) -> None:
    with pytest.raises(InvalidDPoPProofError, match="too old"):
        verify(es256.proof(iat=NOW - LEEWAY - 1))


def test_refuses_a_proof_without_ath_for_an_access_token(es256: Signer) -> None:
    with pytest.raises(InvalidDPoPProofError, match="ath does not match"):
        verify(es256.proof(), access_token=ACCESS_TOKEN)


@pytest.mark.parametrize("token", ["another-token", ACCESS_TOKEN + "x", "tökén"])
def test_refuses_an_ath_of_another_access_token(es256: Signer, token: str) -> None:
    proof = es256.proof(ath=access_token_hash(ACCESS_TOKEN))
    with pytest.raises(InvalidDPoPProofError, match="ath does not match"):
        verify(proof, access_token=token)


@pytest.mark.parametrize("ath", ["", "é", "\ud800", ACCESS_TOKEN])
def test_refuses_a_junk_ath(es256: Signer, ath: str) -> None:
    with pytest.raises(InvalidDPoPProofError, match="ath does not match"):
        verify(es256.proof(ath=ath), access_token=ACCESS_TOKEN)


def test_refuses_an_ath_that_is_not_a_string(es256: Signer) -> None:
    with pytest.raises(InvalidDPoPProofError, match="ath is not a string"):
        verify(es256.proof(ath=5))


def test_keeps_an_ath_without_an_access_token(es256: Signer) -> None:
    assert verify(es256.proof(ath="abc")).ath == "abc"


# --- server nonces -----------------------------------------------------------


def test_asks_for_a_nonce(es256: Signer) -> None:
    nonces = DPoPNonces("secret", clock=FakeClock(NOW))
    with pytest.raises(UseDPoPNonceError) as caught:
        verify(es256.proof(), nonces=nonces)
    assert caught.value.error == "use_dpop_nonce"
    assert caught.value.headers == {"DPoP-Nonce": nonces.issue()}


def test_accepts_the_server_nonce(es256: Signer) -> None:
    nonces = DPoPNonces("secret", clock=FakeClock(NOW))
    assert verify(es256.proof(nonce=nonces.issue()), nonces=nonces).nonce == nonces.issue()


def test_asks_again_for_a_wrong_nonce(es256: Signer) -> None:
    nonces = DPoPNonces("secret", clock=FakeClock(NOW))
    stranger = DPoPNonces("another secret", clock=FakeClock(NOW))
    with pytest.raises(UseDPoPNonceError) as caught:
        verify(es256.proof(nonce=stranger.issue()), nonces=nonces)
    assert caught.value.headers["DPoP-Nonce"] == nonces.issue()


def test_refuses_a_nonce_that_is_not_a_string(es256: Signer) -> None:
    with pytest.raises(InvalidDPoPProofError, match="nonce is not a string"):
        verify(es256.proof(nonce=5))


def test_keeps_a_nonce_when_none_is_required(es256: Signer) -> None:
    assert verify(es256.proof(nonce="n-1")).nonce == "n-1"


def test_gives_no_nonce_to_a_bad_signature(signers: dict[str, Signer]) -> None:
    other = Signer("ES256", ec.generate_private_key(ec.SECP256R1()))
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": signers["ES256"].jwk}
    nonces = DPoPNonces("secret", clock=FakeClock(NOW))
    with pytest.raises(InvalidDPoPProofError):
        verify(other.proof(header=header), nonces=nonces)


def test_a_nonce_is_stable_within_its_step_and_lives_one_more() -> None:
    clock = FakeClock(NOW - NOW % 300)
    nonces = DPoPNonces(b"secret", lifetime=300, clock=clock)
    first = nonces.issue()
    clock.advance(299)
    assert nonces.issue() == first
    assert nonces.is_valid(first)
    clock.advance(1)
    assert nonces.issue() != first
    assert nonces.is_valid(first)
    assert nonces.is_valid(nonces.issue())
    clock.advance(300)
    assert not nonces.is_valid(first)


def test_a_nonce_from_the_future_is_refused() -> None:
    clock = FakeClock(NOW)
    nonces = DPoPNonces("secret", clock=clock)
    clock.advance(300)
    later = nonces.issue()
    clock.advance(-300)
    assert not nonces.is_valid(later)


def test_instances_sharing_a_secret_accept_each_others_nonces() -> None:
    clock = FakeClock(NOW)
    one, two = DPoPNonces("secret", clock=clock), DPoPNonces(b"secret", clock=clock)
    assert two.is_valid(one.issue())
    assert not DPoPNonces("other", clock=clock).is_valid(one.issue())


def test_a_nonce_is_a_valid_header_value() -> None:
    nonce = DPoPNonces("secret", clock=FakeClock(NOW)).issue()
    # RFC 9449 §8.1: nonce = 1*NQCHAR
    assert nonce.isascii() and nonce.isprintable() and '"' not in nonce and "\\" not in nonce


@pytest.mark.parametrize("junk", ["", "x", "é" * 32, "\ud800", "A" * 10_000])
def test_junk_is_no_nonce(junk: str) -> None:
    assert not DPoPNonces("secret", clock=FakeClock(NOW)).is_valid(junk)


def test_a_nonce_needs_a_secret_and_a_lifetime() -> None:
    with pytest.raises(ValueError, match="secret"):
        DPoPNonces("")
    with pytest.raises(ValueError, match="lifetime"):
        DPoPNonces("secret", lifetime=0)


# --- replay memory -----------------------------------------------------------


def test_a_proof_is_used_once_until_it_expires() -> None:
    cache = ReplayCache()
    assert cache.use_once("a", expires_at=100, now=0)
    assert not cache.use_once("a", expires_at=200, now=50)
    assert cache.use_once("b", expires_at=100, now=50)
    assert cache.use_once("a", expires_at=300, now=100)
    assert not cache.use_once("a", expires_at=400, now=299)


def test_the_replay_memory_drops_expired_entries_first() -> None:
    cache = ReplayCache(max_entries=10)
    for i in range(5):
        assert cache.use_once(f"long-{i}", expires_at=1000, now=0)
    for i in range(5):
        assert cache.use_once(f"short-{i}", expires_at=10, now=0)
    for i in range(5):
        assert cache.use_once(f"new-{i}", expires_at=1000, now=20)
    assert len(cache) == 10
    assert all(not cache.use_once(f"long-{i}", expires_at=1000, now=20) for i in range(5))


def test_the_replay_memory_stays_bounded_by_forgetting_the_oldest() -> None:
    cache = ReplayCache(max_entries=100)
    for i in range(1000):
        assert cache.use_once(f"k{i}", expires_at=10_000, now=i)
        assert len(cache) <= 100
    assert not cache.use_once("k999", expires_at=10_000, now=1000)
    assert cache.use_once("k0", expires_at=10_000, now=1000)


def test_a_replay_memory_of_one() -> None:
    cache = ReplayCache(max_entries=1)
    assert cache.use_once("a", expires_at=100, now=0)
    assert cache.use_once("b", expires_at=100, now=0)
    assert not cache.use_once("b", expires_at=100, now=0)
    assert len(cache) == 1


def test_a_replay_memory_needs_room() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        ReplayCache(max_entries=0)


def test_a_replay_key_is_per_key_and_jti() -> None:
    proof = DPoPProof(jkt="k1", jti="j", htm="GET", htu=URL, iat=NOW, nonce=None, ath=None)
    assert replay_key(proof) == replay_key(replace(proof, iat=NOW + 1, htu="https://x/"))
    assert replay_key(proof) != replay_key(replace(proof, jkt="k2"))
    assert replay_key(proof) != replay_key(replace(proof, jti="j2"))
    assert replay_key(replace(proof, jkt="k1:j", jti="")) != replay_key(proof)
    assert len(replay_key(proof)) <= 32


# --- hashes and thumbprints --------------------------------------------------


def test_access_token_hash_is_the_rfc_example() -> None:
    # The example of RFC 9449 §7.1.
    assert access_token_hash(ACCESS_TOKEN) == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"


def test_access_token_hash_needs_ascii() -> None:
    with pytest.raises(ValueError, match="ascii"):
        access_token_hash("tökén")


def test_thumbprint_is_the_rfc_example() -> None:
    # RFC 7638 §3.1.
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR"
        "1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4Qy"
        "Q5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD"
        "08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8"
        "awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("alg", ["ES256", "ES384", "RS256", "EdDSA"])
def test_thumbprint_is_computed_from_the_required_members(
    signers: dict[str, Signer], alg: str
) -> None:
    signer = signers[alg]
    jwk = {**signer.jwk, "kid": "ignored", "use": "sig"}
    assert jwk_thumbprint(jwk) == thumbprint(required_members(signer.key))


@pytest.mark.parametrize(
    "jwk",
    [{}, {"kty": "oct", "k": "AQAB"}, {"kty": ["EC"]}, {"kty": "EC", "crv": "P-256"}],
)
def test_thumbprint_needs_a_public_key(jwk: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"JWK|key"):
        jwk_thumbprint(jwk)

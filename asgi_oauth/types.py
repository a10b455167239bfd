"""The protocol words of OAuth 2.0 as ``Literal`` types, so a typo is a type error."""

from __future__ import annotations

from typing import Final, Literal

#: RFC 6749 §4 and §6, and the grant types later RFCs register. ``implicit`` is
#: not used at the token endpoint: it stands for ``response_type=token`` (RFC 7591 §2).
GrantType = Literal[
    "authorization_code",
    "client_credentials",
    "refresh_token",
    "password",
    "implicit",
    "urn:ietf:params:oauth:grant-type:device_code",
]

DEVICE_CODE: Final = "urn:ietf:params:oauth:grant-type:device_code"

#: RFC 6749 §3.1.1, OAuth 2.0 Multiple Response Type Encoding Practices §5 and
#: OpenID Connect Core §3.2, §3.3: space-separated words in a fixed order here.
ResponseType = Literal[
    "code",
    "token",
    "none",
    "id_token",
    "id_token token",
    "code id_token",
    "code token",
    "code id_token token",
]

#: OAuth 2.0 Multiple Response Type Encoding Practices §2.1, OAuth 2.0 Form Post Response Mode.
ResponseMode = Literal["query", "fragment", "form_post"]

#: RFC 7009 §2.1 and RFC 7662 §2.1: the kinds of token a server keeps.
TokenKind = Literal["access_token", "refresh_token"]

#: RFC 7636 §4.2.
CodeChallengeMethod = Literal["S256", "plain"]

#: RFC 7591 §2: how a client authenticates at the token endpoint.
ClientAuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]

#: OpenID Connect Registration §2: what kind of app a client is, which decides the
#: redirect URIs it may use (a ``native`` app listens on loopback or owns a scheme).
ApplicationType = Literal["web", "native"]
APPLICATION_TYPES: tuple[ApplicationType, ...] = ("web", "native")

GRANT_TYPES: tuple[GrantType, ...] = (
    "authorization_code",
    "client_credentials",
    "refresh_token",
    "password",
    "implicit",
    "urn:ietf:params:oauth:grant-type:device_code",
)

RESPONSE_TYPES: tuple[ResponseType, ...] = (
    "code",
    "token",
    "none",
    "id_token",
    "id_token token",
    "code id_token",
    "code token",
    "code id_token token",
)
RESPONSE_MODES: tuple[ResponseMode, ...] = ("query", "fragment", "form_post")

#: JWS algorithms (RFC 7518 §3.1, RFC 8037 §3.1) the server signs ID tokens and JWT
#: access tokens with. RS256 is the default OpenID Connect Core §15.1 requires; EdDSA
#: (Ed25519 only) is the fastest to sign; never ``none`` or HMAC.
SigningAlgorithm = Literal["RS256", "ES256", "EdDSA"]
SIGNING_ALGORITHMS: tuple[SigningAlgorithm, ...] = ("RS256", "ES256", "EdDSA")

#: An access token is an opaque random string, or a signed JWT (RFC 9068).
AccessTokenFormat = Literal["opaque", "jwt"]

#: Who may register clients at ``/register`` (RFC 7591 §3): nobody, anyone, or
#: callers with the initial access token.
ClientRegistration = Literal["off", "open", "initial_access_token"]

#: RFC 9449 §4.2: the ``alg`` values a DPoP proof may be signed with (asymmetric only).
DPOP_SIGNING_ALGORITHMS: tuple[str, ...] = ("ES256", "RS256", "PS256", "EdDSA", "ES384")

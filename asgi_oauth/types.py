"""The protocol words of OAuth 2.0 as ``Literal`` types, so a typo is a type error."""

from __future__ import annotations

from typing import Literal

#: RFC 6749 §4 and §6, and the grant types later RFCs register.
GrantType = Literal["authorization_code", "client_credentials", "refresh_token", "password"]

#: RFC 7009 §2.1 and RFC 7662 §2.1: the kinds of token a server keeps.
TokenKind = Literal["access_token", "refresh_token"]

#: RFC 7636 §4.2.
CodeChallengeMethod = Literal["S256", "plain"]

#: RFC 7591 §2: how a client authenticates at the token endpoint.
ClientAuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]

GRANT_TYPES: tuple[GrantType, ...] = (
    "authorization_code",
    "client_credentials",
    "refresh_token",
    "password",
)

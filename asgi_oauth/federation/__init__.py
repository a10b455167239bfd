"""Signing people in through upstream identity providers (OpenID Connect, OAuth 2.0)."""

from __future__ import annotations

from .accounts import FederationPolicy, SignedIn
from .broker import Federation, PendingSignIn
from .identity import UpstreamIdentity, UpstreamTokens
from .providers import ProviderConfigError, UpstreamProvider, github, load_providers
from .upstream import UpstreamError

__all__ = [
    "Federation",
    "FederationPolicy",
    "PendingSignIn",
    "ProviderConfigError",
    "SignedIn",
    "UpstreamError",
    "UpstreamIdentity",
    "UpstreamProvider",
    "UpstreamTokens",
    "github",
    "load_providers",
]

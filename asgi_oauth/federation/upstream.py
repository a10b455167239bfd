"""Talking to one upstream provider: discovery, its keys, the token request, its user API.

The OAuth 2.0 messages themselves (the authorization URL with PKCE, the token and
refresh requests with the client's authentication) are written by Authlib and sent
with httpx; discovery is checked as OpenID Connect Discovery 1.0 §4.3 says, and ID tokens
with joserfc (``id_token``). Every failure to reach the provider or make sense of its
answer is an ``UpstreamError``: the person sees a page saying so, and nothing is kept.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import httpx
from joserfc.jwk import KeySet

from ..errors import N_, OAuth2Error
from ..observability.instruments import Instruments
from .providers import UpstreamProvider

#: Seconds discovery and keys are kept before they are read again.
METADATA_TTL = 3600
#: Seconds between two reads of the keys for an ID token signed by an unknown ``kid``.
KEYS_REFRESH_INTERVAL = 30
#: The most an upstream answer may weigh.
MAX_RESPONSE_BYTES = 256 * 1024


class UpstreamError(OAuth2Error):
    """The provider could not be reached, or answered what the server cannot accept."""

    error = "temporarily_unavailable"
    status_code = 502


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where a provider's endpoints are, and what its discovery says it does."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str | None
    jwks_uri: str | None
    #: RFC 9207 §3: the provider sends ``iss`` with every authorization response.
    iss_parameter_supported: bool = False
    id_token_algorithms: tuple[str, ...] = ("RS256",)


class UpstreamClient:
    """One provider's endpoints, keys and HTTP connections."""

    def __init__(
        self,
        provider: UpstreamProvider,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        instruments: Instruments | None = None,
    ) -> None:
        self.provider = provider
        self._clock = clock
        self._instruments = instruments or Instruments()
        self._http = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._endpoints: tuple[float, Endpoints] | None = None
        #: When the keys were read, and what they were.
        self._keys: tuple[float, KeySet] | None = None
        self._lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return self.provider.name

    async def endpoints(self) -> Endpoints:
        """The provider's endpoints: configured (OAuth 2.0) or discovered and kept a while."""
        provider = self.provider
        if not provider.is_openid:
            assert provider.authorization_endpoint and provider.token_endpoint
            return Endpoints(
                issuer=provider.issuer,
                authorization_endpoint=provider.authorization_endpoint,
                token_endpoint=provider.token_endpoint,
                userinfo_endpoint=provider.userinfo_endpoint,
                jwks_uri=None,
            )
        cached = self._endpoints
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        async with self._lock:
            cached = self._endpoints
            if cached is None or cached[0] <= self._clock():
                cached = (self._clock() + METADATA_TTL, await self._discover())
                self._endpoints = cached
        return cached[1]

    async def _discover(self) -> Endpoints:
        issuer = self.provider.issuer
        document = await self.get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
        if not isinstance(document, dict):
            raise self.error("its discovery document is not a JSON object")
        # OpenID Connect Discovery 1.0 §4.3: the issuer it names must be exactly the one
        # asked, or an impostor's metadata could redirect the sign-in (mix-up).
        if document.get("issuer") != issuer:
            raise self.error("its discovery document names another issuer")
        try:
            algorithms = document.get("id_token_signing_alg_values_supported") or ["RS256"]
            return Endpoints(
                issuer=issuer,
                authorization_endpoint=_url(document, "authorization_endpoint"),
                token_endpoint=_url(document, "token_endpoint"),
                userinfo_endpoint=_url(document, "userinfo_endpoint", required=False),
                jwks_uri=_url(document, "jwks_uri"),
                iss_parameter_supported=(
                    document.get("authorization_response_iss_parameter_supported") is True
                ),
                id_token_algorithms=tuple(str(a) for a in algorithms),
            )
        except (TypeError, ValueError) as exc:
            raise self.error(f"its discovery document is not usable: {exc}") from None

    async def keys(self, *, refresh: bool = False) -> KeySet:
        """The provider's signing keys (its ``jwks_uri``); read again when ``refresh`` asks
        and the last read is older than ``KEYS_REFRESH_INTERVAL`` (a rotated key)."""
        now = self._clock()
        if self._keys is not None:
            read_at, cached = self._keys
            if now - read_at < (KEYS_REFRESH_INTERVAL if refresh else METADATA_TTL):
                return cached
        endpoints = await self.endpoints()
        if endpoints.jwks_uri is None:
            raise self.error("it publishes no keys")
        document = await self.get_json(endpoints.jwks_uri)
        try:
            assert isinstance(document, dict)
            keys = [k for k in document.get("keys", []) if isinstance(k, dict)]
            # Keys for other uses (encryption) or of kinds joserfc cannot read are skipped.
            usable = [k for k in keys if k.get("use", "sig") == "sig"]
            key_set: KeySet = KeySet.import_key_set({"keys": usable})
        except Exception:
            raise self.error("its keys are not a JWK Set") from None
        self._keys = (now, key_set)
        return key_set

    def authorization_url(
        self,
        endpoints: Endpoints,
        *,
        redirect_uri: str,
        state: str,
        code_verifier: str,
        nonce: str | None,
        extra: Mapping[str, str],
    ) -> str:
        """RFC 6749 §4.1.1 with PKCE S256 (RFC 7636 §4.3) and, for OpenID Connect, ``nonce``."""
        authlib = _authlib()
        params = dict(extra)
        if nonce is not None:
            params["nonce"] = nonce
        url: str = authlib.prepare_grant_uri(
            endpoints.authorization_endpoint,
            self.provider.client_id,
            "code",
            redirect_uri=redirect_uri,
            scope=" ".join(self.provider.scopes or ()) or None,
            state=state,
            code_challenge=authlib.create_s256_code_challenge(code_verifier),
            code_challenge_method="S256",
            **params,
        )
        return url

    async def exchange(self, *, code: str, redirect_uri: str, code_verifier: str) -> dict[str, Any]:
        """The token request for ``code`` (RFC 6749 §4.1.3)."""
        return await self._token_request(
            "authorization_code", code=code, redirect_uri=redirect_uri, code_verifier=code_verifier
        )

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        """New tokens for a refresh token (RFC 6749 §6)."""
        return await self._token_request("refresh_token", refresh_token=refresh_token)

    async def _token_request(self, grant_type: str, **params: str) -> dict[str, Any]:
        """Authlib writes the request and the client's authentication (RFC 6749 §2.3.1);
        httpx sends it."""
        authlib = _authlib()
        endpoints = await self.endpoints()
        secret = self.provider.client_secret
        method = self.provider.token_endpoint_auth_method if secret else "none"
        body = authlib.prepare_token_request(grant_type, **params)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            # GitHub answers a form unless asked for JSON.
            "Accept": "application/json",
        }
        auth = authlib.ClientAuth(self.provider.client_id, secret, method)
        url, headers, body = auth.prepare("POST", endpoints.token_endpoint, headers, body)
        status, token = await self._request("POST", url, headers, body)
        if not isinstance(token, dict):
            raise self.error(f"its token endpoint answered {status} without a JSON object")
        if "error" in token or status != 200:
            # RFC 6749 §5.2 with a 400; GitHub says ``bad_verification_code`` with a 200.
            error = str(token.get("error", status))[:64]
            raise self.error(f"it refused the sign-in ({error})")
        if not isinstance(token.get("access_token"), str):
            raise self.error("its token response has no access token")
        return token

    async def get_json(self, url: str, *, access_token: str | None = None) -> object:
        """A GET answered 200 with JSON."""
        headers = {"Accept": "application/json"}
        if access_token is not None:
            headers["Authorization"] = f"Bearer {access_token}"
        status, document = await self._request("GET", url, headers)
        if status != 200:
            raise self.error(f"it answered {status}")
        return document

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: str | None = None
    ) -> tuple[int, object]:
        """The status and JSON body of an answer read within ``MAX_RESPONSE_BYTES``;
        None for a body that is not JSON."""
        where = {"server.address": urlsplit(url).hostname or "", "asgi_oauth.provider": self.name}
        try:
            with self._instruments.span(f"upstream {method}", where):
                async with self._http.stream(
                    method, url, headers=headers, content=body
                ) as response:
                    read = bytearray()
                    async for chunk in response.aiter_bytes():
                        read += chunk
                        if len(read) > MAX_RESPONSE_BYTES:
                            raise self.error("its answer is too large")
        except httpx.HTTPError:
            raise self.unreachable() from None
        try:
            return response.status_code, json.loads(read)
        except ValueError:
            return response.status_code, None

    def error(self, reason: str) -> UpstreamError:
        return UpstreamError(
            N_("Signing in with {provider} failed: {reason}. Please try again."),
            params={"provider": self.name, "reason": reason},
        )

    def unreachable(self) -> UpstreamError:
        return UpstreamError(
            N_("{provider} cannot be reached right now. Please try again in a moment."),
            params={"provider": self.name},
        )

    async def aclose(self) -> None:
        await self._http.aclose()


def _authlib() -> Any:
    """Authlib's OAuth 2.0 message builders (the ``federation`` extra)."""
    try:
        from authlib.oauth2.auth import ClientAuth
        from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
        from authlib.oauth2.rfc7636 import create_s256_code_challenge
    except ImportError:
        raise RuntimeError(
            "signing in through upstream providers needs Authlib:"
            " pip install 'asgi_oauth[federation]'"
        ) from None
    return SimpleNamespace(
        ClientAuth=ClientAuth,
        prepare_grant_uri=prepare_grant_uri,
        prepare_token_request=prepare_token_request,
        create_s256_code_challenge=create_s256_code_challenge,
    )


def _url(document: Mapping[str, object], name: str, *, required: bool = True) -> Any:
    value = document.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise ValueError(f"{name} is missing or not a URL")
    return value

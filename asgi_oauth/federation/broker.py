"""``Federation``: signing people in through upstream providers (identity brokering).

The round trip is the authorization code flow with PKCE, ``state`` and, for OpenID
Connect, ``nonce`` (RFC 9700 §2.1.1, §4.5.3): ``begin`` makes the URL to send the
browser to and the ``PendingSignIn`` the browser keeps (the app puts it in a signed
cookie, so only the browser that left can come back with it); ``finish`` checks
what comes back and gives the local user. The person's consent to each client stays
this server's to ask: an upstream sign-in only says who they are.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from ..config import Settings
from ..crypto import Sealer, generate_token, hash_token
from ..endpoints.paths import UPSTREAM_PATH
from ..errors import N_, AccessDeniedError, InvalidRequestError, storage_guard
from ..events import security_event
from ..models import FederatedIdentity
from ..observability.instruments import Instruments
from ..storage.base import Storage
from .accounts import FederatedAccounts, FederationPolicy, SignedIn
from .id_token import IDTokenError, UnknownSigningKey, verify_id_token
from .identity import (
    UpstreamIdentity,
    UpstreamTokens,
    mapped_claims,
    primary_email,
    subject_of,
    tokens_from,
    words,
)
from .providers import UpstreamProvider
from .upstream import Endpoints, UpstreamClient, UpstreamError

#: Seconds a person may take at the provider before the sign-in must start again.
PENDING_LIFETIME = 600
#: Seconds before its expiry an upstream access token is refreshed.
_REFRESH_MARGIN = 60
#: Claims of an ID token that userinfo may not replace.
_PROTOCOL = frozenset({"iss", "sub", "aud", "exp", "iat", "nonce", "azp", "auth_time", "amr"})


@dataclass(frozen=True, slots=True)
class PendingSignIn:
    """What the browser carries to the provider and back; its secrets never leave it
    except to the provider (``state``, ``nonce``) and its token endpoint (the verifier)."""

    provider: str
    state: str
    nonce: str
    code_verifier: str
    #: Where to go afterwards: a page of this server (``Browser.after_login`` decides).
    next: str
    started_at: int
    #: The sign-in must be a new one (``prompt=login``, ``max_age``): asked upstream too.
    fresh: bool = False


class Federation:
    """Every configured upstream provider, and the accounts linked through them."""

    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        *,
        policy: FederationPolicy | None = None,
        clock: Callable[[], float] = time.time,
        instruments: Instruments | None = None,
    ) -> None:
        self._storage = storage
        self._settings = settings
        self._clock = clock
        self.providers: dict[str, UpstreamProvider] = {}
        for provider in settings.upstream_providers:
            provider.check_transport(insecure_transport=settings.insecure_transport)
            if provider.keep_tokens and settings.key_encryption_key is None:
                raise ValueError(
                    f"upstream provider {provider.id!r}: keep_tokens needs key_encryption_key"
                )
            self.providers[provider.id] = provider
        self._clients = {
            p.id: UpstreamClient(p, clock=clock, instruments=instruments)
            for p in self.providers.values()
        }
        kek = settings.key_encryption_key
        sealer = None if kek is None else Sealer(kek, purpose=b"asgi_oauth upstream tokens")
        self.accounts = FederatedAccounts(storage, policy or FederationPolicy(), clock, sealer)
        self._refreshing: dict[str, asyncio.Lock] = {}

    def redirect_uri(self, provider_id: str) -> str:
        """The redirect URI to register at the provider: one per provider (RFC 9700 §4.4.2)."""
        return f"{self._settings.issuer}{UPSTREAM_PATH}/{provider_id}/callback"

    def client(self, provider_id: str) -> UpstreamClient:
        client = self._clients.get(provider_id)
        if client is None:
            raise InvalidRequestError(N_("no such sign-in provider"), status_code=404)
        return client

    async def begin(
        self, provider_id: str, next_path: str, *, fresh: bool = False
    ) -> tuple[str, PendingSignIn]:
        """Where to send the browser, and what it must bring back."""
        client = self.client(provider_id)
        endpoints = await client.endpoints()
        pending = PendingSignIn(
            provider=provider_id,
            state=generate_token(),
            nonce=generate_token(),
            code_verifier=generate_token(48),
            next=next_path,
            started_at=int(self._clock()),
            fresh=fresh,
        )
        extra: dict[str, str] = {}
        if fresh and client.provider.is_openid:
            # OpenID Connect Core §3.1.2.1: the provider signs the person in anew.
            extra["prompt"] = "login"
        url = client.authorization_url(
            endpoints,
            redirect_uri=self.redirect_uri(provider_id),
            state=pending.state,
            code_verifier=pending.code_verifier,
            nonce=pending.nonce if client.provider.is_openid else None,
            extra=extra,
        )
        return url, pending

    async def finish(
        self,
        provider_id: str,
        params: Mapping[str, str],
        pending: PendingSignIn | None,
        *,
        address: str | None = None,
    ) -> SignedIn:
        """The local user of the person the provider sent back, or an error to show."""
        client = self.client(provider_id)
        now = int(self._clock())
        if (
            pending is None
            or pending.provider != provider_id
            or now - pending.started_at > PENDING_LIFETIME
        ):
            raise InvalidRequestError(
                N_("This sign-in expired or was not started in this browser. Please start again."),
                status_code=403,
            )
        # RFC 6749 §10.12: the answer must be to the request this browser sent.
        if not hmac.compare_digest(params.get("state", "").encode(), pending.state.encode()):
            _refused(provider_id, "state", address)
            raise InvalidRequestError(
                N_("This answer is not for the sign-in you started. Please start again."),
                status_code=403,
            )
        endpoints = await client.endpoints()
        _check_issuer(client, endpoints, params.get("iss"), address)
        with storage_guard:
            first = await self._storage.use_once(
                "upstream:" + hash_token(pending.state),
                expires_at=pending.started_at + PENDING_LIFETIME,
                now=now,
            )
        if not first:
            _refused(provider_id, "replayed", address)
            raise InvalidRequestError(
                N_("This sign-in was completed already. Please start again."), status_code=403
            )
        error = params.get("error")
        if error is not None:
            if error == "access_denied":
                raise AccessDeniedError(
                    N_("You did not allow {provider} to sign you in."),
                    params={"provider": client.name},
                    status_code=403,
                )
            raise client.error(f"it answered {error[:64]}")
        code = params.get("code")
        if not code:
            raise InvalidRequestError(N_("The provider sent no code. Please start again."))
        response = await client.exchange(
            code=code,
            redirect_uri=self.redirect_uri(provider_id),
            code_verifier=pending.code_verifier,
        )
        identity = await self._identity(client, endpoints, response, pending, now)
        if (
            pending.fresh
            and identity.auth_time is not None
            and identity.auth_time < pending.started_at - self._settings.clock_skew
        ):
            raise client.error("it did not ask you to sign in again")
        return await self.accounts.sign_in(identity, address)

    async def _identity(
        self,
        client: UpstreamClient,
        endpoints: Endpoints,
        response: Mapping[str, object],
        pending: PendingSignIn,
        now: int,
    ) -> UpstreamIdentity:
        provider = client.provider
        access_token = str(response["access_token"])
        auth_time: int | None = None
        amr: tuple[str, ...] = ()
        if provider.is_openid:
            claims = await self._id_token_claims(client, endpoints, response, pending, now)
            subject = str(claims["sub"])
            raw: dict[str, object] = dict(claims)
            if endpoints.userinfo_endpoint is not None:
                info = await client.get_json(endpoints.userinfo_endpoint, access_token=access_token)
                # OpenID Connect Core §5.3.4: userinfo about anyone else is not this person's.
                if not isinstance(info, dict) or info.get("sub") != subject:
                    raise client.error("its userinfo is about someone else")
                raw.update({k: v for k, v in info.items() if k not in _PROTOCOL})
            auth_time = claims.get("auth_time")  # type: ignore[assignment]
            amr = words(claims.get("amr"))
        else:
            assert endpoints.userinfo_endpoint is not None
            user = await client.get_json(endpoints.userinfo_endpoint, access_token=access_token)
            if not isinstance(user, dict):
                raise client.error("its user API did not answer an object")
            raw = dict(user)
            found = subject_of(raw, provider.subject_field)
            if found is None:
                raise client.error(f"its user API gave no {provider.subject_field}")
            subject = found
            raw.pop("email_verified", None)  # only the e-mail list can say so
            if provider.emails_endpoint is not None:
                raw.update(await _emails(client, provider.emails_endpoint, access_token))
        organizations: tuple[str, ...] = ()
        if provider.allowed_organizations and provider.organizations_endpoint is not None:
            listed = await client.get_json(
                provider.organizations_endpoint, access_token=access_token
            )
            organizations = (
                tuple(str(o["login"]) for o in listed if isinstance(o, dict) and "login" in o)
                if isinstance(listed, list)
                else ()
            )
        return UpstreamIdentity(
            provider=provider,
            issuer=endpoints.issuer,
            subject=subject,
            claims=mapped_claims(provider, raw),
            raw=raw,
            groups=words(raw.get(provider.groups_claim)),
            organizations=organizations,
            auth_time=auth_time,
            amr=amr,
            tokens=tokens_from(response, now) if provider.keep_tokens else None,
        )

    async def _id_token_claims(
        self,
        client: UpstreamClient,
        endpoints: Endpoints,
        response: Mapping[str, object],
        pending: PendingSignIn,
        now: int,
    ) -> dict[str, object]:
        token = response.get("id_token")
        if not isinstance(token, str):
            raise client.error("it sent no ID token")
        check = {
            "issuer": endpoints.issuer,
            "client_id": client.provider.client_id,
            "nonce": pending.nonce,
            "algorithms": endpoints.id_token_algorithms,
            "now": now,
            "leeway": self._settings.clock_skew,
        }
        try:
            try:
                return verify_id_token(token, await client.keys(), **check)  # type: ignore[arg-type]
            except UnknownSigningKey:
                # The provider may have rotated its keys since they were read.
                keys = await client.keys(refresh=True)
                return verify_id_token(token, keys, **check)  # type: ignore[arg-type]
        except IDTokenError as exc:
            security_event(
                "upstream_id_token_refused",
                level=logging.WARNING,
                provider=client.provider.id,
                reason=str(exc),
            )
            raise client.error("its ID token could not be accepted") from None

    # -- what the application gets of linked accounts -------------------------

    async def claims(self, user_id: str) -> dict[str, object]:
        """What the provider last said of the user (the most recent link), in
        OpenID Connect's words: for ID tokens and userinfo."""
        with storage_guard:
            links = await self._storage.federated_identities(user_id)
        if not links:
            return {}
        try:
            claims = json.loads(links[0].claims)
        except ValueError:
            return {}
        return claims if isinstance(claims, dict) else {}

    async def upstream_token(self, user_id: str, provider_id: str) -> str | None:
        """An unexpired access token of the user's at ``provider_id``, refreshed when it
        expires; None when none is kept (not linked, or ``keep_tokens`` is off) or the
        provider refuses the refresh (the person must sign in through it again)."""
        client = self.client(provider_id)
        link, tokens = await self._kept(user_id, provider_id)
        if link is None or tokens is None or not self._expiring(tokens):
            return None if tokens is None else tokens.access_token
        # One refresh at a time in this process: a provider that rotates refresh
        # tokens would refuse the second.
        async with self._refreshing.setdefault(provider_id, asyncio.Lock()):
            link, tokens = await self._kept(user_id, provider_id)
            if link is None or tokens is None or not self._expiring(tokens):
                return None if tokens is None else tokens.access_token
            if tokens.refresh_token is None:
                return None
            now = int(self._clock())
            try:
                fresh = tokens_from(await client.refresh(tokens.refresh_token), now)
            except UpstreamError:
                security_event(
                    "upstream_refresh_failed", level=logging.WARNING, provider=provider_id
                )
                return None
            if fresh.refresh_token is None:
                fresh = replace(fresh, refresh_token=tokens.refresh_token)
            sealed = self.accounts.seal(link.issuer, link.subject, fresh)
            with storage_guard:
                await self._storage.save_federated_identity(
                    replace(link, tokens=sealed, updated_at=now)
                )
            return fresh.access_token

    async def _kept(
        self, user_id: str, provider_id: str
    ) -> tuple[FederatedIdentity | None, UpstreamTokens | None]:
        with storage_guard:
            links = await self._storage.federated_identities(user_id)
        link = next((lk for lk in links if lk.provider == provider_id), None)
        return link, None if link is None else self.accounts.unseal(link)

    def _expiring(self, tokens: UpstreamTokens) -> bool:
        expires_at = tokens.expires_at
        return expires_at is not None and expires_at - _REFRESH_MARGIN <= self._clock()

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()


def _check_issuer(
    client: UpstreamClient, endpoints: Endpoints, iss: str | None, address: str | None
) -> None:
    """RFC 9207 §2.4: an ``iss`` that is not the provider's is a mix-up; so is none from
    a provider that says it always sends one."""
    if (iss is not None and iss != endpoints.issuer) or (
        iss is None and endpoints.iss_parameter_supported
    ):
        _refused(client.provider.id, "iss", address)
        raise InvalidRequestError(
            N_("This answer did not come from {provider}. Please start again."),
            params={"provider": client.name},
            status_code=403,
        )


def _refused(provider_id: str, reason: str, address: str | None) -> None:
    security_event(
        "upstream_answer_refused",
        level=logging.WARNING,
        provider=provider_id,
        reason=reason,
        address=address,
    )


async def _emails(client: UpstreamClient, url: str, access_token: str) -> dict[str, object]:
    """The primary address and whether it is verified; nothing when the list cannot be
    read (the scope was not granted): the address then counts as unverified."""
    try:
        primary = primary_email(await client.get_json(url, access_token=access_token))
    except UpstreamError:
        return {}
    if primary is None:
        return {}
    email, verified = primary
    return {"email": email, "email_verified": verified}

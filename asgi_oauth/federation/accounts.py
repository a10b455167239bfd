"""Linking an upstream account to a local user, and who may sign in through one.

The link is (upstream issuer, subject), never an e-mail address alone. A first
sign-in creates a local user without a password, unless a rule links it to an
existing one: the provider is trusted with ``link_by_email`` and says it verified an
e-mail address that is a local username, or the host's ``FederationPolicy`` names
the user. Later sign-ins find the link and refresh the claims kept with it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..crypto import NO_PASSWORD, Sealer, generate_token
from ..errors import N_, AccessDeniedError, storage_guard
from ..events import security_event
from ..models import FederatedIdentity, User
from ..storage.base import Storage
from .identity import UpstreamIdentity, UpstreamTokens

#: Usernames are made from the provider's id and the person's handle there.
_MAX_USERNAME = 64


class FederationPolicy:
    """The host's say over upstream sign-ins; override what you need.

    It runs after the provider's own rules (``allowed_domains``, ``allowed_groups``,
    ``allowed_organizations``, ``group_scopes``), which it can only narrow.
    """

    async def admit(self, identity: UpstreamIdentity) -> bool:
        """Whether this person may sign in at all."""
        return True

    async def scopes(self, identity: UpstreamIdentity) -> frozenset[str] | None:
        """The scopes this person may grant to clients; None: any."""
        return None

    async def existing_user(self, identity: UpstreamIdentity) -> str | None:
        """At a first sign-in, the username of a local user to link it to; None for the
        built-in rule (``link_by_email``), then a new user."""
        return None


def admitted_by_provider(identity: UpstreamIdentity) -> bool:
    """The provider's configured rules: e-mail domains, groups, organisations."""
    provider = identity.provider
    if provider.allowed_domains:
        email = identity.verified_email
        domain = email.rpartition("@")[2].lower() if email else None
        if domain not in {d.lower() for d in provider.allowed_domains}:
            return False
    if provider.allowed_groups and not set(identity.groups) & set(provider.allowed_groups):
        return False
    if provider.allowed_organizations:
        theirs = {o.lower() for o in identity.organizations}
        if not theirs & {o.lower() for o in provider.allowed_organizations}:
            return False
    return True


def scopes_by_groups(identity: UpstreamIdentity) -> frozenset[str] | None:
    """The scopes the person's upstream groups allow (``group_scopes``); None: any."""
    mapping = identity.provider.group_scopes
    if not mapping:
        return None
    return frozenset(s for group in identity.groups for s in mapping.get(group, ()))


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The local user an upstream sign-in is, and what the session records of it."""

    user: User
    auth_time: int
    amr: tuple[str, ...]
    #: The scopes the person may grant; None: any.
    scopes: frozenset[str] | None


class FederatedAccounts:
    """Finds or creates the local user of an upstream account, and keeps its claims."""

    def __init__(
        self,
        storage: Storage,
        policy: FederationPolicy,
        clock: Callable[[], float],
        sealer: Sealer | None,
    ) -> None:
        self._storage = storage
        self._policy = policy
        self._clock = clock
        self._sealer = sealer

    async def sign_in(self, identity: UpstreamIdentity, address: str | None) -> SignedIn:
        """The local user ``identity`` is, once the rules admit the person."""
        admitted = admitted_by_provider(identity) and await self._policy.admit(identity)
        if not admitted:
            security_event(
                "upstream_sign_in_refused",
                level=logging.WARNING,
                provider=identity.provider.id,
                upstream_sub=identity.subject,
                address=address,
            )
            raise AccessDeniedError(
                N_("Your {provider} account may not sign in here."),
                params={"provider": identity.provider.name},
                status_code=403,
            )
        with storage_guard:
            user = await self._link(identity)
        scopes = _narrowest(scopes_by_groups(identity), await self._policy.scopes(identity))
        now = int(self._clock())
        auth_time = identity.auth_time
        if auth_time is None or auth_time > now:
            auth_time = now
        security_event(
            "signed_in",
            user_id=user.user_id,
            provider=identity.provider.id,
            address=address,
        )
        return SignedIn(user, auth_time, identity.amr, scopes)

    async def _link(self, identity: UpstreamIdentity) -> User:
        storage, now = self._storage, int(self._clock())
        for attempt in range(3):
            existing = await storage.get_federated_identity(identity.issuer, identity.subject)
            if existing is not None:
                user = await storage.get_user_by_id(existing.user_id)
                if user is not None:
                    await storage.save_federated_identity(
                        self._record(identity, existing.user_id, now, existing)
                    )
                    return user
                continue  # the user is being deleted with its links: look again
            target = await self._existing_user(identity)
            if target is not None:
                if await storage.add_federated_identity(
                    self._record(identity, target.user_id, now)
                ):
                    security_event(
                        "upstream_account_linked",
                        user_id=target.user_id,
                        provider=identity.provider.id,
                        upstream_sub=identity.subject,
                    )
                    return target
                continue  # linked meanwhile by a sign-in racing with this one
            user = User(
                user_id=generate_token(16),
                username=_username(identity, unique=attempt > 0),
                password_hash=NO_PASSWORD,
                created_at=now,
            )
            if await storage.add_federated_user(user, self._record(identity, user.user_id, now)):
                security_event(
                    "user_created",
                    user_id=user.user_id,
                    provider=identity.provider.id,
                    upstream_sub=identity.subject,
                )
                return user
            # Linked meanwhile (the next round finds it), or the username is taken (the
            # next round makes it unique).
        raise AccessDeniedError(
            N_("Your account could not be set up; please try again."), status_code=409
        )

    async def _existing_user(self, identity: UpstreamIdentity) -> User | None:
        """The local user a first sign-in links to, if a rule names one."""
        username = await self._policy.existing_user(identity)
        if username is None and identity.provider.link_by_email:
            username = identity.verified_email
        if username is None:
            return None
        user = await self._storage.get_user(username)
        if user is None:
            return None
        linked = await self._storage.federated_identities(user.user_id)
        if any(link.issuer == identity.issuer for link in linked):
            # Another account at this provider is linked already: a second one must
            # not take the user over by having the same address.
            return None
        return user

    def _record(
        self,
        identity: UpstreamIdentity,
        user_id: str,
        now: int,
        existing: FederatedIdentity | None = None,
    ) -> FederatedIdentity:
        tokens = existing.tokens if existing is not None else None
        if identity.tokens is not None and identity.provider.keep_tokens:
            tokens = self.seal(identity.issuer, identity.subject, identity.tokens)
        return FederatedIdentity(
            issuer=identity.issuer,
            subject=identity.subject,
            user_id=user_id,
            provider=identity.provider.id,
            claims=json.dumps(dict(identity.claims), sort_keys=True),
            tokens=tokens,
            created_at=existing.created_at if existing is not None else now,
            updated_at=now,
        )

    def seal(self, issuer: str, subject: str, tokens: UpstreamTokens) -> str:
        """The provider's tokens sealed with the key-encryption key, bound to the account."""
        if self._sealer is None:
            raise RuntimeError("keeping upstream tokens needs key_encryption_key")
        data = {
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "expires_at": tokens.expires_at,
            "scope": tokens.scope,
        }
        return self._sealer.seal(json.dumps(data).encode(), context=_context(issuer, subject))

    def unseal(self, link: FederatedIdentity) -> UpstreamTokens | None:
        if link.tokens is None or self._sealer is None:
            return None
        try:
            data = json.loads(
                self._sealer.open(link.tokens, context=_context(link.issuer, link.subject))
            )
        except ValueError:
            return None
        return UpstreamTokens(
            access_token=data["access_token"],
            refresh_token=data.get("refresh_token"),
            expires_at=data.get("expires_at"),
            scope=data.get("scope"),
        )


def _context(issuer: str, subject: str) -> str:
    return f"upstream tokens\x00{issuer}\x00{subject}"


def _narrowest(
    first: frozenset[str] | None, second: frozenset[str] | None
) -> frozenset[str] | None:
    if first is None:
        return second
    return first if second is None else first & second


def _username(identity: UpstreamIdentity, *, unique: bool) -> str:
    """``provider:handle`` (``github:octocat``), with a random tail when it must differ."""
    handle = identity.claims.get("preferred_username") or identity.claims.get("email")
    if not isinstance(handle, str) or not handle.isprintable() or handle != handle.strip():
        handle = identity.subject
    name = f"{identity.provider.id}:{handle}"[: _MAX_USERNAME - 8]
    return f"{name}~{generate_token(4)}" if unique else name

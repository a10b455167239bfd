"""OpenID Connect: ID tokens, userinfo, and the signing keys behind them.

The provider exists on every server; without ``Settings.key_encryption_key``
there are no keys, and its endpoints answer 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping

from ..config import Settings
from ..errors import InvalidRequestError, storage_guard
from ..events import security_event
from ..keys import InvalidJWTError, KeySet
from ..models import Client, SigningKey
from ..openid import (
    SCOPE_CLAIMS,
    Authentication,
    UserClaims,
    allowed_claims,
    id_token_claims,
    id_token_hint_subject,
)
from ..storage.base import Storage
from ..types import SigningAlgorithm


class OpenIDProvider:
    """Signs ID tokens and says what a client may learn of a user.

    ``user_claims`` says what ID tokens and userinfo tell of a user beyond ``sub``;
    by default the store's username, as ``preferred_username`` with ``profile``, and
    what an upstream provider last said of them (``federated_claims``).
    """

    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        keys: KeySet | None,
        clock: Callable[[], float],
        user_claims: UserClaims | None = None,
        *,
        federated_claims: Callable[[str], Awaitable[Mapping[str, object]]] | None = None,
    ) -> None:
        self._storage = storage
        self._federated_claims = federated_claims
        self._settings = settings
        self.keys = keys
        self._clock = clock
        self._user_claims = user_claims or self._stored_user_claims

    async def jwks(self) -> Mapping[str, object]:
        """The JWK Set of every published signing key (RFC 7517 §5)."""
        keys = self._require_keys()
        with storage_guard:
            await keys.ready()
        return keys.jwks()

    async def userinfo(self, subject: str, scope: frozenset[str]) -> dict[str, object]:
        """The UserInfo response (Core §5.3.2): what ``scope`` lets a client learn of
        the user a valid token with ``openid`` was issued for."""
        self._require_keys()
        claims = allowed_claims(await self._user_claims(subject, scope), scope)
        return {**claims, "sub": subject}

    async def id_token(
        self,
        client: Client,
        authentication: Authentication,
        scope: frozenset[str],
        *,
        access_token: str | None = None,
        code: str | None = None,
        with_user_claims: bool = True,
    ) -> str:
        """An ID token (Core §2) for ``client``, signed with the algorithm it registered."""
        keys = self._require_keys()
        user_claims = None
        if with_user_claims:
            user_claims = allowed_claims(
                await self._user_claims(authentication.subject, scope), scope
            )
        claims = id_token_claims(
            issuer=self._settings.issuer,
            client=client,
            authentication=authentication,
            now=int(self._clock()),
            lifetime=self._settings.id_token_lifetime,
            user_claims=user_claims,
            access_token=access_token,
            code=code,
        )
        return keys.sign(claims, alg=client.id_token_signed_response_alg, typ="JWT")

    async def hint_subject(self, hint: str, client_id: str) -> str:
        """Who ``id_token_hint`` names: an unexpired ID token we issued to this client
        (``InvalidJWTError`` otherwise)."""
        if self.keys is None:
            raise InvalidJWTError("OpenID Connect is off here")
        settings = self._settings
        with storage_guard:
            return await id_token_hint_subject(
                self.keys,
                hint,
                issuer=settings.issuer,
                client_id=client_id,
                now=int(self._clock()),
                leeway=settings.clock_skew,
            )

    async def rotate_signing_keys(
        self, algorithms: Iterable[SigningAlgorithm] | None = None
    ) -> list[SigningKey]:
        """Replace the signing keys; the old ones stay published until every ID token
        and JWT access token they signed has expired."""
        settings = self._settings
        keep = max(settings.id_token_lifetime, settings.access_token_lifetime) + settings.clock_skew
        rotated = await self._require_keys().rotate(keep_published=keep, algorithms=algorithms)
        security_event("signing_keys_rotated", kids=" ".join(k.kid for k in rotated))
        return rotated

    def _require_keys(self) -> KeySet:
        if self.keys is None:
            raise InvalidRequestError("no such endpoint", status_code=404)
        return self.keys

    async def _stored_user_claims(
        self, subject: str, scope: frozenset[str]
    ) -> Mapping[str, object]:
        """What the store knows of a user: their username, for the ``profile`` scope,
        then what their upstream provider said (name, e-mail, picture)."""
        claims: dict[str, object] = {}
        if "profile" in scope:
            with storage_guard:
                user = await self._storage.get_user_by_id(subject)
            if user is not None:
                claims["preferred_username"] = user.username
        if self._federated_claims is not None and not scope.isdisjoint(SCOPE_CLAIMS):
            claims.update(await self._federated_claims(subject))
        return claims

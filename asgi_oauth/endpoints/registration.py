"""Dynamic client registration (RFC 7591 §3) and its management (RFC 7592 §2).

The registration access token that later reads, updates or deletes a client is
kept only as its hash; a client information response carries the token the
request presented (or, at registration, the new one).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import replace

from ..client_metadata import ClientMetadata, application_type_of, validate_client_metadata
from ..clients import check_client, new_client
from ..config import Settings
from ..crypto import generate_token, hash_token, verify_secret
from ..errors import (
    InvalidClientMetadataError,
    InvalidRequestError,
    InvalidTokenError,
    StorageError,
    storage_guard,
)
from ..events import security_event
from ..models import Client
from ..rate_limits import RateLimits
from ..requests import OAuthRequest
from ..storage.base import Storage
from .paths import REGISTRATION_PATH

#: RFC 7592 §2.2: what only the server sets, which an update must not carry.
_SERVER_FIELDS = (
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
)


class Registrar:
    """The client registration endpoint and the client configuration endpoint."""

    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        *,
        revoked: Callable[[], None] = lambda: None,
        limits: RateLimits | None = None,
    ) -> None:
        self._revoked = revoked
        self._storage = storage
        self._settings = settings
        self._clock = clock
        self._limits = limits if limits is not None else RateLimits.of(storage, settings, clock)

    async def register(
        self,
        document: object,
        *,
        initial_access_token: str | None,
        request: OAuthRequest | None = None,
    ) -> dict[str, object]:
        """RFC 7591 §3.1: a new client; its secret and registration access token, shown once.
        ``request`` (its ``client_address``) counts against the per-address rate limit;
        there is no client yet to count against."""
        self._check_enabled()
        if request is not None and self._limits is not None:
            await self._limits.by_address("registration", request)
        self._check_initial_access_token(initial_access_token)
        metadata = validate_client_metadata(document, self._settings)
        application_type = application_type_of(
            document, metadata.redirect_uris, insecure_transport=self._settings.insecure_transport
        )
        try:
            registered = new_client(
                name=metadata.client_name or "",
                redirect_uris=metadata.redirect_uris,
                grant_types=metadata.grant_types,
                scope=metadata.scope,
                public=metadata.is_public,
                application_type=application_type,
                insecure_transport=self._settings.insecure_transport,
            )
        except ValueError as exc:
            raise InvalidClientMetadataError(str(exc)) from None
        client = metadata.apply(replace(registered.client, created_at=int(self._clock())))
        client, token = _with_new_token(client)
        with storage_guard:
            if not await self._storage.add_client(client):  # a random id, taken: never seen
                raise StorageError("a new client_id collided with a registered one")
        security_event("client_registered", client_id=client.client_id)
        return self._information(client, metadata, token, registered.client_secret)

    async def read(
        self, client_id: str, registration_access_token: str | None
    ) -> dict[str, object]:
        """RFC 7592 §2.1: the client's current metadata; its secret is not kept to show."""
        client, token = await self._authorize(client_id, registration_access_token)
        return self._information(client, ClientMetadata.from_client(client), token, None)

    async def update(
        self, client_id: str, registration_access_token: str | None, document: object
    ) -> dict[str, object]:
        """RFC 7592 §2.2: replace the metadata; the client id, secret and token stay."""
        client, token = await self._authorize(client_id, registration_access_token)
        if not isinstance(document, dict):
            raise InvalidClientMetadataError("the client metadata must be a JSON object")
        for name in _SERVER_FIELDS:
            if name in document:
                raise InvalidRequestError(f"the request must not include {name} (RFC 7592 §2.2)")
        if document.get("client_id") != client.client_id:
            raise InvalidRequestError("client_id must be the one of this registration")
        secret = document.get("client_secret")
        if secret is not None and not (
            isinstance(secret, str) and verify_secret(secret, client.secret_hash)
        ):
            raise InvalidRequestError("client_secret does not match this client's")
        metadata = validate_client_metadata(document, self._settings)
        if metadata.is_public != client.is_public:
            raise InvalidClientMetadataError(
                "token_endpoint_auth_method cannot change between none and a secret"
            )
        application_type = application_type_of(
            document, metadata.redirect_uris, insecure_transport=self._settings.insecure_transport
        )
        try:
            updated = check_client(
                replace(metadata.apply(client), application_type=application_type),
                insecure_transport=self._settings.insecure_transport,
            )
        except ValueError as exc:
            raise InvalidClientMetadataError(str(exc)) from None
        with storage_guard:
            await self._storage.save_client(updated)
        security_event("client_registration_updated", client_id=client.client_id)
        return self._information(updated, metadata, token, None)

    async def delete(self, client_id: str, registration_access_token: str | None) -> None:
        """RFC 7592 §2.3: the client goes, with its grants and tokens."""
        client, _ = await self._authorize(client_id, registration_access_token)
        with storage_guard:
            deleted = await self._storage.delete_client(client.client_id)
        if not deleted:
            raise InvalidTokenError()
        self._revoked()  # its access tokens were revoked: in-process caches forget them
        security_event("client_registration_deleted", client_id=client.client_id)

    def _check_enabled(self) -> None:
        if self._settings.client_registration == "off":
            raise InvalidRequestError("no such endpoint", status_code=404)

    def _check_initial_access_token(self, token: str | None) -> None:
        if self._settings.client_registration != "initial_access_token":
            return
        expected = self._settings.initial_access_token
        if token is None or expected is None or not _equal(token, expected):
            raise InvalidTokenError("an initial access token is required (RFC 7591 §3)")

    async def _authorize(self, client_id: str, token: str | None) -> tuple[Client, str]:
        """The client the registration access token manages; anything else is 401 alike,
        an unknown client included (RFC 7592 §2.1)."""
        self._check_enabled()
        with storage_guard:
            client = await self._storage.get_client(client_id)
        stored = client.registration_access_token_hash if client is not None else None
        if (
            client is None
            or token is None
            or stored is None
            or not _equal(hash_token(token), stored)
        ):
            raise InvalidTokenError("the registration access token is not valid")
        return client, token

    def _information(
        self, client: Client, metadata: ClientMetadata, token: str, secret: str | None
    ) -> dict[str, object]:
        """A client information response (RFC 7591 §3.2.1, RFC 7592 §3)."""
        body: dict[str, object] = {"client_id": client.client_id}
        if secret is not None:
            body["client_secret"] = secret
        body["client_id_issued_at"] = client.created_at
        if not client.is_public:
            body["client_secret_expires_at"] = 0
        body["registration_access_token"] = token
        body["registration_client_uri"] = (
            f"{self._settings.issuer}{REGISTRATION_PATH}/{client.client_id}"
        )
        if client.application_type is not None:
            body["application_type"] = client.application_type
        return {**body, **metadata.to_dict()}


def _with_new_token(client: Client) -> tuple[Client, str]:
    """``client`` with a new registration access token; the old one stops working."""
    token = generate_token()
    return replace(client, registration_access_token_hash=hash_token(token)), token


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())

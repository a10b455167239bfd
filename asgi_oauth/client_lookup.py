"""The one way a request's ``client_id`` becomes a ``Client``.

A client registered here is found in the store; with
``Settings.client_id_metadata_documents`` on, a ``client_id`` that is an https
URL with a path and is not registered is the URL of the client's metadata
document (draft-ietf-oauth-client-id-metadata-document), fetched and cached.
A registered client always wins, so an operator can pin a URL-named client.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass

from .client_documents.directory import ClientDocuments
from .client_documents.fetch import DocumentFetchError, looks_like_document_url
from .errors import InvalidClientError, InvalidRequestError, OAuth2Error
from .models import Client
from .storage.base import Storage


@dataclass(frozen=True, slots=True)
class ClientLookup:
    """Finds clients: in the store, else by their metadata documents when allowed."""

    storage: Storage
    documents: ClientDocuments | None = None

    async def find(
        self,
        client_id: str,
        *,
        fetch: bool = True,
        unusable: type[OAuth2Error] = InvalidRequestError,
    ) -> Client | None:
        """The client, or None when nobody knows it.

        ``fetch=False`` never fetches a document (a caller that presents a secret
        cannot be a document's client). A document that cannot be used raises
        ``unusable``, the endpoint's error, saying why.
        """
        client = await self.storage.get_client(client_id)
        if client is not None or self.documents is None or not fetch:
            return client
        if not looks_like_document_url(client_id):
            return None
        try:
            return await self.documents.client(client_id)
        except DocumentFetchError as exc:
            raise unusable(f"the client's metadata document is not usable: {exc}") from None

    def find_for_token_endpoint(self, client_id: str, *, fetch: bool) -> Awaitable[Client | None]:
        """``find``, with an unusable document as ``invalid_client`` (RFC 6749 §5.2)."""
        if self.documents is None or not fetch:
            # The store's own call, with no frame of ours around it: the token and
            # introspection endpoints' hot path.
            return self.storage.get_client(client_id)
        return self.find(client_id, unusable=InvalidClientError)

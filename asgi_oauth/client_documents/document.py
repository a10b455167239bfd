"""A client ID metadata document, read as a ``Client``.

draft-ietf-oauth-client-id-metadata-document: the document is client metadata
(RFC 7591 §2) published at the URL that is the ``client_id``. It goes through the
same checks and narrowing as a registration document, plus the draft's own rules:
the document names itself exactly, and a client whose document anyone can fetch
keeps no secret.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from ..client_metadata import application_type_of, validate_client_metadata
from ..clients import check_client
from ..config import Settings
from ..errors import OAuth2Error
from ..models import Client
from .fetch import DocumentFetchError

#: Members that would make the document's client confidential with a shared secret (§4.1).
_SECRET_MEMBERS = ("client_secret", "client_secret_expires_at")
_SHARED_SECRET_METHODS = frozenset(
    {"client_secret_basic", "client_secret_post", "client_secret_jwt"}
)


class InvalidClientDocumentError(DocumentFetchError):
    """The document was fetched but cannot describe a client here; the message says why."""


def client_from_document(
    url: str, metadata: Mapping[str, object], settings: Settings, *, now: float | None = None
) -> Client:
    """The public client the document at ``url`` describes, or ``InvalidClientDocumentError``."""
    # §4.1: the document's client_id is the URL it was fetched from, compared as strings.
    if metadata.get("client_id") != url:
        raise InvalidClientDocumentError("the document's client_id is not its URL")
    name = metadata.get("client_name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidClientDocumentError("the document has no client_name")
    if not metadata.get("redirect_uris"):
        raise InvalidClientDocumentError("the document has no redirect_uris")
    if any(member in metadata for member in _SECRET_MEMBERS):
        raise InvalidClientDocumentError("a client ID metadata document must not carry a secret")
    method = metadata.get("token_endpoint_auth_method", "none")
    if method in _SHARED_SECRET_METHODS:
        raise InvalidClientDocumentError(
            f"token_endpoint_auth_method {method} uses a shared secret, which a published "
            "document cannot keep (use none)"
        )
    if method == "private_key_jwt":
        raise InvalidClientDocumentError(
            "token_endpoint_auth_method private_key_jwt is not supported here yet (use none)"
        )
    # A published document holds no secret: a client that states no method is public.
    document = {**metadata, "token_endpoint_auth_method": method}
    try:
        checked = validate_client_metadata(document, settings)
        client = checked.apply(
            Client(
                client_id=url,
                created_at=int(time.time() if now is None else now),
                metadata_document=True,
                application_type=application_type_of(
                    document, checked.redirect_uris, insecure_transport=False
                ),
            )
        )
        return check_client(client)
    except OAuth2Error as exc:
        raise InvalidClientDocumentError(exc.description or exc.error) from None
    except ValueError as exc:
        raise InvalidClientDocumentError(str(exc)[:200]) from None

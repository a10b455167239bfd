"""Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document).

A client names itself by an https URL; the document there is its metadata.
``fetch`` gets it without letting the URL reach a private address,
``document`` reads it as a ``Client``, ``directory`` caches what was read.
"""

from .directory import ClientDocuments, DocumentPolicy
from .fetch import DocumentFetchError, FetchPolicy

__all__ = ["ClientDocuments", "DocumentFetchError", "DocumentPolicy", "FetchPolicy"]

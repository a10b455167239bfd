"""OAuth 2.0 Protected Resource Metadata (RFC 9728).

The document names the resource, the authorization servers that issue tokens
for it, the scopes it knows and how it takes tokens, DPoP-bound ones included
(§2, RFC 9449). Its well-known URL is
formed by inserting ``/.well-known/oauth-protected-resource`` between the
resource's host and path (§3.1).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def metadata_path(resource: str) -> str:
    """The path of the metadata document on the resource's host (§3.1)."""
    parts = urlsplit(resource)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(
            f"resource must be an absolute URL without query or fragment: {resource!r}"
        )
    return WELL_KNOWN + parts.path.rstrip("/")


def metadata_url(resource: str) -> str:
    parts = urlsplit(resource)
    return f"{parts.scheme}://{parts.netloc}{metadata_path(resource)}"


def metadata_document(
    resource: str,
    *,
    authorization_servers: Iterable[str],
    scopes_supported: Iterable[str],
    bearer_methods_supported: Iterable[str],
    resource_name: str | None = None,
    dpop_signing_alg_values_supported: Iterable[str] = (),
    dpop_bound_access_tokens_required: bool = False,
) -> dict[str, object]:
    document: dict[str, object] = {
        "resource": resource,
        "authorization_servers": list(authorization_servers),
        "bearer_methods_supported": list(bearer_methods_supported),
    }
    scopes = sorted(set(scopes_supported))
    if scopes:
        document["scopes_supported"] = scopes
    if resource_name:
        document["resource_name"] = resource_name
    algs = list(dpop_signing_alg_values_supported)
    if algs:
        document["dpop_signing_alg_values_supported"] = algs
    if dpop_bound_access_tokens_required:
        document["dpop_bound_access_tokens_required"] = True
    return document

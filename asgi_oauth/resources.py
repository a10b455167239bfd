"""Resource indicators (RFC 8707): which resource servers a token is for.

A client names them with ``resource`` (repeatable) at the authorization and
token endpoints; the server accepts only the resources it was configured with,
and the access token's audience is what was asked for. A refresh request may
narrow the resources of its grant, never widen them (§2.2). A client that names
none gets ``Settings.default_resource`` (unless it asks for OpenID Connect), so
its tokens are audience-bound too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .errors import InvalidTargetError

if TYPE_CHECKING:  # config imports this module
    from .config import Settings

#: Several ``resource`` parameters arrive as one value, space-separated: a URI
#: holds no space, so nothing is lost (see ``app.requests.parse_params``).
MULTI_VALUED = frozenset({"resource"})


def as_pairs(params: Mapping[str, str]) -> list[tuple[str, str]]:
    """``params`` as name-value pairs, a multi-valued one repeated, to send again."""
    return [
        (name, item)
        for name, value in params.items()
        for item in (value.split(" ") if name in MULTI_VALUED else (value,))
    ]


def is_resource_indicator(value: str) -> bool:
    """RFC 8707 §2: an absolute URI without a fragment."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return bool(parts.scheme and (parts.netloc or parts.path)) and "#" not in value


def requested_resources(
    params: Mapping[str, str], known: tuple[str, ...], *, within: tuple[str, ...] | None = None
) -> tuple[str, ...]:
    """The ``resource`` values of a request, each known (and in ``within``, when given).

    Raises ``invalid_target`` (§2) for a malformed, unknown or wider resource.
    """
    value = params.get("resource")
    if value is None:
        return ()
    resources: list[str] = []
    for resource in value.split(" "):
        if not is_resource_indicator(resource):
            raise InvalidTargetError("resource must be an absolute URI without a fragment")
        if resource not in known or (within is not None and resource not in within):
            raise InvalidTargetError(f"unknown resource: {resource[:128]}")
        if resource not in resources:
            resources.append(resource)
    return tuple(resources)


def token_resources(
    params: Mapping[str, str],
    settings: Settings,
    *,
    granted: tuple[str, ...] = (),
    scope: frozenset[str] = frozenset(),
) -> tuple[str, ...]:
    """The resources an access token being issued is for (RFC 8707 §2).

    What ``params`` name, within ``granted`` (the resources of the code, device
    authorization or refresh token it comes from: narrowed, never widened, §2.2);
    else ``granted``; else ``Settings.default_resource``, so a client that omits
    ``resource`` still gets a token only that resource takes. The default is
    decided here, at issuance, not at the authorization request: a client that
    names its resource at the token endpoint only may still name any listed one.
    An OpenID Connect request (scope ``openid``, Core §3.1.2.1) gets no default:
    its token is for the UserInfo endpoint (Core §5.3), the server's own, which
    refuses a token for another resource; naming the issuer beside the default
    would not do, as resource servers take the issuer for "any resource". A
    resource not listed (a site's root, say) stays ``invalid_target``: which of
    the server's resources it means is a guess, and a wrong guess hands a token
    to the wrong audience.
    """
    asked = requested_resources(params, settings.resources, within=granted or None)
    if asked or granted:
        return asked or granted
    if settings.default_resource is None or "openid" in scope:
        return ()
    return (settings.default_resource,)

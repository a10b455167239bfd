"""Registering clients: validated metadata, a generated id, and a secret shown once."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from .crypto import generate_token, hash_secret
from .models import Client
from .scopes import is_scope_token
from .types import (
    APPLICATION_TYPES,
    GRANT_TYPES,
    SIGNING_ALGORITHMS,
    AccessTokenFormat,
    ApplicationType,
    GrantType,
    SigningAlgorithm,
)

_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: Schemes a browser runs, reads or shows itself instead of handing them to an app:
#: a redirect there would run the response in the page, or read local files.
_BROWSER_SCHEMES = frozenset(
    {"javascript", "data", "vbscript", "file", "blob", "about", "filesystem"}
)
#: ``localhost:3000/cb``: a host and port whose ``http://`` was forgotten, which
#: would parse as the scheme ``localhost``.
_HOST_AND_PORT = re.compile(r"[^:/]+:[0-9]+(?:[/?]|$)")
#: The length of ``generate_token()``: 32 random bytes (256 bits), url-safe base64.
MIN_SECRET_LENGTH = 43


@dataclass(frozen=True, slots=True)
class RegisteredClient:
    """A new client and, for a confidential one, its secret in the clear (shown once)."""

    client: Client
    client_secret: str | None


def validate_redirect_uri(
    uri: str,
    *,
    application_type: ApplicationType | None = None,
    insecure_transport: bool = False,
) -> str:
    """Check a redirect URI the way RFC 6749 §3.1.2 and RFC 8252 §7 want it.

    Absolute, no fragment. ``https`` for any kind of client (RFC 8252 §7.2 for a
    native app). A ``native`` app may also use ``http`` on a loopback host
    (§7.3: ``127.0.0.1``, ``[::1]``, or ``localhost``, which §8.3 advises against
    but clients register) and a private-use scheme (§7.1: ``cursor://...``,
    ``com.example.app:/cb``), any but those a browser runs or reads itself. A
    ``web`` app uses ``https`` only (OpenID Connect Registration §2). A client of
    no stated kind (registered before the field) may use what either may.
    ``insecure_transport`` allows ``http`` on any host, for local development.
    """
    if not uri or len(uri.split()) != 1:
        raise ValueError(f"redirect URI must not contain white space: {uri!r}")
    if not uri.isascii():
        # RFC 3986 §2.1: other characters are percent-encoded, as they travel in Location.
        raise ValueError(f"redirect URI must be ASCII (percent-encode the rest): {uri!r}")
    if not uri.isprintable():
        raise ValueError(f"redirect URI must not contain control characters: {uri!r}")
    parts = urlsplit(uri)
    scheme = parts.scheme  # RFC 3986 §3.1 syntax, lower-cased, or empty
    if not scheme:
        raise ValueError(f"redirect URI must be absolute: {uri!r}")
    if parts.fragment or "#" in uri:
        raise ValueError(f"redirect URI must not have a fragment: {uri!r}")
    if scheme in ("https", "http"):
        _check_http_uri(uri, parts, application_type, insecure_transport=insecure_transport)
    elif scheme in _BROWSER_SCHEMES:
        raise ValueError(
            f"{scheme}: is no private-use scheme: the browser would run it, not an app: {uri!r}"
        )
    elif application_type == "web":
        raise ValueError(
            f"a web application's redirect URI must be https (private-use schemes are for"
            f" native apps): {uri!r}"
        )
    elif _HOST_AND_PORT.match(uri):
        raise ValueError(f"redirect URI looks like a host and port without a scheme: {uri!r}")
    elif not uri[len(scheme) + 1 :]:
        raise ValueError(f"redirect URI has nothing after its scheme: {uri!r}")
    return uri


def _check_http_uri(
    uri: str,
    parts: SplitResult,
    application_type: ApplicationType | None,
    *,
    insecure_transport: bool,
) -> None:
    if not parts.hostname:
        raise ValueError(f"redirect URI has no host: {uri!r}")
    try:
        parts.port  # noqa: B018 (raises for a port that is no number in range)
    except ValueError:
        raise ValueError(f"redirect URI has an invalid port: {uri!r}") from None
    # insecure_transport is for local development: any client may then use http,
    # as before clients had a kind, so a web app may too (on http://localhost).
    # /register still refuses http beyond loopback (see ``client_metadata``).
    if parts.scheme == "https" or insecure_transport:
        return
    if application_type == "web":
        raise ValueError(f"a web application's redirect URI must be https: {uri!r}")
    if parts.hostname not in _LOOPBACK_HOSTS:
        raise ValueError(f"http redirect URI allowed on loopback only: {uri!r}")


def validate_logout_uri(
    uri: str, *, insecure_transport: bool = False, loopback: bool = True
) -> str:
    """Check a ``post_logout_redirect_uri`` (RP-Initiated Logout 1.0 §3.1) or, with
    ``loopback=False``, a ``backchannel_logout_uri`` (Back-Channel Logout 1.0 §2.2).

    Absolute ``https`` without a fragment; ``http`` on a loopback host for the first
    (a native app's, RFC 8252 §7.3), and on any host under ``insecure_transport``.
    """
    if not uri or len(uri.split()) != 1 or not (uri.isascii() and uri.isprintable()):
        raise ValueError(f"logout URI must be printable ASCII without white space: {uri!r}")
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"logout URI must be an absolute https URI: {uri!r}")
    if parts.fragment or "#" in uri:
        raise ValueError(f"logout URI must not have a fragment: {uri!r}")
    try:
        parts.port  # noqa: B018 (raises for a port that is no number in range)
    except ValueError:
        raise ValueError(f"logout URI has an invalid port: {uri!r}") from None
    local = loopback and parts.hostname in _LOOPBACK_HOSTS
    if parts.scheme == "http" and not (insecure_transport or local):
        raise ValueError(f"logout URI must be https: {uri!r}")
    return uri


def is_native_redirect_uri(uri: str) -> bool:
    """A URI only a native app would register: http on loopback, or a private-use scheme."""
    parts = urlsplit(uri)
    if parts.scheme == "http":
        return parts.hostname in _LOOPBACK_HOSTS
    return parts.scheme != "https"


def implied_application_type(redirect_uris: Iterable[str]) -> ApplicationType:
    """The kind of a client registered without ``application_type``.

    OpenID Connect Registration §2 defaults it to ``web``, which refuses loopback
    and private-use redirect URIs. The MCP specification (SEP-837) has clients
    send it, noting that servers without OpenID Connect ignore it; clients people
    use (Claude Code, VS Code...) register ``http://localhost:PORT/callback``
    without it. Refusing them gains nothing, so the redirect URIs decide, as the
    MCP SDKs infer it: ``native`` when one of them is only a native app's, else
    ``web``. The client gets no URI that stating ``native`` would not allow.
    """
    return "native" if any(is_native_redirect_uri(uri) for uri in redirect_uris) else "web"


def validate_origin(origin: str) -> str:
    """A CORS origin: scheme://host[:port], nothing more."""
    parts = urlsplit(origin)
    if len(origin.split()) != 1 or parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"origin must be scheme://host[:port]: {origin!r}")
    if parts.path or parts.query or parts.fragment or parts.username:
        raise ValueError(f"origin must be scheme://host[:port]: {origin!r}")
    return origin


def check_client(client: Client, *, insecure_transport: bool = False) -> Client:
    """Validate a client's metadata (for a new client or an update); returns it unchanged."""
    unknown = client.grant_types - set(GRANT_TYPES)
    if unknown:
        raise ValueError(f"unknown grant types: {sorted(unknown)}")
    if client.is_public and "client_credentials" in client.grant_types:
        raise ValueError("a public client cannot use client_credentials (RFC 6749 §4.4)")
    if client.application_type not in (None, *APPLICATION_TYPES):
        raise ValueError(f"application_type must be one of {', '.join(APPLICATION_TYPES)}")
    for uri in client.redirect_uris:
        validate_redirect_uri(
            uri, application_type=client.application_type, insecure_transport=insecure_transport
        )
    for uri in client.post_logout_redirect_uris:
        validate_logout_uri(uri, insecure_transport=insecure_transport)
    if client.backchannel_logout_uri is not None:
        validate_logout_uri(
            client.backchannel_logout_uri, insecure_transport=insecure_transport, loopback=False
        )
    if client.grant_types & {"authorization_code", "implicit"} and not client.redirect_uris:
        raise ValueError("authorization at /authorize needs at least one redirect URI")
    for origin in client.allowed_origins:
        validate_origin(origin)
    if client.access_token_format not in (None, "opaque", "jwt"):
        raise ValueError("access_token_format must be opaque or jwt")
    if client.id_token_signed_response_alg not in SIGNING_ALGORITHMS:
        raise ValueError(f"id_token_signed_response_alg must be one of {SIGNING_ALGORITHMS}")
    if not all(is_scope_token(scope) for scope in client.scope):
        raise ValueError("scopes must be printable ASCII without spaces, quotes or '\\' (§3.3)")
    # RFC 6749 Appendix A.1: client_id = *VSCHAR (printable ASCII, space included).
    if not client.client_id or not (client.client_id.isascii() and client.client_id.isprintable()):
        raise ValueError(f"client_id must be printable ASCII: {client.client_id!r}")
    if not client.name.isprintable():
        raise ValueError(f"the client's name must be printable: {client.name!r}")
    return client


def new_client(
    *,
    name: str,
    redirect_uris: Iterable[str] = (),
    grant_types: Iterable[GrantType] = ("authorization_code", "refresh_token"),
    scope: Iterable[str] = (),
    public: bool = False,
    allowed_origins: Iterable[str] = (),
    is_resource_server: bool = False,
    require_pkce: bool = False,
    insecure_transport: bool = False,
    client_id: str | None = None,
    access_token_format: AccessTokenFormat | None = None,
    id_token_signed_response_alg: SigningAlgorithm = "RS256",
    require_pushed_authorization_requests: bool = False,
    dpop_bound_access_tokens: bool = False,
    application_type: ApplicationType | None = None,
    client_secret: str | None = None,
    post_logout_redirect_uris: Iterable[str] = (),
    backchannel_logout_uri: str | None = None,
) -> RegisteredClient:
    """Build a validated client with a fresh id and, unless public, a secret.

    The secret is ``client_secret`` when given (a secret kept in a vault), else a
    fresh one; either way only its hash is kept. A given secret must be as strong
    as a generated one (RFC 6749 §10.10): at least ``MIN_SECRET_LENGTH`` characters.
    """
    if client_secret is not None:
        if public:
            raise ValueError("a public client has no secret (RFC 6749 §2.1)")
        if len(client_secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"a client secret must have at least {MIN_SECRET_LENGTH} characters,"
                " as a generated one (256 bits): make one with"
                " python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
    secret = None if public else client_secret or generate_token()
    client = Client(
        client_id=client_id or _new_client_id(),
        secret_hash=None if secret is None else hash_secret(secret),
        name=name,
        redirect_uris=tuple(redirect_uris),
        grant_types=frozenset(grant_types),
        scope=frozenset(scope),
        allowed_origins=tuple(allowed_origins),
        is_resource_server=is_resource_server,
        require_pkce=require_pkce,
        created_at=int(time.time()),
        access_token_format=access_token_format,
        id_token_signed_response_alg=id_token_signed_response_alg,
        require_pushed_authorization_requests=require_pushed_authorization_requests,
        dpop_bound_access_tokens=dpop_bound_access_tokens,
        application_type=application_type,
        post_logout_redirect_uris=tuple(post_logout_redirect_uris),
        backchannel_logout_uri=backchannel_logout_uri,
    )
    return RegisteredClient(check_client(client, insecure_transport=insecure_transport), secret)


def _new_client_id() -> str:
    """A random client id that no command line mistakes for an option (no leading dash)."""
    while (client_id := generate_token(16)).startswith("-"):
        pass
    return client_id


def rotate_secret(client: Client) -> RegisteredClient:
    """The client with a fresh secret, shown once; a public client has none to rotate."""
    if client.is_public:
        raise ValueError("a public client has no secret")
    secret = generate_token()
    return RegisteredClient(dataclasses.replace(client, secret_hash=hash_secret(secret)), secret)

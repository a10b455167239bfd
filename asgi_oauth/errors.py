"""OAuth 2.0 errors as exceptions, one class per RFC error code.

Each class carries what RFC 6749 §5.2 puts on the wire — the ``error`` code, an
optional ``error_description``, the HTTP status and any headers — and nothing of
any web framework. The ASGI app renders them in one place::

    OAuth2Error
     ├── InvalidRequestError          invalid_request           400  (RFC 6749 §5.2)
     ├── InvalidClientError           invalid_client            401
     ├── InvalidGrantError            invalid_grant             400
     ├── UnauthorizedClientError      unauthorized_client       400
     ├── UnsupportedGrantTypeError    unsupported_grant_type    400
     ├── InvalidScopeError            invalid_scope             400
     ├── AccessDeniedError            access_denied             400  (RFC 6749 §4.1.2.1)
     ├── UnsupportedTokenTypeError    unsupported_token_type    400  (RFC 7009 §2.2.1)
     ├── UnsupportedResponseTypeError unsupported_response_type 400  (RFC 6749 §4.1.2.1)
     ├── AuthorizationPendingError    authorization_pending     400  (RFC 8628 §3.5)
     ├── SlowDownError                slow_down                 400
     ├── ExpiredTokenError            expired_token             400
     ├── LoginRequiredError           login_required            400  (OpenID Connect Core §3.1.2.6)
     ├── ConsentRequiredError         consent_required          400
     ├── RequestNotSupportedError     request_not_supported     400  (OpenID Connect Core §6)
     ├── RequestUriNotSupportedError  request_uri_not_supported 400
     ├── ServerError                  server_error              500
     └── TemporarilyUnavailableError  temporarily_unavailable   503

``StorageError`` is not an OAuth error: storage backends raise it when the
database fails, and the server turns it into ``TemporarilyUnavailableError``.

Descriptions stay English on the wire (RFC 6749 §5.2: ASCII, for developers). One a
person may read on a page is marked ``N_("...")`` for the pages' translation catalogue;
one with values is raised as a template and its values (``params={"name": ...}``), so
that a page translates the template and then fills them in.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import TracebackType
from typing import ClassVar

logger = logging.getLogger("asgi_oauth")


def N_(text: str) -> str:
    """Marks a description a person may read on a page, for the pages' catalogue
    (``scripts/i18n`` extracts it); the text itself is unchanged."""
    return text


class OAuth2Error(Exception):
    """An error the server deliberately shows the client."""

    error: ClassVar[str] = "invalid_request"
    status_code: ClassVar[int] = 400

    def __init__(
        self,
        description: str | None = None,
        *,
        status_code: int | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> None:
        #: The description before its ``{name}`` placeholders are filled from
        #: ``params``: the pages look it up in their catalogue, then fill it in.
        self.template = description
        self.params: dict[str, str] = dict(params or {})
        if description is not None and self.params:
            description = description.format(**self.params)
        super().__init__(description or self.error)
        self.description = description
        self.status = status_code if status_code is not None else self.status_code
        self.headers: dict[str, str] = dict(headers or {})

    def to_dict(self, error_uri: str | None = None) -> dict[str, str]:
        """The JSON body (RFC 6749 §5.2); with ``error_uri`` (``Settings.error_uri``), the
        page that explains this error to people (``error_uri_for``)."""
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        if error_uri is not None:
            body["error_uri"] = error_uri_for(error_uri, self.error)
        return body


def error_uri_for(error_uri: str, error: str) -> str:
    """Where ``Settings.error_uri`` explains the error ``error``: the code as the fragment
    (the setting has none; a query it has stays), so one page explains every code."""
    return f"{error_uri}#{error}"


class InvalidRequestError(OAuth2Error):
    """The request is missing a required parameter, includes an unsupported
    parameter value, repeats a parameter, or is otherwise malformed."""

    error = "invalid_request"


class InvalidClientError(OAuth2Error):
    """Client authentication failed (unknown client, no client authentication
    included, or unsupported authentication method)."""

    error = "invalid_client"
    status_code = 401


class InvalidGrantError(OAuth2Error):
    """The authorization grant or refresh token is invalid, expired, revoked,
    does not match the redirection URI, or was issued to another client."""

    error = "invalid_grant"


class UnauthorizedClientError(OAuth2Error):
    """The authenticated client is not authorized to use this grant type."""

    error = "unauthorized_client"


class UnsupportedGrantTypeError(OAuth2Error):
    """The grant type is not supported (or not enabled) by this server."""

    error = "unsupported_grant_type"


class InvalidScopeError(OAuth2Error):
    """The requested scope is invalid, unknown, malformed, or exceeds the scope
    granted by the resource owner."""

    error = "invalid_scope"


class AccessDeniedError(OAuth2Error):
    """The resource owner or authorization server denied the request."""

    error = "access_denied"


class UnsupportedTokenTypeError(OAuth2Error):
    """The server does not support the revocation of the presented token type."""

    error = "unsupported_token_type"


class UnsupportedResponseTypeError(OAuth2Error):
    """The server does not support (or has not enabled) this ``response_type``."""

    error = "unsupported_response_type"


class AuthorizationPendingError(OAuth2Error):
    """The user has not yet approved or denied the device authorization request."""

    error = "authorization_pending"


class SlowDownError(OAuth2Error):
    """The device polled faster than its interval; the interval grew by five seconds."""

    error = "slow_down"


class ExpiredTokenError(OAuth2Error):
    """The device code expired; the device must start a new request."""

    error = "expired_token"


class LoginRequiredError(OAuth2Error):
    """``prompt=none`` was asked but the user is not signed in."""

    error = "login_required"


class ConsentRequiredError(OAuth2Error):
    """``prompt=none`` was asked but the user has not consented to this request."""

    error = "consent_required"


class RequestNotSupportedError(OAuth2Error):
    """A request object (``request``) was sent; this server takes none (Core §6.1)."""

    error = "request_not_supported"


class RequestUriNotSupportedError(OAuth2Error):
    """A ``request_uri`` was sent; this server takes none (Core §6.2)."""

    error = "request_uri_not_supported"


class InvalidTargetError(OAuth2Error):
    """A ``resource`` is malformed, unknown here, or wider than the grant (RFC 8707 §2)."""

    error = "invalid_target"


class InvalidDPoPProofError(OAuth2Error):
    """The DPoP proof is missing, malformed, replayed or does not fit the request
    (RFC 9449 §5, §7.1)."""

    error = "invalid_dpop_proof"


class UseDPoPNonceError(OAuth2Error):
    """The DPoP proof must carry the server nonce in the ``DPoP-Nonce`` header (RFC 9449 §8)."""

    error = "use_dpop_nonce"

    def __init__(self, nonce: str, description: str = "a DPoP proof with this nonce is required"):
        super().__init__(description, headers={"DPoP-Nonce": nonce})


class InvalidRedirectUriError(OAuth2Error):
    """A registered redirect URI is not acceptable (RFC 7591 §3.2.2)."""

    error = "invalid_redirect_uri"


class InvalidClientMetadataError(OAuth2Error):
    """A field of the client metadata is invalid or not allowed here (RFC 7591 §3.2.2)."""

    error = "invalid_client_metadata"


class InvalidTokenError(OAuth2Error):
    """A bearer token at a protected endpoint of this server (registration management,
    RFC 7592 §3) is missing, unknown or not for this resource (RFC 6750 §3.1)."""

    error = "invalid_token"
    status_code = 401

    def __init__(self, description: str = "the access token is not valid") -> None:
        super().__init__(
            description,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )


class ServerError(OAuth2Error):
    """The server met an unexpected condition; details go to the log only."""

    error = "server_error"
    status_code = 500


class TemporarilyUnavailableError(OAuth2Error):
    """The server cannot handle the request now: its storage is unavailable, or it was
    switched unavailable for maintenance (``asgi_oauth.availability``)."""

    error = "temporarily_unavailable"
    status_code = 503

    @classmethod
    def for_maintenance(cls, retry_after: int) -> TemporarilyUnavailableError:
        """The answer of a server switched unavailable: retry in ``retry_after`` seconds."""
        return cls(
            N_("the server is down for maintenance; retry later"),
            headers={"Retry-After": str(retry_after)},
        )

    @classmethod
    def from_storage(cls, exc: StorageError) -> TemporarilyUnavailableError:
        """The answer to a failed store: retry soon; the details stay in the log."""
        logger.error("storage failure: %s", exc)
        return cls(
            N_("the server cannot reach its storage; retry later"), headers={"Retry-After": "1"}
        )


class StorageError(Exception):
    """A storage backend could not complete an operation; nothing was written."""


class _StorageGuard:
    """Turns a ``StorageError`` into ``temporarily_unavailable`` (a stateless singleton)."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, StorageError):
            raise TemporarilyUnavailableError.from_storage(exc) from exc


#: ``with storage_guard:`` around store calls on every endpoint.
storage_guard = _StorageGuard()

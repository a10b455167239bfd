"""The authorization endpoint's rules (RFC 6749 §3.1, §4.1.1, §4.2.1), free of HTTP.

Validation runs in the order RFC 6749 §4.1.2.1 dictates: until the client and
its redirect URI are known to be good, an error is shown to the user and
nothing is redirected (no open redirector); after that, errors travel to the
redirect URI in the request's response mode, with ``state`` and ``iss``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlencode, urlsplit

from .config import Settings
from .errors import (
    InvalidRequestError,
    OAuth2Error,
    UnauthorizedClientError,
    UnsupportedResponseTypeError,
)
from .models import Client
from .pkce import is_valid_challenge
from .scopes import narrow_scope, parse_scope
from .types import RESPONSE_MODES, CodeChallengeMethod, ResponseMode, ResponseType

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
_PROMPTS = frozenset({"none", "login", "consent", "select_account"})
#: What a ``response_type`` needs among the client's grant types (RFC 7591 §2.1).
_NEEDS_GRANT = {"code": "authorization_code", "token": "implicit", "none": "authorization_code"}


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A validated authorization request, ready for the user's decision."""

    client: Client
    response_type: ResponseType
    #: Where the response goes: the ``redirect_uri`` given, or the client's only one.
    redirect_uri: str
    #: Whether ``redirect_uri`` was in the request (then the token request must repeat it).
    redirect_uri_given: bool
    response_mode: ResponseMode
    state: str | None
    scope: frozenset[str]
    code_challenge: str | None = None
    code_challenge_method: CodeChallengeMethod | None = None
    nonce: str | None = None
    prompt: frozenset[str] = frozenset()
    #: The request's own parameters, for a page to send again with the user's decision.
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuthorizationResponse:
    """Where the browser goes next and what it carries (RFC 6749 §4.1.2, §4.2.2)."""

    redirect_uri: str
    response_mode: ResponseMode
    params: Mapping[str, str]

    @property
    def location(self) -> str:
        """The redirect target for the query and fragment modes."""
        encoded = urlencode(self.params)
        if self.response_mode == "fragment":
            return f"{self.redirect_uri}#{encoded}"
        # §3.1.2: keep the redirect URI's own query and add ours to it.
        separator = "&" if urlsplit(self.redirect_uri).query else "?"
        return f"{self.redirect_uri}{separator}{encoded}"


class AuthorizationRedirectError(Exception):
    """An error to report at the client's redirect URI (RFC 6749 §4.1.2.1)."""

    def __init__(self, error: OAuth2Error, response: AuthorizationResponse) -> None:
        super().__init__(error.description or error.error)
        self.error = error
        self.response = response


def redirect_uri_matches(registered: str, requested: str) -> bool:
    """Exact string match, but any port on a loopback redirect URI (RFC 8252 §7.3)."""
    if registered == requested:
        return True
    reg, req = urlsplit(registered), urlsplit(requested)
    if reg.scheme != "http" or req.scheme != "http" or reg.hostname not in _LOOPBACK_HOSTS:
        return False
    if "@" in req.netloc or "#" in requested or len(requested.split()) != 1:
        return False
    try:
        req.port  # noqa: B018 - a malformed port raises
    except ValueError:
        return False
    return (reg.hostname, reg.path, reg.query) == (req.hostname, req.path, req.query)


def authorization_error(
    error: OAuth2Error,
    *,
    redirect_uri: str,
    response_mode: ResponseMode,
    state: str | None,
    issuer: str,
) -> AuthorizationRedirectError:
    """An error response for the redirect URI, with ``state`` and ``iss`` (RFC 9207 §2)."""
    params = {"error": error.error}
    if error.description:
        params["error_description"] = error.description
    if state is not None:
        params["state"] = state
    params["iss"] = issuer
    return AuthorizationRedirectError(
        error, AuthorizationResponse(redirect_uri, response_mode, params)
    )


def validate_authorization_request(
    params: Mapping[str, str],
    repeated: frozenset[str],
    client: Client | None,
    settings: Settings,
) -> AuthorizationRequest:
    """Check an authorization request against its client and the server's settings.

    Raises ``OAuth2Error`` while the client or redirect URI is in doubt (show it
    to the user), then ``AuthorizationRedirectError`` (send it to the client).
    """
    for name in ("client_id", "redirect_uri"):
        if name in repeated:
            raise InvalidRequestError(f"repeated parameter: {name}")
    if "client_id" not in params:
        raise InvalidRequestError("missing parameter: client_id")
    if client is None:
        raise InvalidRequestError("unknown client")
    redirect_uri = _resolve_redirect_uri(client, params.get("redirect_uri"))

    response_type = params.get("response_type")
    default_mode: ResponseMode = "fragment" if response_type == "token" else "query"
    mode = params.get("response_mode", default_mode)
    state = params.get("state")
    response_mode: ResponseMode = mode if mode in RESPONSE_MODES else default_mode
    if response_type == "token" and response_mode == "query":
        # Multiple Response Type Encoding Practices §5: tokens (and so their
        # errors) never travel in a query; the refusal below goes in the fragment.
        response_mode = "fragment"

    def fail(error: OAuth2Error) -> AuthorizationRedirectError:
        return authorization_error(
            error,
            redirect_uri=redirect_uri,
            response_mode=response_mode,
            state=state,
            issuer=settings.issuer,
        )

    if "state" in repeated:
        # The state to echo is in doubt: answer without one.
        state = None
    if repeated:
        raise fail(InvalidRequestError(f"repeated parameter: {sorted(repeated)[0][:64]}"))
    if mode not in RESPONSE_MODES:
        raise fail(InvalidRequestError(f"unsupported response_mode: {mode[:64]}"))
    if response_type is None:
        raise fail(InvalidRequestError("missing parameter: response_type"))
    if response_type not in settings.response_types:
        raise fail(UnsupportedResponseTypeError(f"unsupported response_type: {response_type[:64]}"))
    if response_type == "token" and mode == "query":
        raise fail(InvalidRequestError("response_mode=query is not allowed with tokens"))
    if _NEEDS_GRANT[response_type] not in client.grant_types:
        raise fail(UnauthorizedClientError(f"client may not use response_type={response_type}"))
    try:
        scope = narrow_scope(parse_scope(params.get("scope")), client.scope)
        challenge, method = _check_pkce(params, client, settings, response_type)
        prompt = _parse_prompt(params.get("prompt"))
    except OAuth2Error as exc:
        raise fail(exc) from None
    return AuthorizationRequest(
        client=client,
        response_type=response_type,
        redirect_uri=redirect_uri,
        redirect_uri_given="redirect_uri" in params,
        response_mode=response_mode,
        state=state,
        scope=scope,
        code_challenge=challenge,
        code_challenge_method=method,
        nonce=params.get("nonce"),
        prompt=prompt,
        params=dict(params),
    )


def _resolve_redirect_uri(client: Client, given: str | None) -> str:
    if given is None:
        # §3.1.2.3: it may be omitted only when a single URI was registered.
        if len(client.redirect_uris) != 1:
            raise InvalidRequestError("redirect_uri required: the client registered several")
        return client.redirect_uris[0]
    if not any(redirect_uri_matches(uri, given) for uri in client.redirect_uris):
        raise InvalidRequestError("redirect_uri is not registered for this client")
    return given


def _check_pkce(
    params: Mapping[str, str], client: Client, settings: Settings, response_type: str
) -> tuple[str | None, CodeChallengeMethod | None]:
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if response_type != "code":
        return None, None
    if challenge is None:
        if method is not None:
            raise InvalidRequestError("code_challenge_method without code_challenge")
        if client.is_public or client.require_pkce or settings.require_pkce:
            raise InvalidRequestError("code_challenge required (RFC 7636)")
        return None, None
    # RFC 7636 §4.3: the method defaults to plain.
    method = method or "plain"
    if method not in ("S256", "plain") or (method == "plain" and not settings.allow_plain_pkce):
        raise InvalidRequestError("transform algorithm not supported")
    checked = cast(CodeChallengeMethod, method)
    if not is_valid_challenge(challenge, checked):
        raise InvalidRequestError("malformed code_challenge")
    return challenge, checked


def _parse_prompt(value: str | None) -> frozenset[str]:
    # OpenID Connect Core §3.1.2.1: space-delimited; "none" stands alone.
    prompt = frozenset(value.split()) if value else frozenset()
    unknown = prompt - _PROMPTS
    if unknown:
        raise InvalidRequestError(f"unsupported prompt: {sorted(unknown)[0][:32]}")
    if "none" in prompt and len(prompt) > 1:
        raise InvalidRequestError("prompt=none must stand alone")
    return prompt

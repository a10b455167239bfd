"""The authorization endpoint's rules (RFC 6749 §3.1, §4.1.1, §4.2.1), free of HTTP.

Validation runs in the order RFC 6749 §4.1.2.1 dictates: until the client and
its redirect URI are known to be good, an error is shown to the user and
nothing is redirected (no open redirector); after that, errors travel to the
redirect URI in the request's response mode, with ``state`` and ``iss``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlencode, urlsplit

from .config import Settings
from .errors import (
    N_,
    InvalidRequestError,
    OAuth2Error,
    RequestNotSupportedError,
    RequestUriNotSupportedError,
    UnauthorizedClientError,
    UnsupportedResponseTypeError,
)
from .models import Client
from .openid import is_openid
from .pkce import is_valid_challenge
from .resources import requested_resources
from .scopes import narrow_scope, parse_scope
from .types import RESPONSE_MODES, RESPONSE_TYPES, CodeChallengeMethod, ResponseMode, ResponseType

#: An http loopback redirect URI (RFC 8252 §7.3), split around its port, if any.
_LOOPBACK_URI = re.compile(
    r"(?P<origin>(?i:http)://(?i:127\.0\.0\.1|\[::1\]|localhost))(?::[0-9]+)?(?P<rest>[/?].*)?",
    re.DOTALL,
)
#: A port as a native app writes it: decimal, no sign, no leading zero.
_PORT = re.compile(r":[1-9][0-9]{0,4}")
_MAX_PORT = 65535
_PROMPTS = frozenset({"none", "login", "consent", "select_account"})
#: What each word of a ``response_type`` needs among the client's grant types
#: (RFC 7591 §2.1, OpenID Connect Registration §2).
_NEEDS_GRANT = {
    "code": "authorization_code",
    "token": "implicit",
    "id_token": "implicit",
    "none": "authorization_code",
}
#: Response types by their words: the order of the words is not significant
#: (OAuth 2.0 Multiple Response Type Encoding Practices §5).
_BY_WORDS: dict[frozenset[str], ResponseType] = {frozenset(t.split()): t for t in RESPONSE_TYPES}
_MAX_NONCE = 512


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A validated authorization request, ready for the user's decision."""

    client: Client
    response_type: ResponseType
    #: Where the response goes: the registered URI the request named (with its port,
    #: on loopback), or the client's only one.
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
    #: OpenID Connect Core §3.1.2.1: the oldest sign-in to accept, in seconds
    #: (0 asks for a new one, as ``prompt=login`` does).
    max_age: int | None = None
    login_hint: str | None = None
    id_token_hint: str | None = None
    #: Who ``id_token_hint`` names, once the server has verified it.
    hint_subject: str | None = None
    #: RFC 8707 §2: the resources the tokens may be for.
    resource: tuple[str, ...] = ()
    #: RFC 9449 §10: the DPoP key the code must be redeemed with.
    dpop_jkt: str | None = None
    #: The pushed request this came from (RFC 9126 §4), used up when the code is issued.
    request_uri_hash: str | None = None
    #: When it was pushed: a sign-in since then satisfies ``prompt=login`` and
    #: ``max_age``, which the pushed parameters keep asking for.
    pushed_at: int | None = None

    @property
    def is_openid(self) -> bool:
        """An OpenID Connect request: the ``openid`` scope was granted (Core §3.1.2.1)."""
        return is_openid(self.scope)

    @property
    def returns(self) -> frozenset[str]:
        """The words of the response type: what the authorization response carries."""
        return frozenset(self.response_type.split())


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


def registered_redirect_uri(
    registered: str, requested: str, *, any_loopback_port: bool = True
) -> str | None:
    """The URI to redirect to when ``requested`` names ``registered``, else None.

    RFC 6749 §3.1.2.3, RFC 9700 §4.1.3: the strings must be identical. RFC 8252
    §7.3: for a native app's http loopback URI (``127.0.0.1``, ``[::1]``, and
    ``localhost`` when registered so: each matches only itself), the port may
    differ, and is all that differs: the answer is ``registered`` with the
    requested port, never a spelling compared otherwise. ``any_loopback_port``
    is False for a web application, whose URIs are compared whole.
    """
    if requested == registered:
        return registered
    loopback = _LOOPBACK_URI.fullmatch(registered) if any_loopback_port else None
    if loopback is None or not requested.startswith(loopback["origin"]):
        return None
    origin, rest = loopback["origin"], loopback["rest"] or ""
    tail = requested[len(origin) :]
    if not tail.endswith(rest):
        return None
    port = tail[: len(tail) - len(rest)]
    if port and (_PORT.fullmatch(port) is None or int(port[1:]) > _MAX_PORT):
        return None
    return f"{origin}{port}{rest}"


def authorization_error(
    error: OAuth2Error,
    *,
    redirect_uri: str,
    response_mode: ResponseMode,
    state: str | None,
    issuer: str,
    error_uri: str | None = None,
) -> AuthorizationRedirectError:
    """An error response for the redirect URI, with ``state`` and ``iss`` (RFC 9207 §2),
    and ``error_uri`` (§4.1.2.1) when ``Settings.error_uri`` names a page explaining it."""
    params = error.to_dict(error_uri)
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
    *,
    pushed: bool = False,
) -> AuthorizationRequest:
    """Check an authorization request against its client and the server's settings.

    ``pushed``: the parameters came to ``/par`` (RFC 9126), not from the browser.
    Raises ``OAuth2Error`` while the client or redirect URI is in doubt (show it
    to the user), then ``AuthorizationRedirectError`` (send it to the client).
    """
    for name in ("client_id", "redirect_uri"):
        if name in repeated:
            raise InvalidRequestError(N_("repeated parameter: {name}"), params={"name": name})
    if "client_id" not in params:
        raise InvalidRequestError(N_("missing parameter: client_id"))
    if client is None:
        raise InvalidRequestError(N_("unknown client"))
    redirect_uri = _resolve_redirect_uri(client, params.get("redirect_uri"))

    given_type = params.get("response_type")
    words = frozenset(given_type.split(" ")) if given_type else frozenset()
    returns_tokens = bool(words & {"token", "id_token"})
    # Multiple Response Type Encoding Practices §5: the default for anything
    # that returns a token is the fragment, and tokens (and so their errors)
    # never travel in a query; the refusal below goes in the fragment.
    default_mode: ResponseMode = "fragment" if returns_tokens else "query"
    mode = params.get("response_mode", default_mode)
    state = params.get("state")
    response_mode: ResponseMode = mode if mode in RESPONSE_MODES else default_mode
    if returns_tokens and response_mode == "query":
        response_mode = "fragment"

    def fail(error: OAuth2Error) -> AuthorizationRedirectError:
        return authorization_error(
            error,
            redirect_uri=redirect_uri,
            response_mode=response_mode,
            state=state,
            issuer=settings.issuer,
            error_uri=settings.error_uri,
        )

    if "state" in repeated:
        # The state to echo is in doubt: answer without one.
        state = None
    if repeated:
        raise fail(InvalidRequestError(f"repeated parameter: {sorted(repeated)[0][:64]}"))
    if mode not in RESPONSE_MODES:
        raise fail(InvalidRequestError(f"unsupported response_mode: {mode[:64]}"))
    # OpenID Connect Core §6: refuse request objects rather than ignore what they say.
    if "request" in params:
        raise fail(RequestNotSupportedError("request objects are not supported"))
    if "request_uri" in params:
        raise fail(RequestUriNotSupportedError("request_uri must come from /par (RFC 9126)"))
    if not pushed and (
        settings.require_pushed_authorization_requests
        or client.require_pushed_authorization_requests
    ):
        raise fail(InvalidRequestError("push the authorization request to /par first (RFC 9126)"))
    if given_type is None:
        raise fail(InvalidRequestError("missing parameter: response_type"))
    response_type = _BY_WORDS.get(words)
    if response_type is None or response_type not in settings.response_types:
        raise fail(UnsupportedResponseTypeError(f"unsupported response_type: {given_type[:64]}"))
    if returns_tokens and mode == "query":
        raise fail(InvalidRequestError("response_mode=query is not allowed with tokens"))
    if any(_NEEDS_GRANT[word] not in client.grant_types for word in words):
        raise fail(UnauthorizedClientError(f"client may not use response_type={response_type}"))
    try:
        scope = narrow_scope(parse_scope(params.get("scope")), client.scope)
        challenge, method = _check_pkce(params, client, settings, words)
        prompt = _parse_prompt(params.get("prompt"))
        nonce = _check_openid(params, words, scope)
        max_age = _parse_max_age(params.get("max_age"))
        resource = requested_resources(params, settings.resources)
        dpop_jkt = _parse_dpop_jkt(params.get("dpop_jkt"))
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
        nonce=nonce,
        prompt=prompt,
        params=dict(params),
        max_age=max_age,
        login_hint=params.get("login_hint"),
        id_token_hint=params.get("id_token_hint"),
        resource=resource,
        dpop_jkt=dpop_jkt,
    )


def _resolve_redirect_uri(client: Client, given: str | None) -> str:
    if given is None:
        # §3.1.2.3: it may be omitted only when a single URI was registered.
        if len(client.redirect_uris) != 1:
            raise InvalidRequestError(N_("redirect_uri required: the client registered several"))
        return client.redirect_uris[0]
    any_port = client.application_type != "web"  # RFC 8252 §7.3 is for native apps
    for registered in client.redirect_uris:
        redirect_uri = registered_redirect_uri(registered, given, any_loopback_port=any_port)
        if redirect_uri is not None:
            return redirect_uri
    raise InvalidRequestError(N_("redirect_uri is not registered for this client"))


def _check_pkce(
    params: Mapping[str, str], client: Client, settings: Settings, words: frozenset[str]
) -> tuple[str | None, CodeChallengeMethod | None]:
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if "code" not in words:
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


def _check_openid(
    params: Mapping[str, str], words: frozenset[str], scope: frozenset[str]
) -> str | None:
    """The nonce, which an ID token from the authorization endpoint must carry."""
    nonce = params.get("nonce")
    if nonce is not None and (not nonce or len(nonce) > _MAX_NONCE):
        raise InvalidRequestError(f"nonce must be 1 to {_MAX_NONCE} characters")
    if "id_token" in words:
        if not is_openid(scope):
            raise InvalidRequestError("response_type id_token needs the openid scope")
        # OpenID Connect Core §3.2.2.1, §3.3.2.11: replay protection in the front channel.
        if nonce is None:
            raise InvalidRequestError("nonce is required when the response has an id_token")
    return nonce


def _parse_max_age(value: str | None) -> int | None:
    # OpenID Connect Core §3.1.2.1: a non-negative number of seconds.
    if value is None:
        return None
    if not value.isdigit() or not value.isascii() or len(value) > 10:
        raise InvalidRequestError("max_age must be a non-negative integer")
    return int(value)


def _parse_dpop_jkt(value: str | None) -> str | None:
    # RFC 9449 §10: the base64url SHA-256 thumbprint (RFC 7638) of the client's DPoP key.
    if value is None:
        return None
    if len(value) != 43 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in value):
        raise InvalidRequestError("dpop_jkt must be a base64url SHA-256 JWK thumbprint")
    return value

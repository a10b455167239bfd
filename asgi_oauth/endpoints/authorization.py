"""The authorization endpoint (RFC 6749 §3.1): validate a request, decide whether to ask
the person, and issue what the response type asks for once they approved.

The HTTP side (sign-in, the consent page, rendering the response) is in
``asgi_oauth.app.authorize``; what makes a request valid is in
``asgi_oauth.authorization``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from ..authorization import (
    AuthorizationRedirectError,
    AuthorizationRequest,
    AuthorizationResponse,
    authorization_error,
    validate_authorization_request,
)
from ..client_lookup import ClientLookup
from ..crypto import hash_token, time_ordered_token
from ..errors import AccessDeniedError, InvalidRequestError, OAuth2Error, storage_guard
from ..events import security_event
from ..grants import GrantContext
from ..grants.base import mint_tokens, new_family_id
from ..keys import InvalidJWTError
from ..models import AuthorizationCode, ResourceOwner
from ..openid import Authentication
from .openid import OpenIDProvider
from .par import REQUEST_URI_PREFIX, PushedAuthorization


class AuthorizationEndpoint:
    """From a validated request and an approving person to an authorization response."""

    def __init__(
        self,
        ctx: GrantContext,
        clients: ClientLookup,
        pushed: PushedAuthorization,
        openid: OpenIDProvider,
    ) -> None:
        self._ctx = ctx
        self._clients = clients
        self._storage = ctx.storage
        self._settings = ctx.settings
        self._pushed = pushed
        self._openid = openid

    async def request(
        self, params: Mapping[str, str], repeated: frozenset[str] = frozenset()
    ) -> AuthorizationRequest:
        """Validate an authorization request (see ``authorization`` for what it raises)."""
        client = None
        client_id = params.get("client_id")
        if client_id is not None and "client_id" not in repeated:
            with storage_guard:
                # RFC 6749 §4.1.2.1: a client in doubt is told to the person, not redirected to.
                client = await self._clients.find(client_id)
        request_uri = params.get("request_uri", "")
        if client is not None and request_uri.startswith(REQUEST_URI_PREFIX):
            if "request_uri" in repeated:
                raise InvalidRequestError("repeated parameter: request_uri")
            request = await self._pushed.pushed_request(client, request_uri)
        else:
            request = validate_authorization_request(params, repeated, client, self._settings)
        if request.id_token_hint is not None:
            request = replace(request, hint_subject=await self._hint_subject(request))
        return request

    async def _hint_subject(self, request: AuthorizationRequest) -> str:
        """Who ``id_token_hint`` names; a hint that is not ours goes back as an error."""
        try:
            return await self._openid.hint_subject(
                request.id_token_hint or "", request.client.client_id
            )
        except InvalidJWTError as exc:
            raise self._error(
                request, InvalidRequestError(f"id_token_hint is not valid: {str(exc)[:64]}")
            ) from None

    async def needs_consent(self, request: AuthorizationRequest, owner: ResourceOwner) -> bool:
        """Whether to ask the user: ``prompt=consent``, or scopes not granted before."""
        if "consent" in request.prompt:
            return True
        if not remembered_consent_applies(request):
            return True
        granted = await self._granted(request, owner)
        return granted is None or not request.scope <= granted

    async def allowed_before(
        self, request: AuthorizationRequest, owner: ResourceOwner
    ) -> frozenset[str]:
        """The scopes of ``request`` the person already allowed this client: a client
        stepping up (MCP "Step-Up Authorization Flow") is asked only for the rest."""
        return request.scope & (await self._granted(request, owner) or frozenset())

    async def _granted(
        self, request: AuthorizationRequest, owner: ResourceOwner
    ) -> frozenset[str] | None:
        """What the person allowed this client and asked to be remembered; None: never asked."""
        with storage_guard:
            return await self._storage.get_consent(owner.subject, request.client.client_id)

    async def authorize(
        self, request: AuthorizationRequest, owner: ResourceOwner, *, remember: bool = False
    ) -> AuthorizationResponse:
        """The user approved: issue what the response type asks for (§4.1.2, §4.2.2).

        ``remember`` keeps the consent, so the same scopes are not asked again.
        """
        client, storage = request.client, self._storage
        params: dict[str, str] = {}
        with storage_guard:
            if remember:
                granted = await storage.get_consent(owner.subject, client.client_id)
                await storage.save_consent(
                    owner.subject,
                    client.client_id,
                    request.scope | (granted or frozenset()),
                    now=self._ctx.now(),
                )
            returns = request.returns
            if self._ctx.keys is not None:
                await self._ctx.keys.ready()
            if request.request_uri_hash is not None:
                await self._pushed.consume(request.request_uri_hash)
            if "code" in returns:
                params["code"] = await self._issue_code(request, owner)
            if "token" in returns:
                params.update(await self._issue_implicit(request, owner.subject))
            if "id_token" in returns:
                authentication = Authentication(
                    owner.subject, owner.auth_time, owner.acr, owner.amr, request.nonce
                )
                params["id_token"] = await self._openid.id_token(
                    client,
                    authentication,
                    request.scope,
                    access_token=params.get("access_token"),
                    code=params.get("code"),
                    # Core §5.4: a front-channel ID token carries user claims only
                    # when no access token can fetch them from userinfo. (The token
                    # endpoint's, sent to the client directly, always carries them.)
                    with_user_claims=request.response_type == "id_token",
                )
        security_event(
            "authorization_granted",
            client_id=client.client_id,
            sub=owner.subject,
            scope=request.scope,
            response_type=request.response_type,
        )
        if request.state is not None:
            params["state"] = request.state
        params["iss"] = self._settings.issuer
        return AuthorizationResponse(request.redirect_uri, request.response_mode, params)

    def failed(self, request: AuthorizationRequest, error: OAuth2Error) -> AuthorizationResponse:
        """An error response for a valid request: the user denied, or could not be asked."""
        if isinstance(error, AccessDeniedError):
            security_event("consent_denied", client_id=request.client.client_id)
        elif error.status != 503:
            security_event(
                "authorization_refused", client_id=request.client.client_id, error=error.error
            )
        return self._error(request, error).response

    async def create_code(self, params: Mapping[str, str], subject: str) -> str:
        """Issue a code for a request approved elsewhere, checked like ``/authorize``
        checks it (a host application's own consent screen)."""
        try:
            request = await self.request({**params, "response_type": "code"})
        except AuthorizationRedirectError as exc:
            raise exc.error from None
        with storage_guard:
            return await self._issue_code(request, ResourceOwner(subject))

    def _error(
        self, request: AuthorizationRequest, error: OAuth2Error
    ) -> AuthorizationRedirectError:
        return authorization_error(
            error,
            redirect_uri=request.redirect_uri,
            response_mode=request.response_mode,
            state=request.state,
            issuer=self._settings.issuer,
            error_uri=self._settings.error_uri,
        )

    async def _issue_code(self, request: AuthorizationRequest, owner: ResourceOwner) -> str:
        code = time_ordered_token()
        now = self._ctx.now()
        await self._storage.save_authorization_code(
            AuthorizationCode(
                code_hash=hash_token(code),
                client_id=request.client.client_id,
                subject=owner.subject,
                scope=request.scope,
                # §4.1.3: the token request repeats it only if the authorization request had it.
                redirect_uri=request.redirect_uri if request.redirect_uri_given else None,
                family_id=new_family_id(),
                issued_at=now,
                expires_at=now + self._settings.authorization_code_lifetime,
                code_challenge=request.code_challenge,
                code_challenge_method=request.code_challenge_method,
                nonce=request.nonce,
                auth_time=owner.auth_time,
                acr=owner.acr,
                amr=owner.amr,
                resource=request.resource,
                dpop_jkt=request.dpop_jkt,
            )
        )
        return code

    async def _issue_implicit(self, request: AuthorizationRequest, subject: str) -> dict[str, str]:
        # §4.2.2: an access token only, never a refresh token.
        tokens = mint_tokens(
            self._ctx,
            request.client,
            scope=request.scope,
            subject=subject,
            family_id=new_family_id(),
            with_refresh=False,
            resource=request.resource,
        )
        await self._storage.save_tokens(tokens.rows)
        return {k: str(v) for k, v in tokens.response.to_dict().items()}


def remembered_consent_applies(request: AuthorizationRequest) -> bool:
    """Whether a remembered consent may ever spare asking for a request like this one.

    Never for a public client's loopback or private-use redirect URI: such a URI
    cannot prove which app is asking (RFC 8252 §8.6), so a native app is asked
    every time, and the consent page does not offer to remember.
    """
    return not (request.client.is_public and not request.redirect_uri.startswith("https://"))

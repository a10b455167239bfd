"""The registration endpoints over HTTP: ``POST /register`` (RFC 7591 §3) and
``GET``, ``PUT``, ``DELETE /register/{client_id}`` (RFC 7592 §2), JSON in and out.

The initial access token and the registration access token travel as bearer
tokens in the Authorization header (RFC 6750 §2.1); every answer is ``no-store``.
"""

from __future__ import annotations

import json

from starlette.types import Receive, Scope, Send

from ..endpoints.paths import REGISTRATION_PATH
from ..errors import InvalidClientMetadataError, InvalidRequestError
from ..requests import OAuthRequest
from ..server import AuthorizationServer
from .requests import RequestHeaders, read_body, route_path
from .responses import NO_STORE, send_empty, send_error, send_json

_CONFIGURATION_PREFIX = REGISTRATION_PATH + "/"


class RegistrationEndpoint:
    """``/register`` and everything below it."""

    def __init__(self, server: AuthorizationServer) -> None:
        self._registrar = server.registrar
        self._max_body = server.settings.max_body_size
        self._error_uri = server.settings.error_uri

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            status, body = await self._handle(scope, receive)
        except Exception as exc:
            await send_error(send, exc, error_uri=self._error_uri)
            return
        if body is None:
            await send_empty(send, status, NO_STORE)
        else:
            await send_json(send, status, body, NO_STORE)

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[int, object | None]:
        headers = RequestHeaders.from_scope(scope)
        path, method = route_path(scope), scope["method"]
        token = _bearer_token(headers.authorization)
        registrar = self._registrar
        if path == REGISTRATION_PATH:
            _allow(method, ("POST",))
            document = await self._read_json(receive, headers)
            client = scope.get("client")
            request = OAuthRequest(client_address=client[0] if client else None)
            return 201, await registrar.register(
                document, initial_access_token=token, request=request
            )
        client_id = path[len(_CONFIGURATION_PREFIX) :]
        if not path.startswith(_CONFIGURATION_PREFIX) or not client_id:
            raise InvalidRequestError("no such endpoint", status_code=404)
        _allow(method, ("GET", "PUT", "DELETE"))
        if method == "GET":
            return 200, await registrar.read(client_id, token)
        if method == "PUT":
            document = await self._read_json(receive, headers)
            return 200, await registrar.update(client_id, token, document)
        await registrar.delete(client_id, token)
        return 204, None

    async def _read_json(self, receive: Receive, headers: RequestHeaders) -> object:
        """The body as JSON (RFC 7591 §3.1): UTF-8, no repeated member, no NaN."""
        media_type = (headers.content_type or "").partition(";")[0].strip().lower()
        if media_type != "application/json":
            raise InvalidRequestError("Content-Type must be application/json", status_code=415)
        body = await read_body(receive, headers, self._max_body)
        try:
            return json.loads(
                body.decode("utf-8"), object_pairs_hook=_unique_members, parse_constant=_refuse
            )
        except (ValueError, RecursionError):
            raise InvalidClientMetadataError("the body is not valid JSON") from None


def _allow(method: str, methods: tuple[str, ...]) -> None:
    if method not in methods:
        raise InvalidRequestError(
            f"method {method[:16]} not allowed",
            status_code=405,
            headers={"Allow": ", ".join(methods)},
        )


def _bearer_token(authorization: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (RFC 6750 §2.1), if that is what came."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token.split()) != 1:
        return None
    return token


def _unique_members(pairs: list[tuple[str, object]]) -> dict[str, object]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("repeated member")
    return members


def _refuse(constant: str) -> object:
    raise ValueError(f"not JSON: {constant}")

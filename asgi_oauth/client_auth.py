"""Client authentication at the token, introspection and revocation endpoints.

The one place client credentials are read (RFC 6749 §2.3): HTTP Basic
(``client_secret_basic``), the request body (``client_secret_post``), or a bare
``client_id`` for public clients (``none``). A request may use one method only.
A public client may be known by its metadata document (see ``client_lookup``).
"""

from __future__ import annotations

import base64
import binascii
import logging
from urllib.parse import unquote

from .client_lookup import ClientLookup
from .crypto import verify_secret
from .errors import InvalidClientError, InvalidRequestError
from .events import security_event
from .models import Client
from .requests import OAuthRequest
from .throttle import Throttle, refusal

#: RFC 7235 §4.1: what a 401 for HTTP Basic client credentials says (RFC 6749 §5.2).
BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="asgi_oauth", charset="UTF-8"'}


async def authenticate_client(
    request: OAuthRequest, clients: ClientLookup, throttle: Throttle, *, allow_public: bool
) -> Client:
    """The authenticated client, or ``InvalidClientError`` (401).

    With ``allow_public`` a public client identifies itself by ``client_id``
    alone; otherwise the client must hold a secret.
    """
    form = request.form
    used_basic = request.authorization is not None
    secret: str | None
    if used_basic:
        client_id, secret = _parse_basic(request.authorization or "")
        if "client_secret" in form:
            raise InvalidRequestError("use one client authentication method only")
        if form.get("client_id", client_id) != client_id:
            raise InvalidRequestError("client_id does not match the Authorization header")
    else:
        client_id_param = form.get("client_id")
        if client_id_param is None:
            raise InvalidClientError("client authentication required")
        client_id, secret = client_id_param, form.get("client_secret")

    challenge = BASIC_CHALLENGE if used_basic else None
    # Only a public client can be a metadata document's: one with a secret never fetches.
    client = await clients.find_for_token_endpoint(client_id, fetch=secret is None and allow_public)
    if secret is None:
        if client is not None and client.is_public and allow_public:
            return client
        # Do not reveal whether the client exists.
        raise InvalidClientError("client authentication failed", headers=challenge)
    throttle_key = request.throttle_key(f"client:{client_id}")
    # A secret is always checked: the right one passes however many wrong ones came
    # before it (from this address or behind the same proxy), so nobody can lock a
    # client out; past the limit, wrong ones are told to wait.
    if client is None or client.is_public or not verify_secret(secret, client.secret_hash):
        retry_after = throttle.failed(throttle_key)
        security_event(
            "client_authentication_failed",
            level=logging.WARNING,
            client_id=client_id[:64],
            address=request.client_address,
        )
        if retry_after:
            raise refusal(
                throttle_key,
                retry_after,
                InvalidClientError,
                "too many failed authentications; retry later",
            )
        raise InvalidClientError("client authentication failed", headers=challenge)
    throttle.succeeded(throttle_key)
    return client


def _parse_basic(header: str) -> tuple[str, str]:
    """RFC 7617 credentials, each part form-urlencoded (RFC 6749 §2.3.1)."""
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClientError("unsupported authentication scheme", headers=BASIC_CHALLENGE)
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidClientError("malformed Basic credentials", headers=BASIC_CHALLENGE) from None
    client_id, colon, secret = decoded.partition(":")
    if not colon or not client_id:
        raise InvalidClientError("malformed Basic credentials", headers=BASIC_CHALLENGE)
    return _unquote(client_id), _unquote(secret)


def _unquote(text: str) -> str:
    if "%" in text or "+" in text:
        return unquote(text.replace("+", " "))
    return text

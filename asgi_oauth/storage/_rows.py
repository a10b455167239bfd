"""Rows as both SQL stores keep them: one tuple per model, in column order.

Scopes and grant types are sorted, space-joined words; lists of URIs and of
authentication methods (``amr``) are space-joined in their order, and refused
if an item holds white space (a URI never does, RFC 3986 §2; nor does an
RFC 8176 §2 method name); a pushed request's parameters are a JSON object;
times are integer seconds; a linked upstream account's claims and sealed tokens
are kept as the text given. SQLite and PostgreSQL share these mappers, so a row
means the same in either.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..models import (
    AuthorizationCode,
    BrowserSession,
    Client,
    ConnectedApp,
    DeviceAuthorization,
    FederatedIdentity,
    PushedAuthorizationRequest,
    SigningKey,
    Token,
    User,
)

Row = tuple[object, ...]


def _words(words: frozenset[str]) -> str:
    return " ".join(sorted(words))


def _in_order(items: tuple[str, ...], what: str) -> str:
    """Items in order, space-separated; refused if one would not come back from ``split``."""
    if any(item.split() != [item] for item in items):
        raise ValueError(f"not a {what} list: {items!r}")
    return " ".join(items)


def _uris(uris: tuple[str, ...]) -> str:
    """URIs in order, space-separated: a URI never holds white space (RFC 3986 §2)."""
    return _in_order(uris, "URI")


def client_row(c: Client) -> Row:
    return (
        c.client_id,
        c.secret_hash,
        c.name,
        _uris(c.redirect_uris),
        _words(c.grant_types),
        _words(c.scope),
        _uris(c.allowed_origins),
        c.is_resource_server,
        c.require_pkce,
        c.created_at,
        c.access_token_format,
        c.id_token_signed_response_alg,
        c.require_pushed_authorization_requests,
        c.dpop_bound_access_tokens,
        c.registration_access_token_hash,
        c.registration_metadata,
        c.application_type,
        _uris(c.post_logout_redirect_uris),
        c.backchannel_logout_uri,
    )


def client_from_row(row: Any) -> Client:
    return Client(
        client_id=row[0],
        secret_hash=row[1],
        name=row[2],
        redirect_uris=tuple(row[3].split()),
        grant_types=frozenset(row[4].split()),
        scope=frozenset(row[5].split()),
        allowed_origins=tuple(row[6].split()),
        is_resource_server=bool(row[7]),
        require_pkce=bool(row[8]),
        created_at=row[9],
        access_token_format=row[10],
        id_token_signed_response_alg=row[11],
        require_pushed_authorization_requests=bool(row[12]),
        dpop_bound_access_tokens=bool(row[13]),
        registration_access_token_hash=row[14],
        registration_metadata=row[15],
        application_type=row[16],
        post_logout_redirect_uris=tuple(row[17].split()),
        backchannel_logout_uri=row[18],
    )


def user_row(u: User) -> Row:
    return (u.user_id, u.username, u.password_hash, u.created_at)


def user_from_row(row: Any) -> User:
    return User(user_id=row[0], username=row[1], password_hash=row[2], created_at=row[3])


def code_row(c: AuthorizationCode) -> Row:
    return (
        c.code_hash,
        c.client_id,
        c.subject,
        _words(c.scope),
        c.redirect_uri,
        c.family_id,
        c.issued_at,
        c.expires_at,
        c.code_challenge,
        c.code_challenge_method,
        c.nonce,
        c.consumed_at,
        c.auth_time,
        c.acr,
        _in_order(c.amr, "amr"),
        _uris(c.resource),
        c.dpop_jkt,
    )


def code_from_row(row: Any) -> AuthorizationCode:
    return AuthorizationCode(
        code_hash=row[0],
        client_id=row[1],
        subject=row[2],
        scope=frozenset(row[3].split()),
        redirect_uri=row[4],
        family_id=row[5],
        issued_at=row[6],
        expires_at=row[7],
        code_challenge=row[8],
        code_challenge_method=row[9],
        nonce=row[10],
        consumed_at=row[11],
        auth_time=row[12],
        acr=row[13],
        amr=tuple(row[14].split()),
        resource=tuple(row[15].split()),
        dpop_jkt=row[16],
    )


def token_row(t: Token) -> Row:
    return (
        t.token_hash,
        t.kind,
        t.client_id,
        _words(t.scope),
        t.family_id,
        t.issued_at,
        t.expires_at,
        t.subject,
        _uris(t.audience),
        t.parent_hash,
        t.replaced_by,
        t.rotated_at,
        t.revoked_at,
        t.jkt,
    )


def token_from_row(row: Any) -> Token:
    return Token(
        token_hash=row[0],
        kind=row[1],
        client_id=row[2],
        scope=frozenset(row[3].split()),
        family_id=row[4],
        issued_at=row[5],
        expires_at=row[6],
        subject=row[7],
        audience=tuple(row[8].split()),
        parent_hash=row[9],
        replaced_by=row[10],
        rotated_at=row[11],
        revoked_at=row[12],
        jkt=row[13],
        sealed_response=row[14],
    )


def signing_key_row(k: SigningKey) -> Row:
    return (k.kid, k.alg, k.public_jwk, k.private_jwk, k.created_at, k.retired_at, k.expires_at)


def signing_key_from_row(row: Any) -> SigningKey:
    return SigningKey(
        kid=row[0],
        alg=row[1],
        public_jwk=row[2],
        private_jwk=row[3],
        created_at=row[4],
        retired_at=row[5],
        expires_at=row[6],
    )


def consent_row(subject: str, client_id: str, scope: frozenset[str], granted_at: int) -> Row:
    return (subject, client_id, _words(scope), granted_at)


def with_live_tokens(
    consented: list[ConnectedApp], live: Iterable[tuple[str, str, int]]
) -> list[ConnectedApp]:
    """``consented`` and, for each client with live tokens (``(client_id, scope,
    issued_at)`` rows) but no consent, the grant its tokens make; by client id."""
    kept = {app.client_id for app in consented}
    tokens: dict[str, tuple[set[str], int, int]] = {}
    for client_id, scope, issued_at in live:
        if client_id in kept:
            continue
        scopes, first, last = tokens.get(client_id, (set(), issued_at, issued_at))
        scopes.update(scope.split())
        tokens[client_id] = (scopes, min(first, issued_at), max(last, issued_at))
    granted = [
        ConnectedApp(client_id, frozenset(scopes), first, last)
        for client_id, (scopes, first, last) in tokens.items()
    ]
    return sorted([*consented, *granted], key=lambda app: app.client_id)


def connected_app_from_row(row: Any) -> ConnectedApp:
    """A ``list_grants`` row: client id, scope, granted_at, the latest token's issued_at."""
    return ConnectedApp(
        client_id=row[0], scope=frozenset(row[1].split()), granted_at=row[2], last_used=row[3]
    )


def device_row(d: DeviceAuthorization) -> Row:
    return (
        d.device_code_hash,
        d.user_code_hash,
        d.client_id,
        _words(d.scope),
        d.family_id,
        d.issued_at,
        d.expires_at,
        d.interval,
        d.status,
        d.subject,
        d.last_polled_at,
        _uris(d.resource),
    )


def device_from_row(row: Any) -> DeviceAuthorization:
    return DeviceAuthorization(
        device_code_hash=row[0],
        user_code_hash=row[1],
        client_id=row[2],
        scope=frozenset(row[3].split()),
        family_id=row[4],
        issued_at=row[5],
        expires_at=row[6],
        interval=row[7],
        status=row[8],
        subject=row[9],
        last_polled_at=row[10],
        resource=tuple(row[11].split()),
    )


def pushed_request_row(r: PushedAuthorizationRequest) -> Row:
    params = json.dumps(dict(r.params), separators=(",", ":"))
    return (r.request_uri_hash, r.client_id, params, r.issued_at, r.expires_at, r.consumed_at)


def pushed_request_from_row(row: Any) -> PushedAuthorizationRequest:
    return PushedAuthorizationRequest(
        request_uri_hash=row[0],
        client_id=row[1],
        params=json.loads(row[2]),
        issued_at=row[3],
        expires_at=row[4],
        consumed_at=row[5],
    )


def session_row(s: BrowserSession) -> Row:
    return (s.session_hash, s.user_id, s.auth_time, s.expires_at)


def session_from_row(row: Any) -> BrowserSession:
    return BrowserSession(session_hash=row[0], user_id=row[1], auth_time=row[2], expires_at=row[3])


def federated_identity_row(f: FederatedIdentity) -> Row:
    return (
        f.issuer,
        f.subject,
        f.user_id,
        f.provider,
        f.claims,
        f.tokens,
        f.created_at,
        f.updated_at,
    )


def federated_identity_from_row(row: Any) -> FederatedIdentity:
    return FederatedIdentity(
        issuer=row[0],
        subject=row[1],
        user_id=row[2],
        provider=row[3],
        claims=row[4],
        tokens=row[5],
        created_at=row[6],
        updated_at=row[7],
    )


def linked_to(identity: FederatedIdentity, user: User) -> FederatedIdentity:
    """``identity`` as the link of ``user``, refused if it names another user:
    ``add_federated_user`` creates the user the link is for."""
    if identity.user_id != user.user_id:
        raise ValueError(f"the identity is linked to {identity.user_id!r}, not {user.user_id!r}")
    return identity

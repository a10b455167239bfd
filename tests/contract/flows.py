"""The requests the contract tests make, over HTTP as clients send them."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from asgi_oauth import AuthorizationServer
from asgi_oauth.pkce import s256_challenge
from tests.device_helpers import hidden
from tests.servers.process import INTROSPECT, REDIRECT_URI, REVOKE, TOKEN, Credentials

from .conftest import Cluster


async def new_user(cluster: Cluster, password: str = "correct horse battery staple") -> str:
    """A user of their own for one test; returns the user's id (a token's ``sub``)."""
    username = f"user-{secrets.token_hex(6)}"

    async def create(server: AuthorizationServer) -> str:
        return (await server.create_user(username, password)).user_id

    user_id = await cluster.on_store(create)
    return user_id


async def username_of(cluster: Cluster, user_id: str) -> str:
    async def find(server: AuthorizationServer) -> str:
        user = await server.storage.get_user_by_id(user_id)
        assert user is not None
        return user.username

    return await cluster.on_store(find)


async def code_for(
    cluster: Cluster, verifier: str, *, subject: str = "alice", scope: str = "read write"
) -> str:
    """An authorization code for the deployment's client, made in the store (PKCE S256)."""
    client_id = cluster.deployment.client.client_id

    async def issue(server: AuthorizationServer) -> str:
        return await server.create_authorization_code(
            client_id=client_id,
            subject=subject,
            redirect_uri=REDIRECT_URI,
            scope=scope,
            code_challenge=s256_challenge(verifier),
            code_challenge_method="S256",
        )

    return await cluster.on_store(issue)


async def token_pair(cluster: Cluster, subject: str = "alice") -> dict[str, Any]:
    """Tokens for ``subject`` from a fresh authorization code."""
    verifier = secrets.token_urlsafe(48)
    code = await code_for(cluster, verifier, subject=subject)
    async with cluster.http() as http:
        form = code_form(code, verifier)
        response = await http.post(TOKEN, data=form, auth=cluster.deployment.client)
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def code_form(code: str, verifier: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }


async def refresh(
    http: httpx.AsyncClient, client: Credentials, refresh_token: str
) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return await http.post(TOKEN, data=form, auth=client)


async def revoke(http: httpx.AsyncClient, client: Credentials, token: str) -> httpx.Response:
    return await http.post(REVOKE, data={"token": token}, auth=client)


async def active(cluster: Cluster, tokens: list[str]) -> list[str]:
    """Those of ``tokens`` the introspection endpoint calls active, asked of every instance."""
    live: list[str] = []
    for instance in range(len(cluster.urls)):
        async with cluster.http(instance) as http:
            for token in tokens:
                response = await http.post(
                    INTROSPECT, data={"token": token}, auth=cluster.deployment.resource_server
                )
                assert response.status_code == 200, response.text
                if response.json()["active"] and token not in live:
                    live.append(token)
    return live


async def signed_in_browser(cluster: Cluster, instance: int = 0) -> tuple[str, str]:
    """A browser session signed in as the deployment's user: its Cookie header and the
    CSRF token its forms carry."""
    deployment = cluster.deployment
    async with cluster.http(instance) as http:
        login = await http.get("/oauth2/login")
        assert login.status_code == 200, login.text
        signed_in = await http.post(
            "/oauth2/login",
            data={
                "csrf_token": hidden(login.text, "csrf_token"),
                "username": deployment.username,
                "password": deployment.password,
            },
        )
        assert signed_in.status_code == 200, signed_in.text
        cookie = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
        entry = await http.get("/oauth2/device")
        assert entry.status_code == 200, entry.text
        return cookie, hidden(entry.text, "csrf_token")


async def login_form(cluster: Cluster) -> tuple[str, str]:
    """An anonymous browser session's Cookie header and the sign-in form's CSRF token."""
    async with cluster.http() as http:
        login = await http.get("/oauth2/login")
        assert login.status_code == 200, login.text
        cookie = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
        return cookie, hidden(login.text, "csrf_token")

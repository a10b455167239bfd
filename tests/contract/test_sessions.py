"""A sign-in session ends on the server: after signing out through one instance, a
copy of the cookie signs in no one on any instance; deleting the user ends it too."""

from __future__ import annotations

import pytest

from asgi_oauth import AuthorizationServer
from tests.device_helpers import hidden

from .conftest import Cluster
from .flows import new_user, username_of

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PASSWORD = "correct horse battery staple"


async def sign_in(cluster: Cluster, username: str) -> str:
    """Sign in on the first instance; the Cookie header the browser then sends."""
    async with cluster.http(0) as http:
        login = await http.get("/oauth2/login")
        form = {"csrf_token": hidden(login.text, "csrf_token")}
        signed_in = await http.post(
            "/oauth2/login", data={**form, "username": username, "password": PASSWORD}
        )
        assert signed_in.status_code == 200, signed_in.text
        return "; ".join(f"{name}={value}" for name, value in http.cookies.items())


async def signed_in_everywhere(cluster: Cluster, cookie: str) -> list[bool]:
    """Per instance: does the sign-out page name someone for this cookie?"""
    answers = []
    for instance in range(len(cluster.urls)):
        async with cluster.http(instance) as http:
            page = await http.get("/oauth2/logout", headers={"Cookie": cookie})
            assert page.status_code == 200, page.text
            answers.append("You are signed in as" in page.text)
    return answers


async def test_signing_out_on_one_instance_ends_the_session_on_all(cluster: Cluster) -> None:
    username = await username_of(cluster, await new_user(cluster, PASSWORD))
    cookie = await sign_in(cluster, username)
    assert await signed_in_everywhere(cluster, cookie) == [True] * len(cluster.urls)

    async with cluster.http(len(cluster.urls) - 1) as http:
        page = await http.get("/oauth2/logout", headers={"Cookie": cookie})
        done = await http.post(
            "/oauth2/logout",
            data={"csrf_token": hidden(page.text, "csrf_token")},
            headers={"Cookie": cookie},
        )
        assert done.status_code == 200, done.text

    # The copy of the cookie taken before: signed, unexpired, and worth nothing.
    assert await signed_in_everywhere(cluster, cookie) == [False] * len(cluster.urls)


async def test_deleting_the_user_ends_their_sessions_everywhere(cluster: Cluster) -> None:
    username = await username_of(cluster, await new_user(cluster, PASSWORD))
    cookie = await sign_in(cluster, username)

    async def delete(server: AuthorizationServer) -> bool:
        return await server.storage.delete_user(username)

    assert await cluster.on_store(delete)
    assert await signed_in_everywhere(cluster, cookie) == [False] * len(cluster.urls)

"""Two real authorization servers, one signing people in through the other.

``upstream`` is an ``asgi_oauth`` process that is an OpenID Connect provider (its
issuer on ``localhost``, so the browser keeps its cookies apart from ours on
``127.0.0.1``); ``ours`` is an ``asgi_oauth`` process whose people sign in through
it, as the provider ``corp`` ("Corp"), and through a GitHub-shaped server when one
is given. Both run under uvicorn; everything between them crosses HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from asgi_oauth import AuthorizationServer
from tests.servers.process import (
    PASSWORD,
    USERNAME,
    Deployment,
    ServerProcess,
    deploy,
    run_on_store,
    serve,
)
from tests.servers.upstreams import GitHubLike

T = TypeVar("T")

#: Turns the upstream into an OpenID Connect provider (its signing keys' key).
UPSTREAM_KEY = "upstream key-encryption key, 32+ chars"


@dataclass(frozen=True)
class Federated:
    upstream: ServerProcess
    ours: ServerProcess
    #: The person's account at the upstream: username, password and its ``sub`` there.
    username: str
    password: str
    upstream_subject: str

    @property
    def upstream_origin(self) -> str:
        return self.upstream.deployment.base_url.replace("127.0.0.1", "localhost")


@contextmanager
def federated_servers(directory: Path, github: GitHubLike | None = None) -> Iterator[Federated]:
    """Both servers, listening; stopped on exit."""
    for name in ("ours", "upstream"):
        (directory / name).mkdir()
    # Off this thread: a browser test's thread runs Playwright's event loop.
    ours = off_loop(deploy, directory / "ours")
    upstream = off_loop(deploy, directory / "upstream")
    upstream = replace(
        upstream,
        issuer=f"http://localhost:{upstream.port}/oauth2",
        key_encryption_key=UPSTREAM_KEY,
    )

    async def register(server: AuthorizationServer) -> tuple[str, str, str]:
        registered = await server.register_client(
            name="Our server",
            redirect_uris=[f"{ours.issuer}/upstream/corp/callback"],
            grant_types=["authorization_code"],
            scope=["openid", "email", "profile"],
        )
        alice = await server.storage.get_user(USERNAME)
        assert alice is not None and registered.client_secret is not None
        return registered.client.client_id, registered.client_secret, alice.user_id

    client_id, secret, subject = off_loop(run_on_store, upstream.db, upstream.issuer, register)
    (directory / "corp-secret").write_text(secret)
    providers: list[dict[str, object]] = [
        {
            "id": "corp",
            "name": "Corp",
            "issuer": upstream.issuer,
            "client_id": client_id,
            "client_secret_file": "corp-secret",
        }
    ]
    if github is not None:
        (directory / "github-secret").write_text("gh-secret")
        github.add_client("gh-client", "gh-secret", f"{ours.issuer}/upstream/github/callback")
        base = github.base_url
        providers.append(
            {
                "preset": "github",
                "client_id": "gh-client",
                "client_secret_file": "github-secret",
                "authorization_endpoint": f"{base}/login/oauth/authorize",
                "token_endpoint": f"{base}/login/oauth/access_token",
                "userinfo_endpoint": f"{base}/user",
                "emails_endpoint": f"{base}/user/emails",
                "organizations_endpoint": f"{base}/user/orgs",
            }
        )
    providers_file = directory / "providers.json"
    providers_file.write_text(json.dumps(providers))
    ours = replace(ours, upstream_providers=providers_file)
    with ExitStack() as stack:
        running_upstream = stack.enter_context(serve("uvicorn", upstream))
        running_ours = stack.enter_context(serve("uvicorn", ours))
        yield Federated(running_upstream, running_ours, USERNAME, PASSWORD, subject)


def linked_user(ours: Deployment, issuer: str, subject: str) -> str | None:
    """The local user id the upstream account (issuer, subject) is linked to (from a
    thread of its own, so a test's running event loop is no obstacle)."""

    async def find(server: AuthorizationServer) -> str | None:
        link = await server.storage.get_federated_identity(issuer, subject)
        return None if link is None else link.user_id

    found: str | None = off_loop(run_on_store, ours.db, ours.issuer, find)
    return found


def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a thread of its own: it may run an event loop of its own."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(fn, *args).result()

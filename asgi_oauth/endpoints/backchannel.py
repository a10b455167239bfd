"""OpenID Connect Back-Channel Logout 1.0: telling clients that someone signed out.

When a session ends, each client the person consented to that registered a
``backchannel_logout_uri`` (§2.2) is sent a logout token (§2.4: ``typ: logout+jwt``,
the logout event, no ``nonce``) in an ``application/x-www-form-urlencoded`` POST
(§2.5). Delivery runs in the background, never delaying the person: a few at a time,
each attempt bounded, retried with backoff, all given up after a fixed time; a 2xx
answer ends it (§2.8). The URI may have been registered by anyone (RFC 7591), so its
host is resolved once and must be public unless the deployment allows private
addresses, and the request goes to the very address checked (as ``client_documents``
fetches do): a second DNS answer cannot point it inside.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from ..client_documents.addresses import IPAddress, is_public_address
from ..client_documents.fetch import Resolver, default_ssl_context, resolve
from ..config import Settings
from ..crypto import generate_token
from ..events import security_event
from ..keys import KeySet
from ..models import Client
from ..storage.base import Storage

logger = logging.getLogger("asgi_oauth")

#: §2.4: the member of ``events`` that makes a JWT a logout token.
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: §2.4: "short-lived"; two minutes leave room for a retry and the receiver's clock.
LOGOUT_TOKEN_LIFETIME = 120


class DeliveryRefused(Exception):
    """The URI's host may not be reached from here, or could not be resolved."""


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How logout tokens are delivered: bounds in seconds, and where they may go."""

    #: Loopback, private and link-local addresses allowed (local development, tests).
    private_addresses: bool = False
    max_concurrent: int = 8
    attempt_timeout: float = 5.0
    #: The waits before the second and third attempts.
    backoff: tuple[float, ...] = (0.5, 2.0)
    give_up_after: float = 15.0

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        return cls(
            private_addresses=settings.insecure_transport
            or settings.client_id_metadata_document_private_addresses
        )


def logout_token_claims(
    *, issuer: str, client_id: str, subject: str, now: int, jti: str
) -> dict[str, object]:
    """The claims of a logout token (§2.4); never a ``nonce`` (§2.4 forbids it)."""
    return {
        "iss": issuer,
        "aud": client_id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_LIFETIME,
        "jti": jti,
        "sub": subject,
        "events": {LOGOUT_EVENT: {}},
    }


class BackchannelLogout:
    """Sends logout tokens for ended sessions, in tasks of its own (``start``)."""

    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        keys: KeySet,
        clock: Callable[[], float],
        *,
        policy: DeliveryPolicy | None = None,
        resolver: Resolver = resolve,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._storage = storage
        self._issuer = settings.issuer
        self._keys = keys
        self._clock = clock
        self.policy = policy or DeliveryPolicy.from_settings(settings)
        self._resolve = resolver
        self._transport = transport
        self._slots = asyncio.Semaphore(self.policy.max_concurrent)
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def start(self, subject: str) -> None:
        """Tell every client ``subject`` consented to, in the background (§2.5)."""
        self._spawn(self._notify(subject))

    async def drain(self) -> None:
        """Wait for every delivery started so far (each is bounded in time)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _notify(self, subject: str) -> None:
        try:
            for client_id in await self._storage.consented_clients(subject):
                client = await self._storage.get_client(client_id)
                if client is not None and client.backchannel_logout_uri is not None:
                    self._spawn(self._deliver(client, client.backchannel_logout_uri, subject))
        except Exception:
            logger.exception("back-channel logout: the clients to tell could not be read")

    async def _deliver(self, client: Client, uri: str, subject: str) -> None:
        """One client's delivery, given up after ``give_up_after`` from its start
        (waiting for a slot included); its outcome logged, client and status only."""
        try:
            status = await asyncio.wait_for(
                self._in_slot(client, uri, subject), self.policy.give_up_after
            )
        except TimeoutError:
            status = None
        except DeliveryRefused as exc:
            security_event(
                "backchannel_logout_failed",
                level=logging.WARNING,
                client_id=client.client_id,
                status=str(exc),
            )
            return
        except Exception:
            logger.exception("back-channel logout to %s failed", client.client_id)
            status = None
        if status is not None and 200 <= status < 300:
            security_event(
                "backchannel_logout_delivered", client_id=client.client_id, status=status
            )
        else:
            security_event(
                "backchannel_logout_failed",
                level=logging.WARNING,
                client_id=client.client_id,
                status="timeout" if status is None else status,
            )

    async def _in_slot(self, client: Client, uri: str, subject: str) -> int | None:
        async with self._slots:
            await self._keys.ready()
            return await self._attempts(client, uri, subject)

    async def _attempts(self, client: Client, uri: str, subject: str) -> int | None:
        """Up to ``1 + len(backoff)`` POSTs; the last status, None when none answered."""
        address = await self._address(uri)
        status: int | None = None
        for wait in (None, *self.policy.backoff):
            if wait is not None:
                await asyncio.sleep(wait)
            token = self._token(client, subject)  # a fresh jti each time: it is seen once
            try:
                status = await self._post(uri, address, token)
            except httpx.HTTPError:
                continue
            if 200 <= status < 300:
                return status
        return status

    def _token(self, client: Client, subject: str) -> str:
        claims = logout_token_claims(
            issuer=self._issuer,
            client_id=client.client_id,
            subject=subject,
            now=int(self._clock()),
            jti=generate_token(16),
        )
        return self._keys.sign(claims, alg=client.id_token_signed_response_alg, typ="logout+jwt")

    async def _address(self, uri: str) -> IPAddress:
        """The one address the POSTs go to: resolved once, refused when not public."""
        host = urlsplit(uri).hostname or ""
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                port = urlsplit(uri).port or (443 if uri.startswith("https:") else 80)
                answers = await self._resolve(host, port)
                addresses = [ipaddress.ip_address(answer) for answer in answers]
            except (OSError, ValueError):
                raise DeliveryRefused("unresolved") from None
        if not addresses:
            raise DeliveryRefused("unresolved")
        if not self.policy.private_addresses and not all(map(is_public_address, addresses)):
            raise DeliveryRefused("private_address")
        return addresses[0]

    async def _post(self, uri: str, address: IPAddress, token: str) -> int:
        """POST the token to ``address``, the Host header and TLS name the URI's host."""
        parts = urlsplit(uri)
        literal = str(address).replace("%", "%25")
        netloc = f"[{literal}]" if address.version == 6 else literal
        if parts.port is not None:
            netloc += f":{parts.port}"
        target = parts._replace(netloc=netloc).geturl()
        headers: Mapping[str, str] = {"Host": parts.netloc.rpartition("@")[2]}
        extensions = {"sni_hostname": parts.hostname or ""}
        timeout = httpx.Timeout(self.policy.attempt_timeout)
        response = await self._http().post(
            target,
            data={"logout_token": token},
            headers=headers,
            extensions=extensions,
            timeout=timeout,
        )
        return response.status_code

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                verify=default_ssl_context(),
                transport=self._transport,
                # No proxy from the environment: the address checked is the one connected to.
                trust_env=False,
                follow_redirects=False,
                # No keep-alive: a pooled connection is found by address alone (see fetch.py).
                limits=httpx.Limits(max_connections=16, max_keepalive_connections=0),
            )
        return self._client

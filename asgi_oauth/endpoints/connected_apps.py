"""A person's connected applications: the clients they approved, and withdrawing one.

Not an RFC endpoint: it is the person's side of RFC 6749 §10.2 and RFC 7009 §2.1.
Withdrawing a client's access ends the consent (so it must ask again, §4.1.1) and
every token the person's grants to it issued, at once and everywhere: the store
moves its revocation signal for other processes, and this process's listeners
(the in-process middleware's caches) are told directly, as ``Revocation`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..client_lookup import ClientLookup
from ..errors import OAuth2Error, storage_guard
from ..events import security_event
from ..models import Client, ConnectedApp
from ..storage.base import Storage


@dataclass(frozen=True, slots=True)
class ConnectedApps:
    """Lists the clients a person approved, and withdraws what one was given."""

    storage: Storage
    clients: ClientLookup
    clock: Callable[[], float]
    #: Told after every withdrawal that ended something, so in-process caches forget.
    revoked: Callable[[], None]

    async def of(self, subject: str) -> list[tuple[Client, ConnectedApp]]:
        """Each client this person approved, with what they granted it, by name.

        A client deleted since is left out (its consent went with it, or is about to).
        A metadata-document client whose document cannot be read now is still listed,
        under its URL, so the person can still withdraw it.
        """
        with storage_guard:
            grants = await self.storage.list_grants(subject, now=int(self.clock()))
            found = [(await self._client(grant.client_id), grant) for grant in grants]
        listed = [(client, grant) for client, grant in found if client is not None]
        return sorted(listed, key=lambda pair: (_name(pair[0]).casefold(), pair[0].client_id))

    async def revoke(self, subject: str, client_id: str) -> bool:
        """Withdraw everything this person gave this client: the consent, the codes not
        yet redeemed, every token (``Storage.revoke_grant``). False when there was
        nothing to withdraw."""
        with storage_guard:
            ended = await self.storage.revoke_grant(subject, client_id, now=int(self.clock()))
        if ended:
            security_event("grant_revoked", user_id=subject, client_id=client_id)
            self.revoked()
        return ended

    async def _client(self, client_id: str) -> Client | None:
        try:
            return await self.clients.find(client_id)
        except OAuth2Error:
            # An unusable metadata document: the grant is real all the same.
            return Client(client_id=client_id, metadata_document=True)


def _name(client: Client) -> str:
    return client.name or client.client_id

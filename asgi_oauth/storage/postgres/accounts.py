"""The PostgreSQL store's clients, users (with their linked upstream accounts), consents
and browser sessions."""

from __future__ import annotations

from typing import Any

from ...models import BrowserSession, Client, ConnectedApp, FederatedIdentity, User
from .. import _rows
from . import schema as _pg
from .database import PostgresDatabase, _Lost
from .signal import notify
from .tokens import _count, _end_tokens_of, _end_tokens_where


class _Accounts(PostgresDatabase):
    """Clients (read through a short-lived cache), users, consents and browser sessions."""

    # -- clients and users -------------------------------------------------------------

    async def get_client(self, client_id: str) -> Client | None:
        client = self._clients.get(client_id)
        if client is None:
            row = await self._fetchrow(_pg.SELECT_CLIENTS + " WHERE client_id = $1", client_id)
            if row is None:
                return None
            client = _rows.client_from_row(row)
            self._clients.put(client)
        return client

    async def add_client(self, client: Client) -> bool:
        return await self._put_client(client, _pg.ADD_CLIENT)

    async def save_client(self, client: Client) -> None:
        await self._put_client(client, _pg.UPSERT_CLIENT)

    async def _put_client(self, client: Client, insert: str) -> bool:
        row = _rows.client_row(client)
        origins = [(client.client_id, origin) for origin in client.allowed_origins]

        async def save(conn: Any) -> bool:
            if await conn.execute(insert, *row) == "INSERT 0 0":
                return False
            await conn.execute("DELETE FROM client_origins WHERE client_id = $1", client.client_id)
            await conn.executemany(
                "INSERT INTO client_origins (client_id, origin) VALUES ($1, $2)"
                " ON CONFLICT DO NOTHING",
                origins,
            )
            return True

        saved: bool = await self._transaction(save)
        self._clients.forget(client.client_id)
        return saved

    async def delete_client(self, client_id: str) -> bool:
        async def delete(conn: Any) -> bool:
            deleted = await conn.execute("DELETE FROM clients WHERE client_id = $1", client_id)
            if deleted == "DELETE 0":
                return False
            for table in (
                "client_origins",
                "authorization_codes",
                "device_authorizations",
                "pushed_authorization_requests",
                "consents",
            ):
                await conn.execute(f"DELETE FROM {table} WHERE client_id = $1", client_id)  # noqa: S608
            await _end_tokens_of(conn, "client_id", client_id, self.revocation_signal.channel)
            return True

        deleted: bool = await self._transaction(delete)
        self._clients.forget(client_id)
        if deleted:
            self.revocation_signal.moved()
        return deleted

    async def list_clients(self) -> list[Client]:
        rows = await self._fetch(_pg.SELECT_CLIENTS + " ORDER BY client_id")
        return [_rows.client_from_row(row) for row in rows]

    async def is_allowed_origin(self, origin: str) -> bool:
        sql = "SELECT 1 FROM client_origins WHERE origin = $1 LIMIT 1"
        return await self._fetchrow(sql, origin) is not None

    async def get_user(self, username: str) -> User | None:
        row = await self._fetchrow(_pg.SELECT_USERS + " WHERE username = $1", username)
        return None if row is None else _rows.user_from_row(row)

    async def get_user_by_id(self, user_id: str) -> User | None:
        row = await self._fetchrow(_pg.SELECT_USERS + " WHERE user_id = $1", user_id)
        return None if row is None else _rows.user_from_row(row)

    async def add_user(self, user: User) -> bool:
        return await self._execute(_pg.INSERT_USER, *_rows.user_row(user)) == "INSERT 0 1"

    async def save_user(self, user: User) -> None:
        await self._execute(_pg.UPSERT_USER, *_rows.user_row(user))

    async def list_users(self) -> list[User]:
        rows = await self._fetch(_pg.SELECT_USERS + " ORDER BY username")
        return [_rows.user_from_row(row) for row in rows]

    async def delete_user(self, username: str) -> bool:
        async def delete(conn: Any) -> bool:
            user_id = await conn.fetchval(
                "DELETE FROM users WHERE username = $1 RETURNING user_id", username
            )
            if user_id is None:
                return False
            for table in ("consents", "authorization_codes", "device_authorizations"):
                sql = f"DELETE FROM {table} WHERE subject = $1"  # noqa: S608 (constants)
                await conn.execute(sql, user_id)
            await conn.execute("DELETE FROM sessions WHERE user_id = $1", user_id)
            await conn.execute("DELETE FROM federated_identities WHERE user_id = $1", user_id)
            await _end_tokens_of(conn, "subject", user_id, self.revocation_signal.channel)
            return True

        deleted: bool = await self._transaction(delete)
        if deleted:
            self.revocation_signal.moved()
        return deleted

    # -- linked upstream accounts ------------------------------------------------------

    async def get_federated_identity(self, issuer: str, subject: str) -> FederatedIdentity | None:
        row = await self._fetchrow(_pg.SELECT_FEDERATED_IDENTITY, issuer, subject)
        return None if row is None else _rows.federated_identity_from_row(row)

    async def federated_identities(self, user_id: str) -> list[FederatedIdentity]:
        rows = await self._fetch(_pg.SELECT_FEDERATED_OF_USER, user_id)
        return [_rows.federated_identity_from_row(row) for row in rows]

    async def add_federated_identity(self, identity: FederatedIdentity) -> bool:
        row = _rows.federated_identity_row(identity)
        return await self._execute(_pg.ADD_FEDERATED_IDENTITY, *row) == "INSERT 0 1"

    async def add_federated_user(self, user: User, identity: FederatedIdentity) -> bool:
        user_row = _rows.user_row(user)
        identity_row = _rows.federated_identity_row(_rows.linked_to(identity, user))

        async def add(conn: Any) -> None:
            # A racing insert of the same name or pair waits for the first to commit,
            # then does nothing: the loser rolls its user back.
            if await conn.execute(_pg.INSERT_USER, *user_row) != "INSERT 0 1":
                raise _Lost
            if await conn.execute(_pg.INSERT_FEDERATED_IDENTITY, *identity_row) != "INSERT 0 1":
                raise _Lost

        try:
            await self._transaction(add)
        except _Lost:
            return False
        return True

    async def save_federated_identity(self, identity: FederatedIdentity) -> None:
        await self._execute(
            _pg.UPDATE_FEDERATED_IDENTITY,
            identity.provider,
            identity.claims,
            identity.tokens,
            identity.updated_at,
            identity.issuer,
            identity.subject,
        )

    async def get_consent(self, subject: str, client_id: str) -> frozenset[str] | None:
        row = await self._fetchrow(_pg.SELECT_CONSENT, subject, client_id)
        return None if row is None else frozenset(row[0].split())

    async def save_consent(
        self, subject: str, client_id: str, scope: frozenset[str], *, now: int = 0
    ) -> None:
        row = _rows.consent_row(subject, client_id, scope, now)
        await self._execute(_pg.UPSERT_CONSENT, *row)

    async def list_grants(self, subject: str, *, now: int) -> list[ConnectedApp]:
        rows = await self._fetch(_pg.SELECT_GRANTS, subject)
        live = await self._fetch(_pg.SELECT_LIVE_TOKEN_GRANTS, subject, now)
        consented = [_rows.connected_app_from_row(row) for row in rows]
        return _rows.with_live_tokens(consented, [(r[0], r[1], r[2]) for r in live])

    async def revoke_grant(self, subject: str, client_id: str, *, now: int) -> bool:
        async def revoke(conn: Any) -> bool:
            ended = 0
            for table in ("consents", "authorization_codes", "device_authorizations"):
                sql = f"DELETE FROM {table} WHERE subject = $1 AND client_id = $2"  # noqa: S608
                ended += _count(await conn.execute(sql, subject, client_id))
            where = "subject = $1 AND client_id = $2"
            ended += await _end_tokens_where(conn, where, (subject, client_id), now)
            if ended:
                await notify(conn, self.revocation_signal.channel)
            return ended > 0

        revoked: bool = await self._transaction(revoke)
        if revoked:
            self.revocation_signal.moved()
        return revoked

    async def consented_clients(self, subject: str) -> list[str]:
        rows = await self._fetch(_pg.SELECT_CONSENTED_CLIENTS, subject)
        return [row[0] for row in rows]

    # -- browser sessions --------------------------------------------------------------

    async def save_session(self, session: BrowserSession) -> None:
        await self._execute(_pg.INSERT_SESSION, *_rows.session_row(session))

    async def get_session(self, session_hash: str) -> BrowserSession | None:
        row = await self._fetchrow(_pg.SELECT_SESSION, session_hash)
        return None if row is None else _rows.session_from_row(row)

    async def delete_session(self, session_hash: str) -> bool:
        sql = "DELETE FROM sessions WHERE session_hash = $1"
        return await self._execute(sql, session_hash) == "DELETE 1"

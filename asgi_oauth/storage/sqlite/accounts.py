"""The SQLite store's clients, users (with their linked upstream accounts), consents
and browser sessions.

Deleting a client or a user also deletes its rows elsewhere and ends its tokens,
in the one job that deletes it, and moves the revocation signal; so does a person
withdrawing what they granted one client (``revoke_grant``).
"""

from __future__ import annotations

import sqlite3

from ...models import BrowserSession, Client, ConnectedApp, FederatedIdentity, User
from .. import _rows
from . import schema
from .database import SQLiteDatabase
from .tokens import _end_tokens_of, _end_tokens_where


class _Accounts(SQLiteDatabase):
    """Clients (read through a short-lived cache), users, consents and browser sessions."""

    async def get_client(self, client_id: str) -> Client | None:
        client = self._clients.get(client_id)
        if client is None:
            rows = await self._read(schema.SELECT_CLIENTS + " WHERE client_id = ?", (client_id,))
            if not rows:
                return None
            client = _rows.client_from_row(rows[0])
            self._clients.put(client)
        return client

    async def add_client(self, client: Client) -> bool:
        return await self._put_client(client, replace=False)

    async def save_client(self, client: Client) -> None:
        await self._put_client(client, replace=True)

    async def _put_client(self, client: Client, *, replace: bool) -> bool:
        row = _rows.client_row(client)
        origins = [(client.client_id, origin) for origin in client.allowed_origins]

        def save(conn: sqlite3.Connection) -> bool:
            insert = schema.INSERT_CLIENT if replace else schema.ADD_CLIENT
            if conn.execute(insert, row).rowcount == 0:
                return False
            conn.execute("DELETE FROM client_origins WHERE client_id = ?", (client.client_id,))
            conn.executemany(
                "INSERT OR IGNORE INTO client_origins (client_id, origin) VALUES (?, ?)", origins
            )
            return True

        saved = await self._write(save)
        self._clients.forget(client.client_id)
        return saved

    async def delete_client(self, client_id: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            if conn.execute("DELETE FROM clients WHERE client_id = ?", (client_id,)).rowcount == 0:
                return False
            conn.execute("DELETE FROM client_origins WHERE client_id = ?", (client_id,))
            conn.execute("DELETE FROM authorization_codes WHERE client_id = ?", (client_id,))
            _end_tokens_of(conn, "client_id", client_id)
            conn.execute("DELETE FROM device_authorizations WHERE client_id = ?", (client_id,))
            conn.execute(
                "DELETE FROM pushed_authorization_requests WHERE client_id = ?", (client_id,)
            )
            conn.execute("DELETE FROM consents WHERE client_id = ?", (client_id,))
            return True

        deleted = await self._write(delete, revokes=bool)
        self._clients.forget(client_id)
        return deleted

    async def list_clients(self) -> list[Client]:
        return [
            _rows.client_from_row(row)
            for row in await self._read(schema.SELECT_CLIENTS + " ORDER BY client_id")
        ]

    async def is_allowed_origin(self, origin: str) -> bool:
        sql = "SELECT 1 FROM client_origins WHERE origin = ? LIMIT 1"
        return bool(await self._read(sql, (origin,)))

    async def get_user(self, username: str) -> User | None:
        rows = await self._read(schema.SELECT_USER, (username,))
        return _rows.user_from_row(rows[0]) if rows else None

    async def get_user_by_id(self, user_id: str) -> User | None:
        rows = await self._read(schema.SELECT_USER_BY_ID, (user_id,))
        return _rows.user_from_row(rows[0]) if rows else None

    async def add_user(self, user: User) -> bool:
        row = _rows.user_row(user)
        return await self._write(
            lambda conn: conn.execute(schema.INSERT_USER, row).rowcount == 1, atomic=True
        )

    async def save_user(self, user: User) -> None:
        row = _rows.user_row(user)
        await self._write(lambda conn: conn.execute(schema.UPSERT_USER, row).close(), atomic=True)

    async def list_users(self) -> list[User]:
        rows = await self._read(schema.SELECT_USERS + " ORDER BY username")
        return [_rows.user_from_row(row) for row in rows]

    async def delete_user(self, username: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            found = conn.execute(schema.SELECT_USER, (username,)).fetchall()
            if not found:
                return False
            user_id = found[0][0]
            for table in ("consents", "authorization_codes", "device_authorizations"):
                conn.execute(f"DELETE FROM {table} WHERE subject = ?", (user_id,))  # noqa: S608
            conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM federated_identities WHERE user_id = ?", (user_id,))
            _end_tokens_of(conn, "subject", user_id)
            conn.execute("DELETE FROM users WHERE username = ?", (username,))
            return True

        return await self._write(delete, revokes=bool)

    async def get_federated_identity(self, issuer: str, subject: str) -> FederatedIdentity | None:
        rows = await self._read(schema.SELECT_FEDERATED_IDENTITY, (issuer, subject))
        return _rows.federated_identity_from_row(rows[0]) if rows else None

    async def federated_identities(self, user_id: str) -> list[FederatedIdentity]:
        rows = await self._read(schema.SELECT_FEDERATED_OF_USER, (user_id,))
        return [_rows.federated_identity_from_row(row) for row in rows]

    async def add_federated_identity(self, identity: FederatedIdentity) -> bool:
        row = (*_rows.federated_identity_row(identity), identity.user_id)
        return await self._write(
            lambda conn: conn.execute(schema.ADD_FEDERATED_IDENTITY, row).rowcount == 1,
            atomic=True,
        )

    async def add_federated_user(self, user: User, identity: FederatedIdentity) -> bool:
        user_row = _rows.user_row(user)
        identity_row = _rows.federated_identity_row(_rows.linked_to(identity, user))
        pair = (identity.issuer, identity.subject)

        def add(conn: sqlite3.Connection) -> bool:
            # The writer's transaction holds the file, so the pair stays free from
            # this read to the insert; checked first, a taken pair writes nothing.
            if conn.execute(schema.SELECT_FEDERATED_IDENTITY, pair).fetchall():
                return False
            if conn.execute(schema.INSERT_USER, user_row).rowcount == 0:
                return False
            conn.execute(schema.INSERT_FEDERATED_IDENTITY, identity_row)
            return True

        return await self._write(add)

    async def save_federated_identity(self, identity: FederatedIdentity) -> None:
        row = (
            identity.provider,
            identity.claims,
            identity.tokens,
            identity.updated_at,
            identity.issuer,
            identity.subject,
        )
        await self._write(
            lambda conn: conn.execute(schema.UPDATE_FEDERATED_IDENTITY, row).close(), atomic=True
        )

    async def get_consent(self, subject: str, client_id: str) -> frozenset[str] | None:
        rows = await self._read(schema.SELECT_CONSENT, (subject, client_id))
        return frozenset(rows[0][0].split()) if rows else None

    async def save_consent(
        self, subject: str, client_id: str, scope: frozenset[str], *, now: int = 0
    ) -> None:
        row = _rows.consent_row(subject, client_id, scope, now)
        await self._write(
            lambda conn: conn.execute(schema.INSERT_CONSENT, row).close(), atomic=True
        )

    async def list_grants(self, subject: str, *, now: int) -> list[ConnectedApp]:
        rows = await self._read(schema.SELECT_GRANTS, (subject,))
        live = await self._read(schema.SELECT_LIVE_TOKEN_GRANTS, (subject, now))
        consented = [_rows.connected_app_from_row(row) for row in rows]
        return _rows.with_live_tokens(consented, [(r[0], r[1], r[2]) for r in live])

    async def revoke_grant(self, subject: str, client_id: str, *, now: int) -> bool:
        pair = (subject, client_id)

        def revoke(conn: sqlite3.Connection) -> bool:
            ended = 0
            for table in ("consents", "authorization_codes", "device_authorizations"):
                sql = f"DELETE FROM {table} WHERE subject = ? AND client_id = ?"  # noqa: S608
                ended += conn.execute(sql, pair).rowcount
            ended += _end_tokens_where(conn, "subject = ? AND client_id = ?", pair, now)
            return ended > 0

        return await self._write(revoke, revokes=bool)

    async def consented_clients(self, subject: str) -> list[str]:
        rows = await self._read(schema.SELECT_CONSENTED_CLIENTS, (subject,))
        return [row[0] for row in rows]

    async def save_session(self, session: BrowserSession) -> None:
        row = _rows.session_row(session)
        await self._write(
            lambda conn: conn.execute(schema.INSERT_SESSION, row).close(), atomic=True
        )

    async def get_session(self, session_hash: str) -> BrowserSession | None:
        rows = await self._read(schema.SELECT_SESSION, (session_hash,))
        return _rows.session_from_row(rows[0]) if rows else None

    async def delete_session(self, session_hash: str) -> bool:
        sql = "DELETE FROM sessions WHERE session_hash = ?"
        return await self._write(
            lambda conn: conn.execute(sql, (session_hash,)).rowcount == 1, atomic=True
        )

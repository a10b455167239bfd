"""The PostgreSQL schema, its migrations and statements.

As for SQLite, a schema version row records which migrations ran, and a
migration is never edited once released. ``migrate`` holds a transaction-level
advisory lock, so instances starting at once run each migration exactly once.
Rows are the shared tuples of ``_rows``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import asyncpg

from ...models import Token
from .._rows import token_row

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE clients (
            client_id TEXT PRIMARY KEY,
            secret_hash TEXT,
            name TEXT NOT NULL,
            redirect_uris TEXT NOT NULL,
            grant_types TEXT NOT NULL,
            scope TEXT NOT NULL,
            allowed_origins TEXT NOT NULL,
            is_resource_server BOOLEAN NOT NULL,
            require_pkce BOOLEAN NOT NULL,
            created_at BIGINT NOT NULL
        )""",
        """CREATE TABLE client_origins (
            client_id TEXT NOT NULL,
            origin TEXT NOT NULL,
            PRIMARY KEY (client_id, origin)
        )""",
        "CREATE INDEX client_origins_origin ON client_origins (origin)",
        """CREATE TABLE users (
            user_id TEXT PRIMARY KEY,
            username TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            created_at BIGINT NOT NULL
        )""",
        """CREATE TABLE authorization_codes (
            code_hash TEXT PRIMARY KEY,
            client_id TEXT NOT NULL,
            subject TEXT NOT NULL,
            scope TEXT NOT NULL,
            redirect_uri TEXT,
            family_id TEXT NOT NULL,
            issued_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            code_challenge TEXT,
            code_challenge_method TEXT,
            nonce TEXT,
            consumed_at BIGINT
        )""",
        "CREATE INDEX authorization_codes_expires_at ON authorization_codes (expires_at)",
        "CREATE INDEX authorization_codes_client_id ON authorization_codes (client_id)",
        """CREATE TABLE tokens (
            token_hash TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            client_id TEXT NOT NULL,
            scope TEXT NOT NULL,
            family_id TEXT NOT NULL,
            issued_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            subject TEXT,
            audience TEXT NOT NULL,
            parent_hash TEXT,
            replaced_by TEXT,
            rotated_at BIGINT,
            revoked_at BIGINT
        )""",
        "CREATE INDEX tokens_family_id ON tokens (family_id)",
        "CREATE INDEX tokens_parent_hash ON tokens (parent_hash) WHERE parent_hash IS NOT NULL",
        "CREATE INDEX tokens_expires_at ON tokens (expires_at)",
        "CREATE INDEX tokens_client_id ON tokens (client_id)",
        """CREATE TABLE consents (
            subject TEXT NOT NULL,
            client_id TEXT NOT NULL,
            scope TEXT NOT NULL,
            PRIMARY KEY (subject, client_id)
        )""",
        "CREATE INDEX consents_client_id ON consents (client_id)",
        """CREATE TABLE device_authorizations (
            device_code_hash TEXT PRIMARY KEY,
            user_code_hash TEXT NOT NULL UNIQUE,
            client_id TEXT NOT NULL,
            scope TEXT NOT NULL,
            family_id TEXT NOT NULL,
            issued_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            interval INTEGER NOT NULL,
            status TEXT NOT NULL,
            subject TEXT,
            last_polled_at BIGINT
        )""",
        "CREATE INDEX device_authorizations_expires_at ON device_authorizations (expires_at)",
        "CREATE INDEX device_authorizations_client_id ON device_authorizations (client_id)",
    ),
    (
        # Deleting a user deletes what was issued on their behalf.
        "CREATE INDEX tokens_subject ON tokens (subject) WHERE subject IS NOT NULL",
        "CREATE INDEX authorization_codes_subject ON authorization_codes (subject)",
        # Failed guesses, shared by every instance on the database.
        """CREATE TABLE failures (
            key TEXT NOT NULL,
            at BIGINT NOT NULL
        )""",
        "CREATE INDEX failures_key_at ON failures (key, at)",
        "CREATE INDEX failures_at ON failures (at)",
    ),
    (
        # OpenID Connect: what a client's tokens look like, how a user signed in.
        "ALTER TABLE clients ADD COLUMN access_token_format TEXT,"
        " ADD COLUMN id_token_signed_response_alg TEXT NOT NULL DEFAULT 'RS256'",
        "ALTER TABLE authorization_codes ADD COLUMN auth_time BIGINT, ADD COLUMN acr TEXT,"
        " ADD COLUMN amr TEXT NOT NULL DEFAULT ''",
        # Keys that sign ID tokens and JWT access tokens: one active per algorithm.
        """CREATE TABLE signing_keys (
            kid TEXT PRIMARY KEY,
            alg TEXT NOT NULL,
            public_jwk TEXT NOT NULL,
            private_jwk TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            retired_at BIGINT,
            expires_at BIGINT
        )""",
        "CREATE UNIQUE INDEX signing_keys_active_alg ON signing_keys (alg)"
        " WHERE retired_at IS NULL",
        # The revocation list of JWT access tokens.
        "CREATE INDEX tokens_revoked_access ON tokens (expires_at)"
        " WHERE revoked_at IS NOT NULL AND kind = 'access_token'",
    ),
    (
        # Pushed requests (RFC 9126), DPoP (RFC 9449), resource indicators (RFC 8707),
        # dynamic registration (RFC 7591, RFC 7592).
        "ALTER TABLE clients"
        " ADD COLUMN require_pushed_authorization_requests BOOLEAN NOT NULL DEFAULT false,"
        " ADD COLUMN dpop_bound_access_tokens BOOLEAN NOT NULL DEFAULT false,"
        " ADD COLUMN registration_access_token_hash TEXT,"
        " ADD COLUMN registration_metadata TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE authorization_codes ADD COLUMN resource TEXT NOT NULL DEFAULT '',"
        " ADD COLUMN dpop_jkt TEXT",
        "ALTER TABLE device_authorizations ADD COLUMN resource TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE tokens ADD COLUMN jkt TEXT",
        """CREATE TABLE pushed_authorization_requests (
            request_uri_hash TEXT PRIMARY KEY,
            client_id TEXT NOT NULL,
            params TEXT NOT NULL,
            issued_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            consumed_at BIGINT
        )""",
        "CREATE INDEX pushed_authorization_requests_expires_at"
        " ON pushed_authorization_requests (expires_at)",
        "CREATE INDEX pushed_authorization_requests_client_id"
        " ON pushed_authorization_requests (client_id)",
        # Keys seen once until they expire (a DPoP proof's jti, RFC 9449 §11.1).
        """CREATE TABLE once_keys (
            key TEXT PRIMARY KEY,
            expires_at BIGINT NOT NULL
        )""",
        "CREATE INDEX once_keys_expires_at ON once_keys (expires_at)",
    ),
    (
        # What a retry in the refresh grace period repeats, sealed under the old token;
        # a retry no longer revokes what was rotated out before it, by parent.
        "ALTER TABLE tokens ADD COLUMN sealed_response TEXT",
        "DROP INDEX tokens_parent_hash",
        # Sign-in sessions of the built-in page, so signing out ends one on the server.
        """CREATE TABLE sessions (
            session_hash TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            auth_time BIGINT NOT NULL,
            expires_at BIGINT NOT NULL
        )""",
        "CREATE INDEX sessions_user_id ON sessions (user_id)",
        "CREATE INDEX sessions_expires_at ON sessions (expires_at)",
        # A grant with a refresh token, revoked as one: rotation and revocation both take
        # its row first, so under READ COMMITTED neither misses what the other wrote.
        """CREATE TABLE token_families (
            family_id TEXT PRIMARY KEY,
            client_id TEXT NOT NULL,
            subject TEXT,
            expires_at BIGINT NOT NULL,
            revoked_at BIGINT
        )""",
        "CREATE INDEX token_families_client_id ON token_families (client_id)",
        "CREATE INDEX token_families_subject ON token_families (subject) WHERE subject IS NOT NULL",
        "CREATE INDEX token_families_expires_at ON token_families (expires_at)",
        "INSERT INTO token_families (family_id, client_id, subject, expires_at)"
        " SELECT family_id, min(client_id), min(subject), max(expires_at) FROM tokens"
        " WHERE kind = 'refresh_token' AND revoked_at IS NULL GROUP BY family_id",
    ),
    (
        # OpenID Connect Registration §2: web or native, which decides the redirect
        # URIs a client may use; NULL for a client registered before.
        "ALTER TABLE clients ADD COLUMN application_type TEXT",
    ),
    (
        # Accounts at upstream identity providers linked to local users, by the
        # provider's stable (issuer, subject) pair (OpenID Connect Core §5.7).
        """CREATE TABLE federated_identities (
            issuer TEXT NOT NULL,
            subject TEXT NOT NULL,
            user_id TEXT NOT NULL,
            provider TEXT NOT NULL,
            claims TEXT NOT NULL,
            tokens TEXT,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            PRIMARY KEY (issuer, subject)
        )""",
        "CREATE INDEX federated_identities_user_id ON federated_identities (user_id)",
    ),
    (
        # Requests counted per (hashed) key in fixed windows, for the rate limits.
        """CREATE TABLE request_counts (
            key TEXT NOT NULL,
            window_start BIGINT NOT NULL,
            count INTEGER NOT NULL,
            expires_at BIGINT NOT NULL,
            PRIMARY KEY (key, window_start)
        )""",
        "CREATE INDEX request_counts_expires_at ON request_counts (expires_at)",
    ),
    (
        # OpenID Connect RP-Initiated Logout 1.0 §3.1 and Back-Channel Logout 1.0 §2.2:
        # where a client's users return after signing out, and where it is told.
        "ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT",
    ),
    (
        # When a person last approved a client, for their connected applications page;
        # 0 for a consent kept before.
        "ALTER TABLE consents ADD COLUMN granted_at BIGINT NOT NULL DEFAULT 0",
    ),
    (
        # The maintenance switch every instance on the database follows: one row while
        # it is off, saying since when (asgi_oauth.availability).
        """CREATE TABLE maintenance (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            since BIGINT NOT NULL
        )""",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)

#: The advisory lock migrations hold (an arbitrary constant: "asgi_oauth" in ASCII).
_MIGRATION_LOCK = 0x6173_6769_6F61

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def check_schema_name(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"schema must be a lower-case SQL identifier, not {name!r}")
    return name


async def migrate(conn: asyncpg.Connection, schema: str | None) -> int:
    """Bring the database up to ``SCHEMA_VERSION``; returns how many migrations ran."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        if schema is not None:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{check_schema_name(schema)}"')
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            "id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
        )
        current: int = await conn.fetchval("SELECT version FROM schema_version WHERE id = 1") or 0
        if current > SCHEMA_VERSION:
            raise asyncpg.DataError(
                f"schema version {current} is newer than the supported {SCHEMA_VERSION}"
            )
        for statements in MIGRATIONS[current:]:
            for statement in statements:
                await conn.execute(statement)
        if current < SCHEMA_VERSION:
            await conn.execute(
                "INSERT INTO schema_version (id, version) VALUES (1, $1)"
                " ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                SCHEMA_VERSION,
            )
    return SCHEMA_VERSION - current


SELECT_CLIENTS = (
    "SELECT client_id, secret_hash, name, redirect_uris, grant_types, scope,"
    " allowed_origins, is_resource_server, require_pkce, created_at,"
    " access_token_format, id_token_signed_response_alg,"
    " require_pushed_authorization_requests, dpop_bound_access_tokens,"
    " registration_access_token_hash, registration_metadata, application_type,"
    " post_logout_redirect_uris, backchannel_logout_uri FROM clients"
)
_CLIENT_INSERT = (
    "INSERT INTO clients (client_id, secret_hash, name, redirect_uris, grant_types,"
    " scope, allowed_origins, is_resource_server, require_pkce, created_at,"
    " access_token_format, id_token_signed_response_alg,"
    " require_pushed_authorization_requests, dpop_bound_access_tokens,"
    " registration_access_token_hash, registration_metadata, application_type,"
    " post_logout_redirect_uris, backchannel_logout_uri)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,"
    " $18, $19)"
)
#: Adds a client unless its id is taken.
ADD_CLIENT = _CLIENT_INSERT + " ON CONFLICT (client_id) DO NOTHING"
UPSERT_CLIENT = (
    _CLIENT_INSERT + " ON CONFLICT (client_id) DO UPDATE SET secret_hash = excluded.secret_hash,"
    " name = excluded.name, redirect_uris = excluded.redirect_uris,"
    " grant_types = excluded.grant_types, scope = excluded.scope,"
    " allowed_origins = excluded.allowed_origins,"
    " is_resource_server = excluded.is_resource_server,"
    " require_pkce = excluded.require_pkce, created_at = excluded.created_at,"
    " access_token_format = excluded.access_token_format,"
    " id_token_signed_response_alg = excluded.id_token_signed_response_alg,"
    " require_pushed_authorization_requests = excluded.require_pushed_authorization_requests,"
    " dpop_bound_access_tokens = excluded.dpop_bound_access_tokens,"
    " registration_access_token_hash = excluded.registration_access_token_hash,"
    " registration_metadata = excluded.registration_metadata,"
    " application_type = excluded.application_type,"
    " post_logout_redirect_uris = excluded.post_logout_redirect_uris,"
    " backchannel_logout_uri = excluded.backchannel_logout_uri"
)
SELECT_USERS = "SELECT user_id, username, password_hash, created_at FROM users"
#: Adds a user unless its id or username is taken (either unique constraint).
INSERT_USER = (
    "INSERT INTO users (user_id, username, password_hash, created_at) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT DO NOTHING"
)
#: Inserts a user or replaces the one with its id; another user's username fails.
UPSERT_USER = (
    "INSERT INTO users (user_id, username, password_hash, created_at) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (user_id) DO UPDATE SET username = excluded.username,"
    " password_hash = excluded.password_hash, created_at = excluded.created_at"
)
SELECT_CODE = (
    "SELECT code_hash, client_id, subject, scope, redirect_uri, family_id, issued_at,"
    " expires_at, code_challenge, code_challenge_method, nonce, consumed_at,"
    " auth_time, acr, amr, resource, dpop_jkt FROM authorization_codes WHERE code_hash = $1"
)
INSERT_CODE = (
    "INSERT INTO authorization_codes (code_hash, client_id, subject, scope, redirect_uri,"
    " family_id, issued_at, expires_at, code_challenge, code_challenge_method, nonce,"
    " consumed_at, auth_time, acr, amr, resource, dpop_jkt)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
)
SELECT_CONSENT = "SELECT scope FROM consents WHERE subject = $1 AND client_id = $2"
SELECT_CONSENTED_CLIENTS = "SELECT client_id FROM consents WHERE subject = $1 ORDER BY client_id"
UPSERT_CONSENT = (
    "INSERT INTO consents (subject, client_id, scope, granted_at) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (subject, client_id)"
    " DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at"
)
#: A person's consents, each with the latest of their tokens for its client
#: (``tokens_subject`` finds those): nothing is written on the token path for it.
SELECT_GRANTS = (
    "SELECT c.client_id, c.scope, c.granted_at, (SELECT max(t.issued_at) FROM tokens t"
    " WHERE t.subject = c.subject AND t.client_id = c.client_id)"
    ' FROM consents c WHERE c.subject = $1 ORDER BY c.client_id COLLATE "C"'
)
#: The user's live, unrevoked tokens by client, for the clients they hold no consent with.
SELECT_LIVE_TOKEN_GRANTS = (
    "SELECT client_id, scope, issued_at FROM tokens"
    " WHERE subject = $1 AND expires_at > $2 AND revoked_at IS NULL"
)
SELECT_DEVICES = (
    "SELECT device_code_hash, user_code_hash, client_id, scope, family_id, issued_at,"
    ' expires_at, "interval", status, subject, last_polled_at, resource'
    " FROM device_authorizations"
)
INSERT_DEVICE = (
    "INSERT INTO device_authorizations (device_code_hash, user_code_hash, client_id, scope,"
    ' family_id, issued_at, expires_at, "interval", status, subject, last_polled_at, resource)'
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
)
SELECT_TOKEN = (
    "SELECT token_hash, kind, client_id, scope, family_id, issued_at, expires_at, subject,"
    " audience, parent_hash, replaced_by, rotated_at, revoked_at, jkt, sealed_response"
    " FROM tokens WHERE token_hash = $1"
)
#: ``SELECT_TOKEN`` for several hashes at once (introspection's batches).
SELECT_TOKENS = SELECT_TOKEN.replace("token_hash = $1", "token_hash = ANY($1::text[])")
#: The revocation list: partial index ``tokens_revoked_access`` covers exactly these rows.
SELECT_REVOKED_ACCESS_TOKENS = (
    "SELECT token_hash FROM tokens"
    " WHERE revoked_at IS NOT NULL AND kind = 'access_token' AND expires_at > $1"
)
SELECT_SIGNING_KEYS = (
    "SELECT kid, alg, public_jwk, private_jwk, created_at, retired_at, expires_at"
    " FROM signing_keys WHERE expires_at IS NULL OR expires_at > $1"
    ' ORDER BY created_at, kid COLLATE "C"'
)
#: Adds a key unless one of its algorithm is active (a duplicate kid still fails).
INSERT_SIGNING_KEY = (
    "INSERT INTO signing_keys (kid, alg, public_jwk, private_jwk, created_at, retired_at,"
    " expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    " ON CONFLICT (alg) WHERE retired_at IS NULL DO NOTHING"
)
SELECT_PUSHED_REQUEST = (
    "SELECT request_uri_hash, client_id, params, issued_at, expires_at, consumed_at"
    " FROM pushed_authorization_requests WHERE request_uri_hash = $1"
)
INSERT_PUSHED_REQUEST = (
    "INSERT INTO pushed_authorization_requests (request_uri_hash, client_id, params,"
    " issued_at, expires_at, consumed_at) VALUES ($1, $2, $3, $4, $5, $6)"
)
#: Remembers a key, or replaces it if it expired; no row changes while it is unexpired.
#: A racing insert of the same key waits for the first and then takes the UPDATE branch,
#: which re-checks the row the first committed.
USE_ONCE = (
    "INSERT INTO once_keys (key, expires_at) VALUES ($1, $2)"
    " ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at"
    " WHERE once_keys.expires_at <= $3"
)
#: Counts a request in its window unless the limit is reached: then no row changes and
#: nothing is returned. A racing insert waits for the row's lock and re-checks the count.
COUNT_REQUEST = (
    "INSERT INTO request_counts (key, window_start, count, expires_at) VALUES ($1, $2, 1, $3)"
    " ON CONFLICT (key, window_start) DO UPDATE SET count = request_counts.count + 1"
    " WHERE request_counts.count < $4 RETURNING count"
)
SELECT_SESSION = (
    "SELECT session_hash, user_id, auth_time, expires_at FROM sessions WHERE session_hash = $1"
)
INSERT_SESSION = (
    "INSERT INTO sessions (session_hash, user_id, auth_time, expires_at) VALUES ($1, $2, $3, $4)"
)
SELECT_FEDERATED = (
    "SELECT issuer, subject, user_id, provider, claims, tokens, created_at, updated_at"
    " FROM federated_identities"
)
SELECT_FEDERATED_IDENTITY = SELECT_FEDERATED + " WHERE issuer = $1 AND subject = $2"
SELECT_FEDERATED_OF_USER = (
    SELECT_FEDERATED + " WHERE user_id = $1"
    ' ORDER BY updated_at DESC, issuer COLLATE "C", subject COLLATE "C"'
)
#: Links an account to an existing user unless it is linked already. The user's row
#: is locked (``FOR KEY SHARE``, as a foreign key would) until the commit, so a
#: ``delete_user`` racing with it either comes first (no row: nothing is linked) or
#: waits, and then deletes the link too.
ADD_FEDERATED_IDENTITY = (
    "INSERT INTO federated_identities (issuer, subject, user_id, provider, claims, tokens,"
    " created_at, updated_at) SELECT $1, $2, $3, $4, $5, $6, $7, $8"
    " WHERE EXISTS (SELECT 1 FROM users WHERE user_id = $3 FOR KEY SHARE)"
    " ON CONFLICT (issuer, subject) DO NOTHING"
)
#: The link of a new user; a pair linked meanwhile makes it a no-op (``INSERT 0 0``).
INSERT_FEDERATED_IDENTITY = (
    "INSERT INTO federated_identities (issuer, subject, user_id, provider, claims, tokens,"
    " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    " ON CONFLICT (issuer, subject) DO NOTHING"
)
UPDATE_FEDERATED_IDENTITY = (
    "UPDATE federated_identities SET provider = $1, claims = $2, tokens = $3, updated_at = $4"
    " WHERE issuer = $5 AND subject = $6"
)
#: A new grant with a refresh token: the family its rotations and revocations lock
#: (one already known keeps its state, revoked or not).
INSERT_FAMILY = (
    "INSERT INTO token_families (family_id, client_id, subject, expires_at)"
    " VALUES ($1, $2, $3, $4) ON CONFLICT (family_id)"
    " DO UPDATE SET expires_at = GREATEST(token_families.expires_at, excluded.expires_at)"
)
#: A rotation's first step: the family, unless revoked, locked until the rotation commits.
LOCK_FAMILY = (
    "UPDATE token_families SET expires_at = GREATEST(expires_at, $2)"
    " WHERE family_id = $1 AND revoked_at IS NULL"
)
#: The advisory lock class under which guesses at one key are counted one at a time
#: (two 32-bit keys: a space apart from the migrations' one 64-bit key).
FAILURE_LOCK_CLASS = 0x6661_696C
#: Every token of a response in one statement, whatever their number: one array per column.
INSERT_TOKENS = (
    "INSERT INTO tokens (token_hash, kind, client_id, scope, family_id, issued_at, expires_at,"
    " subject, audience, parent_hash, replaced_by, rotated_at, revoked_at, jkt)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
    " $6::bigint[], $7::bigint[], $8::text[], $9::text[], $10::text[], $11::text[],"
    " $12::bigint[], $13::bigint[], $14::text[])"
)


def token_columns(tokens: Sequence[Token]) -> list[list[object]]:
    """The parameters of ``INSERT_TOKENS``: the tokens' rows, turned into columns."""
    return [list(column) for column in zip(*(token_row(t) for t in tokens), strict=True)]

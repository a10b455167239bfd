"""The SQLite schema of ``SQLiteStorage``: migrations, and how models map to rows.

The one-row ``schema_version`` table records how many migrations a file has had.
``migrate`` runs the missing ones inside ``BEGIN IMMEDIATE``, so two processes
opening one file at once apply each migration exactly once, and running it again
is a no-op. A migration is never edited once released: change the schema by
appending one. Codes and tokens are rowid tables: a new row lands at the end
of the table and of most indexes, so a random hash key dirties half the pages
it would in a ``WITHOUT ROWID`` table. Scopes and grant types are stored as
sorted, space-joined words; lists of URIs as space-joined text in their order;
booleans as 0/1.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence

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
            is_resource_server INTEGER NOT NULL,
            require_pkce INTEGER NOT NULL,
            created_at INTEGER NOT NULL
        )""",
        """CREATE TABLE client_origins (
            client_id TEXT NOT NULL,
            origin TEXT NOT NULL,
            PRIMARY KEY (client_id, origin)
        ) WITHOUT ROWID""",
        "CREATE INDEX client_origins_origin ON client_origins (origin)",
        """CREATE TABLE users (
            user_id TEXT PRIMARY KEY,
            username TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            created_at INTEGER NOT NULL
        )""",
        """CREATE TABLE authorization_codes (
            code_hash TEXT PRIMARY KEY,
            client_id TEXT NOT NULL,
            subject TEXT NOT NULL,
            scope TEXT NOT NULL,
            redirect_uri TEXT,
            family_id TEXT NOT NULL,
            issued_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            code_challenge TEXT,
            code_challenge_method TEXT,
            nonce TEXT,
            consumed_at INTEGER
        )""",
        "CREATE INDEX authorization_codes_expires_at ON authorization_codes (expires_at)",
        "CREATE INDEX authorization_codes_client_id ON authorization_codes (client_id)",
        """CREATE TABLE tokens (
            token_hash TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            client_id TEXT NOT NULL,
            scope TEXT NOT NULL,
            family_id TEXT NOT NULL,
            issued_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            subject TEXT,
            audience TEXT NOT NULL,
            parent_hash TEXT,
            replaced_by TEXT,
            rotated_at INTEGER,
            revoked_at INTEGER
        )""",
        "CREATE INDEX tokens_family_id ON tokens (family_id)",
        "CREATE INDEX tokens_parent_hash ON tokens (parent_hash) WHERE parent_hash IS NOT NULL",
        "CREATE INDEX tokens_expires_at ON tokens (expires_at)",
        "CREATE INDEX tokens_client_id ON tokens (client_id)",
    ),
    (
        """CREATE TABLE consents (
            subject TEXT NOT NULL,
            client_id TEXT NOT NULL,
            scope TEXT NOT NULL,
            PRIMARY KEY (subject, client_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX consents_client_id ON consents (client_id)",
        """CREATE TABLE device_authorizations (
            device_code_hash TEXT PRIMARY KEY,
            user_code_hash TEXT NOT NULL,
            client_id TEXT NOT NULL,
            scope TEXT NOT NULL,
            family_id TEXT NOT NULL,
            issued_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            interval INTEGER NOT NULL,
            status TEXT NOT NULL,
            subject TEXT,
            last_polled_at INTEGER
        )""",
        "CREATE UNIQUE INDEX device_authorizations_user_code_hash"
        " ON device_authorizations (user_code_hash)",
        "CREATE INDEX device_authorizations_expires_at ON device_authorizations (expires_at)",
        "CREATE INDEX device_authorizations_client_id ON device_authorizations (client_id)",
    ),
    (
        # Deleting a user deletes what was issued on their behalf.
        "CREATE INDEX tokens_subject ON tokens (subject) WHERE subject IS NOT NULL",
        "CREATE INDEX authorization_codes_subject ON authorization_codes (subject)",
        # Failed guesses, shared by every process on the file.
        """CREATE TABLE failures (
            key TEXT NOT NULL,
            at INTEGER NOT NULL
        )""",
        "CREATE INDEX failures_key_at ON failures (key, at)",
        "CREATE INDEX failures_at ON failures (at)",
    ),
    (
        # OpenID Connect: what a client's tokens look like, how a user signed in.
        "ALTER TABLE clients ADD COLUMN access_token_format TEXT",
        "ALTER TABLE clients ADD COLUMN id_token_signed_response_alg TEXT NOT NULL DEFAULT 'RS256'",
        "ALTER TABLE authorization_codes ADD COLUMN auth_time INTEGER",
        "ALTER TABLE authorization_codes ADD COLUMN acr TEXT",
        "ALTER TABLE authorization_codes ADD COLUMN amr TEXT NOT NULL DEFAULT ''",
        # Keys that sign ID tokens and JWT access tokens: one active per algorithm.
        """CREATE TABLE signing_keys (
            kid TEXT PRIMARY KEY,
            alg TEXT NOT NULL,
            public_jwk TEXT NOT NULL,
            private_jwk TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            retired_at INTEGER,
            expires_at INTEGER
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
        "ALTER TABLE clients ADD COLUMN require_pushed_authorization_requests"
        " INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE clients ADD COLUMN dpop_bound_access_tokens INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE clients ADD COLUMN registration_access_token_hash TEXT",
        "ALTER TABLE clients ADD COLUMN registration_metadata TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE authorization_codes ADD COLUMN resource TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE authorization_codes ADD COLUMN dpop_jkt TEXT",
        "ALTER TABLE device_authorizations ADD COLUMN resource TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE tokens ADD COLUMN jkt TEXT",
        """CREATE TABLE pushed_authorization_requests (
            request_uri_hash TEXT PRIMARY KEY,
            client_id TEXT NOT NULL,
            params TEXT NOT NULL,
            issued_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            consumed_at INTEGER
        )""",
        "CREATE INDEX pushed_authorization_requests_expires_at"
        " ON pushed_authorization_requests (expires_at)",
        "CREATE INDEX pushed_authorization_requests_client_id"
        " ON pushed_authorization_requests (client_id)",
        # Keys seen once until they expire (a DPoP proof's jti, RFC 9449 §11.1).
        """CREATE TABLE once_keys (
            key TEXT PRIMARY KEY,
            expires_at INTEGER NOT NULL
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
            auth_time INTEGER NOT NULL,
            expires_at INTEGER NOT NULL
        )""",
        "CREATE INDEX sessions_user_id ON sessions (user_id)",
        "CREATE INDEX sessions_expires_at ON sessions (expires_at)",
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
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (issuer, subject)
        ) WITHOUT ROWID""",
        "CREATE INDEX federated_identities_user_id ON federated_identities (user_id)",
    ),
    (
        # Requests counted per (hashed) key in fixed windows, for the rate limits.
        """CREATE TABLE request_counts (
            key TEXT NOT NULL,
            window_start INTEGER NOT NULL,
            count INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            PRIMARY KEY (key, window_start)
        ) WITHOUT ROWID""",
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
        "ALTER TABLE consents ADD COLUMN granted_at INTEGER NOT NULL DEFAULT 0",
    ),
    (
        # The maintenance switch every instance on the database follows: one row while
        # it is off, saying since when (asgi_oauth.availability).
        """CREATE TABLE maintenance (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            since INTEGER NOT NULL
        )""",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the file up to ``SCHEMA_VERSION``; returns how many migrations ran.

    ``conn`` must be in autocommit mode (``isolation_level=None``) and outside
    a transaction. Raises ``sqlite3.DatabaseError`` if the file was written by
    a newer schema than this one knows.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            "id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
        )
        row = conn.execute("SELECT version FROM schema_version WHERE id = 1").fetchall()
        current: int = row[0][0] if row else 0
        if current > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"schema version {current} is newer than the supported {SCHEMA_VERSION}"
            )
        for statements in MIGRATIONS[current:]:
            for statement in statements:
                conn.execute(statement)
        if current < SCHEMA_VERSION:
            conn.execute(
                "INSERT INTO schema_version (id, version) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                (SCHEMA_VERSION,),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION - current


# -- rows ----------------------------------------------------------------------------------

SELECT_CLIENTS = (
    "SELECT client_id, secret_hash, name, redirect_uris, grant_types, scope,"
    " allowed_origins, is_resource_server, require_pkce, created_at,"
    " access_token_format, id_token_signed_response_alg,"
    " require_pushed_authorization_requests, dpop_bound_access_tokens,"
    " registration_access_token_hash, registration_metadata, application_type,"
    " post_logout_redirect_uris, backchannel_logout_uri FROM clients"
)
_CLIENT_INSERT = (
    "INTO clients (client_id, secret_hash, name, redirect_uris, grant_types,"
    " scope, allowed_origins, is_resource_server, require_pkce, created_at,"
    " access_token_format, id_token_signed_response_alg,"
    " require_pushed_authorization_requests, dpop_bound_access_tokens,"
    " registration_access_token_hash, registration_metadata, application_type,"
    " post_logout_redirect_uris, backchannel_logout_uri)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_CLIENT = "INSERT OR REPLACE " + _CLIENT_INSERT
#: Adds a client unless its id is taken.
ADD_CLIENT = "INSERT " + _CLIENT_INSERT + " ON CONFLICT (client_id) DO NOTHING"
SELECT_USERS = "SELECT user_id, username, password_hash, created_at FROM users"
SELECT_USER = SELECT_USERS + " WHERE username = ?"
SELECT_USER_BY_ID = SELECT_USERS + " WHERE user_id = ?"
#: Adds a user unless its id or username is taken (either unique constraint).
INSERT_USER = (
    "INSERT INTO users (user_id, username, password_hash, created_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT DO NOTHING"
)
#: Inserts a user or replaces the one with its id; another user's username fails.
UPSERT_USER = (
    "INSERT INTO users (user_id, username, password_hash, created_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (user_id) DO UPDATE SET username = excluded.username,"
    " password_hash = excluded.password_hash, created_at = excluded.created_at"
)
SELECT_CODE = (
    "SELECT code_hash, client_id, subject, scope, redirect_uri, family_id, issued_at,"
    " expires_at, code_challenge, code_challenge_method, nonce, consumed_at,"
    " auth_time, acr, amr, resource, dpop_jkt FROM authorization_codes WHERE code_hash = ?"
)
INSERT_CODE = (
    "INSERT INTO authorization_codes (code_hash, client_id, subject, scope, redirect_uri,"
    " family_id, issued_at, expires_at, code_challenge, code_challenge_method, nonce,"
    " consumed_at, auth_time, acr, amr, resource, dpop_jkt)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT_CONSENT = "SELECT scope FROM consents WHERE subject = ? AND client_id = ?"
SELECT_CONSENTED_CLIENTS = "SELECT client_id FROM consents WHERE subject = ? ORDER BY client_id"
INSERT_CONSENT = (
    "INSERT OR REPLACE INTO consents (subject, client_id, scope, granted_at) VALUES (?, ?, ?, ?)"
)
#: A person's consents, each with the latest of their tokens for its client
#: (``tokens_subject`` finds those): nothing is written on the token path for it.
SELECT_GRANTS = (
    "SELECT c.client_id, c.scope, c.granted_at, (SELECT max(t.issued_at) FROM tokens t"
    " WHERE t.subject = c.subject AND t.client_id = c.client_id)"
    " FROM consents c WHERE c.subject = ? ORDER BY c.client_id"
)
#: The user's live, unrevoked tokens by client, for the clients they hold no consent with.
SELECT_LIVE_TOKEN_GRANTS = (
    "SELECT client_id, scope, issued_at FROM tokens"
    " WHERE subject = ? AND expires_at > ? AND revoked_at IS NULL"
)
SELECT_DEVICES = (
    "SELECT device_code_hash, user_code_hash, client_id, scope, family_id, issued_at,"
    " expires_at, interval, status, subject, last_polled_at, resource"
    " FROM device_authorizations"
)
INSERT_DEVICE = (
    "INSERT INTO device_authorizations (device_code_hash, user_code_hash, client_id, scope,"
    " family_id, issued_at, expires_at, interval, status, subject, last_polled_at, resource)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT_TOKEN = (
    "SELECT token_hash, kind, client_id, scope, family_id, issued_at, expires_at, subject,"
    " audience, parent_hash, replaced_by, rotated_at, revoked_at, jkt, sealed_response"
    " FROM tokens WHERE token_hash = ?"
)
#: The revocation list: partial index ``tokens_revoked_access`` covers exactly these rows.
SELECT_REVOKED_ACCESS_TOKENS = (
    "SELECT token_hash FROM tokens"
    " WHERE revoked_at IS NOT NULL AND kind = 'access_token' AND expires_at > ?"
)
SELECT_SIGNING_KEYS = (
    "SELECT kid, alg, public_jwk, private_jwk, created_at, retired_at, expires_at"
    " FROM signing_keys WHERE expires_at IS NULL OR expires_at > ? ORDER BY created_at, kid"
)
#: Adds a key unless one of its algorithm is active (a duplicate kid still fails).
INSERT_SIGNING_KEY = (
    "INSERT INTO signing_keys (kid, alg, public_jwk, private_jwk, created_at, retired_at,"
    " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (alg) WHERE retired_at IS NULL DO NOTHING"
)
SELECT_PUSHED_REQUEST = (
    "SELECT request_uri_hash, client_id, params, issued_at, expires_at, consumed_at"
    " FROM pushed_authorization_requests WHERE request_uri_hash = ?"
)
INSERT_PUSHED_REQUEST = (
    "INSERT INTO pushed_authorization_requests (request_uri_hash, client_id, params,"
    " issued_at, expires_at, consumed_at) VALUES (?, ?, ?, ?, ?, ?)"
)
#: Remembers a key, or replaces it if it expired; no row changes while it is unexpired.
USE_ONCE = (
    "INSERT INTO once_keys (key, expires_at) VALUES (?, ?)"
    " ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at"
    " WHERE once_keys.expires_at <= ?"
)
#: Counts a request in its window unless the limit is reached: then no row changes and
#: nothing is returned, so the count never grows past the limit.
COUNT_REQUEST = (
    "INSERT INTO request_counts (key, window_start, count, expires_at) VALUES (?, ?, 1, ?)"
    " ON CONFLICT (key, window_start) DO UPDATE SET count = request_counts.count + 1"
    " WHERE request_counts.count < ? RETURNING count"
)
SELECT_SESSION = (
    "SELECT session_hash, user_id, auth_time, expires_at FROM sessions WHERE session_hash = ?"
)
INSERT_SESSION = (
    "INSERT INTO sessions (session_hash, user_id, auth_time, expires_at) VALUES (?, ?, ?, ?)"
)
SELECT_FEDERATED = (
    "SELECT issuer, subject, user_id, provider, claims, tokens, created_at, updated_at"
    " FROM federated_identities"
)
SELECT_FEDERATED_IDENTITY = SELECT_FEDERATED + " WHERE issuer = ? AND subject = ?"
SELECT_FEDERATED_OF_USER = (
    SELECT_FEDERATED + " WHERE user_id = ? ORDER BY updated_at DESC, issuer, subject"
)
#: Links an account to an existing user unless it is linked already. ``ON CONFLICT``
#: after a ``SELECT`` needs its ``WHERE``: SQLite would read ``ON`` as a join otherwise.
ADD_FEDERATED_IDENTITY = (
    "INSERT INTO federated_identities (issuer, subject, user_id, provider, claims, tokens,"
    " created_at, updated_at) SELECT ?, ?, ?, ?, ?, ?, ?, ?"
    " WHERE EXISTS (SELECT 1 FROM users WHERE user_id = ?)"
    " ON CONFLICT (issuer, subject) DO NOTHING"
)
INSERT_FEDERATED_IDENTITY = (
    "INSERT INTO federated_identities (issuer, subject, user_id, provider, claims, tokens,"
    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
UPDATE_FEDERATED_IDENTITY = (
    "UPDATE federated_identities SET provider = ?, claims = ?, tokens = ?, updated_at = ?"
    " WHERE issuer = ? AND subject = ?"
)
_TOKEN_COLUMNS = (
    "token_hash, kind, client_id, scope, family_id, issued_at, expires_at,"
    " subject, audience, parent_hash, replaced_by, rotated_at, revoked_at, jkt"
)
_TOKEN_VALUES = "(" + ", ".join("?" * 14) + ")"


@functools.cache
def insert_tokens(count: int) -> str:
    """One INSERT of ``count`` tokens: a single statement is atomic without a savepoint."""
    values = ", ".join([_TOKEN_VALUES] * count)
    return f"INSERT INTO tokens ({_TOKEN_COLUMNS}) VALUES {values}"  # noqa: S608 (constants only)


def token_rows(tokens: Sequence[Token]) -> tuple[object, ...]:
    """The parameters of ``insert_tokens(len(tokens))``."""
    return tuple(value for token in tokens for value in token_row(token))

"""The storage interface every backend implements.

Each method is one atomic step: the conditional ones (redeeming a code,
rotating a refresh token) decide and write in one transaction, so two server
instances racing on one database still give one winner. A backend raises
``StorageError`` when its database fails, and then nothing it was asked to
write has been written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

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


@runtime_checkable
class Storage(Protocol):
    """The methods every store has.

    A store may also have a ``revocation_signal`` (``revocation_signal.RevocationSignal``),
    moved after every revocation it committed (``revoke_token``, ``revoke_family``,
    ``delete_client``, ``delete_user``, ``revoke_grant``, ``add_signing_key``) by whichever
    process made it, so the caches of every process sharing the store forget at once.
    It is not part of the protocol: a store without one is taken to be shared by no
    other process (``revocation_signal.signal_of``).
    """

    async def get_client(self, client_id: str) -> Client | None:
        """The client with this id, for client authentication on every endpoint."""

    async def add_client(self, client: Client) -> bool:
        """Insert a new client; False, writing nothing, if its ``client_id`` is taken.
        One insert decides, so of two registrations racing for one id exactly one wins."""

    async def save_client(self, client: Client) -> None:
        """Insert the client, or replace the one with the same id."""

    async def delete_client(self, client_id: str) -> bool:
        """Remove a client with its codes, refresh tokens, device codes, pushed
        authorization requests and consents;
        False if unknown. Its access tokens are revoked rather than deleted, and go
        at the purge after they expire, so ``list_revoked_access_tokens`` names them."""

    async def list_clients(self) -> list[Client]:
        """Every client, ordered by id."""

    async def is_allowed_origin(self, origin: str) -> bool:
        """Whether some client registered this browser origin (CORS)."""

    async def get_user(self, username: str) -> User | None:
        """The user with this username, for the password grant and the login page."""

    async def get_user_by_id(self, user_id: str) -> User | None:
        """The user with this id, for a signed-in session."""

    async def add_user(self, user: User) -> bool:
        """Insert a new user; False, writing nothing, if its username or id is taken.
        One insert decides, so of two sign-ups racing for one name exactly one wins."""

    async def save_user(self, user: User) -> None:
        """Replace the user with the same id (a new password); its username stays."""

    async def list_users(self) -> list[User]:
        """Every user, ordered by username."""

    async def delete_user(self, username: str) -> bool:
        """Remove a user with the consents they gave, their sign-in sessions, their
        linked upstream accounts and every
        code, device code and refresh token issued on their behalf; False if unknown.
        Their access tokens are revoked rather than deleted, as ``delete_client`` does.
        A rotation racing with it gives the user no live token."""

    async def get_federated_identity(self, issuer: str, subject: str) -> FederatedIdentity | None:
        """The link of this upstream account to a local user, if there is one."""

    async def federated_identities(self, user_id: str) -> list[FederatedIdentity]:
        """Every upstream account linked to this user, the last signed in through first."""

    async def add_federated_identity(self, identity: FederatedIdentity) -> bool:
        """Link an upstream account to an existing user; False, writing nothing, if this
        (issuer, subject) is linked already or the user no longer exists. One insert
        decides, so of two first sign-ins racing for one account exactly one links it."""

    async def add_federated_user(self, user: User, identity: FederatedIdentity) -> bool:
        """Create a user and link an upstream account to it in one transaction; False,
        writing nothing, if the username or user id or the (issuer, subject) is taken."""

    async def save_federated_identity(self, identity: FederatedIdentity) -> None:
        """Replace the provider, claims, tokens and ``updated_at`` of an existing link."""

    async def get_consent(self, subject: str, client_id: str) -> frozenset[str] | None:
        """The scopes this user let this client have without asking again; None if never."""

    async def save_consent(
        self, subject: str, client_id: str, scope: frozenset[str], *, now: int = 0
    ) -> None:
        """Remember the scopes this user granted this client, replacing what was kept,
        and ``now`` as when they did (``ConnectedApp.granted_at``)."""

    async def list_grants(self, subject: str, *, now: int) -> list[ConnectedApp]:
        """The clients this user approved, ordered by client id: each kept consent (its
        scopes and ``granted_at``), and each client holding live tokens of theirs without
        one (a native app is asked every time, RFC 8252 §8.6: its scopes are its tokens',
        its ``granted_at`` its oldest live token's); ``last_used`` is the latest
        ``issued_at`` of the user's tokens for it still in the store (None if none).
        Computed in the read, so the token path writes nothing for it."""

    async def revoke_grant(self, subject: str, client_id: str, *, now: int) -> bool:
        """Withdraw everything this user let this client have, in one transaction: the
        consent, the user's codes and device codes for it, and every token of theirs for
        it as ``delete_client`` ends a client's (access tokens revoked at ``now``, so
        ``list_revoked_access_tokens`` names them; refresh tokens deleted, their families
        revoked, so a rotation in flight gives no live token). Pushed requests are the
        client's, of no user, and stay. Moves the revocation signal. False, writing
        nothing, when there was no consent, code or live token to end."""

    async def consented_clients(self, subject: str) -> list[str]:
        """The ids of the clients this user has consented to, sorted; the ones told
        when they sign out (OpenID Connect Back-Channel Logout 1.0 §2.5)."""

    async def save_authorization_code(self, code: AuthorizationCode) -> None:
        """Persist a code issued by the authorization endpoint."""

    async def get_authorization_code(self, code_hash: str) -> AuthorizationCode | None:
        """The code with this hash, consumed or not."""

    async def redeem_authorization_code(
        self, code_hash: str, *, tokens: Sequence[Token], now: int
    ) -> bool:
        """Atomically mark an unconsumed, unexpired code consumed and save ``tokens``.

        Returns False, writing nothing, when the code is unknown, expired or
        already consumed: that makes a code single-use under concurrency.
        """

    async def save_tokens(self, tokens: Sequence[Token]) -> None:
        """Persist newly issued tokens, all or none."""

    async def get_token(self, token_hash: str) -> Token | None:
        """The access or refresh token with this hash, whatever its state."""

    async def rotate_refresh_token(
        self,
        token_hash: str,
        *,
        tokens: Sequence[Token],
        now: int,
        sealed_response: str | None = None,
    ) -> bool:
        """Atomically rotate a refresh token out and save its successors ``tokens``.

        Succeeds only if the token is unrevoked, was never rotated, and its family
        was never revoked. The token's ``replaced_by`` becomes the refresh token
        among ``tokens``, its ``rotated_at`` is ``now``, and its ``sealed_response``
        the one given (what a retry in the grace period repeats). Returns False,
        writing nothing, when another request won or the family was revoked.
        """

    async def revoke_token(self, token_hash: str, *, now: int) -> bool:
        """Revoke one token; False if unknown or already revoked."""

    async def revoke_family(self, family_id: str, *, now: int) -> int:
        """Revoke every token of a grant; returns how many were still unrevoked.

        The family itself is revoked: a rotation committing at the same moment
        either finished first (and its tokens are revoked here) or fails.
        """

    async def list_revoked_access_tokens(self, *, now: int) -> list[str]:
        """The hashes of access tokens revoked before they expired and not yet expired:
        the revocation list a resource server checks JWT access tokens against."""

    async def list_signing_keys(self, *, now: int) -> list[SigningKey]:
        """Every signing key not yet expired (active or retired), oldest first."""

    async def add_signing_key(
        self, key: SigningKey, *, retire_active_until: int | None, now: int
    ) -> bool:
        """Make ``key`` the active key of its algorithm.

        With ``retire_active_until`` None (a first key) it is added only if no key
        of that algorithm is active, so instances starting together agree on one;
        False, writing nothing, otherwise. With a time (a rotation), the active key
        of the algorithm gets ``retired_at=now`` and ``expires_at`` that time in
        the same transaction. Two rotations racing: one wins, the other fails with
        ``StorageError`` or returns False, and nothing of it is written.
        """

    async def save_device_authorization(self, device: DeviceAuthorization) -> None:
        """Persist a device authorization request (RFC 8628 §3.2)."""

    async def get_device_authorization(self, user_code_hash: str) -> DeviceAuthorization | None:
        """The device authorization with this user code, whatever its state."""

    async def decide_device_authorization(
        self, user_code_hash: str, *, subject: str, approved: bool, now: int
    ) -> bool:
        """Atomically approve or deny a pending, unexpired request on the user's behalf.

        Returns False, writing nothing, when it was already decided or expired.
        """

    async def poll_device_authorization(
        self, device_code_hash: str, *, client_id: str, now: int
    ) -> DeviceAuthorization | None:
        """Record a poll by the client the code was issued to; return the request as it was.

        None, writing nothing, when the code is unknown or another client's (so a
        stranger's polls cannot slow the device down). Otherwise atomically sets
        ``last_polled_at`` to ``now`` and, when the previous poll came less than
        ``interval`` seconds ago, adds five seconds to ``interval`` (RFC 8628 §3.5
        ``slow_down``).
        """

    async def redeem_device_code(
        self, device_code_hash: str, *, tokens: Sequence[Token], now: int
    ) -> bool:
        """Atomically mark an approved, unexpired request consumed and save ``tokens``.

        Returns False, writing nothing, otherwise: a device code is exchanged once.
        """

    async def save_pushed_authorization_request(self, request: PushedAuthorizationRequest) -> None:
        """Persist a request pushed to ``/par`` (RFC 9126 §2.2)."""

    async def get_pushed_authorization_request(
        self, request_uri_hash: str
    ) -> PushedAuthorizationRequest | None:
        """The pushed request with this ``request_uri`` hash, whatever its state."""

    async def consume_pushed_authorization_request(
        self, request_uri_hash: str, *, now: int
    ) -> bool:
        """Atomically mark an unconsumed, unexpired pushed request consumed.

        Returns False, writing nothing, otherwise: a ``request_uri`` is used once
        (RFC 9126 §4), even when two authorizations race for it.
        """

    async def use_once(self, key: str, *, expires_at: int, now: int) -> bool:
        """Remember ``key`` until ``expires_at``; False, writing nothing, if it is
        already remembered and unexpired. One insert decides, so of two instances
        racing with the same key exactly one gets True (a DPoP proof's ``jti``,
        RFC 9449 §11.1)."""

    async def take_attempt(self, key: str, *, limit: int, since: int, now: int) -> int | None:
        """Count a guess (a password, a user code) against ``key`` as a failure at ``now``,
        before it is checked, unless ``key`` already has ``limit`` failures at or after
        ``since``: then record nothing and return when the earliest of those was.

        Count and decision are one atomic step across instances, so a burst of
        concurrent guesses gets no more than ``limit`` of them checked.
        """

    async def count_request(
        self, key: str, *, window_start: int, expires_at: int, limit: int
    ) -> bool:
        """Count one request against ``key`` in the fixed window starting at
        ``window_start``: True if the window's count, this request included, is at most
        ``limit`` (at least 1); False, counting nothing more, once ``limit`` requests were
        counted.

        Increment and decision are one atomic step across instances, so neither N
        instances nor N concurrent requests get more than ``limit`` through in a
        window. The counter may be purged from ``expires_at`` on (``rate_limits``).
        """

    async def forget_failure(self, key: str, *, at: int) -> None:
        """Remove one failure of ``key`` counted at ``at``: a guess that proved right
        without clearing the rest (a valid user code)."""

    async def clear_failures(self, key: str) -> None:
        """Forget ``key``'s failures (it succeeded)."""

    async def maintenance_since(self) -> int | None:
        """When the maintenance switch that every instance on this store follows was
        turned off (``asgi_oauth.availability``); None while it is on. Each instance
        reads it about once a second, so it is one primary-key read."""

    async def set_maintenance(self, since: int | None) -> None:
        """Turn the shared maintenance switch off from ``since`` (a switch already off
        keeps its earlier time), or back on with None."""

    async def save_session(self, session: BrowserSession) -> None:
        """Persist a sign-in session when someone signs in on the built-in page."""

    async def get_session(self, session_hash: str) -> BrowserSession | None:
        """The sign-in session with this hash, expired or not; None once it ended
        (signed out, its user deleted, purged)."""

    async def delete_session(self, session_hash: str) -> bool:
        """End a sign-in session (sign-out); False if unknown."""

    async def purge_expired(self, *, now: int) -> int:
        """Delete expired codes, device codes, tokens, signing keys, pushed requests,
        sign-in sessions, ``use_once`` keys and ``count_request`` counters, and failures
        older than a day (``FAILURE_RETENTION``); returns how many rows went."""

    async def close(self) -> None:
        """Release connections and threads; the store is unusable afterwards."""


#: Seconds a failed guess is kept, whatever the throttle's window (which must be shorter).
FAILURE_RETENTION = 24 * 3600


def successor_of(tokens: Sequence[Token]) -> str:
    """The hash of the refresh token among freshly issued ``tokens``."""
    for token in tokens:
        if token.kind == "refresh_token":
            return token.token_hash
    raise ValueError("a rotation must issue a refresh token")

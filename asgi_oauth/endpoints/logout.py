"""OpenID Connect RP-Initiated Logout 1.0: checking a client's sign-out request.

§2: ``id_token_hint`` must be an ID token this server issued, its signature and
``iss`` checked but not its expiry (an expired one is a fine hint); ``client_id``,
when given too, must be its audience. A ``post_logout_redirect_uri`` is followed
only when it equals, character for character, one the client registered (§3.1),
the client named by the hint or by ``client_id``; otherwise the request is refused,
never redirected. ``state`` goes back with that redirect only. Once the session has
ended, clients are told over the back channel (``backchannel``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from ..client_lookup import ClientLookup
from ..config import Settings
from ..errors import N_, InvalidRequestError, storage_guard
from ..keys import InvalidJWTError, KeySet
from ..models import Client
from ..openid import logout_hint_claims
from .backchannel import BackchannelLogout

#: §2: what a sign-out request may carry; the page sends them again with its answer.
LOGOUT_PARAMETERS = (
    "id_token_hint",
    "logout_hint",
    "client_id",
    "post_logout_redirect_uri",
    "state",
    "ui_locales",
)
_MAX_LENGTH = 8192


@dataclass(frozen=True, slots=True)
class LogoutRequest:
    """A checked sign-out request: who the hint names, and where to go after."""

    #: The §2 parameters given, to carry through the confirmation form.
    params: Mapping[str, str] = field(default_factory=dict)
    client: Client | None = None
    #: The ``sub`` of the ID token hint, when there was one.
    hint_subject: str | None = None
    #: A registered ``post_logout_redirect_uri``, with ``state`` when given.
    location: str | None = None


class EndSession:
    """Checks sign-out requests (§2) and starts telling clients when one is done."""

    def __init__(
        self,
        clients: ClientLookup,
        settings: Settings,
        keys: KeySet | None,
        clock: Callable[[], float],
        backchannel: BackchannelLogout | None = None,
    ) -> None:
        self._clients = clients
        self._issuer = settings.issuer
        self._keys = keys
        self._clock = clock
        self.backchannel = backchannel

    async def request(self, params: Mapping[str, str]) -> LogoutRequest:
        """The request ``params`` make; ``InvalidRequestError`` when it may not be
        followed (§2: a bad hint, a mismatched ``client_id``, an unregistered URI)."""
        given = {name: params[name] for name in LOGOUT_PARAMETERS if params.get(name)}
        if any(len(value) > _MAX_LENGTH for value in given.values()):
            raise InvalidRequestError(N_("a sign-out parameter is too long"))
        hint_subject: str | None = None
        client_id = given.get("client_id")
        hint = given.get("id_token_hint")
        if hint is not None:
            hint_subject, audiences = await self._hint(hint)
            if client_id is None and len(audiences) == 1:
                client_id = audiences[0]
            elif client_id is not None and client_id not in audiences:
                raise InvalidRequestError(N_("client_id is not the audience of id_token_hint"))
        client = await self._client(client_id)
        location = None
        uri = given.get("post_logout_redirect_uri")
        if uri is not None:
            if client is None:
                raise InvalidRequestError(
                    N_(
                        "post_logout_redirect_uri needs id_token_hint or client_id to say"
                        " whose it is"
                    )
                )
            if uri not in client.post_logout_redirect_uris:
                raise InvalidRequestError(
                    N_("post_logout_redirect_uri is not registered for this client")
                )
            location = _with_state(uri, given.get("state"))
        return LogoutRequest(given, client, hint_subject, location)

    def signed_out(self, subject: str) -> None:
        """The session of ``subject`` ended: tell their clients (Back-Channel Logout §2.5)."""
        if self.backchannel is not None:
            self.backchannel.start(subject)

    async def _hint(self, hint: str) -> tuple[str, tuple[str, ...]]:
        if self._keys is None:
            raise InvalidRequestError(N_("id_token_hint is not understood here: no ID tokens"))
        try:
            with storage_guard:
                return await logout_hint_claims(self._keys, hint, issuer=self._issuer)
        except InvalidJWTError:
            raise InvalidRequestError(
                N_("id_token_hint is not an ID token of this server")
            ) from None

    async def _client(self, client_id: str | None) -> Client | None:
        if client_id is None:
            return None
        with storage_guard:
            client = await self._clients.find(client_id)
        if client is None:
            raise InvalidRequestError(N_("unknown client_id"))
        return client


def _with_state(uri: str, state: str | None) -> str:
    """§3: ``state`` added to the query of the registered URI, which may have one."""
    if state is None:
        return uri
    separator = "&" if "?" in uri else "?"
    return f"{uri}{separator}{urlencode({'state': state})}"

"""What each page shows: one frozen dataclass per page, its ``template`` naming the
``Pages`` method that renders it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal


@dataclass(frozen=True, slots=True)
class Brand:
    """The service the pages belong to (``Settings.service_name``, ``logo_uri``,
    ``service_uri``), shown on every page; ``Pages.brand`` holds it."""

    service_name: str | None = None
    logo_uri: str | None = None
    service_uri: str | None = None


@dataclass(frozen=True, slots=True)
class LoginPage:
    action: str
    csrf_token: str
    next: str = ""
    username: str = ""
    error: str = ""
    nonce: str = ""
    #: (where its sign-in starts, its name) for each upstream provider.
    providers: tuple[tuple[str, str], ...] = ()
    #: Whether the password form is offered.
    password: bool = True
    #: The language the page is written in (``asgi_oauth.app.i18n``), on every page.
    lang: str = "en"
    template: ClassVar[str] = "login"


@dataclass(frozen=True, slots=True)
class LogoutPage:
    action: str
    csrf_token: str
    user_name: str = ""
    nonce: str = ""
    #: A client's sign-out request (RP-Initiated Logout 1.0 §2), sent again with the answer.
    fields: Mapping[str, str] = field(default_factory=dict)
    #: Said above the question: the client's name, or that it named someone else.
    notice: str = ""
    lang: str = "en"
    template: ClassVar[str] = "logout"


#: How this server knows a client: registered by its operator, registered by the
#: app itself (RFC 7591), or read from the URL its ``client_id`` names (a client ID
#: metadata document).
ClientKind = Literal["registered", "dynamic", "metadata_document"]


@dataclass(frozen=True, slots=True)
class ConsentPage:
    action: str
    csrf_token: str
    client_name: str
    user_name: str
    #: (scope, what it means to a person) pairs: what the request asks for that the
    #: person has not allowed this client before.
    scopes: tuple[tuple[str, str], ...]
    #: The authorization request's parameters, sent again with the decision.
    fields: Mapping[str, str] = field(default_factory=dict)
    nonce: str = ""
    #: The scopes of the request the person allowed before (a step-up asks for the rest).
    allowed: tuple[tuple[str, str], ...] = ()
    client_kind: ClientKind = "registered"
    #: A metadata-document client's host, which vouches for it: its ``client_id``'s.
    client_host: str = ""
    #: Where the answer goes, for a client this server cannot vouch for: the redirect
    #: URI's host, or ``scheme:`` for an app's own scheme (``cursor:``).
    redirect_host: str = ""
    #: Every redirect URI of such a client is on this computer (loopback, an app's scheme).
    local_only: bool = False
    #: Whether "Remember this decision" is offered: not where a remembered consent
    #: would never spare the question (a native app's redirect URI, RFC 8252 §8.6).
    offer_remember: bool = True
    lang: str = "en"
    template: ClassVar[str] = "consent"


@dataclass(frozen=True, slots=True)
class DevicePage:
    action: str
    csrf_token: str
    user_code: str = ""
    error: str = ""
    nonce: str = ""
    lang: str = "en"
    template: ClassVar[str] = "device"


@dataclass(frozen=True, slots=True)
class DeviceConsentPage:
    action: str
    csrf_token: str
    client_name: str
    user_name: str
    user_code: str
    scopes: tuple[tuple[str, str], ...]
    nonce: str = ""
    lang: str = "en"
    template: ClassVar[str] = "device_consent"


@dataclass(frozen=True, slots=True)
class MessagePage:
    title: str
    message: str
    nonce: str = ""
    #: A way back from an error: (where, whose name) for "Back to <name>"; never a
    #: redirect URI, which the error may be about.
    back: tuple[str, str] | None = None
    lang: str = "en"
    #: Where ``Settings.error_uri`` explains this error (RFC 6749 §4.1.2.1); "" for none.
    error_uri: str = ""
    template: ClassVar[str] = "message"


@dataclass(frozen=True, slots=True)
class HomePage:
    """What a person who opens the issuer's URL sees, instead of a JSON 404."""

    #: Where to sign in, and the person's account page ("" when there is none).
    login_url: str
    account_url: str = ""
    #: The server's metadata (RFC 8414 §3), for developers.
    metadata_url: str = ""
    nonce: str = ""
    lang: str = "en"
    template: ClassVar[str] = "home"


@dataclass(frozen=True, slots=True)
class FormPostPage:
    """OAuth 2.0 Form Post Response Mode §2: a form that posts itself to the client."""

    action: str
    fields: Mapping[str, str]
    nonce: str = ""
    lang: str = "en"
    template: ClassVar[str] = "form_post"


@dataclass(frozen=True, slots=True)
class ConnectedAppItem:
    """One application on the connected applications page."""

    client_id: str
    name: str
    #: Where it lives: its first redirect URI's host, or a metadata document's URL.
    site: str
    #: (scope, what it means to a person) pairs, as the consent page shows them.
    scopes: tuple[tuple[str, str], ...]
    #: When the person approved it (0: before that was recorded), seconds since the epoch.
    granted_at: int
    #: When it was last given a token that is still kept; None: not recently.
    last_used: int | None


@dataclass(frozen=True, slots=True)
class ConnectedAppsPage:
    """A signed-in person's connected applications, each with a form that revokes it."""

    action: str
    csrf_token: str
    user_name: str
    apps: tuple[ConnectedAppItem, ...] = ()
    #: What the last revocation did ("" for none).
    notice: str = ""
    nonce: str = ""
    lang: str = "en"
    template: ClassVar[str] = "connected_apps"


Page = (
    LoginPage
    | LogoutPage
    | ConsentPage
    | DevicePage
    | DeviceConsentPage
    | MessagePage
    | FormPostPage
    | HomePage
    | ConnectedAppsPage
)

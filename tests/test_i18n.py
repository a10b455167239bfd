"""The pages in the person's language: negotiation (OpenID Connect Core §3.1.2.1
``ui_locales``, RFC 9110 §12.5.4 ``Accept-Language``), every page in French with no
English left, ``lang``/``dir``, errors translated and filled in, scope descriptions per
language, and the committed catalogues checked against the code.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Iterator
from html import unescape
from pathlib import Path

import httpx
import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

import asgi_oauth.app.i18n
from asgi_oauth import AuthorizationServer, Settings, User
from asgi_oauth.app import OAuth2App
from asgi_oauth.app.i18n import (
    direction,
    error_message,
    error_title,
    negotiate,
    translator,
)
from asgi_oauth.app.pages import (
    ConsentPage,
    DeviceConsentPage,
    DevicePage,
    FormPostPage,
    LoginPage,
    LogoutPage,
    MessagePage,
    Page,
    Pages,
)
from asgi_oauth.app.pages import models as page_models
from asgi_oauth.errors import InvalidGrantError, InvalidRequestError, OAuth2Error

from .browser_helpers import (
    AUTHORIZE,
    CHALLENGE,
    LOGIN,
    PASSWORD,
    mounted,
    parse_page,
    redirect_target,
    submit,
)
from .conftest import ISSUER, REDIRECT_URI, Credentials

FRENCH = {"accept-language": "fr-FR,fr;q=0.9,en;q=0.5"}
FRENCH_PO = Path(asgi_oauth.app.i18n.LOCALE_DIR) / "fr" / "LC_MESSAGES" / "asgi_oauth.po"


@pytest.fixture(scope="module")
def french() -> Catalog:
    with FRENCH_PO.open("rb") as file:
        return read_po(file)


# -- negotiation ---------------------------------------------------------------

LANGS = ("en", "fr", "de")


@pytest.mark.parametrize(
    ("ui_locales", "accept_language", "chosen"),
    [
        (None, "fr", "fr"),
        (None, "de;q=0.5, fr;q=0.8, en;q=0.1", "fr"),
        (None, "en;q=0.2, de", "de"),  # no q is q=1
        (None, "fr;q=0, de;q=0.1", "de"),  # q=0: not wanted at all
        (None, "fr-CA", "fr"),  # a region falls back to its language
        (None, "FR-ca;q=0.9, en;q=0.8", "fr"),  # tags are case-insensitive
        (None, "ja, zh-Hant", "en"),  # nothing offered: English
        (None, "*", "en"),
        (None, "", "en"),
        (None, "fr;q=abc, de;q=0.3", "de"),  # a broken weight counts as 0
        ("de fr", "fr", "de"),  # ui_locales wins, in its own order
        ("ja fr-CA", "de", "fr"),  # its first one offered, regions falling back
        ("ja", "de", "de"),  # none offered: Accept-Language decides
        ("", None, "en"),
    ],
)
def test_negotiation(ui_locales: str | None, accept_language: str, chosen: str) -> None:
    assert negotiate(ui_locales, accept_language, LANGS) == chosen


@pytest.mark.parametrize(
    ("lang", "written"),
    [("ar", "rtl"), ("he-IL", "rtl"), ("fa", "rtl"), ("ur", "rtl"), ("fr", "ltr"), ("en", "ltr")],
)
def test_direction(lang: str, written: str) -> None:
    assert direction(lang) == written


# -- every page in French ------------------------------------------------------


def sample_pages(lang: str) -> Iterator[Page]:
    """Each page with every optional part shown, in ``lang``."""
    yield LoginPage(
        action="/login",
        csrf_token="t",
        error="Erreur",
        providers=(("/upstream/gh", "GitHub"),),
        lang=lang,
    )
    yield LogoutPage(action="/logout", csrf_token="t", user_name="alice", lang=lang)
    yield ConsentPage(
        action="/authorize",
        csrf_token="t",
        client_name="Orders",
        user_name="alice",
        scopes=(("openid", translator(lang)("Confirm who you are")), ("read", "read")),
        allowed=(("email", translator(lang)("See your e-mail address")),),
        client_kind="metadata_document",
        client_host="app.example",
        redirect_host="app.example",
        local_only=True,
        lang=lang,
    )
    yield ConsentPage(
        action="/authorize",
        csrf_token="t",
        client_name="Orders",
        user_name="alice",
        scopes=(),
        client_kind="dynamic",
        lang=lang,
    )
    yield DevicePage(action="/device", csrf_token="t", error="Erreur", lang=lang)
    yield DeviceConsentPage(
        action="/device",
        csrf_token="t",
        client_name="TV",
        user_name="alice",
        user_code="BCDF-GHJK",
        scopes=(),
        lang=lang,
    )
    yield MessagePage(title="Titre", message="Message", back=("/", "Orders"), lang=lang)
    yield FormPostPage(action="https://app.example/cb", fields={"code": "c"}, lang=lang)
    for name, make in EXTRA_PAGES.items():
        if hasattr(page_models, name):
            yield make(getattr(page_models, name), lang)


def _home(cls: Callable[..., Page], lang: str) -> Page:
    return cls(login_url="/login", account_url="/account", metadata_url="/meta", lang=lang)


def _connected_apps(cls: Callable[..., Page], lang: str) -> Page:
    item = page_models.ConnectedAppItem(
        client_id="c", name="Orders", site="app.example", scopes=(), granted_at=0, last_used=None
    )
    return cls(action="/account", csrf_token="t", user_name="alice", apps=(item,), lang=lang)


#: Pages being added alongside this test: rendered once they exist.
EXTRA_PAGES: dict[str, Callable[[Callable[..., Page], str], Page]] = {
    "HomePage": _home,
    "ConnectedAppsPage": _connected_apps,
}


def test_the_samples_cover_every_page() -> None:
    rendered = {type(page).__name__ for page in sample_pages("en")}
    assert rendered == {cls.__name__ for cls in typing.get_args(Page)}


def _english_fragments(french: Catalog) -> dict[str, list[str]]:
    """For each text the French catalogue translates differently: the pieces of its
    English between placeholders that are long enough to be words of a sentence."""
    fragments = {}
    for message in french:
        if not message.id or message.string == message.id:
            continue
        pieces = re.split(r"\{\w+\}|\(RFC \d+\)", str(message.id))
        long = [p.strip(" .:;,") for p in pieces if re.search("[a-z]{3}", p)]
        if long:
            fragments[str(message.id)] = long
    return fragments


def _says(text: str, fragment: str) -> bool:
    """Whether ``text`` has ``fragment`` as words ("Continuer" does not say "Continue")."""
    return re.search(rf"(?<!\w){re.escape(fragment)}(?!\w)", text) is not None


def _text(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


@pytest.mark.parametrize("index", range(len(list(sample_pages("en")))))
def test_each_page_in_french_has_no_english_sentence_left(index: int, french: Catalog) -> None:
    english = list(sample_pages("en"))[index]
    in_french = list(sample_pages("fr"))[index]
    en_text, fr_text = _text(Pages().render(english)), _text(Pages().render(in_french))
    fragments = _english_fragments(french)
    used = [m for m, pieces in fragments.items() if all(_says(en_text, p) for p in pieces)]
    assert used, f"{english.template}: no catalogue text found in the English render"
    left = [m for m in used if any(_says(fr_text, p) for p in fragments[m])]
    assert not left, f"{english.template} in French still says: {left}"


def test_the_document_says_its_language_and_direction() -> None:
    pages = Pages()
    french = pages.render(MessagePage(title="t", message="m", lang="fr"))
    assert french.startswith('<!doctype html><html lang="fr" dir="ltr">')
    arabic = pages.render(MessagePage(title="t", message="m", lang="ar"))
    assert '<html lang="ar" dir="rtl">' in arabic


def test_the_stylesheet_uses_logical_properties_only() -> None:
    """Nothing that is mirrored wrong in a right-to-left page: no physical left/right."""
    assert not re.search(r"(left|right)", Pages.stylesheet)


class OverridingPages(Pages):
    """A subclass from before languages existed: its override keeps working."""

    def message(self, page: MessagePage) -> str:
        return self.layout(f"Acme: {page.title}", "<p>Hello</p>", page.nonce)


def test_a_pages_subclass_that_overrides_a_method_still_works() -> None:
    html = OverridingPages().render(MessagePage(title="Titre", message="m", lang="fr"))
    assert "<h1>Acme: Titre</h1>" in html
    login = OverridingPages().render(LoginPage(action="/l", csrf_token="t", lang="fr"))
    assert "Se connecter" in login


# -- errors --------------------------------------------------------------------


def test_an_error_is_translated_then_filled_in() -> None:
    error = InvalidRequestError("repeated parameter: {name}", params={"name": "scope"})
    assert error.description == "repeated parameter: scope"  # the wire stays English
    assert error.to_dict()["error_description"] == "repeated parameter: scope"
    assert error_message(error, "fr") == "paramètre répété : scope"
    assert error_message(error, "en") == "repeated parameter: scope"


def test_a_description_the_catalogue_lacks_is_its_code_meaning_in_french() -> None:
    error = InvalidGrantError("something only developers read")
    assert error_message(error, "en") == "something only developers read"
    assert error_message(error, "fr") == "Ce code n’est pas valide ou a expiré."  # noqa: RUF001
    assert error_message(OAuth2Error(), "fr") == "La demande n’est pas valide."  # noqa: RUF001
    assert error_title(error, "fr") == "Cette demande ne peut pas aboutir"


@pytest.mark.anyio
async def test_an_error_page_in_french_fills_in_the_value(server: AuthorizationServer) -> None:
    async with mounted(OAuth2App(server)) as http:
        query = "client_id=a&client_id=b&response_type=code"
        response = await http.get(f"{AUTHORIZE}?{query}", headers=FRENCH)
        json = await http.post(ISSUER + "/token", data={"grant_type": "nope"}, headers=FRENCH)
    assert response.status_code == 400
    page = parse_page(response.text)
    assert page.title == "Cette demande ne peut pas aboutir"
    assert "paramètre répété : client_id" in page.text
    assert '<html lang="fr" dir="ltr">' in response.text
    # For clients, RFC 6749 §5.2: English, whatever the language asked.
    assert json.headers["content-type"] == "application/json"
    assert json.json()["error_description"].isascii()


# -- through a whole flow ------------------------------------------------------


@pytest.fixture
async def alice(server: AuthorizationServer) -> User:
    return await server.create_user("alice", PASSWORD)


def _request(client: Credentials, **params: str) -> dict[str, str]:
    return {
        "client_id": client.client_id,
        "response_type": "code",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        "redirect_uri": REDIRECT_URI,
        **params,
    }


async def _consent(
    http: httpx.AsyncClient, params: dict[str, str], headers: dict[str, str]
) -> httpx.Response:
    start = await http.get(AUTHORIZE, params=params, headers=headers)
    login_url = redirect_target(start)
    assert login_url.startswith(LOGIN)
    login = await http.get(login_url, headers=headers)
    assert login.status_code == 200
    assert parse_page(login.text).title == "Se connecter"
    signed_in = await submit(
        http, parse_page(login.text).form, {"username": "alice", "password": PASSWORD}
    )
    return await http.get(redirect_target(signed_in), headers=headers)


@pytest.mark.anyio
async def test_ui_locales_holds_for_the_whole_flow(
    server: AuthorizationServer, public: Credentials, alice: User
) -> None:
    """OpenID Connect Core §3.1.2.1: ui_locales beats the browser's languages, on the
    sign-in page it leads to as on the consent page."""
    async with mounted(OAuth2App(server)) as http:
        english_browser = {"accept-language": "en-US,en;q=0.9"}
        consent = await _consent(
            http, _request(public, scope="read", ui_locales="fr-CA en"), english_browser
        )
    assert consent.status_code == 200
    page = parse_page(consent.text)
    assert page.title == "Autoriser l’accès"  # noqa: RUF001
    assert "Lire vos fichiers" in page.text
    assert '<html lang="fr"' in consent.text
    assert page.form.fields["ui_locales"] == "fr-CA en"  # sent back with the decision


@pytest.mark.anyio
async def test_accept_language_chooses_without_ui_locales(
    server: AuthorizationServer, public: Credentials, alice: User
) -> None:
    async with mounted(OAuth2App(server)) as http:
        consent = await _consent(http, _request(public), {"accept-language": "fr-CA;q=0.8"})
    assert parse_page(consent.text).title == "Autoriser l’accès"  # noqa: RUF001


@pytest.fixture
def settings() -> Settings:
    return Settings(
        issuer=ISSUER,
        scope_descriptions={
            "read": {"en": "Read your files", "fr": "Lire vos fichiers"},
            "write": "Write your files",
        },
    )


@pytest.mark.anyio
async def test_scope_descriptions_per_language(
    server: AuthorizationServer, public: Credentials, alice: User
) -> None:
    async with mounted(OAuth2App(server)) as http:
        french = await _consent(http, _request(public, scope="read write"), FRENCH)
    text = parse_page(french.text).text
    assert "Lire vos fichiers" in text and "Read your files" not in text
    assert "Write your files" in text  # one text for every language


def test_a_scope_description_for_a_language_it_lacks_is_english() -> None:
    from asgi_oauth.app.pages.scopes import describe_scope

    descriptions = {"read": {"en": "Read your files", "fr": "Lire vos fichiers"}}
    assert describe_scope("read", descriptions, "fr-CA") == "Lire vos fichiers"
    assert describe_scope("read", descriptions, "de") == "Read your files"
    assert describe_scope("read", {"read": {"fr": "Lire"}}, "de") == "Use “read”"
    assert describe_scope("profile", {}, "fr").startswith("Voir votre nom")


@pytest.mark.anyio
async def test_a_pushed_request_keeps_its_ui_locales(
    server: AuthorizationServer, alice: User
) -> None:
    """RFC 9126 §4: the browser brings only client_id and request_uri; the pushed
    ui_locales still choose the sign-in and consent pages' language."""
    registered = await server.register_client(
        name="App", redirect_uris=[REDIRECT_URI], scope=["read"]
    )
    assert registered.client_secret is not None
    auth = (registered.client.client_id, registered.client_secret)
    async with mounted(OAuth2App(server)) as http:
        pushed = await http.post(
            ISSUER + "/par",
            data={"response_type": "code", "scope": "read", "ui_locales": "fr"},
            auth=auth,
        )
        assert pushed.status_code == 201, pushed.text
        params = {"client_id": auth[0], "request_uri": pushed.json()["request_uri"]}
        consent = await _consent(http, params, {"accept-language": "en"})
    assert parse_page(consent.text).title == "Autoriser l’accès"  # noqa: RUF001


@pytest.mark.anyio
async def test_a_sign_out_request_carries_its_own_ui_locales(server: AuthorizationServer) -> None:
    async with mounted(OAuth2App(server)) as http:
        french = await http.get(ISSUER + "/logout", params={"ui_locales": "fr"})
        english = await http.get(ISSUER + "/logout", headers={"accept-language": "de, en"})
    assert parse_page(french.text).title == "Se déconnecter"
    assert parse_page(english.text).title == "Sign out"

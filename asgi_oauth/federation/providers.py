"""Upstream identity providers: how each is configured, and reading them from a file.

An ``UpstreamProvider`` is either an OpenID Connect provider found by discovery from
its ``issuer`` (Google, Entra, Okta, Keycloak, another ``asgi_oauth``), or a plain
OAuth 2.0 provider with a user API (GitHub's shape): its endpoints given, and which
field of the user API is the person's stable id. ``github(...)`` fills in GitHub's.

A providers file (TOML, JSON or YAML) lists them; secrets are named there, never written:
``client_secret_env`` names an environment variable, ``client_secret_file`` a file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Literal
from urllib.parse import urlsplit

from ..config_files import named_secret, read_structured

#: ``openid_connect``: discovery and an ID token; ``oauth2``: a user API gives the person.
UpstreamProtocol = Literal["openid_connect", "oauth2"]

#: A provider's id is a path segment of its callback URL.
_PROVIDER_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")

#: What an ID token or userinfo response says, by our name (OpenID Connect Core §5.1).
OPENID_CLAIMS: Mapping[str, str] = MappingProxyType(
    {
        name: name
        for name in (
            "name",
            "given_name",
            "family_name",
            "preferred_username",
            "email",
            "email_verified",
            "picture",
            "profile",
            "locale",
        )
    }
)

#: GitHub's ``GET /user`` fields, by the OpenID Connect claim each becomes.
GITHUB_CLAIMS: Mapping[str, str] = MappingProxyType(
    {
        "name": "name",
        "preferred_username": "login",
        "email": "email",
        "email_verified": "email_verified",
        "picture": "avatar_url",
        "profile": "html_url",
    }
)


#: What GitHub is asked: the profile, and the e-mail list that says which is verified.
GITHUB_SCOPES = ("read:user", "user:email")


class ProviderConfigError(ValueError):
    """A provider the server cannot use; the message names the provider and the field."""


@dataclass(frozen=True, slots=True)
class UpstreamProvider:
    """One identity provider people may sign in through.

    ``id`` names it in URLs (``{issuer}/upstream/{id}/callback`` is the redirect URI to
    register there); ``name`` is what the sign-in button says.
    """

    id: str
    name: str
    client_id: str
    #: None: a public client at the provider, protected by PKCE alone.
    client_secret: str | None = field(default=None, repr=False)
    protocol: UpstreamProtocol = "openid_connect"
    #: How the server authenticates at the provider's token endpoint (RFC 6749 §2.3.1);
    #: ``none`` when there is no secret.
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post"] = (
        "client_secret_basic"
    )
    #: OpenID Connect: where discovery starts, and the ``iss`` every answer must carry.
    #: OAuth 2.0: the identifier people's accounts there are linked under.
    issuer: str = ""
    #: Asked of the provider; None: ``openid email profile`` for OpenID Connect, none
    #: for OAuth 2.0. OpenID Connect always asks ``openid``.
    scopes: tuple[str, ...] | None = None
    #: OAuth 2.0 only (OpenID Connect reads these from discovery).
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    #: OAuth 2.0: the user API field that never changes for a person (GitHub: ``id``).
    subject_field: str = "sub"
    #: Lists ``{"email", "primary", "verified"}`` (GitHub's ``/user/emails``): the primary
    #: verified address becomes ``email`` with ``email_verified``.
    emails_endpoint: str | None = None
    #: Lists ``{"login"}`` (GitHub's ``/user/orgs``), for ``allowed_organizations``.
    organizations_endpoint: str | None = None
    #: Our claim name -> the provider's field, for what flows into ID tokens and userinfo.
    claims: Mapping[str, str] = field(default_factory=lambda: OPENID_CLAIMS)
    #: A first sign-in whose *verified* e-mail is the username of a local user links to
    #: that user. Only for a provider trusted to verify e-mail addresses.
    link_by_email: bool = False
    #: Who may sign in: a verified e-mail in one of these domains (empty: any).
    allowed_domains: tuple[str, ...] = ()
    #: Who may sign in: a member of one of these groups (the ``groups_claim``; empty: any).
    allowed_groups: tuple[str, ...] = ()
    #: Who may sign in: a member of one of these organisations (``organizations_endpoint``).
    allowed_organizations: tuple[str, ...] = ()
    groups_claim: str = "groups"
    #: Upstream group -> the scopes its members may grant; when set, a person may grant
    #: only the scopes of their groups.
    group_scopes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Keep the provider's tokens (sealed with the key-encryption key) for the
    #: application to call the provider's API on the person's behalf.
    keep_tokens: bool = False

    def __post_init__(self) -> None:
        where = f"upstream provider {self.id!r}"
        if not _PROVIDER_ID.fullmatch(self.id):
            raise ProviderConfigError(
                f"{where}: id must be 1-32 of a-z 0-9 _ - (it is part of a URL)"
            )
        if not self.name or not self.client_id:
            raise ProviderConfigError(f"{where}: name and client_id are required")
        if not self.issuer:
            raise ProviderConfigError(f"{where}: issuer is required")
        if self.protocol == "oauth2":
            missing = [
                name
                for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint")
                if getattr(self, name) is None
            ]
            if missing:
                raise ProviderConfigError(f"{where}: an oauth2 provider needs {missing}")
        elif self.protocol != "openid_connect":
            raise ProviderConfigError(f"{where}: protocol must be openid_connect or oauth2")
        if self.allowed_organizations and self.organizations_endpoint is None:
            raise ProviderConfigError(
                f"{where}: allowed_organizations needs organizations_endpoint"
            )
        object.__setattr__(self, "claims", MappingProxyType(dict(self.claims)))
        object.__setattr__(
            self,
            "group_scopes",
            MappingProxyType({k: tuple(v) for k, v in self.group_scopes.items()}),
        )
        scopes = self.scopes
        if scopes is None:
            scopes = ("openid", "email", "profile") if self.is_openid else ()
        elif self.is_openid and "openid" not in scopes:
            scopes = ("openid", *scopes)
        object.__setattr__(self, "scopes", tuple(scopes))
        for name in ("allowed_domains", "allowed_groups", "allowed_organizations"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def is_openid(self) -> bool:
        return self.protocol == "openid_connect"

    def urls(self) -> tuple[str, ...]:
        """Every URL of the provider the server talks to, for the https check."""
        given = (
            self.issuer if self.is_openid else None,
            self.authorization_endpoint,
            self.token_endpoint,
            self.userinfo_endpoint,
            self.emails_endpoint,
            self.organizations_endpoint,
        )
        return tuple(url for url in given if url is not None)

    def check_transport(self, *, insecure_transport: bool) -> None:
        """RFC 9700 §2.1.2: https, unless the server allows http for development."""
        for url in self.urls():
            parts = urlsplit(url)
            if parts.scheme not in ("https", "http") or not parts.hostname:
                raise ProviderConfigError(f"upstream provider {self.id!r}: {url!r} is not a URL")
            if parts.scheme == "http" and not insecure_transport:
                raise ProviderConfigError(
                    f"upstream provider {self.id!r}: {url!r} needs https"
                    " (or insecure_transport=True)"
                )


def github(client_id: str, client_secret: str, **more: object) -> UpstreamProvider:
    """GitHub (an OAuth App or a GitHub App): its endpoints, the numeric ``id`` as the
    person's stable identifier, and the primary verified e-mail from ``/user/emails``."""
    values: dict[str, object] = {
        "id": "github",
        "name": "GitHub",
        "client_id": client_id,
        "client_secret": client_secret,
        "protocol": "oauth2",
        "issuer": "https://github.com",
        "scopes": GITHUB_SCOPES,
        "token_endpoint_auth_method": "client_secret_post",
        "authorization_endpoint": "https://github.com/login/oauth/authorize",
        "token_endpoint": "https://github.com/login/oauth/access_token",
        "userinfo_endpoint": "https://api.github.com/user",
        "emails_endpoint": "https://api.github.com/user/emails",
        "organizations_endpoint": "https://api.github.com/user/orgs",
        "subject_field": "id",
        "claims": GITHUB_CLAIMS,
    }
    values.update(more)
    if values.get("allowed_organizations") and "scopes" not in more:
        # GitHub lists an OAuth App user's organisations only with read:org.
        values["scopes"] = (*GITHUB_SCOPES, "read:org")
    return UpstreamProvider(**values)  # type: ignore[arg-type]


#: Presets a providers file may name (``preset = "github"``): their fields come first.
PRESETS = {"github": github}


def load_providers(
    path: str | Path, environ: Mapping[str, str] | None = None
) -> tuple[UpstreamProvider, ...]:
    """The providers a TOML, JSON or YAML file lists (``[[provider]]`` tables, or a list).

    A secret is named, never written: ``client_secret_env`` (an environment variable)
    or ``client_secret_file`` (a file; surrounding blanks dropped). A literal
    ``client_secret`` is refused, so the file can live in version control.
    """
    env = os.environ if environ is None else environ
    file = Path(path)
    where = f"upstream providers file {str(file)!r}"
    data = read_structured(file, where, refused=ProviderConfigError, unreadable=ProviderConfigError)
    entries = data.get("provider", []) if isinstance(data, dict) else data
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ProviderConfigError(
            f"upstream providers file {str(file)!r}: a list of providers ([[provider]])"
        )
    providers = tuple(_provider(dict(entry), env, file.parent) for entry in entries)
    ids = [p.id for p in providers]
    if len(set(ids)) != len(ids):
        raise ProviderConfigError(f"upstream providers file {str(file)!r}: ids repeat")
    return providers


def _provider(entry: dict[str, object], env: Mapping[str, str], base: Path) -> UpstreamProvider:
    where = f"upstream provider {entry.get('id', entry.get('preset'))!r}"
    secret = named_secret(
        entry, env, base, where, refused=ProviderConfigError, unreadable=ProviderConfigError
    )
    preset = entry.pop("preset", None)
    known = {f.name for f in fields(UpstreamProvider)} - {"client_secret"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ProviderConfigError(f"{where}: unknown fields {unknown}")
    try:
        if preset is not None:
            if preset not in PRESETS:
                raise ProviderConfigError(f"{where}: unknown preset {preset!r}")
            client_id = str(entry.pop("client_id", ""))
            return PRESETS[str(preset)](client_id, secret or "", **entry)
        return replace(UpstreamProvider(**entry), client_secret=secret)  # type: ignore[arg-type]
    except TypeError as exc:
        raise ProviderConfigError(f"{where}: {exc}") from None

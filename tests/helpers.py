"""Small builders for requests in core tests."""

from __future__ import annotations

import base64

from asgi_oauth import OAuthRequest

from .conftest import Credentials


def basic_header(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def request(creds: Credentials | None = None, **form: str) -> OAuthRequest:
    """A request authenticated with Basic (confidential) or client_id (public)."""
    if creds is None:
        return OAuthRequest(form=form)
    if creds.client_secret is None:
        return OAuthRequest(form={"client_id": creds.client_id, **form})
    return OAuthRequest(form=form, authorization=basic_header(creds.client_id, creds.client_secret))

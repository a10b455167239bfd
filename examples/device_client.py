"""A device-flow client (RFC 8628), as a TV or a command-line tool would run it.

It needs httpx only, and knows nothing of the server but its issuer URL: it
reads the server's metadata (RFC 8414), asks the device authorization
endpoint for codes, tells the person where to approve, and polls the token
endpoint every ``interval`` seconds (five more after each ``slow_down``)
until they decide. The instructions go to stderr, the result to stdout: the
token response as JSON, or with ``--token-only`` the access token alone.
It exits with 1, saying why, when the person denies the request, the code
expires, or anything else goes wrong.

Against ``examples/starlette_api.py`` (start it first; it registers the
public client ``demo-app`` and the user ``demo``, and prints that user's
password once), from the repository root::

    python examples/device_client.py --issuer http://127.0.0.1:8000/oauth2 --client-id demo-app

Open the link it prints, sign in as ``demo`` and approve; then use the token::

    TOKEN=$(python examples/device_client.py --issuer http://127.0.0.1:8000/oauth2 \\
        --client-id demo-app --token-only)
    curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8000/api/me

Against ``asgi-oauth serve --demo --insecure-transport`` (same client and
user), whose issuer has no path, pass ``--issuer http://127.0.0.1:8000`` and
try the token on ``http://127.0.0.1:8000/api/demo``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
WELL_KNOWN = "/.well-known/oauth-authorization-server"

#: A JSON object, as the server sent it.
Json = dict[str, Any]


class DeviceFlowError(Exception):
    """Why the flow stopped: printed as one line, exit status 1."""


def metadata_urls(issuer: str) -> list[str]:
    """Where the metadata may be: RFC 8414 §3.1 puts the well-known path before the
    issuer's own path; some servers (this one too) also publish it after."""
    parts = urlsplit(issuer)
    rfc_8414 = urlunsplit((parts.scheme, parts.netloc, WELL_KNOWN + parts.path, "", ""))
    appended = issuer + WELL_KNOWN
    return [rfc_8414] if appended == rfc_8414 else [rfc_8414, appended]


def discover(http: httpx.Client, issuer: str) -> Json:
    """The server's metadata, checked to be the issuer's own (RFC 8414 §3.3)."""
    for url in metadata_urls(issuer):
        response = http.get(url)
        if response.status_code == 200:
            metadata = json_of(response)
            if metadata.get("issuer") != issuer:
                raise DeviceFlowError(f"{url} describes {metadata.get('issuer')!r}, not {issuer}")
            if "device_authorization_endpoint" not in metadata:
                raise DeviceFlowError(f"{issuer} does not offer the device flow")
            return metadata
    raise DeviceFlowError(f"no authorization server metadata for {issuer}")


def json_of(response: httpx.Response) -> Json:
    """The response's JSON object, or why there is none."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise DeviceFlowError(f"{response.url} answered {response.status_code}, not JSON")
    return body


def oauth_error(response: httpx.Response) -> DeviceFlowError:
    """An RFC 6749 §5.2 error response, as one line."""
    body = json_of(response)
    error = body.get("error", f"HTTP {response.status_code}")
    description = body.get("error_description")
    return DeviceFlowError(f"{error}: {description}" if description else str(error))


def request_codes(http: httpx.Client, endpoint: str, client_id: str, scope: str | None) -> Json:
    """Ask for a device code and a user code (RFC 8628 §3.1, §3.2)."""
    form = {"client_id": client_id} if scope is None else {"client_id": client_id, "scope": scope}
    response = http.post(endpoint, data=form)
    if response.status_code != 200:
        raise oauth_error(response)
    return json_of(response)


def tell_the_person(codes: Json) -> None:
    """Where to go and what to type (RFC 8628 §3.3), on stderr."""
    lines = [
        f"To approve this device, open:  {codes['verification_uri']}",
        f"and enter the code:            {codes['user_code']}",
    ]
    if "verification_uri_complete" in codes:
        lines.append(f"or open this link instead:     {codes['verification_uri_complete']}")
    minutes = max(1, int(codes["expires_in"]) // 60)
    lines.append(f"Waiting for approval (the code expires in {minutes} minutes)...")
    print("\n".join(lines), file=sys.stderr, flush=True)


def poll(
    http: httpx.Client,
    token_endpoint: str,
    client_id: str,
    codes: Json,
    sleep: Callable[[float], None] = time.sleep,
) -> Json:
    """Poll until the person decides (RFC 8628 §3.4, §3.5); the token response."""
    interval = int(codes.get("interval", 5))
    form = {"grant_type": DEVICE_GRANT, "device_code": codes["device_code"], "client_id": client_id}
    while True:
        sleep(interval)
        response = http.post(token_endpoint, data=form)
        if response.status_code == 200:
            return json_of(response)
        error = json_of(response).get("error")
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += 5
        elif error == "access_denied":
            raise DeviceFlowError("the request was denied; no token was issued")
        elif error == "expired_token":
            raise DeviceFlowError(
                "the code expired before anyone approved it; run the command again"
            )
        else:
            raise oauth_error(response)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Get a token with the device flow (RFC 8628).")
    parser.add_argument("--issuer", required=True, help="the authorization server's issuer URL")
    parser.add_argument("--client-id", required=True, help="a public client with the device grant")
    parser.add_argument("--scope", help="space-separated scopes (default: the client's)")
    parser.add_argument("--token-only", action="store_true", help="print the access token alone")
    args = parser.parse_args(argv)
    issuer = args.issuer.rstrip("/")
    try:
        with httpx.Client(timeout=10) as http:
            metadata = discover(http, issuer)
            codes = request_codes(
                http, metadata["device_authorization_endpoint"], args.client_id, args.scope
            )
            tell_the_person(codes)
            token = poll(http, metadata["token_endpoint"], args.client_id, codes)
    except DeviceFlowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except httpx.RequestError as exc:
        print(f"error: {exc.request.url}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopped; no token", file=sys.stderr)
        return 130
    print(token["access_token"] if args.token_only else json.dumps(token, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A native app's sign-in: the authorization code flow with PKCE (RFC 7636), as a
command-line tool or a desktop app runs it (RFC 8252).

It needs httpx only, and knows nothing of the server but its issuer URL: it reads
the server's metadata (RFC 8414), listens for the redirect on a loopback port of
its own (``http://127.0.0.1:<port>/callback``: RFC 8252 §7.3 lets a native client
register the URI without a port and use any), and opens the browser at the
authorization endpoint. The person signs in and approves; the browser comes back
to the loopback port with a code, and the client checks ``state`` (RFC 6749
§10.12) and ``iss`` (RFC 9207, against mix-up) before it exchanges the code with
its PKCE verifier. The token response goes to stdout as JSON, the rest to stderr;
it exits with 1, saying why, if the person denies or anything else goes wrong.

Against ``asgi-oauth serve --demo --insecure-transport`` (start it first, in
another terminal: it registers the public client ``demo-app``, whose redirect URI
is ``http://127.0.0.1/callback`` on any port, and prints the password of the user
``demo``), from the repository root::

    python examples/pkce_client.py --issuer http://127.0.0.1:8000 --client-id demo-app

Sign in as ``demo`` in the browser that opens and approve; then use the token::

    curl -s -H "Authorization: Bearer ACCESS_TOKEN" http://127.0.0.1:8000/api/demo

Without a browser on this machine (or where none opens), open the URL it prints
anywhere that reaches 127.0.0.1 here. The browser is the one Python's
``webbrowser`` picks: the ``BROWSER`` environment variable names another.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import queue
import secrets
import sys
import threading
import webbrowser
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

CALLBACK_PATH = "/callback"
DONE_PAGE = b"<!doctype html><title>Done</title><p>You can close this window and go back."

#: A JSON object, as the server sent it.
Json = dict[str, Any]


class SignInError(Exception):
    """Why there is no token: printed as one line, exit status 1."""


def server_metadata(http: httpx.Client, issuer: str) -> Json:
    """The issuer's own metadata (RFC 8414 §3): at the host's root before the issuer's
    path (§3.1), or appended to the issuer as OpenID Connect does."""
    scheme, host, path, _, _ = urlsplit(issuer)
    well_known = "/.well-known/oauth-authorization-server"
    candidates = [urlunsplit((scheme, host, well_known + path, "", ""))]
    if path:
        candidates.append(issuer + well_known)
    for url in candidates:
        answer = http.get(url)
        if answer.status_code != 200:
            continue
        metadata = json_object(answer)
        # §3.3: metadata that names another issuer is not this server's.
        if metadata.get("issuer") != issuer:
            raise SignInError(f"{url} is the metadata of {metadata.get('issuer')!r}")
        return metadata
    raise SignInError(f"{issuer} publishes no authorization server metadata")


def json_object(answer: httpx.Response) -> Json:
    """The answer's JSON object; anything else is an error."""
    with contextlib.suppress(ValueError):
        body = answer.json()
        if isinstance(body, dict):
            return body
    raise SignInError(f"{answer.url} answered {answer.status_code} without a JSON object")


def pkce_pair() -> tuple[str, str]:
    """A fresh code verifier and its S256 challenge (RFC 7636 §4.1, §4.2)."""
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class LoopbackRedirect:
    """An HTTP listener on 127.0.0.1 that waits for the one redirect to ``/callback``."""

    def __init__(self) -> None:
        self._answers: queue.Queue[dict[str, str]] = queue.Queue(maxsize=1)
        answers = self._answers

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                target = urlsplit(self.path)
                if target.path != CALLBACK_PATH or answers.full():
                    self.send_error(404)
                    return
                answers.put(dict(parse_qsl(target.query)))
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(DONE_PAGE)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self.redirect_uri = f"http://127.0.0.1:{self._server.server_port}{CALLBACK_PATH}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackRedirect:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait(self, timeout: float) -> dict[str, str]:
        """The redirect's query parameters, once the browser came back."""
        try:
            return self._answers.get(timeout=timeout)
        except queue.Empty:
            raise SignInError(f"no answer within {timeout:g} s; run the command again") from None


def check_response(params: dict[str, str], state: str, metadata: Json) -> str:
    """The code of the authorization response, once it is shown to answer this request."""
    if not secrets.compare_digest(params.get("state", ""), state):
        raise SignInError("the answer's state is not this request's: ignored (RFC 6749 §10.12)")
    # RFC 9207 §2.4: iss, when sent or promised, must be the issuer we asked.
    iss_required = metadata.get("authorization_response_iss_parameter_supported") is True
    if ("iss" in params or iss_required) and params.get("iss") != metadata["issuer"]:
        raise SignInError(f"the answer comes from {params.get('iss')!r}, not {metadata['issuer']}")
    if "error" in params:
        description = params.get("error_description")
        raise SignInError(f"{params['error']}: {description}" if description else params["error"])
    if "code" not in params:
        raise SignInError("the answer has no code")
    return params["code"]


def redeem(http: httpx.Client, metadata: Json, form: dict[str, str]) -> Json:
    """The token response for the code (RFC 6749 §4.1.3), or its error as one line."""
    answer = http.post(metadata["token_endpoint"], data=form)
    body = json_object(answer)
    if answer.status_code != 200:
        error = body.get("error", f"HTTP {answer.status_code}")
        description = body.get("error_description")
        raise SignInError(f"{error}: {description}" if description else str(error))
    return body


def sign_in(
    http: httpx.Client, issuer: str, client_id: str, scope: str | None, timeout: float
) -> Json:
    """The whole flow: discover, listen, send the person to sign in, redeem the code."""
    metadata = server_metadata(http, issuer)
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    with LoopbackRedirect() as loopback:
        request = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": loopback.redirect_uri,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if scope is not None:
            request["scope"] = scope
        url = f"{metadata['authorization_endpoint']}?{urlencode(request)}"
        print("Sign in and approve in your browser; if none opens, go to:", file=sys.stderr)
        print(f"  {url}", file=sys.stderr, flush=True)
        webbrowser.open(url)
        params = loopback.wait(timeout)
    code = check_response(params, state, metadata)
    return redeem(
        http,
        metadata,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": loopback.redirect_uri,
            "client_id": client_id,
            "code_verifier": verifier,
        },
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Sign in with the code flow and PKCE.")
    parser.add_argument("--issuer", required=True, help="the authorization server's issuer URL")
    parser.add_argument(
        "--client-id", required=True, help="a public client with loopback redirects"
    )
    parser.add_argument("--scope", help="space-separated scopes (default: the client's)")
    parser.add_argument(
        "--timeout", type=float, default=300, help="seconds to wait for the browser (300)"
    )
    args = parser.parse_args(argv)
    try:
        with httpx.Client(timeout=10) as http:
            token = sign_in(http, args.issuer.rstrip("/"), args.client_id, args.scope, args.timeout)
    except KeyboardInterrupt:
        print("stopped; no token", file=sys.stderr)
        return 130
    except (SignInError, httpx.RequestError) as exc:
        where = f"{exc.request.url}: " if isinstance(exc, httpx.RequestError) else ""
        print(f"error: {where}{exc}", file=sys.stderr)
        return 1
    print(json.dumps(token, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``asgi-oauth serve``: a standalone authorization server under uvicorn.

It serves https itself (``--ssl-certfile``), plain http to a proxy that serves
https at the issuer (``--behind-tls-proxy``), or plain http for local development
(``--insecure-transport``): without one of the three it refuses to start rather
than publish https URLs nothing serves (RFC 9700 §2.1.2). What would fail later is
refused before anything is written, one line each: a certificate that does not
load, a database out of reach, a ``--root-path`` the issuer's path does not start
with, a port already taken. On the SQLite default (``./asgi_oauth.db``) or the
database ``--db`` names; ``--demo`` adds clients, a user and an API to try them on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import errno
import functools
import os
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from .. import __version__
from ..config import Settings
from ..endpoints.paths import UPSTREAM_PATH
from ..federation.providers import load_providers
from ..observability.instruments import Instruments
from ..server import AuthorizationServer
from ..storage import Storage
from ._common import (
    SetupError,
    add_command,
    add_database_option,
    check_database,
    command_hint,
    database_url,
    key_encryption_key,
    require,
    settings,
    shown_database,
)
from .database import migrate_storage
from .demo import demo_api, framed, register_demo
from .logs import LOG_FORMATS, access_log_enabled, log_config, log_format
from .maintenance import switch_on_signals

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Mount, Route

    from ..observability import PrometheusMetrics

_NEEDS_HTTPS = (
    "serve publishes https urls: give --ssl-certfile and --ssl-keyfile to serve https,"
    " or --behind-tls-proxy with the proxy's https url as --issuer,"
    " or --insecure-transport for local development only"
)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = add_command(commands, "serve", "run a standalone authorization server under uvicorn")
    add_database_option(run)
    run.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    run.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    run.add_argument(
        "--issuer",
        help="the server's public URL (env ASGI_OAUTH_ISSUER; "
        "default https://HOST:PORT, or http:// with --insecure-transport)",
    )
    run.add_argument(
        "--demo",
        action="store_true",
        help="register demo clients and a demo user once, and serve /api/demo",
    )
    run.add_argument(
        "--metrics",
        action="store_true",
        help="serve Prometheus metrics at /metrics (the metrics extra); keep that path"
        " internal at your proxy",
    )
    run.add_argument(
        "--upstream-providers",
        metavar="FILE",
        help="sign people in through the identity providers this TOML or JSON file lists"
        " (env ASGI_OAUTH_UPSTREAM_PROVIDERS); their secrets come from the environment"
        " or files it names",
    )
    https = run.add_argument_group(
        "https", "One of: a certificate, a TLS proxy in front, or http for local development."
    )
    https.add_argument("--ssl-certfile", metavar="PEM", help="serve https with this certificate")
    https.add_argument(
        "--ssl-keyfile", metavar="PEM", help="its private key, unless the certificate file has it"
    )
    https.add_argument(
        "--behind-tls-proxy",
        action="store_true",
        help="serve http to a proxy that serves https at --issuer; "
        "trust its X-Forwarded-For and X-Forwarded-Proto",
    )
    https.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        help="with --behind-tls-proxy: the proxy's addresses, comma-separated (127.0.0.1)",
    )
    https.add_argument(
        "--root-path",
        default="",
        metavar="PATH",
        help="the path prefix a proxy strips from requests (the issuer's path starts with it)",
    )
    https.add_argument(
        "--insecure-transport",
        action="store_true",
        default=None,
        help="allow http (local development only; env ASGI_OAUTH_INSECURE_TRANSPORT)",
    )
    logs = run.add_argument_group("logs")
    logs.add_argument(
        "--access-log",
        action="store_true",
        default=None,
        help="log one line per request, its path without the query string"
        " (env ASGI_OAUTH_ACCESS_LOG)",
    )
    logs.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help="text, or json: one object per line on stderr (env ASGI_OAUTH_LOG_FORMAT; text)",
    )
    run.add_argument("--version", action="version", version=f"asgi-oauth {__version__}")
    run.set_defaults(run=serve)


def serve(args: argparse.Namespace) -> int:
    require("uvicorn", "server", "serve")
    import uvicorn

    access_log = access_log_enabled(args.access_log, os.environ)
    logs = log_config(log_format(args.log_format, os.environ))
    config, scheme = _configure(args)
    with _listen(args.host, args.port) as sock:
        # Only once the setup is known good: a refused command makes no key file.
        config = dataclasses.replace(config, key_encryption_key=key_encryption_key(args))
        hint = functools.partial(command_hint, args)
        server = AuthorizationServer.from_settings(config)
        demo = asyncio.run(prepare(server, demo=args.demo, hint=hint))
        # A fresh server: uvicorn runs the app on its own event loop.
        metrics = _metrics(args.metrics)
        instruments = Instruments(metrics=metrics) if metrics is not None else None
        app = build_app(
            AuthorizationServer.from_settings(config, instruments=instruments),
            demo=args.demo,
            root_path=args.root_path,
            metrics=metrics,
            signals=True,
        )
        _announce(args, config, scheme, demo)
        uvicorn.Server(
            uvicorn.Config(
                app,
                host=args.host,
                port=args.port,
                log_config=logs,
                log_level=None,  # the levels are log_config's
                access_log=access_log,
                ssl_certfile=args.ssl_certfile,
                ssl_keyfile=args.ssl_keyfile,
                proxy_headers=args.behind_tls_proxy,
                forwarded_allow_ips=args.forwarded_allow_ips,
                root_path=args.root_path.rstrip("/"),
            )
        ).run(sockets=[sock])
    return 0


def _configure(args: argparse.Namespace) -> tuple[Settings, str]:
    """The settings, and the scheme this process listens with; what cannot work is refused."""
    insecure = settings(args, insecure_transport=args.insecure_transport).insecure_transport
    issuer: str | None = args.issuer or os.environ.get("ASGI_OAUTH_ISSUER")
    default = "http" if insecure and not args.ssl_certfile else "https"
    config = settings(
        args,
        issuer=issuer or f"{default}://{_authority(args.host, args.port)}",
        insecure_transport=args.insecure_transport,
        upstream_providers=None
        if args.upstream_providers is None
        else load_providers(args.upstream_providers),
    )
    check_database(database_url(args))
    scheme = _listening_scheme(args, insecure=insecure, issuer=issuer)
    _mount_path(config.issuer_path, args.root_path)  # checked now; build_app mounts there
    return config, scheme


def _listening_scheme(args: argparse.Namespace, *, insecure: bool, issuer: str | None) -> str:
    """``https`` with a certificate; ``http`` to a TLS proxy or for local development."""
    if args.ssl_keyfile and not args.ssl_certfile:
        raise SetupError("--ssl-keyfile needs --ssl-certfile")
    if args.forwarded_allow_ips is not None and not args.behind_tls_proxy:
        raise SetupError("--forwarded-allow-ips goes with --behind-tls-proxy")
    if args.ssl_certfile:
        if args.behind_tls_proxy:
            raise SetupError(
                "choose --ssl-certfile (https served here) or --behind-tls-proxy, not both"
            )
        if issuer is not None and not issuer.startswith("https://"):
            raise SetupError(f"with --ssl-certfile the issuer is an https url, not {issuer}")
        _check_certificate(args.ssl_certfile, args.ssl_keyfile)
        return "https"
    if args.behind_tls_proxy:
        if issuer is None:
            raise SetupError("--behind-tls-proxy needs --issuer: the https url the proxy serves")
        if not issuer.startswith("https://"):
            raise SetupError(f"--behind-tls-proxy needs the proxy's https url, not {issuer}")
        return "http"
    if not insecure:
        raise SetupError(_NEEDS_HTTPS)
    return "http"


def _check_certificate(certfile: str, keyfile: str | None) -> None:
    """Load the certificate and key as uvicorn will, so a bad pair is one line now, not a
    traceback later; an encrypted key is refused rather than prompted for."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(certfile, keyfile, password=lambda: "")
    except ssl.SSLError as exc:  # OpenSSL names a reason for some faults only
        reason = exc.reason.lower() if exc.reason else "no PEM certificate and unencrypted key"
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
    else:
        return
    files = certfile if keyfile is None else f"{certfile} and {keyfile}"
    raise SetupError(f"cannot serve https with {files}: {reason.replace('_', ' ')}")


def _mount_path(issuer_path: str, root_path: str) -> str:
    """Where serve mounts the endpoints: the issuer's path, less the prefix a proxy strips.

    ``root_path`` + the mount must be the issuer's path, or every published URL misses."""
    root = root_path.rstrip("/")
    if root_path and not root_path.startswith("/"):
        raise SetupError(f"--root-path must start with /, not {root_path}")
    if root and issuer_path != root and not issuer_path.startswith(root + "/"):
        raise SetupError(
            f"--root-path {root} disagrees with the issuer's path {issuer_path or '/'}:"
            " the issuer is the public url, the root path its start the proxy strips"
        )
    return issuer_path[len(root) :]


def _listen(host: str, port: int) -> socket.socket:
    """The socket uvicorn will serve on, bound now: a port already taken is one line
    before anything is written or printed."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:
        sock.close()
        if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
            reason = "the port is taken (is a server still running?); stop it or choose --port"
        else:
            reason = str(getattr(exc, "strerror", None) or exc).lower()
        raise SetupError(f"cannot listen on {_authority(host, port)}: {reason}") from None
    return sock


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _announce(args: argparse.Namespace, config: Settings, scheme: str, demo: list[str]) -> None:
    """Where everything is; the demo credentials last before "listening", framed."""
    print(f"metadata: {config.issuer}/.well-known/oauth-authorization-server")
    if config.openid_enabled:
        print(f"OpenID Connect: {config.issuer}/.well-known/openid-configuration")
    else:
        print("OpenID Connect is off: set ASGI_OAUTH_KEY_ENCRYPTION_KEY to turn it on")
    for provider in config.upstream_providers:
        # The one URL the operator must register at the provider.
        callback = f"{config.issuer}{UPSTREAM_PATH}/{provider.id}/callback"
        print(f"sign in with {provider.name}: its redirect URI is {callback}")
    if args.demo:
        print(f"demo API: {config.issuer}/api/demo  (send: Authorization: Bearer TOKEN)")
        print("\n".join(framed(demo)))
    proxy = f" for the https proxy at {config.issuer}" if args.behind_tls_proxy else ""
    where = f"{scheme}://{_authority(args.host, args.port)}{proxy}"
    print(f"listening on {where}  (database {shown_database(args)})", flush=True)


async def prepare(
    server: AuthorizationServer, *, demo: bool, hint: Callable[..., str]
) -> list[str]:
    """Create or migrate the database, make the clients what ``Settings.clients_file``
    declares (never pruning: deleting is for ``clients apply --prune``), and the demo
    clients and user when asked; what to tell a person about the demo."""
    storage: Storage = server.storage
    try:
        await migrate_storage(storage)
        if server.settings.clients_file is not None:
            plan = await server.apply_clients()
            print(f"clients file {server.settings.clients_file}: {plan.summary()}")
        return await register_demo(server, hint=hint) if demo else []
    finally:
        await storage.close()


def build_app(
    server: AuthorizationServer,
    *,
    demo: bool,
    root_path: str = "",
    metrics: PrometheusMetrics | None = None,
    signals: bool = False,
) -> Starlette:
    """The authorization server at the issuer's path (below ``root_path``), the demo
    API beside it, and the metrics at ``/metrics``; with ``signals``, SIGUSR1 and SIGUSR2
    switch maintenance on and off for every server on the store (``cli.maintenance``)."""
    # Imported here: the other commands start without the web stack.
    from starlette.applications import Starlette
    from starlette.routing import Mount, Route

    from ..app import OAuth2App
    from ..app.heap import settle_heap

    oauth = OAuth2App(server)
    mount = _mount_path(server.settings.issuer_path, root_path)
    routes: list[Route | Mount] = []
    middleware: list[Middleware] = []
    if demo:
        route, protect = demo_api(server, mount)
        routes.append(route)
        middleware.append(protect)
    if mount and not root_path:  # behind a stripping proxy, the host's root is not ours
        routes.append(oauth.metadata_route)
    if metrics is not None:
        routes.append(Route("/metrics", metrics.app))
    routes.append(Mount(mount, app=oauth) if mount else Mount("/", app=oauth))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if signals:
            switch_on_signals(server)
        settle_heap()
        yield
        await server.close()

    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


def _metrics(wanted: bool) -> PrometheusMetrics | None:
    """The metrics ``--metrics`` asks for, or a one-line refusal without the extra."""
    if not wanted:
        return None
    require("prometheus_client", "metrics", "serve --metrics")
    from ..observability import PrometheusMetrics

    return PrometheusMetrics()

"""``asgi-oauth maintenance on|off|status``, and ``serve``'s signals: the maintenance switch
that every server on the database follows (``asgi_oauth.availability``).

Switched on, every endpoint but the metadata and the keys answers 503
``temporarily_unavailable`` (RFC 6749 §4.1.2.1, §5.2) within about a second, on every
instance and worker sharing the database; ``off`` brings them back. A running ``serve``
does the same on ``SIGUSR1`` (maintenance on) and ``SIGUSR2`` (off): uvicorn handles
only ``SIGINT`` and ``SIGTERM``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time

from ..errors import StorageError
from ..server import AuthorizationServer
from ..storage import Storage
from ._common import (
    add_command,
    add_database_option,
    add_json_option,
    iso_time,
    report,
    shown_database,
    with_storage,
)

logger = logging.getLogger("asgi_oauth")

#: The signals ``serve`` switches on, and whether each makes the servers available.
SIGNALS = (("SIGUSR1", False), ("SIGUSR2", True))


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    maintenance = add_command(
        commands,
        "maintenance",
        "switch every server on the database unavailable for maintenance, or back",
    )
    sub = maintenance.add_subparsers(dest="action", required=True, metavar="ACTION")
    on = add_command(
        sub, "on", "answer 503 temporarily_unavailable everywhere but the metadata and keys"
    )
    off = add_command(sub, "off", "serve again")
    status = add_command(sub, "status", "say whether the servers are switched unavailable")
    for parser, run in ((on, _on), (off, _off), (status, _status)):
        add_database_option(parser)
        add_json_option(parser)
        parser.set_defaults(run=run)


@with_storage()
async def _on(args: argparse.Namespace, storage: Storage) -> int:
    await storage.set_maintenance(int(time.time()))
    return await _report(args, storage)


@with_storage()
async def _off(args: argparse.Namespace, storage: Storage) -> int:
    await storage.set_maintenance(None)
    return await _report(args, storage)


@with_storage()
async def _status(args: argparse.Namespace, storage: Storage) -> int:
    return await _report(args, storage)


async def _report(args: argparse.Namespace, storage: Storage) -> int:
    since = await storage.maintenance_since()
    if since is None:
        text = f"available: the servers on {shown_database(args)} serve"
    else:
        text = (
            f"unavailable since {iso_time(since)}: the servers on {shown_database(args)}"
            " answer 503 temporarily_unavailable (asgi-oauth maintenance off to serve again)"
        )
    report(args, {"available": since is None, "unavailable_since": since}, text)
    return 0


def switch_on_signals(server: AuthorizationServer) -> None:
    """Make ``SIGUSR1`` and ``SIGUSR2`` switch every server on the store (call on the
    serving event loop); a platform without them keeps the command alone."""
    loop = asyncio.get_running_loop()
    switching: set[asyncio.Task[None]] = set()
    for name, available in SIGNALS:
        signum = getattr(signal, name, None)
        if signum is None:
            continue

        def switch(available: bool = available) -> None:
            task = loop.create_task(_switch(server, available))
            switching.add(task)
            task.add_done_callback(switching.discard)

        loop.add_signal_handler(signum, switch)


async def _switch(server: AuthorizationServer, available: bool) -> None:
    try:
        await server.set_available(available)
    except StorageError as exc:
        logger.error("maintenance switch not changed: %s", exc)

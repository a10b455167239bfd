"""Security events: one structured log line each, never a secret, a code or a token.

Every event goes to the ``asgi_oauth.events`` logger as one line of
``event=<name> key=value ...`` (a value with spaces or quotes is JSON-quoted),
and carries the same in ``record.event`` and ``record.fields`` (the values as
they appear in the line, unquoted) for a JSON formatter. Identifiers only:
client ids, user ids and usernames, scopes, addresses, counts.
"""

from __future__ import annotations

import json
import logging

logger = logging.getLogger("asgi_oauth.events")

_MAX_VALUE = 128


def security_event(name: str, *, level: int = logging.INFO, **fields: object) -> None:
    """Log one security event, e.g. ``security_event("token_issued", client_id=...)``."""
    if not logger.isEnabledFor(level):
        return
    kept = {key: _format(value) for key, value in fields.items() if value is not None}
    line = " ".join([f"event={name}", *(f"{k}={_quote(v)}" for k, v in kept.items())])
    logger.log(level, "%s", line, extra={"event": name, "fields": kept})


def _format(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (frozenset, set, tuple, list)):
        value = " ".join(sorted(str(v) for v in value))
    return str(value)[:_MAX_VALUE]


def _quote(text: str) -> str:
    # No control characters, spaces or quotes unquoted: one event, one parseable line.
    if not text or any(c in text for c in ' "=\\') or not text.isprintable():
        return json.dumps(text)
    return text

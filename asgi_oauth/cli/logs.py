"""How ``asgi-oauth serve`` logs: uvicorn's text lines as before, or one JSON object a line.

Both are a ``logging.config.dictConfig`` for uvicorn's ``log_config``, so its own
loggers follow. An access line never carries the query string: it can hold an
authorization code, a token or a state, and URLs get logged (RFC 6749 §10.5, RFC 6750
§2.3), so only the path is. Security events (``asgi_oauth.events``) keep their
``event`` and each field as keys of the JSON object.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ..config import SettingsError
from ..setting_checks import parse_env

LOG_FORMATS = ("text", "json")

_ACCESS_LOGGER = "uvicorn.access"
#: What every JSON line has; a security event's field of the same name is renamed.
_BASE_KEYS = frozenset({"time", "level", "logger", "message", "event", "exception", "stack"})


def access_log_enabled(flag: bool | None, environ: Mapping[str, str]) -> bool:
    """``--access-log``, else ``ASGI_OAUTH_ACCESS_LOG`` (read as settings read booleans)."""
    if flag is not None:
        return flag
    raw = environ.get("ASGI_OAUTH_ACCESS_LOG", "")
    return bool(raw) and bool(parse_env("access_log", bool, raw))


def log_format(flag: str | None, environ: Mapping[str, str]) -> str:
    """``--log-format``, else ``ASGI_OAUTH_LOG_FORMAT``, else ``text``."""
    chosen: str = flag or environ.get("ASGI_OAUTH_LOG_FORMAT") or "text"
    if chosen not in LOG_FORMATS:
        raise SettingsError(f"ASGI_OAUTH_LOG_FORMAT must be text or json, not {chosen!r}")
    return chosen


class PathOnly(logging.Filter):
    """Drop the query string from uvicorn's access records, whatever formats them."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], _path(args[2]), args[3], args[4])
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (RFC 3339, UTC), ``level``, ``logger``,
    ``message``; a security event's ``event`` and fields; an access record's
    ``client``, ``method``, ``path`` and ``status``."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name == _ACCESS_LOGGER:
            PathOnly().filter(record)  # the message too, even without the filter configured
        line: dict[str, object] = {
            "time": _rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        event = getattr(record, "event", None)
        fields = getattr(record, "fields", None)
        if isinstance(event, str) and isinstance(fields, dict):
            line["event"] = event
            for key, value in fields.items():
                line[f"field_{key}" if key in _BASE_KEYS else str(key)] = value
        if record.name == _ACCESS_LOGGER:
            line.update(_access_fields(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


def log_config(fmt: str) -> dict[str, Any]:
    """uvicorn's ``log_config``: ``text`` is uvicorn's own output (at ``warning``, as
    serve always ran it); ``json`` sends every record, the server's ``info`` ones too,
    to stderr as JSON. The access logger is ``info`` either way: uvicorn's
    ``access_log=False`` removes its handler when it is off."""
    levels: dict[str, dict[str, Any]] = {
        "uvicorn.error": {"level": "WARNING"},
        "uvicorn.asgi": {"level": "WARNING"},
    }
    if fmt == "json":
        stderr = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
        return {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"json": {"()": f"{__name__}.JSONFormatter"}},
            "filters": {"path_only": {"()": f"{__name__}.PathOnly"}},
            "handlers": {"default": {**stderr, "formatter": "json"}},
            "root": {"handlers": ["default"], "level": "WARNING"},
            "loggers": {
                **levels,
                "uvicorn": {"handlers": [], "level": "INFO", "propagate": True},
                _ACCESS_LOGGER: {"level": "INFO", "filters": ["path_only"]},
                "asgi_oauth": {"level": "INFO"},
            },
        }
    # uvicorn.config.LOGGING_CONFIG, with the query string left out of access lines.
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "default": {
                "()": "uvicorn.logging.DefaultFormatter",
                "fmt": "%(levelprefix)s %(message)s",
                "use_colors": None,
            },
            "access": {
                "()": "uvicorn.logging.AccessFormatter",
                "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
            },
        },
        "filters": {"path_only": {"()": f"{__name__}.PathOnly"}},
        "handlers": {
            "default": {
                "formatter": "default",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
            },
            "access": {
                "formatter": "access",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
            },
        },
        "loggers": {
            **levels,
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            _ACCESS_LOGGER: {
                "handlers": ["access"],
                "level": "INFO",
                "propagate": False,
                "filters": ["path_only"],
            },
        },
    }


def _access_fields(record: logging.LogRecord) -> dict[str, object]:
    """What uvicorn passes an access record: client, method, path, HTTP version, status."""
    args = record.args
    if not (isinstance(args, tuple) and len(args) == 5):
        return {}
    client, method, path, _, status = args
    return {"client": client, "method": method, "path": path, "status": status}


def _path(target: str) -> str:
    return target.split("?", 1)[0]


def _rfc3339(created: float) -> str:
    moment = datetime.fromtimestamp(created, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

"""Checking each setting against its annotation, and reading it from the environment.

A refused setting raises, the message starting with the setting's name::

    SettingsError(ValueError)          a value the server cannot run with
     └── SettingsTypeError(TypeError)  a value of the wrong type ("3600" for seconds)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args, get_origin

from .types import GrantType


class SettingsError(ValueError):
    """A setting the server refuses; the message starts with the setting's name."""


class SettingsTypeError(SettingsError, TypeError):
    """A setting of the wrong type: a string of digits for seconds, one string for a
    collection of words, an int for a flag."""


#: The settings that may be 0 (it turns them off); every other int must be positive.
_MAY_BE_ZERO = frozenset({"refresh_token_grace_period", "purge_interval", "clock_skew"})
#: The unit an int setting counts, by the end of its name, for messages.
_UNITS = {
    "_lifetime": "seconds",
    "_window": "seconds",
    "_interval": "seconds",
    "_period": "seconds",
    "_skew": "seconds",
    "_size": "bytes",
    "_bytes": "bytes",
    "_timeout": "seconds",
    "_length": "characters",
    "_after": "seconds",
}
#: What the words of a collection of protocol words are called, for messages.
_WORDS: dict[object, str] = {GrantType: "grant types"}


def _optional(hint: Any) -> tuple[Any, bool]:
    """``X | None`` as ``(X, True)``; any other annotation as ``(it, False)``."""
    args = get_args(hint)
    if type(None) not in args:
        return hint, False
    (inner,) = (arg for arg in args if arg is not type(None))
    return inner, True


def _expected(name: str, hint: Any) -> str:
    """What a setting must be, in words: ``an int (seconds)``, ``a tuple of str``."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(word) for word in args)
    if origin in (tuple, frozenset):
        word = args[0] if isinstance(args[0], type) else str
        return f"a {origin.__name__} of {_WORDS.get(args[0], word.__name__)}"
    if origin is Mapping:
        if args[1] is not str:
            return "a mapping of str to str or to {language: str}"
        return "a mapping of str to str"
    if hint is int:
        unit = next((unit for end, unit in _UNITS.items() if name.endswith(end)), None)
        return f"an int ({unit})" if unit else "an int"
    return f"a {hint.__name__}"


def _refused(
    name: str, hint: Any, optional: bool, value: object, error: type[SettingsError]
) -> SettingsError:
    """``<name> must be <what>, got <value> (<type>)``, the value left out of a str
    setting's message: it may be a secret, or a URL with a password."""
    expected = _expected(name, hint) + (" or None" if optional else "")
    shown = type(value).__name__ if hint is str else f"{value!r} ({type(value).__name__})"
    return error(f"{name} must be {expected}, got {shown}")


def _is_a(value: object, hint: Any) -> bool:
    """Whether ``value`` has the type ``hint`` names (a Literal's words are str)."""
    if get_origin(hint) is Literal:
        return isinstance(value, tuple({type(word) for word in get_args(hint)}))
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _is_text(value: object, per_language: bool) -> bool:
    """A str, or (``per_language``) a mapping of language tags to str."""
    if isinstance(value, str):
        return True
    return (
        per_language
        and isinstance(value, Mapping)
        and all(isinstance(lang, str) and isinstance(text, str) for lang, text in value.items())
    )


def _fits(value: object, hint: Any) -> bool:
    """Whether a value of the right type is one a Literal allows (any other always fits)."""
    return get_origin(hint) is not Literal or value in get_args(hint)


def checked(name: str, annotation: Any, value: object) -> object:
    """``value`` if it fits the setting's annotation (a list made the tuple or frozenset
    the setting holds); else a ``SettingsError`` naming the setting."""
    hint, optional = _optional(annotation)
    if optional and value is None:
        return value
    if get_origin(hint) in (tuple, frozenset):
        return _checked_words(name, hint, optional, value)
    if get_origin(hint) is Mapping:
        per_language = get_args(hint)[1] is not str
        if not isinstance(value, Mapping) or not all(
            isinstance(key, str) and _is_text(text, per_language) for key, text in value.items()
        ):
            raise _refused(name, hint, optional, value, SettingsTypeError)
        return value
    if not _is_a(value, hint):
        raise _refused(name, hint, optional, value, SettingsTypeError)
    if not _fits(value, hint):
        raise _refused(name, hint, optional, value, SettingsError)
    if hint is int and isinstance(value, int):
        if name in _MAY_BE_ZERO and value < 0:
            raise SettingsError(f"{name} must be >= 0 (0 turns it off), got {value}")
        if name not in _MAY_BE_ZERO and value <= 0:
            raise SettingsError(f"{name} must be positive, got {value}")
    return value


def _checked_words(name: str, hint: Any, optional: bool, value: object) -> object:
    """A tuple or frozenset of words, made one from a list (or a set, for a frozenset).
    One string is refused, never split: ``"read write"`` is a mistake, not two words."""
    origin, word = get_origin(hint), get_args(hint)[0]
    ordered = origin is tuple  # a set has no order to keep
    if (
        not isinstance(value, (list, tuple, set, frozenset))
        or (ordered and isinstance(value, (set, frozenset)))
        or not all(_is_a(item, word) for item in value)
    ):
        error = _refused(name, hint, optional, value, SettingsTypeError)
        if isinstance(value, str):
            raise SettingsTypeError(f"{error}; write {origin(value.split())!r}")
        raise error
    unknown = sorted(item for item in value if not _fits(item, word))
    if unknown:
        raise SettingsError(f"{name} has unknown {_WORDS.get(word, 'values')}: {unknown}")
    return value if type(value) is origin else origin(value)


def parse_env(name: str, annotation: Any, raw: str) -> object:
    """An ``ASGI_OAUTH_*`` value as the setting's type wants it."""
    hint, _ = _optional(annotation)
    if hint is bool:
        if raw.lower() not in ("1", "true", "yes", "0", "false", "no"):
            raise SettingsError(f"ASGI_OAUTH_{name.upper()} must be true or false, not {raw!r}")
        return raw.lower() in ("1", "true", "yes")
    if hint is int:
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(
                f"ASGI_OAUTH_{name.upper()} must be an integer, not {raw!r}"
            ) from None
    if get_origin(hint) in (tuple, frozenset):
        return get_origin(hint)(raw.split())
    return raw

"""Access token scope (RFC 6749 §3.3): parsing and narrowing."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .errors import InvalidScopeError

# scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")


def is_scope_token(scope: str) -> bool:
    """Whether ``scope`` is one scope-token of RFC 6749 §3.3."""
    return _SCOPE_TOKEN.fullmatch(scope) is not None


def parse_scope(value: str | None) -> frozenset[str] | None:
    """Split a space-delimited scope; None when the parameter was omitted."""
    if value is None:
        return None
    tokens = value.split(" ")
    if not all(_SCOPE_TOKEN.fullmatch(token) for token in tokens):
        raise InvalidScopeError("malformed scope")
    return frozenset(tokens)


def narrow_scope(requested: frozenset[str] | None, allowed: Iterable[str]) -> frozenset[str]:
    """The scope to grant: what was asked for if allowed, else ``allowed`` by default.

    RFC 6749 §3.3 lets the server apply a default when scope is omitted; ours
    is everything the client or the original grant may have.
    """
    allowed = frozenset(allowed)
    if requested is None:
        return allowed
    excess = requested - allowed
    if excess:
        raise InvalidScopeError(f"scope not allowed: {' '.join(sorted(excess))}")
    return requested


#: Scopes that ask about the person or the grant's length, not for a permission of
#: theirs (OpenID Connect Core §5.4, §11): a person's scope limit leaves them alone.
_ABOUT_THE_PERSON = frozenset({"openid", "profile", "email", "address", "phone", "offline_access"})


def grantable_by(scope: frozenset[str], limit: frozenset[str] | None) -> frozenset[str]:
    """The part of ``scope`` a person whose grants are limited to ``limit`` may grant
    (None: no limit). RFC 6749 §3.3: the server may issue less than was asked."""
    if limit is None:
        return scope
    return frozenset(s for s in scope if s in limit or s in _ABOUT_THE_PERSON)

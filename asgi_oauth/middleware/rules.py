"""Which paths need a token, and with which scopes: the longest matching prefix wins."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rule:
    prefix: str
    required: bool
    scopes: frozenset[str]

    def matches(self, path: str) -> bool:
        prefix = self.prefix
        return (
            prefix == "/"
            or path == prefix
            or (path.startswith(prefix) and path[len(prefix)] == "/")
        )


def build_rules(
    protect: Mapping[str, str | Iterable[str]], public: Iterable[str]
) -> tuple[Rule, ...]:
    """``protect`` maps a prefix to the scopes it needs (a space-separated string or a
    list; empty: any valid token); ``public`` prefixes pass without a token."""
    rules: dict[str, Rule] = {}
    for prefix, scopes in protect.items():
        words = scopes.split() if isinstance(scopes, str) else list(scopes)
        rules[_normal(prefix)] = Rule(_normal(prefix), True, frozenset(words))
    for prefix in public:
        rules[_normal(prefix)] = Rule(_normal(prefix), False, frozenset())
    return tuple(sorted(rules.values(), key=lambda rule: len(rule.prefix), reverse=True))


def match(rules: tuple[Rule, ...], path: str) -> Rule | None:
    for rule in rules:
        if rule.matches(path):
            return rule
    return None


def _normal(prefix: str) -> str:
    if not prefix.startswith("/"):
        raise ValueError(f"a path prefix starts with '/': {prefix!r}")
    return prefix.rstrip("/") or "/"

"""The operator's configuration files (upstream providers, clients): read as TOML, JSON
or YAML by their suffix, with secrets they name but never hold.

A secret is ``client_secret_env`` (an environment variable) or ``client_secret_file``
(a file beside the configuration, surrounding blanks dropped); a literal
``client_secret`` is refused, so the file can live in version control. Two errors tell
what went wrong: ``refused`` for what the file says, ``unreadable`` for what could not
be read (the file, a secret, a missing parser).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path


def read_structured(
    file: Path, where: str, *, refused: type[ValueError], unreadable: type[ValueError]
) -> object:
    """The file's data: JSON (``.json``), YAML (``.yaml``, ``.yml``, with PyYAML) or TOML."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise unreadable(f"{where}: {(exc.strerror or str(exc)).lower()}") from None
    suffix = file.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return _yaml(text, where, refused=refused, unreadable=unreadable)
    loads = json.loads if suffix == ".json" else _toml_reader(where, unreadable)
    try:
        return loads(text)
    except ValueError as exc:  # what JSON and TOML say of a syntax error
        raise refused(f"{where}: {exc}") from None


def named_secret(
    entry: dict[str, object],
    env: Mapping[str, str],
    base: Path,
    where: str,
    *,
    refused: type[ValueError],
    unreadable: type[ValueError],
) -> str | None:
    """The secret ``entry`` names (its naming fields taken out of it), or None."""
    if "client_secret" in entry:
        raise refused(
            f"{where}: name the secret with client_secret_env or client_secret_file,"
            " never write it in the file"
        )
    variable, path = entry.pop("client_secret_env", None), entry.pop("client_secret_file", None)
    if variable is not None and path is not None:
        raise refused(f"{where}: client_secret_env or client_secret_file, not both")
    if variable is not None:
        value = env.get(str(variable))
        if not value:
            raise unreadable(f"{where}: the environment variable {variable} is not set")
        return value
    if path is not None:
        try:
            value = (base / str(path)).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise unreadable(f"{where}: client_secret_file: {exc.strerror}") from None
        if not value:
            raise unreadable(f"{where}: client_secret_file {path} is empty")
        return value
    return None


def _toml_reader(where: str, unreadable: type[ValueError]) -> Callable[[str], object]:
    try:
        tomllib = importlib.import_module("tomllib")  # Python 3.11 and later
    except ImportError:
        raise unreadable(
            f"{where}: reading TOML needs Python 3.11: write the file as JSON"
        ) from None
    loads: Callable[[str], object] = tomllib.loads
    return loads


def _yaml(
    text: str, where: str, *, refused: type[ValueError], unreadable: type[ValueError]
) -> object:
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        raise unreadable(
            f"{where}: reading YAML needs PyYAML: pip install pyyaml (or write TOML or JSON)"
        ) from None
    try:
        loaded: object = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise refused(f"{where}: {exc}") from None
    return loaded

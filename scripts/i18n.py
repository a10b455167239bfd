"""Extract → update → compile the pages' catalogues with Babel (run it as ``scripts/i18n``).

Extracting reads every ``_("...")`` and ``N_("...")`` call of the package (``scripts/i18n
extract`` prints them as a template): with ``ast``, so that the calls inside f-strings count too
(Babel's own Python extractor does not see them before Python 3.12). Updating brings
each ``<lang>/LC_MESSAGES/asgi_oauth.po`` in line with it (new texts empty, gone ones
dropped, never a fuzzy guess); English, the source language, translates each text as
itself. Compiling writes the ``.mo`` beside each ``.po``. ``add <lang>`` starts a
language. tests/test_i18n_catalogues.py runs the same extraction to check the committed files.
"""

from __future__ import annotations

import ast
import copy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "asgi_oauth"
LOCALE = PACKAGE / "app" / "locale"
DOMAIN = "asgi_oauth"
SOURCE_LANGUAGE = "en"
#: ``_`` translates where the language is known; ``N_`` marks a text translated later.
KEYWORDS = ("_", "N_")


def extract_calls(
    fileobj: IO[bytes], keywords: object, comment_tags: object, options: object
) -> Iterator[tuple[int, str, str, list[str]]]:
    """A Babel extraction method: each keyword call whose first argument is a string."""
    tree = ast.parse(fileobj.read())
    found: list[tuple[int, str, str, list[str]]] = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in KEYWORDS
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.func.id, node.args[0].value, []))
    yield from sorted(found)


def template() -> Catalog:
    """Every text of the package that a person may read, as a catalogue template."""
    catalog = Catalog(project="asgi-oauth", domain=DOMAIN, fuzzy=False)
    messages = extract_from_dir(
        str(PACKAGE),
        method_map=[("**.py", extract_calls)],  # type: ignore[list-item]  # a callable works
        keywords=dict.fromkeys(KEYWORDS),
        comment_tags=(),
    )
    for filename, lineno, message, _comments, _context in messages:
        catalog.add(message, locations=[(f"asgi_oauth/{filename}", lineno)])
    return catalog


def languages() -> list[str]:
    return sorted(path.parent.parent.name for path in LOCALE.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))


def po_path(lang: str) -> Path:
    return LOCALE / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def read(path: Path) -> Catalog:
    with path.open("rb") as file:
        return read_po(file, domain=DOMAIN)


def write(path: Path, catalog: Catalog) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        write_po(file, catalog, width=100, omit_header=False, no_location=True, sort_output=True)


def update(pot: Catalog) -> None:
    for lang in languages():
        catalog = read(po_path(lang))
        created = catalog.creation_date  # kept: a date that changes each run is noise
        # A copy each: Babel adds the template's own messages, which English then fills.
        catalog.update(copy.deepcopy(pot), no_fuzzy_matching=True)
        catalog.creation_date = created
        catalog.obsolete.clear()
        if lang == SOURCE_LANGUAGE:
            for message in catalog:
                if message.id and not message.string:
                    message.string = message.id
        write(po_path(lang), catalog)
        missing = [m.id for m in catalog if m.id and not m.string]
        if missing:
            print(f"{lang}: {len(missing)} text(s) to translate in {po_path(lang)}")


def compile_all() -> None:
    for lang in languages():
        catalog = read(po_path(lang))
        with po_path(lang).with_suffix(".mo").open("wb") as file:
            write_mo(file, catalog, use_fuzzy=False)


def add(lang: str, pot: Catalog) -> None:
    path = po_path(lang)
    if path.exists():
        raise SystemExit(f"{path} exists already")
    catalog = Catalog(
        locale=lang,
        domain=DOMAIN,
        project="asgi-oauth",
        copyright_holder="the asgi_oauth authors",
        header_comment=f"# The asgi_oauth pages in {lang}: scripts/i18n keeps this file in line"
        "\n# with the code; translate each empty msgstr, then run scripts/i18n again.",
        fuzzy=False,
    )
    catalog.update(pot, no_fuzzy_matching=True)
    write(path, catalog)
    print(f"{path}: translate it, then run scripts/i18n")


def main(argv: list[str]) -> None:
    pot = template()  # extracted afresh each time: no template file to fall behind
    if argv == ["extract"]:
        write_po(sys.stdout.buffer, pot, width=100, sort_output=True)
    elif argv[:1] == ["add"] and len(argv) == 2:
        add(argv[1], pot)
    elif argv == []:
        update(pot)
        compile_all()
    else:
        raise SystemExit("usage: scripts/i18n [extract | add <lang>]")


if __name__ == "__main__":
    main(sys.argv[1:])

"""The pages' translation catalogues checked against the code: each committed ``.mo``
is its ``.po`` compiled, French is complete, and every text the code uses (what
``scripts/i18n`` extracts) is in each catalogue, with no text the code no longer uses.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import read_mo

from asgi_oauth.app.i18n import available_languages, negotiate

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def script() -> ModuleType:
    """scripts/i18n.py, whose extraction the catalogues must match."""
    spec = importlib.util.spec_from_file_location("i18n_script", REPO_ROOT / "scripts/i18n.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def french(script: ModuleType) -> Catalog:
    catalog: Catalog = script.read(script.po_path("fr"))
    return catalog


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_each_mo_holds_exactly_what_its_po_says(lang: str, script: ModuleType) -> None:
    """The committed .mo is the .po compiled (as Babel compiles it, in memory)."""
    po: Catalog = script.read(script.po_path(lang))
    with script.po_path(lang).with_suffix(".mo").open("rb") as file:
        mo = read_mo(file)
    expected = {str(m.id): m.string for m in po if m.id and m.string and not m.fuzzy}
    compiled = {str(m.id): m.string for m in mo if m.id}
    assert compiled == expected


def test_the_french_catalogue_is_complete(french: Catalog) -> None:
    untranslated = [m.id for m in french if m.id and not m.string]
    fuzzy = [m.id for m in french if m.id and m.fuzzy]
    assert not untranslated and not fuzzy, (untranslated, fuzzy)


def test_the_english_catalogue_says_each_text_as_written(script: ModuleType) -> None:
    english: Catalog = script.read(script.po_path("en"))
    assert all(m.string == m.id for m in english if m.id)


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_every_text_of_the_code_is_in_the_catalogue(lang: str, script: ModuleType) -> None:
    """What scripts/i18n extracts now is what the committed catalogue has: none
    missing (run scripts/i18n and translate), none left over."""
    in_code = {str(m.id) for m in script.template() if m.id}
    catalogue = {str(m.id) for m in script.read(script.po_path(lang)) if m.id}
    assert in_code - catalogue == set(), "run scripts/i18n, then translate the new texts"
    assert catalogue - in_code == set(), "run scripts/i18n to drop the texts gone from the code"


def test_translations_keep_their_placeholders(french: Catalog) -> None:
    """A translation may leave a value out ({reason}), never invent one."""
    for message in french:
        if message.id:
            names = set(re.findall(r"\{(\w+)\}", str(message.id)))
            assert set(re.findall(r"\{(\w+)\}", str(message.string))) <= names, message.id


def test_extraction_sees_calls_inside_f_strings(script: ModuleType, tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text('x = f"<p>{_e(_(\'Inside\'))}</p>"\ny = N_("Marked")\nz = other("No")\n')
    with source.open("rb") as file:
        found = [message for _, _, message, _ in script.extract_calls(file, {}, (), {})]
    assert found == ["Inside", "Marked"]


def test_english_and_french_are_shipped() -> None:
    assert {"en", "fr"} <= set(available_languages())
    assert negotiate(None, "fr-BE") == "fr"

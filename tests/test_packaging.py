"""What a release ships, checked cheaply: the license, one version, the sdist's contents,
and the documentation's reach. ``scripts/package-check`` builds and installs the real
artifacts; ``scripts/docs`` builds the site."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import Any

import pytest

import asgi_oauth
from asgi_oauth import Settings

if sys.version_info >= (3, 11):
    import tomllib
else:
    tomllib = pytest.importorskip("tomli")

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCS = REPO_ROOT / "docs"


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    with (REPO_ROOT / "pyproject.toml").open("rb") as file:
        data: dict[str, Any] = tomllib.load(file)
    return data


def test_license_file_is_bsd_3_clause_as_pyproject_says(pyproject: dict[str, Any]) -> None:
    text = (REPO_ROOT / "LICENSE").read_text()
    assert pyproject["project"]["license"] == "BSD-3-Clause"
    assert pyproject["project"]["license-files"] == ["LICENSE"]
    assert text.startswith("BSD 3-Clause License\n\nCopyright (c) 2026, the asgi_oauth authors\n")
    for clause in (
        "1. Redistributions of source code must retain the above copyright notice",
        "2. Redistributions in binary form must reproduce the above copyright notice",
        "3. Neither the name of the copyright holder nor the names of its",
        'THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"',
    ):
        assert clause in text
    # PEP 639: a license expression, so no license classifier beside it.
    assert not [c for c in pyproject["project"]["classifiers"] if c.startswith("License ::")]


def test_version_has_one_source(pyproject: dict[str, Any]) -> None:
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["hatch"]["version"]["path"] == "asgi_oauth/__init__.py"
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?", asgi_oauth.__version__)


def test_sdist_includes_license_changelog_and_docs(pyproject: dict[str, Any]) -> None:
    include = pyproject["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]
    for path in ("LICENSE", "CHANGELOG.md", "README.md", "docs", "mkdocs.yml", "asgi_oauth"):
        assert path in include
        assert (REPO_ROOT / path).exists(), path


def test_changelog_follows_keep_a_changelog() -> None:
    changelog = (REPO_ROOT / "CHANGELOG.md").read_text()
    assert changelog.startswith("# Changelog\n")
    assert "[Keep a Changelog](https://keepachangelog.com/" in changelog
    assert "## [Unreleased]" in changelog or f"## [{asgi_oauth.__version__}]" in changelog


def test_every_docs_page_is_in_the_site_navigation() -> None:
    config = (REPO_ROOT / "mkdocs.yml").read_text()
    listed = set(re.findall(r":\s*([\w-]+\.md)\s*$", config, re.M))
    assert listed == {page.name for page in DOCS.glob("*.md")}


def test_configuration_page_documents_every_setting() -> None:
    page = (DOCS / "configuration.md").read_text()
    first_cells = "\n".join(re.findall(r"^\| (`[^|]*)\|", page, re.M))
    missing = {field.name for field in dataclasses.fields(Settings)} - set(
        re.findall(r"`(\w+)`", first_cells)
    )
    assert not missing, f"docs/configuration.md lacks {sorted(missing)}"


def test_readme_links_into_the_docs_resolve() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    links = re.findall(r"\]\((docs/[^)#\s]+)", readme)
    assert links
    for link in links:
        assert (REPO_ROOT / link).is_file(), link

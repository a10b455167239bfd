"""The package's shape: its public names, and the core importing no web framework."""

from __future__ import annotations

import ast
import pathlib

import asgi_oauth
import asgi_oauth.app
import asgi_oauth.storage

PACKAGE = pathlib.Path(asgi_oauth.__file__).parent
FRAMEWORKS = {"starlette", "httpx", "multipart", "python_multipart", "fastapi", "uvicorn"}
#: The core's outbound requests (a client's metadata document, an upstream provider,
#: a back-channel logout token) use httpx (a dependency anyway) as a client: no web
#: framework comes with it.
OUTBOUND_HTTP = {"client_documents/fetch.py", "federation/upstream.py", "endpoints/backchannel.py"}


def test_public_names_are_exported_and_sorted() -> None:
    for module in (asgi_oauth, asgi_oauth.app, asgi_oauth.storage):
        assert module.__all__ == sorted(module.__all__), module.__name__
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_exports_are_deliberate() -> None:
    public = {
        name
        for name, value in vars(asgi_oauth).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("asgi_oauth")
    }
    assert public <= set(asgi_oauth.__all__), public - set(asgi_oauth.__all__)


def imported_modules(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add("." * node.level + node.module.split(".")[0])
    return names


def test_core_imports_no_web_framework_and_not_the_asgi_layer() -> None:
    core = [
        p
        for p in PACKAGE.rglob("*.py")
        if p.relative_to(PACKAGE).parts[0] not in ("app", "middleware", "cli", "__main__.py")
    ]
    assert len(core) > 10
    for path in core:
        imported = imported_modules(path)
        if path.relative_to(PACKAGE).as_posix() in OUTBOUND_HTTP:
            imported -= {"httpx"}
        assert not imported & FRAMEWORKS, f"{path} imports {imported & FRAMEWORKS}"
        relative = {name.lstrip(".") for name in imported if name.startswith(".")}
        assert not {"app", "middleware"} & relative, path


#: The schemas are long lists of SQL statements, read one migration at a time.
_LONG_BY_NATURE = {"storage/sqlite/schema.py", "storage/postgres/schema.py"}


def test_every_module_reads_in_one_sitting() -> None:
    """One concept per module: none past ~400 lines, no class past ~300 (a class that
    grows past that is several concepts, and gets split before it lands)."""
    for path in PACKAGE.rglob("*.py"):
        name = path.relative_to(PACKAGE).as_posix()
        source = path.read_text()
        if name not in _LONG_BY_NATURE:
            assert source.count("\n") <= 400, f"{name} is longer than 400 lines"
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                assert length <= 300, f"{name}: class {node.name} has {length} lines"


def test_py_typed_marker_ships() -> None:
    assert (PACKAGE / "py.typed").exists()

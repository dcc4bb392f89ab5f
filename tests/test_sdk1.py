"""Clients of the MCP Python SDK 1.x line (``mcp<2``), which many hosts still run, over
stdio and streamable HTTP. The 1.x SDK lives in its own virtual environment: the one
named by ``MCP_PROFILES_SDK1_PYTHON``, else one built once per machine in the temp folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.procs.common import free_port

CLIENT = Path(__file__).with_name("sdk1_client.py")
REQUIREMENT = "mcp<2"


def _has_sdk1(python: Path) -> bool:
    probe = "import importlib.metadata as m, sys; sys.exit(0 if m.version('mcp').startswith('1.') else 1)"
    return python.exists() and subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def sdk1_python() -> str:
    """A python with the 1.x SDK, or a skip that says why there is none."""
    named = os.environ.get("MCP_PROFILES_SDK1_PYTHON")
    if named:
        return named
    home = Path(tempfile.gettempdir()) / "mcp-profiles-sdk1"
    python = home / "bin" / "python"
    if _has_sdk1(python):
        return str(python)
    build = Path(tempfile.mkdtemp(prefix="mcp-profiles-sdk1-"))
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(build)], check=True, capture_output=True, timeout=120
        )
        subprocess.run(
            [str(build / "bin" / "pip"), "install", "-q", REQUIREMENT],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        shutil.rmtree(build, ignore_errors=True)
        detail = getattr(e, "stderr", None) or str(e)
        pytest.skip(
            f"cannot build a virtual environment with the MCP Python SDK 1.x ({REQUIREMENT}): {detail!s:.300}"
        )
    if not _has_sdk1(python):
        shutil.rmtree(home, ignore_errors=True)
        try:
            build.rename(home)  # another run may have won the race: use whichever is there
        except OSError:
            shutil.rmtree(build, ignore_errors=True)
    # a venv's scripts name their own folder, so use the one that is in place
    return str(python if _has_sdk1(python) else build / "bin" / "python")


def _run_client(sdk1_python: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sdk1_python, str(CLIENT), *args], capture_output=True, text=True, timeout=180, cwd=CLIENT.parent
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _check(seen: dict[str, Any]) -> None:
    assert seen["server"] == "mcp-profiles" and seen["protocol_version"] == "2025-11-25"
    assert seen["subscribe"] and seen["list_changed"]
    assert {"update_profile", "get_profile", "upsert_profile_from_data"} <= set(seen["tools"])
    assert seen["created"]["profile"]["name"] == "One" and seen["name"] == "Uno"
    assert seen["bad"]["is_error"] and seen["bad"]["text"].startswith("invalid: limit: ")
    assert json.loads(seen["resource"])["version"] == 2
    assert "profiles://index{?kind,tag,limit,cursor}" in seen["templates"]
    assert seen["prompt"].startswith("Review this stored profile")
    assert seen["prompt_error"]["code"] == -32602 and seen["prompt_error"]["message"].startswith(
        "not_found: "
    )
    assert "notifications/resources/updated" in seen["notifications"]  # it subscribed
    assert "notifications/resources/list_changed" in seen["notifications"]


def test_sdk1_client_over_stdio(sdk1_python: str, tmp_path: Path) -> None:
    _check(_run_client(sdk1_python, "stdio", sys.executable, str(tmp_path / "stdio.sqlite3")))


def test_sdk1_client_over_streamable_http(sdk1_python: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "MCP_PROFILES_DB": str(tmp_path / "http.sqlite3")}
    server = subprocess.Popen(
        [sys.executable, "-m", "mcp_profiles", "serve", "--transport", "http", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "the HTTP server did not start"
                time.sleep(0.2)
        _check(_run_client(sdk1_python, "http", f"http://127.0.0.1:{port}/mcp"))
    finally:
        server.terminate()
        server.wait(10)

"""Run the official MCP conformance suite against `mcp-profiles serve --transport http`.

    python .ci/conformance.py NODE CONFORMANCE_JS [OUTDIR]

NODE is a Node 22 binary and CONFORMANCE_JS the suite's dist/index.js (`.ci/run` installs
both from npm into a temporary folder). Every server scenario runs on its own, except those
listed in .ci/conformance-skip.toml: the ones needing the suite's fixture tools, resources
or prompts, and the ones for a capability the server does not declare. A scenario passes
when its checks have no FAILURE and no WARNING. Prints pass, fail and skip counts; exits 1
on any failure, or when the skip file names a scenario the suite no longer has.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from pathlib import Path

HERE = Path(__file__).parent
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "ci", "version": "1"},
    },
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def capabilities(url: str) -> dict[str, object]:
    """The server's declared capabilities, from a handshake-era initialize."""
    request = urllib.request.Request(
        url,
        data=json.dumps(INIT).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read().decode()
    for line in body.splitlines():  # an SSE stream or plain JSON
        line = line.removeprefix("data:").strip()
        if line.startswith("{"):
            return dict(json.loads(line)["result"]["capabilities"])
    raise RuntimeError(f"no initialize result in {body[:200]!r}")


def scenarios(node: str, suite: str) -> list[str]:
    out = subprocess.run([node, suite, "list", "--server"], capture_output=True, text=True, check=True).stdout
    return re.findall(r"^\s*-\s+(\S+)", out, re.M)


def run(node: str, suite: str, url: str, name: str, outdir: Path) -> tuple[bool, list[str]]:
    target = outdir / name
    subprocess.run(
        [node, suite, "server", "--url", url, "--scenario", name, "-o", str(target)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    problems: list[str] = []
    found = list(target.glob("**/checks.json"))
    if not found:
        return False, ["no checks.json written"]
    for path in found:
        problems.extend(
            f"{c['status']}: {c.get('errorMessage') or c.get('description')}"
            for c in json.loads(path.read_text())
            if c["status"] in ("FAILURE", "WARNING")
        )
    return not problems, problems


def main() -> int:
    node, suite = sys.argv[1], sys.argv[2]
    outdir = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(tempfile.mkdtemp(prefix="conformance-"))
    skip = tomllib.loads((HERE / "conformance-skip.toml").read_text())
    fixtures: dict[str, str] = skip.get("fixtures", {})
    needs: dict[str, str] = skip.get("capabilities", {})
    work = Path(tempfile.mkdtemp(prefix="conformance-db-"))
    port = free_port()
    env = {**os.environ, "MCP_PROFILES_DB": str(work / "profiles.sqlite3")}
    env.pop("ANTHROPIC_API_KEY", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "mcp_profiles", "serve", "--transport", "http", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(work / "server.log", "w"),  # noqa: SIM115 - closed with the process
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    print((work / "server.log").read_text(), file=sys.stderr)
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)
        declared = capabilities(url)
        names = scenarios(node, suite)
        stale = sorted((set(fixtures) | set(needs)) - set(names))
        passed, failed, skipped = [], [], []
        for name in names:
            if name in fixtures:
                skipped.append(f"{name}: {fixtures[name]}")
                continue
            if name in needs and needs[name] not in declared:
                skipped.append(f"{name}: the server does not declare {needs[name]}")
                continue
            ok, problems = run(node, suite, url, name, outdir)
            (passed if ok else failed).append(name)
            print(f"{'pass' if ok else 'FAIL'}  {name}" + "".join(f"\n      {p}" for p in problems))
        for line in skipped:
            print(f"skip  {line}")
        for name in stale:
            print(f"STALE {name}: in .ci/conformance-skip.toml but not in the suite")
        print(
            f"conformance: {len(passed)} passed, {len(failed)} failed, {len(skipped)} skipped (results in {outdir})"
        )
        return 1 if failed or stale else 0
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    sys.exit(main())

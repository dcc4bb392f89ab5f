"""A test host for the profile card: headless Chromium plays an MCP Apps host.

The host page puts the card (read from the server's ``ui://`` resource, as a host does) in a
sandboxed iframe under the MCP Apps spec's default Content-Security-Policy, answers
``ui/initialize``, sends ``tool-input`` and ``tool-result`` after ``initialized``, and proxies
the card's ``tools/call`` to the real server through the SDK's in-process ``Client`` (a
Playwright ``expose_function``). Chromium is Debian's (``apt-get install -y chromium``);
Playwright's own browser download is never used.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from mcp_profiles.card import CARD_URI

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# The spec's CSP for a UI resource that declares none; the srcdoc iframe inherits it.
DEFAULT_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; media-src 'self' data:; connect-src 'none'"
)


def _missing() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed: pip install -e '.[test]'"
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return (
            f"no Chromium at {CHROMIUM}: install Debian's with 'apt-get install -y chromium' "
            "(or set CHROMIUM to a Chromium binary) to run the profile card's browser tests"
        )
    return None


needs_chromium = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")

HOST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="__CSP__">
<title>Test host</title>
<style>html, body { margin: 0; background: #777; } iframe { border: 0; width: 100%; height: 100vh; display: block; }</style>
</head><body>
<iframe id="view" title="Profile card" sandbox="allow-scripts"></iframe>
<script>
const CARD = __CARD__;
const TOOL = __TOOL__;
const ECHO = __ECHO__;  // some hosts also show the app's own calls as tool-input and tool-result
window.hostContext = __CONTEXT__;
window.hostLog = [];
const frame = document.getElementById("view");
window.viewLog = [];
function toView(message) { window.viewLog.push(message); frame.contentWindow.postMessage(message, "*"); }
window.changeContext = (params) => toView({ jsonrpc: "2.0", method: "ui/notifications/host-context-changed", params });
window.addEventListener("message", async (event) => {
  if (event.source !== frame.contentWindow) return;
  const msg = event.data;
  window.hostLog.push(msg);
  if (msg.method === "ui/initialize") {
    toView({ jsonrpc: "2.0", id: msg.id, result: {
      protocolVersion: "2026-01-26",
      hostCapabilities: { serverTools: {}, serverResources: {} },
      hostInfo: { name: "test-host", version: "1" },
      hostContext: window.hostContext } });
  } else if (msg.method === "ui/notifications/initialized") {
    toView({ jsonrpc: "2.0", method: "ui/notifications/tool-input", params: { arguments: TOOL.arguments } });
    const out = await window.mcpCallTool(TOOL.name, TOOL.arguments);
    toView({ jsonrpc: "2.0", method: "ui/notifications/tool-result", params: out.result });
  } else if (msg.method === "tools/call") {
    const out = await window.mcpCallTool(msg.params.name, msg.params.arguments || {});
    toView(out.error ? { jsonrpc: "2.0", id: msg.id, error: out.error } : { jsonrpc: "2.0", id: msg.id, result: out.result });
    if (ECHO && out.result) {
      toView({ jsonrpc: "2.0", method: "ui/notifications/tool-input", params: { arguments: msg.params.arguments || {} } });
      toView({ jsonrpc: "2.0", method: "ui/notifications/tool-result", params: out.result });
    }
  } else if (msg.id !== undefined && msg.method) {
    toView({ jsonrpc: "2.0", id: msg.id, error: { code: -32601, message: "Method not found" } });
  }
});
frame.srcdoc = CARD;
</script></body></html>
"""


def _script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element."""
    return json.dumps(value).replace("</", "<\\/").replace("<!--", "<\\!--")


@dataclass
class HostedCard:
    """The page, the card's frame, and what went over the wire."""

    page: Any
    frame: Any
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    async def host_log(self) -> list[dict[str, Any]]:
        """Every message the card sent to the host."""
        log: list[dict[str, Any]] = await self.page.evaluate("window.hostLog")
        return log

    async def answered(self, tool: str) -> None:
        """Wait until the host has answered the card's first ``tools/call`` of ``tool``."""
        await self.page.wait_for_function(
            """(tool) => {
                const ask = window.hostLog.find((m) => m.method === "tools/call" && m.params.name === tool);
                return ask && window.viewLog.some((m) => m.id === ask.id && !m.method);
            }""",
            arg=tool,
            timeout=20_000,
        )


@asynccontextmanager
async def hosted_card(
    client: Client,
    profile: str,
    *,
    theme: str = "light",
    width: int = 480,
    height: int = 900,
    tool: str = "show_profile",
    echo: bool = False,
) -> AsyncIterator[HostedCard]:
    """Render ``tool``'s result for ``profile`` in the card, as a host would (``echo``: a host
    that also sends the card's own calls back as ``tool-input`` and ``tool-result``)."""
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=20_000)  # a shared, loaded machine: waiting is not failing

    resource = await client.read_resource(CARD_URI)
    card_html = resource.contents[0].text  # type: ignore[union-attr]
    context = {
        "theme": theme,
        "displayMode": "inline",
        "locale": "en-GB",
        "timeZone": "UTC",
        "containerDimensions": {"maxWidth": width},
        "platform": "web",
    }
    page_html = (
        HOST_PAGE.replace("__CSP__", DEFAULT_CSP)
        .replace("__CARD__", _script_json(card_html))
        .replace("__TOOL__", _script_json({"name": tool, "arguments": {"profile": profile}}))
        .replace("__CONTEXT__", _script_json(context))
        .replace("__ECHO__", _script_json(echo))
    )
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": width, "height": height})
            hosted = HostedCard(page=page, frame=page.frame_locator("#view"))

            async def call_tool(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
                hosted.calls.append((name, arguments))
                try:
                    result = await client.call_tool(name, arguments)
                except MCPError as e:
                    return {"error": {"code": e.error.code, "message": e.error.message}}
                return {"result": result.model_dump(mode="json", by_alias=True, exclude_none=True)}

            page.on("request", lambda r: hosted.requests.append(r.url))
            page.on("console", lambda m: hosted.console_errors.append(m.text) if m.type == "error" else None)
            await page.expose_function("mcpCallTool", call_tool)
            await page.set_content(page_html)
            yield hosted
        finally:
            await browser.close()

"""The profile card in a real browser: headless Chromium (Debian's) as the MCP Apps host,
the real server behind it through the in-process Client. Assertions are on what a person
sees, and on the stored profile after they act through the card."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_profiles.config import Config
from mcp_profiles.server import create_server
from tests.card_host import hosted_card, needs_chromium
from tests.fakes import MessagesAPI, anthropic_llm
from tests.helpers import text

pytestmark = [needs_chromium, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[1]
CHAT = """User: Hi, I'm Maya. I work as a product designer at a small studio in Lisbon.
Assistant: Nice to meet you, Maya!
User: On weekends I go bouldering, and I shoot film photography when the light is good.
User: I'm learning Portuguese this year, so sometimes I'll ask for translations.
"""


def op(key: str, value: Any, evidence: str, confidence: float = 0.9) -> dict[str, Any]:
    return {"op": "set", "key": key, "value": value, "confidence": confidence, "evidence": evidence}


async def seed_maya(config: Config) -> None:
    """A realistic profile: facts set by hand, facts extracted with their quotes, one data
    item that failed and one still waiting."""
    api = MessagesAPI()
    api.enqueue_tool(
        {
            "operations": [
                op("work.role", "product designer", "I work as a product designer"),
                op("basic_info.city", "Lisbon", "at a small studio in Lisbon", 0.85),
                op(
                    "interests.hobbies",
                    ["bouldering", "film photography"],
                    "On weekends I go bouldering",
                    0.8,
                ),
                op("goals.language", "learn Portuguese", "I'm learning Portuguese this year", 0.75),
            ],
            "summary": "Product designer in Lisbon who climbs, shoots film and is learning Portuguese.",
        }
    )
    api.enqueue_error(400, "invalid_request_error", message="prompt is too long for this model")
    async with Client(create_server(config, llm=anthropic_llm(api, max_retries=0))) as client:
        made = await client.call_tool(
            "update_profile",
            {
                "profile": "maya",
                "create": True,
                "patch": {
                    "name": "Maya Okafor",
                    "attributes": {
                        "preferences.answer_length": "short",
                        "communication.tone": "warm but direct",
                    },
                },
            },
        )
        assert made.is_error is False, text(made)
        done = await client.call_tool(
            "upsert_profile_from_data", {"profile": "maya", "data": CHAT, "input_type": "chat history"}
        )
        assert done.is_error is False, text(done)
        failed = await client.call_tool(
            "upsert_profile_from_data",
            {"profile": "maya", "data": "Activity: renewed climbing gym pass.", "input_type": "activity log"},
        )
        assert failed.is_error is True
    async with Client(create_server(config)) as client:  # no model: the item waits
        waiting = await client.call_tool(
            "upsert_profile_from_data",
            {
                "profile": "maya",
                "data": "Note: moving to Porto in spring.",
                "input_type": "note",
                "wait": False,
            },
        )
        assert waiting.structured_content["status"] == "pending", text(waiting)


def fact(hosted: Any, key: str) -> Any:
    return hosted.frame.locator(f'li.fact[data-key="{key}"]')


async def stored(client: Client, ref: str = "maya") -> dict[str, Any]:
    result = await client.call_tool("get_profile", {"profile": ref})
    doc: dict[str, Any] = result.structured_content
    return doc


async def test_card_shows_facts_sources_badges_and_data_waiting(config: Config, tmp_path: Path) -> None:
    from playwright.async_api import expect

    await seed_maya(config)
    async with Client(create_server(config)) as client, hosted_card(client, "maya") as hosted:
        card = hosted.frame.locator("#card")
        await expect(card.locator("h1")).to_have_text("Maya Okafor")
        await expect(card).to_contain_text("user")
        await expect(card).to_contain_text("Product designer in Lisbon who climbs")
        # facts grouped by topic, with value, source badge and confidence
        headings = await card.locator("h2").all_text_contents()
        assert {"Basic info", "Communication", "Goals", "Interests", "Preferences", "Work"} <= set(headings)
        role = fact(hosted, "work.role")
        await expect(role.locator("[data-role=value]")).to_have_text("product designer")
        await expect(role.locator(".chip")).to_have_text("extracted")
        await expect(role).to_contain_text("confidence 90%")
        await expect(role.locator("blockquote")).to_have_text("I work as a product designer")
        await expect(role).to_contain_text("from chat history received")
        hobbies = fact(hosted, "interests.hobbies")
        await expect(hobbies.locator("[data-role=value]")).to_have_text("bouldering, film photography")
        length = fact(hosted, "preferences.answer_length")
        await expect(length.locator(".chip")).to_have_text("manual")
        await expect(length.locator("blockquote")).to_have_count(0)
        # data not yet in the profile: the failed item with its reason, the waiting one
        await expect(card).to_contain_text("Data not yet in the profile")
        await expect(card).to_contain_text("note received")
        await expect(card).to_contain_text("waiting to be processed")
        await expect(card).to_contain_text("activity log received")
        await expect(card).to_contain_text("prompt is too long")
        # version and last change
        version = (await stored(client))["version"]
        meta = card.locator(".meta").first
        await expect(meta).to_contain_text(f"Version {version} · last changed")
        await expect(meta).to_contain_text("by extraction (from chat history received")
        # controls with accessible names
        await expect(hosted.frame.get_by_role("button", name="Delete Work: role")).to_be_visible()
        await expect(
            hosted.frame.get_by_role("button", name="Edit Preferences: answer length")
        ).to_be_visible()
        # the handshake in the spec's order, and nothing fetched or refused by the CSP
        methods = [m.get("method") for m in await hosted.host_log()]
        assert methods[:2] == ["ui/initialize", "ui/notifications/initialized"]
        init = (await hosted.host_log())[0]["params"]
        assert init["protocolVersion"] == "2026-01-26" and init["appInfo"]["name"]
        assert [u for u in hosted.requests if u.startswith(("http:", "https:", "ws:"))] == []
        assert hosted.console_errors == []
        shot = await hosted.page.screenshot(full_page=True)
        assert shot.startswith(b"\x89PNG") and len(shot) > 10_000
        if os.environ.get("MCP_PROFILES_UPDATE_SCREENSHOT"):
            await hosted.page.set_viewport_size({"width": 480, "height": 1200})
            target = ROOT / "docs" / "profile-card.png"
            target.parent.mkdir(exist_ok=True)
            body = hosted.frame.locator("body")
            height = await body.evaluate("b => b.scrollHeight")
            await hosted.page.set_viewport_size({"width": 480, "height": int(height)})
            await hosted.page.screenshot(path=str(target), full_page=True)


async def test_delete_and_edit_a_fact_through_the_card(config: Config) -> None:
    from playwright.async_api import expect

    await seed_maya(config)
    async with Client(create_server(config)) as client, hosted_card(client, "maya") as hosted:
        f = hosted.frame
        await expect(f.locator("h1")).to_have_text("Maya Okafor")
        before = (await stored(client))["version"]

        await f.get_by_role("button", name="Delete Basic info: city").click()
        await f.get_by_role("button", name="Confirm delete Basic info: city").click()
        await expect(fact(hosted, "basic_info.city")).to_have_count(0)
        await expect(f.get_by_role("status")).to_contain_text(
            f"Deleted Basic info: city. The profile is now at version {before + 1}"
        )
        doc = await stored(client)
        assert "basic_info.city" not in doc["attributes"] and doc["version"] == before + 1

        await f.get_by_role("button", name="Edit Work: role").click()
        box = f.get_by_role("textbox", name="New value for Work: role")
        await expect(box).to_be_focused()
        await box.fill("design lead")
        await f.get_by_role("button", name="Save Work: role").click()
        role = fact(hosted, "work.role")
        await expect(role.locator("[data-role=value]")).to_have_text("design lead")
        await expect(role.locator(".chip")).to_have_text("manual")
        await expect(role).to_contain_text("confidence 100%")
        await expect(f.locator(".meta").first).to_contain_text(f"Version {before + 2}")
        attr = (await stored(client))["attributes"]["work.role"]
        assert attr["value"] == "design lead" and attr["source"] == "manual" and attr["confidence"] == 1.0

        await f.get_by_role("button", name="Edit Interests: hobbies").click()
        await f.get_by_role("textbox", name="New value for Interests: hobbies").fill(
            '["bouldering", "chess"]'
        )
        await f.get_by_role("button", name="Save Interests: hobbies").click()
        await expect(fact(hosted, "interests.hobbies").locator("[data-role=value]")).to_have_text(
            "bouldering, chess"
        )
        assert (await stored(client))["attributes"]["interests.hobbies"]["value"] == ["bouldering", "chess"]
        names = [c[0] for c in hosted.calls]
        assert names.count("update_profile") == 3


async def test_card_reports_a_conflicting_change_in_words_and_shows_the_latest(config: Config) -> None:
    from playwright.async_api import expect

    await seed_maya(config)
    async with Client(create_server(config)) as client, hosted_card(client, "maya") as hosted:
        f = hosted.frame
        await expect(f.locator("h1")).to_have_text("Maya Okafor")
        changed = await client.call_tool(
            "update_profile", {"profile": "maya", "patch": {"attributes": {"communication.tone": "formal"}}}
        )
        assert changed.is_error is False
        await f.get_by_role("button", name="Edit Work: role").click()
        await f.get_by_role("textbox", name="New value for Work: role").fill("illustrator")
        await f.get_by_role("button", name="Save Work: role").click()
        await expect(f.get_by_role("alert")).to_contain_text("the profile changed meanwhile")
        await expect(fact(hosted, "communication.tone").locator("[data-role=value]")).to_have_text("formal")
        assert (await stored(client))["attributes"]["work.role"]["value"] == "product designer"

        await f.get_by_role("button", name="Edit Work: role").click()
        await f.get_by_role("textbox", name="New value for Work: role").fill("   ")
        await f.get_by_role("button", name="Save Work: role").click()
        await expect(f.get_by_role("alert")).to_have_text(
            "Enter a value for Work: role, or use Delete to remove it."
        )


async def test_card_is_keyboard_usable(config: Config) -> None:
    from playwright.async_api import expect

    await seed_maya(config)
    async with Client(create_server(config)) as client, hosted_card(client, "maya") as hosted:
        f, keys = hosted.frame, hosted.page.keyboard
        await expect(f.locator("h1")).to_have_text("Maya Okafor")
        edit = f.get_by_role("button", name="Edit Communication: tone")
        await edit.focus()
        await keys.press("Enter")
        box = f.get_by_role("textbox", name="New value for Communication: tone")
        await expect(box).to_be_focused()
        await keys.press("Escape")
        await expect(edit).to_be_focused()
        await keys.press("Enter")
        await box.fill("calm")
        await keys.press("Enter")
        await expect(fact(hosted, "communication.tone").locator("[data-role=value]")).to_have_text("calm")
        await expect(edit).to_be_focused()
        await keys.press("Tab")
        await expect(f.get_by_role("button", name="Delete Communication: tone")).to_be_focused()
        await keys.press("Enter")
        await expect(f.get_by_role("button", name="Confirm delete Communication: tone")).to_be_focused()
        await keys.press("Enter")
        await expect(fact(hosted, "communication.tone")).to_have_count(0)
        await expect(f.locator("h1")).to_be_focused()
        assert "communication.tone" not in (await stored(client))["attributes"]


async def test_card_follows_the_host_theme_and_fits_360_pixels(config: Config) -> None:
    from playwright.async_api import expect

    await seed_maya(config)
    async with (
        Client(create_server(config)) as client,
        hosted_card(client, "maya", theme="dark", width=360) as hosted,
    ):
        f = hosted.frame
        await expect(f.locator("h1")).to_have_text("Maya Okafor")
        await expect(f.locator("html")).to_have_attribute("data-theme", "dark")
        dark = await f.locator("body").evaluate("b => getComputedStyle(b).backgroundColor")
        assert dark == "rgb(24, 24, 28)"
        widths = await f.locator("html").evaluate("h => [h.scrollWidth, h.clientWidth]")
        assert widths[0] <= widths[1] <= 360, widths
        await expect(f.get_by_role("button", name="Delete Goals: language")).to_be_in_viewport()
        await hosted.page.evaluate("window.changeContext({theme: 'light'})")
        await expect(f.locator("html")).to_have_attribute("data-theme", "light")
        light = await f.locator("body").evaluate("b => getComputedStyle(b).backgroundColor")
        assert light == "rgb(255, 255, 255)"
        # the host's own style variables win over the card's defaults; odd names are ignored
        await hosted.page.evaluate(
            "window.changeContext({styles: {variables: {'--color-background-primary': 'rgb(250, 240, 230)',"
            " 'color': 'red', '--x;}body{color:red': 'x'}}})"
        )
        await expect(f.locator("body")).to_have_css("background-color", "rgb(250, 240, 230)")
        assert (
            await f.locator("html").get_attribute("style")
            == "--color-background-primary: rgb(250, 240, 230);"
        )
        # the card tells the host its size, within the 360 px it was given
        sizes = [
            m["params"] for m in await hosted.host_log() if m.get("method") == "ui/notifications/size-changed"
        ]
        assert sizes and all(0 < s["width"] <= 360 and s["height"] > 300 for s in sizes), sizes


HOSTILE_NAME = '<img src=x onerror="window.parent.pwned=1">Eve'
HOSTILE_SCRIPT = "<script>window.parent.pwned = 2</script><b>bold?</b>"
RTL = "مرحبا بالعالم — שלום עולם"
LONG = "x" * 3000 + " " + "supercalifragilistic" * 150


async def test_hostile_values_are_shown_as_text_and_never_run(config: Config) -> None:
    from playwright.async_api import expect

    api = MessagesAPI()
    quote = "<script>alert('quoted')</script> said the person"
    api.enqueue_tool({"operations": [op("interests.code", "<svg onload=alert(1)>", quote)]})
    async with Client(create_server(config, llm=anthropic_llm(api))) as client:
        made = await client.call_tool(
            "update_profile",
            {
                "profile": "eve",
                "create": True,
                "patch": {
                    "name": HOSTILE_NAME,
                    "summary": "</script><script>window.parent.pwned=3</script>",
                    "attributes": {
                        "basic_info.motto": HOSTILE_SCRIPT,
                        "basic_info.greeting": RTL,
                        "work.notes": LONG,
                    },
                },
            },
        )
        assert made.is_error is False, text(made)
        up = await client.call_tool("upsert_profile_from_data", {"profile": "eve", "data": f"User: {quote}"})
        assert up.is_error is False, text(up)

    async with Client(create_server(config)) as client, hosted_card(client, "eve", width=360) as hosted:
        f = hosted.frame
        await expect(f.locator("h1")).to_have_text(HOSTILE_NAME)
        await expect(fact(hosted, "basic_info.motto").locator("[data-role=value]")).to_have_text(
            HOSTILE_SCRIPT
        )
        await expect(fact(hosted, "basic_info.greeting").locator("[data-role=value]")).to_have_text(RTL)
        await expect(fact(hosted, "work.notes").locator("[data-role=value]")).to_have_text(LONG)
        await expect(fact(hosted, "interests.code").locator("[data-role=value]")).to_have_text(
            "<svg onload=alert(1)>"
        )
        await expect(fact(hosted, "interests.code").locator("blockquote")).to_have_text(quote)
        await expect(f.locator("#card")).to_contain_text("</script><script>window.parent.pwned=3</script>")
        # nothing became markup: no images, svg or extra scripts, and nothing ran
        assert await f.locator("img, svg, b, script").count() == 1  # the card's own script
        assert await f.locator("script").count() == 1
        assert await hosted.page.evaluate("window.pwned") is None
        assert await f.locator("html").evaluate("() => window.pwned === undefined")
        await expect(fact(hosted, "basic_info.greeting").locator("[data-role=value]")).to_have_attribute(
            "dir", "auto"
        )
        widths = await f.locator("html").evaluate("h => [h.scrollWidth, h.clientWidth]")
        assert widths[0] <= widths[1], widths
        # the controls still work on hostile data
        await f.get_by_role("button", name="Delete Basic info: motto").click()
        await f.get_by_role("button", name="Confirm delete Basic info: motto").click()
        await expect(fact(hosted, "basic_info.motto")).to_have_count(0)
        assert "basic_info.motto" not in (await stored(client, "eve"))["attributes"]
        assert hosted.console_errors == []


async def test_without_the_lifecycle_tools_the_card_shows_no_sources_and_no_error(config: Config) -> None:
    from playwright.async_api import expect

    await seed_maya(config)
    server = create_server(config)
    for name in ("list_data", "forget_data"):  # the card must also work on servers without them
        if name in {t.name for t in await server.list_tools()}:
            server.remove_tool(name)
    async with Client(server) as client, hosted_card(client, "maya") as hosted:
        f = hosted.frame
        await expect(f.locator("h1")).to_have_text("Maya Okafor")
        await hosted.answered("list_data")
        await hosted.page.evaluate("() => new Promise((done) => requestAnimationFrame(() => done(null)))")
        assert [c[0] for c in hosted.calls].count("list_data") == 1
        await expect(f.get_by_role("heading", name="Sources")).to_have_count(0)
        await expect(f.get_by_role("button", name=re.compile("^Forget this source"))).to_have_count(0)
        await expect(f.get_by_role("alert")).to_have_text("")


async def test_card_lists_sources_and_forgets_one_with_the_lifecycle_tools(config: Config) -> None:
    from playwright.async_api import expect

    server = create_server(config)
    if "forget_data" not in {t.name for t in await server.list_tools()}:
        pytest.skip("this server has no list_data/forget_data (the data-lifecycle tools)")
    await seed_maya(config)
    async with Client(server) as client:
        async with hosted_card(client, "maya") as hosted:
            f = hosted.frame
            await expect(f.get_by_role("heading", name="Sources")).to_be_visible()
            chat = f.get_by_role("button", name=re.compile(r"^Forget this source: chat history received"))
            await expect(chat).to_have_count(1)
            await expect(f.locator("li.item").filter(has=chat)).to_contain_text("Supports")
            await chat.click()
            await f.get_by_role("button", name=re.compile(r"^Confirm forget chat history received")).click()
            await expect(fact(hosted, "work.role")).to_have_count(0)
            await expect(f.get_by_role("status")).to_contain_text("Forgot the source chat history received")
            await expect(f.get_by_role("alert")).to_have_text("")
            await expect(fact(hosted, "preferences.answer_length")).to_have_count(1)  # set by hand: kept
            doc = await stored(client)
            assert "work.role" not in doc["attributes"] and "preferences.answer_length" in doc["attributes"]
            assert [c[0] for c in hosted.calls].count("forget_data") == 1


async def test_card_survives_a_host_that_echoes_its_own_calls(config: Config) -> None:
    from playwright.async_api import expect

    await seed_maya(config)
    async with Client(create_server(config)) as client, hosted_card(client, "maya", echo=True) as hosted:
        f = hosted.frame
        await expect(f.locator("h1")).to_have_text("Maya Okafor")
        await f.get_by_role("button", name="Delete Goals: language").click()
        await f.get_by_role("button", name="Confirm delete Goals: language").click()
        await expect(fact(hosted, "goals.language")).to_have_count(0)
        await client.call_tool("update_profile", {"profile": "maya", "patch": {"name": "Maya O."}})
        await f.get_by_role("button", name="Edit Work: role").click()
        await f.get_by_role("textbox", name="New value for Work: role").fill("illustrator")
        await f.get_by_role("button", name="Save Work: role").click()
        await expect(f.get_by_role("alert")).to_contain_text("the profile changed meanwhile")
        await expect(f.locator("h1")).to_have_text("Maya O.")  # the echoed error did not blank the card
        await expect(fact(hosted, "work.role").locator("[data-role=value]")).to_have_text("product designer")
        await hosted.page.wait_for_timeout(500)
        names = [c[0] for c in hosted.calls]
        assert names.count("list_data") <= 4, names  # echoed answers start no loop


async def test_card_shows_a_missing_profile_in_words(config: Config) -> None:
    from playwright.async_api import expect

    async with Client(create_server(config)) as client, hosted_card(client, "ghost") as hosted:
        await expect(hosted.frame.get_by_role("alert")).to_have_text(
            "not_found: profile 'ghost' does not exist"
        )
        await expect(hosted.frame.locator("#card")).to_have_text("")

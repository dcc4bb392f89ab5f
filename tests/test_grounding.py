"""Grounding: an evidence quote must be substantial and match on word boundaries.

A quote grounds when it is at least two words and twelve characters long, or is a whole
utterance (a chat message without its speaker, a line, a sentence), and occurs in the
data on word boundaries. The rule is checked on the stored gold conversations: what a
model would copy from them still grounds, scraps of them do not.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from typing import Any

import pytest

from bench.eval_data import DATASETS, load_items, load_locomo
from mcp_profiles.merge import QuoteIndex, merge_extraction, normalize_text
from mcp_profiles.models import Attribute, DataChunk, Extraction, Profile
from tests.eval_fixtures import REAL_DATA
from tests.fakes import MessagesAPI, anthropic_llm
from tests.helpers import text

AT = "2026-11-30T10:00:00Z"
WORK = DataChunk("d_1", "chat history", "User: I work for Acme as a designer.\nAssistant: Nice!")


def merge(profile: Profile, *ops: dict[str, Any], chunks: list[DataChunk] | None = None) -> Any:
    extraction = Extraction.model_validate({"operations": list(ops)})
    return merge_extraction(profile, extraction, chunks or [WORK], at=AT)


def set_op(key: str, value: Any, evidence: str) -> dict[str, Any]:
    return {"op": "set", "key": key, "value": value, "confidence": 0.9, "evidence": evidence}


def test_for_no_longer_grounds_a_role_and_no_remove_either() -> None:
    result = merge(Profile(id="a"), set_op("work.role", "CEO of Acme", "for"))
    assert result.profile.attributes == {} and result.dropped["ungrounded"] == 1
    profile = Profile(id="a", attributes={"work.role": Attribute(value="CEO of Acme", source="extracted")})
    kept = merge(profile, {"op": "remove", "key": "work.role", "evidence": "for"})
    assert "work.role" in kept.profile.attributes and kept.dropped["ungrounded"] == 1
    removed = merge(profile, {"op": "remove", "key": "work.role", "evidence": "I work for Acme"})
    assert removed.profile.attributes == {}


@pytest.mark.parametrize(
    "quote",
    [
        "for",  # one short word
        "Acme",  # one word, not a whole utterance
        "for Acme",  # two words, under twelve characters
        "work for Ac",  # ends inside a word
        "ork for Acme as",  # starts inside a word
        "as a designe",  # ends inside a word
        "Nice",  # "Nice!" is a whole message, but this ground is another chunk's
    ],
)
def test_scraps_and_cut_words_do_not_ground(quote: str) -> None:
    other = DataChunk("d_2", None, "Nice to meet you, I'm the new designer at Acme for real.")
    assert QuoteIndex([other]).find(quote) is None, quote
    if quote != "Nice":
        assert QuoteIndex([WORK, other]).find(quote) is None, quote


@pytest.mark.parametrize(
    ("data", "quote"),
    [
        ("User: I work for Acme as a designer.", "I work for Acme"),  # two words, twelve characters
        ("User: I work for Acme as a designer.", '"work for Acme as a designer."'),  # punctuation at the ends
        ("User: I WORK   for ACME.", "i work for acme"),  # case and whitespace
        ("Assistant: Where do you live?\nUser: Berlin", "Berlin"),  # a whole short message
        ("User 2: Hi! I'm vegan. You?", "I'm vegan."),  # a whole sentence of a message
        ("User 2: Hi! I'm vegan. You?", "I'm vegan"),
        ('{\n  "city": "Berlin",\n  "age": 40\n}', '"Berlin"'),  # a JSON value after its field name
        ("- Name: Bob\n- Likes: tea", "tea"),  # a markdown field
        ("2026-11-01 10:02 opened settings\nlogged out", "logged out"),  # a whole log line
        ("Caroline: I’m a counselor — it’s my calling.", "I'm a counselor - it's my calling"),
    ],
)
def test_substantial_quotes_and_whole_utterances_ground(data: str, quote: str) -> None:
    assert QuoteIndex([DataChunk("d", None, data)]).find(quote) == "d"


def test_an_utterance_is_whole_only_in_its_own_chunk_and_the_hint_goes_first() -> None:
    a = DataChunk("a", None, "User: Berlin\nUser: I moved here in May.")
    b = DataChunk("b", None, "User: I moved here in May.")
    index = QuoteIndex([a, b])
    assert index.find("Berlin") == "a"
    assert index.find("I moved here in May.") == "a" and index.find("I moved here in May", "b") == "b"
    assert QuoteIndex([b]).find("Berlin") is None


# ---- the gold conversations -------------------------------------------------------------

# The eval renders every message as "Speaker: text" on its own line (LoCoMo with a date line first).
_MESSAGE = re.compile(r"^(?:User(?: \d)?|Assistant|[A-Z][\w'-]*): (.*)$")
_CLAUSE = re.compile(r"[,;:.!?]+(?:\s+|$)")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_LIST_MARKER = re.compile(r"^\d{1,3}[.)]$")
_CORE = re.compile(r"\w(?:.*\w)?", re.DOTALL)  # greedy: from the first word character to the last


def _core(text: str) -> str:
    """Normalised, without what is not a letter, digit or ``_`` at either end."""
    match = _CORE.search(normalize_text(text))
    return match.group(0) if match else ""


def _substantial(core: str) -> bool:
    return len(core) >= 12 and len(core.split()) >= 2


def _gold_conversations() -> list[tuple[str, str]]:
    """(dataset, text) of every stored conversation, each once (SPC has one item per speaker)."""
    seen: set[str] = set()
    out = []
    for dataset in DATASETS:
        for item in load_items(REAL_DATA, dataset):
            if item.data.split("\n\n", 1)[-1] not in seen:
                seen.add(item.data.split("\n\n", 1)[-1])
                out.append((dataset, item.data))
    out += [("locomo", session) for conv in load_locomo(REAL_DATA) for session in conv.sessions]
    return out


@pytest.mark.slow
@pytest.mark.skipif(not REAL_DATA.is_dir(), reason="../shared/eval-data is not present")
def test_quotes_a_model_copies_from_the_gold_conversations_ground_and_scraps_do_not() -> None:
    """Every message, sentence, clause (2+ words, 12+ characters) and multi-word span of
    every stored conversation grounds; no single word or short span grounds unless it is
    itself a whole message, line or sentence of that conversation (two words of each
    message, and one short span, drawn with a seeded RNG)."""
    rng = random.Random(9)
    passed: Counter[str] = Counter()
    tried: Counter[str] = Counter()
    misses: dict[str, list[str]] = {}

    def check(kind: str, quote: str, found: bool, want: bool) -> None:
        tried[kind] += 1
        if found == want:
            passed[kind] += 1
        elif len(misses.setdefault(kind, [])) < 5:
            misses[kind].append(quote)

    for _, data in _gold_conversations():
        index = QuoteIndex([DataChunk("d", "chat history", data)])
        messages = [m.group(1) for m in map(_MESSAGE.match, data.splitlines()) if m]
        whole = set()  # the documented utterances: lines, "name: message" without the name, sentences
        for line in data.splitlines():
            name, colon, rest = re.sub(r"^\d{1,3}[.)]\s+", "", line.strip()).partition(": ")
            message = rest if colon and 0 < len(name) <= 40 and ":" not in name else name
            whole |= {_core(line), _core(message), *map(_core, _SENTENCE.split(message))}
        for message in messages:
            if not re.search(r"\w", message):
                continue  # ";)" proves nothing
            check("message", message, index.find(message) == "d", True)
            if not _substantial(_core(message)):
                check("short message", message, index.find(message) == "d", True)
            for i, sentence in enumerate(_SENTENCE.split(message)):
                if re.search(r"\w", sentence) and not (i == 0 and _LIST_MARKER.match(sentence)):
                    check("sentence", sentence, index.find(sentence) == "d", True)
            for clause in _CLAUSE.split(message):
                if _substantial(_core(clause)):
                    check("clause", clause, index.find(clause) == "d", True)
            words = message.split()
            if len(words) >= 4:
                start = rng.randrange(len(words) - 1)
                span = " ".join(words[start : rng.randrange(start + 2, len(words) + 1)])
                if _substantial(_core(span)):
                    check("span", span, index.find(span) == "d", True)
            single = [w for w in re.findall(r"\w+", normalize_text(message)) if w not in whole]
            for word in rng.sample(single, min(2, len(single))):
                check("word", word, index.find(word) is not None, False)
            if len(words) >= 3:
                start = rng.randrange(len(words) - 1)
                pair = " ".join(words[start : start + 2])
                if _core(pair) and not _substantial(_core(pair)) and _core(pair) not in whole:
                    check("short span", pair, index.find(pair) is not None, False)

    figures = ", ".join(f"{kind} {passed[kind]}/{tried[kind]}" for kind in tried)
    print(f"\ngrounding over the gold conversations: {figures}")
    assert passed == tried, misses
    assert tried["message"] > 60_000 and tried["word"] > 100_000, figures


# ---- through the server -------------------------------------------------------------------


async def test_a_one_word_quote_grounds_nothing_through_upsert(connect: Any) -> None:
    api = MessagesAPI()
    chat = "User: I work for Acme.\nAssistant: What do you do there?\nUser: Design, mostly."
    api.enqueue_tool(
        {
            "operations": [
                set_op("work.role", "CEO of Acme", "for"),
                set_op("work.employer", "Acme", "I work for Acme."),
                set_op("work.field", "design", "Design, mostly"),  # a whole short message
            ]
        }
    )
    api.enqueue_tool({"operations": [{"op": "remove", "key": "work.employer", "evidence": "for"}]})
    async with connect(server_kwargs={"llm": anthropic_llm(api)}) as client:
        first = await client.call_tool(
            "upsert_profile_from_data", {"profile": "ann", "data": chat, "input_type": "chat history"}
        )
        assert first.structured_content["dropped"]["ungrounded"] == 1, text(first)
        second = await client.call_tool(
            "upsert_profile_from_data", {"profile": "ann", "data": chat + "\nUser: bye", "input_type": "chat"}
        )
        assert second.structured_content["dropped"]["ungrounded"] == 1, text(second)
        doc = (await client.call_tool("get_profile", {"profile": "ann"})).structured_content
    assert {k: a["value"] for k, a in doc["attributes"].items()} == {
        "work.employer": "Acme",
        "work.field": "design",
    }

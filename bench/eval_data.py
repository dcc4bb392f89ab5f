"""Loaders for the gold sets in ``../shared/eval-data`` (never bundled; the path is an argument).

Each loader reads one dataset's stored files as they are and returns plain frozen
records; ``*_items`` turn them into ``EvalItem``s — what is sent to extraction (``data``,
``input_type``), who the profile is about (``subject``), the gold persona sentences a
profile should entail (``gold``) and everything a fact may legitimately be supported by
(``support``). Used by ``bench/eval.py`` (quality) and ``bench/cost.py`` (tokens).

Mapping (see bench/EVAL.md):

* Synthetic-Persona-Chat: one item per dialogue and speaker. The data is the conversation
  verbatim, headed ``Profile subject: User N``; the profile is also created with that name,
  which is how extraction is told whose profile it is ("the person the current profile
  names"). Gold = that speaker's persona sentences.
* ConvAI2 (``valid_self_original_no_cands``): one item per dialogue, about the *self*
  speaker (the only one with a persona in this file). Rendered ``User 1:`` (partner, who
  speaks first) / ``User 2:`` (self). Gold = the ``your persona:`` lines.
* PrefEval: ``implicit`` (persona-driven) items send the multi-turn ``conversation`` as a
  chat history in which the preference is only implied; ``explicit`` items send the
  preference as the user's first turn, then the question. Gold = ``preference``; the
  ``persona`` line (implicit only) also counts as support for precision.
* LoCoMo (cost only): one profile per conversation, one data item per session, in order.
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "DATASETS",
    "ConvAI2Dialogue",
    "EvalItem",
    "LoCoMoConversation",
    "PrefEvalItem",
    "SPCDialogue",
    "convai2_items",
    "load_convai2",
    "load_items",
    "load_locomo",
    "load_prefeval",
    "load_spc",
    "prefeval_items",
    "sample",
    "spc_items",
]

SPC_FILE = Path("synthetic-persona-chat") / "Synthetic-Persona-Chat_valid.csv"
CONVAI2_FILE = Path("convai2") / "valid_self_original_no_cands.txt"
PREFEVAL_DIR = {
    "explicit": Path("prefeval") / "explicit_preference",
    "implicit": Path("prefeval") / "implicit_preference" / "persona-driven",
}
LOCOMO_FILE = Path("locomo") / "locomo10.json"
DATASETS = ("spc", "convai2", "prefeval", "prefeval-explicit")
CHAT = "chat history"


@dataclass(frozen=True)
class EvalItem:
    """One extraction to score: what is sent, about whom, and what it should yield."""

    dataset: str
    item_id: str
    subject: str
    input_type: str
    data: str
    gold: tuple[str, ...]
    support: str


# ---- Synthetic-Persona-Chat ---------------------------------------------------------------


@dataclass(frozen=True)
class SPCDialogue:
    index: int
    personas: tuple[tuple[str, ...], tuple[str, ...]]
    conversation: str


def _lines(text: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def load_spc(root: Path | str) -> list[SPCDialogue]:
    """Every row of the SPC validation CSV, in file order (``index`` is the 0-based row)."""
    path = Path(root) / SPC_FILE
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    dialogues = []
    for index, row in enumerate(rows):
        try:
            first, second, conversation = (
                row["user 1 personas"],
                row["user 2 personas"],
                row["Best Generated Conversation"],
            )
        except KeyError as e:
            raise ValueError(f"{path}: missing column {e}") from None
        dialogues.append(SPCDialogue(index, (_lines(first), _lines(second)), conversation.strip()))
    return dialogues


def spc_items(dialogues: Sequence[SPCDialogue], speakers: Sequence[int] = (1, 2)) -> list[EvalItem]:
    """One item per dialogue and speaker (1 and/or 2)."""
    items = []
    for d in dialogues:
        for n in speakers:
            subject = f"User {n}"
            items.append(
                EvalItem(
                    dataset="spc",
                    item_id=f"spc-{d.index:04d}-u{n}",
                    subject=subject,
                    input_type=CHAT,
                    data=f"Profile subject: {subject}\n\n{d.conversation}",
                    gold=d.personas[n - 1],
                    support=d.conversation,
                )
            )
    return items


# ---- ConvAI2 ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvAI2Dialogue:
    index: int
    persona: tuple[str, ...]
    exchanges: tuple[tuple[str, str], ...]  # (partner utterance, self utterance)


_FB_LINE = re.compile(r"^(\d+) (.*)$")
_PERSONA = "your persona:"


def load_convai2(root: Path | str) -> list[ConvAI2Dialogue]:
    """Parse the fb-dialog file: numbering restarts at 1 for every dialogue."""
    path = Path(root) / CONVAI2_FILE
    dialogues: list[ConvAI2Dialogue] = []
    persona: list[str] = []
    exchanges: list[tuple[str, str]] = []

    def flush() -> None:
        if persona or exchanges:
            dialogues.append(ConvAI2Dialogue(len(dialogues), tuple(persona), tuple(exchanges)))

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        match = _FB_LINE.match(raw)
        if match is None:
            raise ValueError(f"{path}:{number}: not an fb-dialog line")
        if int(match.group(1)) == 1:
            flush()
            persona, exchanges = [], []
        body = match.group(2)
        if body.startswith(_PERSONA):
            persona.append(body[len(_PERSONA) :].strip())
            continue
        partner, sep, own = body.partition("\t")
        if not sep:
            raise ValueError(f"{path}:{number}: expected 'partner<TAB>self'")
        exchanges.append((partner.strip(), own.split("\t")[0].strip()))
    flush()
    return dialogues


def convai2_items(dialogues: Sequence[ConvAI2Dialogue]) -> list[EvalItem]:
    """One item per dialogue, about the self speaker, rendered as User 1 (partner) / User 2 (self)."""
    items = []
    for d in dialogues:
        lines = []
        for partner, own in d.exchanges:
            if partner and partner != "__SILENCE__":
                lines.append(f"User 1: {partner}")
            lines.append(f"User 2: {own}")
        conversation = "\n".join(lines)
        items.append(
            EvalItem(
                dataset="convai2",
                item_id=f"convai2-{d.index:04d}",
                subject="User 2",
                input_type=CHAT,
                data=f"Profile subject: User 2\n\n{conversation}",
                gold=d.persona,
                support=conversation,
            )
        )
    return items


# ---- PrefEval -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PrefEvalItem:
    kind: Literal["explicit", "implicit"]
    topic: str
    index: int
    preference: str
    question: str
    persona: str | None
    turns: tuple[tuple[str, str], ...]  # (user, assistant), in order


def load_prefeval(root: Path | str, kind: Literal["explicit", "implicit"]) -> list[PrefEvalItem]:
    """All items of every topic file, topics in name order, items in file order."""
    folder = Path(root) / PREFEVAL_DIR[kind]
    files = sorted(folder.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no PrefEval files in {folder}")
    items = []
    for file in files:
        records: Any = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(records, list):
            raise ValueError(f"{file}: expected a JSON list")
        for index, r in enumerate(records):
            conversation = r.get("conversation") or {}
            turns = tuple(
                (str(conversation[k].get("user", "")), str(conversation[k].get("assistant", "")))
                for k in sorted(conversation, key=int)
            )
            items.append(
                PrefEvalItem(
                    kind=kind,
                    topic=file.stem,
                    index=index,
                    preference=str(r["preference"]).strip(),
                    question=str(r.get("question", "")).strip(),
                    persona=r.get("persona"),
                    turns=turns,
                )
            )
    return items


def prefeval_items(records: Sequence[PrefEvalItem]) -> list[EvalItem]:
    """Implicit: the conversation as a chat history. Explicit: the preference, then the question."""
    items = []
    for r in records:
        if r.kind == "implicit":
            lines = []
            for user, assistant in r.turns:
                lines.append(f"User: {user}")
                if assistant:
                    lines.append(f"Assistant: {assistant}")
            data = "\n".join(lines)
        else:
            data = f"User: {r.preference}\nUser: {r.question}"
        items.append(
            EvalItem(
                dataset="prefeval" if r.kind == "implicit" else "prefeval-explicit",
                item_id=f"prefeval-{r.kind}-{r.topic}-{r.index:03d}",
                subject="the user",
                input_type=CHAT,
                data=data,
                gold=(r.preference,),
                support=data if r.persona is None else f"{data}\n\nPersona: {r.persona}",
            )
        )
    return items


# ---- LoCoMo (cost benchmark) ----------------------------------------------------------------


@dataclass(frozen=True)
class LoCoMoConversation:
    sample_id: str
    speakers: tuple[str, str]
    sessions: tuple[str, ...]  # rendered text of each session, in order


def _session_number(key: str) -> int:
    return int(key.split("_")[1])


def load_locomo(root: Path | str) -> list[LoCoMoConversation]:
    """Each conversation's sessions rendered as ``[date]`` then ``Speaker: text`` lines.

    Shared photos appear as ``[shares a photo: caption]``; image URLs are never used.
    """
    path = Path(root) / LOCOMO_FILE
    records: Any = json.loads(path.read_text(encoding="utf-8"))
    conversations: list[LoCoMoConversation] = []
    for record in records:
        conv = record["conversation"]
        keys = sorted(
            (k for k in conv if re.fullmatch(r"session_\d+", k) and conv[k]),
            key=_session_number,
        )
        sessions = []
        for key in keys:
            lines = [f"[{conv.get(key + '_date_time', '')}]"]
            for turn in conv[key]:
                text = str(turn.get("text", "")).strip()
                caption = turn.get("blip_caption")
                if caption:
                    text = f"{text} [shares a photo: {caption}]".strip()
                lines.append(f"{turn['speaker']}: {text}")
            sessions.append("\n".join(lines))
        conversations.append(
            LoCoMoConversation(
                str(record.get("sample_id", len(conversations))),
                (str(conv["speaker_a"]), str(conv["speaker_b"])),
                tuple(sessions),
            )
        )
    return conversations


# ---- choosing items -----------------------------------------------------------------------


def load_items(root: Path | str, dataset: str) -> list[EvalItem]:
    """Every item of one dataset (``spc``, ``convai2``, ``prefeval``, ``prefeval-explicit``)."""
    if dataset == "spc":
        return spc_items(load_spc(root))
    if dataset == "convai2":
        return convai2_items(load_convai2(root))
    if dataset == "prefeval":
        return prefeval_items(load_prefeval(root, "implicit"))
    if dataset == "prefeval-explicit":
        return prefeval_items(load_prefeval(root, "explicit"))
    raise ValueError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")


def sample(items: Sequence[EvalItem], n: int, seed: int = 0) -> list[EvalItem]:
    """``n`` items drawn without replacement with a seeded RNG, kept in dataset order.

    The same (items, n, seed) always gives the same sample, on every machine.
    """
    if n >= len(items):
        return list(items)
    chosen = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in chosen]

"""The gold-set loaders of bench/eval_data.py: formats, mapping to items, seeded sampling."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.eval_data import (
    DATASETS,
    convai2_items,
    load_convai2,
    load_items,
    load_locomo,
    load_prefeval,
    load_spc,
    prefeval_items,
    sample,
    spc_items,
)
from tests.eval_fixtures import REAL_DATA, write_eval_data


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_eval_data(tmp_path / "eval-data")


def test_spc_rows_personas_and_one_item_per_speaker(data: Path) -> None:
    dialogues = load_spc(data)
    assert [d.index for d in dialogues] == [0, 1, 2]
    assert dialogues[0].personas[0] == (
        "I love to bake cookies.",
        "I have two dogs.",
        "Knitting is my passion.",
    )
    assert len(dialogues[0].personas[1]) == 4
    assert dialogues[0].conversation.startswith("User 1: Hi!")
    items = spc_items(dialogues)
    assert [i.item_id for i in items[:2]] == ["spc-0000-u1", "spc-0000-u2"]
    second = items[1]
    assert second.subject == "User 2" and second.input_type == "chat history"
    assert second.gold == dialogues[0].personas[1]
    assert second.data == f"Profile subject: User 2\n\n{dialogues[0].conversation}"
    assert second.support == dialogues[0].conversation


def test_convai2_numbering_restarts_per_dialogue_and_silence_is_skipped(data: Path) -> None:
    dialogues = load_convai2(data)
    assert len(dialogues) == 3
    first, second, _ = dialogues
    assert first.persona == (
        "i read twenty books a year.",
        "i'm a stunt double as my second job.",
        "i only eat kosher.",
    )
    assert len(first.exchanges) == 3
    assert first.exchanges[0] == (
        "hello what are doing today ?",
        "i am good , i just got off work and tired , i have two jobs .",
    )
    items = convai2_items(dialogues)
    assert items[0].subject == "User 2" and items[0].gold == first.persona
    lines = items[1].data.splitlines()
    assert lines[0] == "Profile subject: User 2"
    assert "__SILENCE__" not in items[1].data
    assert lines[2].startswith("User 2: hi , i am just relaxing")  # self speaks first
    assert lines[3] == "User 1: cool . what car is it ?"
    assert second.persona == ("i have two dogs.", "i like to work on vintage cars.")


def test_convai2_rejects_a_malformed_line(tmp_path: Path) -> None:
    path = tmp_path / "convai2" / "valid_self_original_no_cands.txt"
    path.parent.mkdir(parents=True)
    path.write_text("1 your persona: i like tea.\n2 no tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r":2: expected 'partner<TAB>self'"):
        load_convai2(tmp_path)


def test_prefeval_explicit_and_implicit(data: Path) -> None:
    explicit = load_prefeval(data, "explicit")
    assert [(r.topic, r.index) for r in explicit] == [
        ("lifestyle_dietary", 0),
        ("travel_hotel", 0),
        ("travel_hotel", 1),
    ]
    [e] = prefeval_items(explicit[:1])
    assert e.dataset == "prefeval-explicit" and e.gold == (
        "I don't eat any seafood, including fish and shellfish.",
    )
    assert (
        e.data
        == "User: I don't eat any seafood, including fish and shellfish.\nUser: What are some must-try dishes in Lisbon?"
    )
    implicit = load_prefeval(data, "implicit")
    assert [r.topic for r in implicit] == ["pet_ownership", "travel_hotel"]
    hotel = implicit[1]
    assert hotel.persona == "A police officer specializing in community outreach programs"
    assert len(hotel.turns) == 3
    item = prefeval_items([hotel])[0]
    assert item.dataset == "prefeval" and item.subject == "the user"
    assert item.data.splitlines()[0].startswith("User: Hi there! I'm planning")
    assert item.data.splitlines()[1].startswith("Assistant: Hello!")
    assert item.support.endswith("Persona: A police officer specializing in community outreach programs")


def test_locomo_sessions_in_order_with_captions_and_no_urls(data: Path) -> None:
    [conv] = load_locomo(data)
    assert conv.sample_id == "conv-test" and conv.speakers == ("Caroline", "Melanie")
    assert len(conv.sessions) == 3  # the empty session_4 is skipped
    first = conv.sessions[0].splitlines()
    assert first[0] == "[1:56 pm on 8 May, 2023]"
    assert first[1] == "Caroline: Hey Mel! I went to a support group yesterday."
    assert (
        first[3]
        == "Caroline: Here is the painting I made. [shares a photo: a painting of a sunset over a lake]"
    )
    assert "http" not in "".join(conv.sessions)


def test_load_items_names_every_dataset(data: Path) -> None:
    counts = {name: len(load_items(data, name)) for name in DATASETS}
    assert counts == {"spc": 6, "convai2": 3, "prefeval": 2, "prefeval-explicit": 3}
    with pytest.raises(ValueError, match="unknown dataset"):
        load_items(data, "squad")


def test_sampling_is_seeded_deterministic_and_keeps_order(data: Path) -> None:
    items = load_items(data, "spc")
    a, b = sample(items, 3, seed=7), sample(items, 3, seed=7)
    assert a == b and len(a) == 3
    assert [items.index(i) for i in a] == sorted(items.index(i) for i in a)
    assert {i.item_id for i in sample(items, 3, seed=1)} != {i.item_id for i in a} or len(items) == 3
    assert sample(items, 99) == items


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason="../shared/eval-data is not present")
def test_the_stored_gold_sets_parse_completely() -> None:
    spc = load_spc(REAL_DATA)
    assert len(spc) == 1000 and all(len(d.personas[0]) >= 3 and d.conversation for d in spc)
    convai2 = load_convai2(REAL_DATA)
    assert len(convai2) == 1000 and sum(len(d.exchanges) for d in convai2) == 7801
    assert all(d.persona for d in convai2)
    assert len(load_prefeval(REAL_DATA, "explicit")) == 1000
    implicit = load_prefeval(REAL_DATA, "implicit")
    assert len(implicit) == 1000 and all(r.turns and r.persona for r in implicit)
    locomo = load_locomo(REAL_DATA)
    assert [len(c.sessions) for c in locomo] == [19, 19, 32, 29, 29, 28, 31, 30, 25, 30]
    # the documented sampling is stable across machines
    assert [i.item_id for i in sample(load_items(REAL_DATA, "spc"), 3, seed=0)] == [
        "spc-0394-u1",
        "spc-0776-u1",
        "spc-0864-u2",
    ]

"""A miniature ``eval-data`` folder in the stored datasets' own formats, for the bench tests.

The real gold sets live outside the repository (``../shared/eval-data``) and are never
bundled, so tests build this one in a temporary folder: the same file names, columns and
line formats, a few items each.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

# ``../shared/eval-data`` beside the repository; a git worktree one level deeper finds it too.
REAL_DATA = next(
    (
        p / "shared" / "eval-data"
        for p in Path(__file__).resolve().parents
        if (p / "shared" / "eval-data").is_dir()
    ),
    Path(__file__).resolve().parent.parent.parent / "shared" / "eval-data",
)

SPC_ROWS = [
    (
        "I love to bake cookies.\nI have two dogs.\nKnitting is my passion.",
        "I am a nurse.\nI live in Ohio.\nI run marathons.\nMy favorite color is green.",
        "User 1: Hi! How is your day going so far?\n"
        "User 2: Great, I just finished a long night shift at the hospital.\n"
        "User 1: Oh wow, I spent my morning baking cookies with my two dogs watching.\n"
        "User 2: That sounds lovely, I am training for my next marathon in Ohio.\n"
        "User 1: Good luck! I will be knitting a scarf for the winter.",
    ),
    (
        "I am a teacher.\nI like jazz music.",
        "I have three cats.\nI work as a chef in a busy restaurant.\nI hate winter.",
        "User 1: Hello there, what do you do for a living these days?\n"
        "User 2: I cook in a busy restaurant downtown, it is hectic but fun.\n"
        "User 1: I teach fourth grade and listen to jazz after work every evening.\n"
        "User 2: My three cats would love jazz, they sleep all day anyway.\n"
        "User 1: Cats are the best, stay warm this winter.",
    ),
    (
        "I play the violin.\nI grew up on a farm.\nI am vegan.",
        "I drive a red truck.\nI love fishing.",
        "User 1: Hey, nice to meet you, I just got back from violin practice.\n"
        "User 2: Nice to meet you too, I was out fishing at the lake all morning.\n"
        "User 1: I grew up on a farm so I love being outdoors as well.\n"
        "User 2: I drive my old red truck up to the lake every weekend.\n"
        "User 1: Sounds relaxing, I should join you some time.",
    ),
]

CONVAI2_LINES = [
    "1 your persona: i read twenty books a year.",
    "2 your persona: i'm a stunt double as my second job.",
    "3 your persona: i only eat kosher.",
    "4 hello what are doing today ?\ti am good , i just got off work and tired , i have two jobs .",
    "5 i just got done watching a horror movie\ti rather read , i've read about 20 books this year .",
    "6 do you work in movies ?\tyes , i work in the movies as a stunt double , it is hard work .",
    "1 your persona: i have two dogs.",
    "2 your persona: i like to work on vintage cars.",
    "3 __SILENCE__\thi , i am just relaxing with my two dogs after fixing up my vintage car .",
    "4 cool . what car is it ?\ti have two older mustangs , i love working on them every weekend .",
    "1 your persona: i love disneyland.",
    "2 your persona: i'm a baby delivery nurse.",
    "3 your persona: i walk three miles every day.",
    "4 hello , how are you doing ?\ti am great , just back from my three mile walk before my shift .",
    "5 what is your job ?\ti am a nurse , i help deliver babies at the hospital downtown .",
]

PREFEVAL_EXPLICIT: dict[str, list[dict[str, Any]]] = {
    "travel_hotel": [
        {
            "preference": "I avoid hotels with a bustling nightlife atmosphere.",
            "question": "Can you suggest some great hotels for my upcoming trip to Las Vegas?",
            "explanation": "Vegas is loud.",
        },
        {
            "preference": "I prefer hotels with a gym that opens early in the morning.",
            "question": "Which hotels in Chicago would you recommend for a work trip?",
            "explanation": "Early gym.",
        },
    ],
    "lifestyle_dietary": [
        {
            "preference": "I don't eat any seafood, including fish and shellfish.",
            "question": "What are some must-try dishes in Lisbon?",
            "explanation": "Lisbon is famous for seafood.",
        }
    ],
}

PREFEVAL_IMPLICIT: dict[str, list[dict[str, Any]]] = {
    "travel_hotel": [
        {
            "preference": "I absolutely avoid hotels with a bustling nightlife atmosphere.",
            "question": "Can you suggest some great hotels for my upcoming trip to Las Vegas?",
            "explanation": "Vegas is loud.",
            "persona": "A police officer specializing in community outreach programs",
            "conversation": {
                "0": {
                    "user": "Hi there! I'm planning a community outreach event for our police department next month.",
                    "assistant": "Hello! A sports day with officers and local kids works well.",
                },
                "1": {
                    "user": "Great idea. I usually prefer quieter hotels away from the city center, as I absolutely avoid hotels with a bustling nightlife atmosphere.",
                    "assistant": "Conference centers on the outskirts of town are quiet.",
                },
                "2": {
                    "user": "Thanks, I will look into the conference centers outside the city.",
                    "assistant": "You're welcome!",
                },
            },
        }
    ],
    "pet_ownership": [
        {
            "preference": "I'm allergic to cats, so I can only consider hypoallergenic pets.",
            "question": "What pet should I get for my small apartment?",
            "explanation": "Cats are out.",
            "persona": "A graduate student in marine biology",
            "conversation": {
                "0": {
                    "user": "I study coral reefs for my PhD and spend most weekends diving near the coast.",
                    "assistant": "That sounds fascinating!",
                },
                "1": {
                    "user": "My friend has a cat and I sneeze the whole time I visit, so hypoallergenic pets only for me.",
                    "assistant": "Good to know; many dog breeds are low-allergen.",
                },
            },
        }
    ],
}

LOCOMO: list[dict[str, Any]] = [
    {
        "sample_id": "conv-test",
        "conversation": {
            "speaker_a": "Caroline",
            "speaker_b": "Melanie",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                {
                    "speaker": "Caroline",
                    "dia_id": "D1:1",
                    "text": "Hey Mel! I went to a support group yesterday.",
                },
                {
                    "speaker": "Melanie",
                    "dia_id": "D1:2",
                    "text": "That's great! I'm swamped with the kids and work.",
                },
                {
                    "speaker": "Caroline",
                    "dia_id": "D1:3",
                    "text": "Here is the painting I made.",
                    "img_url": ["https://example.invalid/never-fetched.jpg"],
                    "blip_caption": "a painting of a sunset over a lake",
                },
            ],
            "session_2_date_time": "10:37 am on 27 June, 2023",
            "session_2": [
                {
                    "speaker": "Melanie",
                    "dia_id": "D2:1",
                    "text": "We went camping with the kids last weekend.",
                },
                {"speaker": "Caroline", "dia_id": "D2:2", "text": "I'm looking into counseling as a career."},
            ],
            "session_3_date_time": "7:12 pm on 3 July, 2023",
            "session_3": [
                {
                    "speaker": "Caroline",
                    "dia_id": "D3:1",
                    "text": "I signed up for a pottery class on Tuesdays.",
                },
                {
                    "speaker": "Melanie",
                    "dia_id": "D3:2",
                    "text": "Pottery is so relaxing, I took one last year.",
                },
            ],
            "session_4_date_time": "",
            "session_4": [],
        },
        "observation": {},
        "qa": [],
        "event_summary": {},
        "session_summary": {},
    }
]


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1), encoding="utf-8")


def write_eval_data(root: Path) -> Path:
    """Write the miniature folder under ``root`` and return it."""
    spc = root / "synthetic-persona-chat" / "Synthetic-Persona-Chat_valid.csv"
    spc.parent.mkdir(parents=True, exist_ok=True)
    with spc.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["user 1 personas", "user 2 personas", "Best Generated Conversation"])
        writer.writerows(SPC_ROWS)
    convai2 = root / "convai2" / "valid_self_original_no_cands.txt"
    convai2.parent.mkdir(parents=True, exist_ok=True)
    convai2.write_text("\n".join(CONVAI2_LINES) + "\n", encoding="utf-8")
    for topic, explicit in PREFEVAL_EXPLICIT.items():
        _write_json(root / "prefeval" / "explicit_preference" / f"{topic}.json", explicit)
    for topic, implicit in PREFEVAL_IMPLICIT.items():
        _write_json(root / "prefeval" / "implicit_preference" / "persona-driven" / f"{topic}.json", implicit)
    _write_json(root / "locomo" / "locomo10.json", LOCOMO)
    return root

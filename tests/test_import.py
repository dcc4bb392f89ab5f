"""``mcp-profiles import`` checks every line and every nested field before it writes, and
writes all or nothing: ``invalid: FILE line N: field: …`` with exit code 2, never a traceback.

Each case starts from a real export (a user with two versions and a data item, an assistant)
and breaks one thing in it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mcp_profiles.cli import main
from mcp_profiles.config import Config
from tests.conftest import ASSISTANT_BODY
from tests.helpers import table_counts

Record = dict[str, Any]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.fixture
def export(capsys: pytest.CaptureFixture[str], config: Config, tmp_path: Path) -> list[Record]:
    """An export of: alice (user, versions 1-3, one data item), and an assistant (version 1)."""
    assert run(capsys, "update", "alice", "--create", "--patch", '{"name": "Alice", "alias": "al"}')[0] == 0
    assert run(capsys, "update", "alice", "--patch", '{"attributes": {"work.role": "eng"}}')[0] == 0
    notes = tmp_path / "notes.txt"
    notes.write_text("User: I teach maths in Lyon.\n")
    assert run(capsys, "ingest", "alice", str(notes), "--no-wait")[0] == 0
    assert (
        run(capsys, "update", "alice", "--patch", '{"alias": "ally"}')[0] == 0
    )  # a rename: history keeps "al"
    assert run(capsys, "connection", "add", "anthropic-main", "--provider", "anthropic")[0] == 0
    body = json.dumps(ASSISTANT_BODY)
    assert run(capsys, "update", "asst", "--create", "--kind", "assistant", "--patch", body)[0] == 0
    dump = tmp_path / "dump.jsonl"
    assert run(capsys, "export", "-o", str(dump))[0] == 0
    records = [json.loads(line) for line in dump.read_text().splitlines()]
    assert [r["profile"]["id"] for r in records] == ["alice", "asst"]
    assert [r["version"] for r in records[0]["revisions"]] == [1, 2, 3] and len(records[0]["data_items"]) == 1
    return records


@pytest.fixture
def fresh(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A database holding only the connection the assistant needs."""
    db = tmp_path / "fresh.sqlite3"
    assert main(["connection", "add", "anthropic-main", "--provider", "anthropic", "--db", str(db)]) == 0
    capsys.readouterr()
    return db


def write(tmp_path: Path, records: list[Record], name: str = "in.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    return path


def refused(capsys: Any, path: Path, fresh: Path, line: int, message: str, code: int = 2) -> None:
    """The import fails with ``message`` on ``line``, and nothing at all was written."""
    before = table_counts(str(fresh))
    got, err = run(capsys, "import", str(path), "--db", str(fresh))
    prefix = "invalid" if code == 2 else "conflict"
    assert (got, err.splitlines()[0]) == (code, f"mcp-profiles: {prefix}: {path} line {line}: {message}")
    assert "Traceback" not in err
    assert table_counts(str(fresh)) == before


def broken(export: list[Record], change: Callable[[Record], Any], line: int = 1) -> list[Record]:
    records = copy.deepcopy(export)
    change(records[line - 1])
    return records


def test_a_valid_export_imports_whole(capsys: Any, export: list[Record], fresh: Path, tmp_path: Path) -> None:
    code, err = run(capsys, "import", str(write(tmp_path, export)), "--db", str(fresh))
    assert (code, err) == (0, "imported 2 profile(s)\n")
    again = tmp_path / "again.jsonl"
    assert run(capsys, "export", "-o", str(again), "--db", str(fresh))[0] == 0
    assert [json.loads(line) for line in again.read_text().splitlines()] == export


def test_duplicate_revision_versions(capsys: Any, export: list[Record], fresh: Path, tmp_path: Path) -> None:
    def change(r: Record) -> None:
        r["revisions"][2]["version"] = 2

    refused(
        capsys,
        write(tmp_path, broken(export, change)),
        fresh,
        1,
        "revisions[2].version: 2 repeats an earlier version; versions must rise by one, ending at the "
        "document's version 3",
    )


def test_gapped_revision_versions(capsys: Any, export: list[Record], fresh: Path, tmp_path: Path) -> None:
    def change(r: Record) -> None:
        del r["revisions"][1]

    refused(
        capsys,
        write(tmp_path, broken(export, change)),
        fresh,
        1,
        "revisions[1].version: 3 skips to it from 1; "
        "versions must rise by one, ending at the document's version 3",
    )


def test_history_that_stops_short_of_the_document(
    capsys: Any, export: list[Record], fresh: Path, tmp_path: Path
) -> None:
    def change(r: Record) -> None:
        del r["revisions"][2]

    refused(
        capsys,
        write(tmp_path, broken(export, change)),
        fresh,
        1,
        "revisions[1].version: the history ends at 2, but the document is at version 3",
    )


def test_history_without_its_first_versions_is_accepted_as_pruned(
    capsys: Any, export: list[Record], fresh: Path, tmp_path: Path
) -> None:
    def change(r: Record) -> None:
        del r["revisions"][0]

    code, err = run(capsys, "import", str(write(tmp_path, broken(export, change))), "--db", str(fresh))
    assert (code, err) == (0, "imported 2 profile(s)\n")


def test_no_history_at_all(capsys: Any, export: list[Record], fresh: Path, tmp_path: Path) -> None:
    def change(r: Record) -> None:
        r["revisions"] = []

    refused(
        capsys,
        write(tmp_path, broken(export, change)),
        fresh,
        1,
        "revisions: empty; a profile at version 3 needs its history",
    )


def test_a_revision_that_is_not_an_object(
    capsys: Any, export: list[Record], fresh: Path, tmp_path: Path
) -> None:
    def change(r: Record) -> None:
        r["revisions"][0] = [1, "agent"]

    refused(
        capsys,
        write(tmp_path, broken(export, change)),
        fresh,
        1,
        "revisions[0]: Input should be a valid dictionary or instance of ExportedRevision",
    )


def test_a_revision_without_its_snapshot(
    capsys: Any, export: list[Record], fresh: Path, tmp_path: Path
) -> None:
    def change(r: Record) -> None:
        del r["revisions"][1]["snapshot"]

    refused(
        capsys, write(tmp_path, broken(export, change)), fresh, 1, "revisions[1].snapshot: Field required"
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("id", "mallory", "revisions[0].snapshot.id: 'mallory' is not this record's 'alice'"),
        ("kind", "assistant", "revisions[0].snapshot.kind: 'assistant' is not this record's 'user'"),
        ("version", 2, "revisions[0].snapshot.version: 2, but the revision is 1"),
        (
            "connection_id",
            "anthropic-main",
            "revisions[0].snapshot.connection_id: only assistant profiles have model configuration",
        ),
    ],
)
def test_a_snapshot_of_another_profile_or_version(
    capsys: Any, export: list[Record], fresh: Path, tmp_path: Path, field: str, value: Any, message: str
) -> None:
    def change(r: Record) -> None:
        r["revisions"][0]["snapshot"][field] = value

    refused(capsys, write(tmp_path, broken(export, change)), fresh, 1, message)


def test_the_newest_snapshot_must_be_the_document(
    capsys: Any, export: list[Record], fresh: Path, tmp_path: Path
) -> None:
    def change(r: Record) -> None:
        r["revisions"][2]["snapshot"]["name"] = "Someone else"

    refused(
        capsys,
        write(tmp_path, broken(export, change)),
        fresh,
        1,
        "revisions[2].snapshot: the newest version differs from the document",
    )


def test_an_unknown_data_item_status(capsys: Any, export: list[Record], fresh: Path, tmp_path: Path) -> None:
    def change(r: Record) -> None:
        r["data_items"][0]["status"] = "exploded"

    refused(
        capsys,
        write(tmp_path, broken(export, change)),
        fresh,
        1,
        "data_items[0].status: Input should be 'pending', 'processing', 'done' or 'failed'",
    )


def test_a_data_item_whose_hash_is_not_its_content(
    capsys: Any, export: list[Record], fresh: Path, tmp_path: Path
) -> None:
    def change(r: Record) -> None:
        r["data_items"][0]["content"] += "and more"

    refused(
        capsys,
        write(tmp_path, broken(export, change)),
        fresh,
        1,
        "data_items[0].sha256: is not the SHA-256 of its content",
    )


def test_a_number_over_4300_digits(capsys: Any, export: list[Record], fresh: Path, tmp_path: Path) -> None:
    path = write(tmp_path, export)
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace('"metadata": {}', '"metadata": {"n": ' + "9" * 4301 + "}", 1)
    path.write_text("\n".join(lines) + "\n")
    refused(capsys, path, fresh, 2, "a number has more than 4,300 digits")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "1e999"])
def test_numbers_that_are_not_finite(
    capsys: Any, export: list[Record], fresh: Path, tmp_path: Path, constant: str
) -> None:
    path = write(tmp_path, export)
    path.write_text(path.read_text().replace('"metadata": {}', '"metadata": {"n": ' + constant + "}", 1))
    message = (
        "profile.metadata.n: numbers must be finite"
        if constant == "1e999"
        else (f"not JSON ({constant} is not a number JSON knows)")
    )
    refused(capsys, path, fresh, 1, message)


def test_a_file_that_is_not_utf8(capsys: Any, export: list[Record], fresh: Path, tmp_path: Path) -> None:
    path = write(tmp_path, export)
    path.write_bytes(path.read_bytes().replace(b"Alice", b"Al\xe9ce", 1))
    refused(capsys, path, fresh, 1, "not UTF-8 (byte 73 of the line is 0xe9)")


def test_a_lone_surrogate(capsys: Any, export: list[Record], fresh: Path, tmp_path: Path) -> None:
    path = write(tmp_path, export)
    path.write_text(path.read_text().replace("Alice", "Al\\ud800ce", 1))
    refused(capsys, path, fresh, 1, "profile.name: a lone surrogate is not text")


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("version", "3", "profile.version: Input should be a valid integer"),
        ("version", True, "profile.version: Input should be a valid integer"),
        (
            "version",
            2**63,
            f"profile.version: must be a whole number from 1 to {2**53}",
        ),
        ("kind", "robot", "profile.kind: Input should be 'user' or 'assistant'"),
        (
            "created_at",
            "yesterday",
            "profile.created_at: must be an ISO 8601 time such as 2026-11-30T12:00:00Z",
        ),
        (
            "model",
            {"provider_id": "x", "model_id": "y"},
            "profile.model: only assistant profiles have model configuration",
        ),
        ("unexpected", 1, "profile.unexpected: Extra inputs are not permitted"),
    ],
)
def test_a_document_that_breaks_a_rule(
    capsys: Any, export: list[Record], fresh: Path, tmp_path: Path, where: str, value: Any, message: str
) -> None:
    def change(r: Record) -> None:
        r["profile"][where] = value

    refused(capsys, write(tmp_path, broken(export, change)), fresh, 1, message)


def test_an_assistant_missing_what_the_kind_rules_require(
    capsys: Any, export: list[Record], fresh: Path, tmp_path: Path
) -> None:
    def change(r: Record) -> None:
        del r["profile"]["connection_id"]

    refused(
        capsys,
        write(tmp_path, broken(export, change, line=2)),
        fresh,
        2,
        "profile.connection_id: required for an assistant profile (missing: connection_id)",
    )


def test_a_record_that_is_not_an_object(
    capsys: Any, export: list[Record], fresh: Path, tmp_path: Path
) -> None:
    path = write(tmp_path, export)
    path.write_text(path.read_text() + "[1, 2]\n")
    refused(capsys, path, fresh, 3, "expected a JSON object with profile, revisions and data_items")


def test_the_same_profile_twice_in_one_file(
    capsys: Any, export: list[Record], fresh: Path, tmp_path: Path
) -> None:
    refused(capsys, write(tmp_path, [*export, export[0]]), fresh, 3, "profile 'alice' is also on line 1")


def test_one_bad_record_imports_nothing(
    capsys: Any, export: list[Record], fresh: Path, tmp_path: Path
) -> None:
    """Two good records, then a broken one: not even the good ones are written."""
    bad = copy.deepcopy(export[0])
    bad["profile"]["id"] = "bob"
    refused(
        capsys,
        write(tmp_path, [*export, bad]),
        fresh,
        3,
        "revisions[0].snapshot.id: 'alice' is not this record's 'bob'",
    )


def test_a_conflict_in_the_database_imports_nothing(
    capsys: Any, export: list[Record], fresh: Path, tmp_path: Path
) -> None:
    """The first record is valid and new; the second exists already: the first is rolled back."""
    assert main(["update", "asst", "--create", "--patch", "{}", "--db", str(fresh)]) == 0
    capsys.readouterr()
    refused(
        capsys,
        write(tmp_path, export),
        fresh,
        2,
        "profile 'asst' already exists; delete it first to import over it",
        code=1,
    )


def test_values_with_line_separators_round_trip(
    capsys: Any, export: list[Record], fresh: Path, tmp_path: Path
) -> None:
    """Exports keep U+2028 and U+2029 as they are (ensure_ascii=False); only '\\n' ends a record."""
    assert main(["update", "alice", "--patch", '{"summary": "one\\u2028two\\u2029three\\u0085four"}']) == 0
    dump = tmp_path / "seps.jsonl"
    assert main(["export", "alice", "-o", str(dump)]) == 0
    capsys.readouterr()
    assert "\u2028" in dump.read_text()
    code, err = run(capsys, "import", str(dump), "--db", str(fresh))
    assert (code, err) == (0, "imported 1 profile(s)\n")

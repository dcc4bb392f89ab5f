"""Settings from the environment: bearer tokens in MCP_PROFILES_TOKENS and tokens files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mcp_profiles.cli import main
from mcp_profiles.config import Config, parse_tokens
from mcp_profiles.errors import Invalid

B64 = "c2VjcmV0LXRva2VuLWZvci10ZWFtLWE="  # base64 ends in '='


def tokens(value: str) -> dict[str, str]:
    return dict(Config.from_env({"MCP_PROFILES_TOKENS": value}).tokens)


def test_a_pair_splits_on_its_last_equals_sign_so_base64_tokens_work() -> None:
    assert tokens(f"{B64}=team-a, {B64[:-1]}b==team-b") == {B64: "team-a", f"{B64[:-1]}b=": "team-b"}


def test_a_token_beginning_with_a_hash_is_a_token_not_a_comment() -> None:
    assert tokens("#long-random-token-1234=team-a,") == {"#long-random-token-1234": "team-a"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("=team-a", "pair 1: the token is empty"),
        ("long-random-token-1234=team-a, =team-b", "pair 2: the token is empty"),
        ("short=team-a", "pair 1: the token has 5 characters; use at least 16"),
        ("fifteen-chars-x=team-a", "the token has 15 characters"),
        ("long-random-token-1234", "pair 1: expected 'TOKEN=NAMESPACE'"),
        ("long-random-token-1234=", "pair 1: expected 'TOKEN=NAMESPACE'"),
        ("long-random-token-1234=a,long-random-token-1234=b", "pair 2: token given twice"),
    ],
)
def test_empty_short_and_malformed_tokens_are_refused_without_echoing_them(value: str, message: str) -> None:
    with pytest.raises(Invalid, match=message) as raised:
        tokens(value)
    assert "short=" not in str(raised.value) and "fifteen" not in str(raised.value)


def test_sixteen_characters_is_enough() -> None:
    assert tokens("sixteen-chars-xy=team-a") == {"sixteen-chars-xy": "team-a"}


def test_a_tokens_file_refuses_short_tokens_and_keeps_its_comments() -> None:
    assert parse_tokens("# a comment\nlong-random-token-1234 team-a\n") == {
        "long-random-token-1234": "team-a"
    }
    with pytest.raises(Invalid, match="tokens line 2: the token has 5 characters"):
        parse_tokens("# a comment\nshort team-a\n")


def test_serve_with_a_short_token_exits_with_the_reason(
    capsys: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MCP_PROFILES_TOKENS", "tok=team-a")
    code = main(["serve", "--transport", "http"])
    err = capsys.readouterr().err
    assert code == 1 and "invalid: MCP_PROFILES_TOKENS pair 1: the token has 3 characters" in err
    assert not (tmp_path / "profiles.sqlite3").exists()


def test_a_host_identity_names_the_owner_of_claims_and_cannot_hold_a_colon() -> None:
    from mcp_profiles.jobs import host_identity

    assert Config.from_env({"MCP_PROFILES_HOST_ID": "rack-2.node-7"}).host_id == "rack-2.node-7"
    assert host_identity("rack-2.node-7") == "rack-2.node-7"
    derived = host_identity()
    assert derived and ":" not in derived and derived == host_identity()  # stable within a process
    with pytest.raises(Invalid, match="MCP_PROFILES_HOST_ID"):
        Config.from_env({"MCP_PROFILES_HOST_ID": "node:7"})

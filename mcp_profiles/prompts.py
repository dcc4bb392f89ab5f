"""The static extraction instructions, read from ``prompts/`` and rendered once.

The system prompt is the cacheable prefix of every extraction request, so it must be the
same bytes on every call: the Markdown instructions with the few-shot examples rendered
into ``$examples``, nothing time- or profile-dependent, cached per (kind, folder, minimum).

Examples marked ``"extended": true`` teach harder cases (corrections, negations, third
parties, implied preferences, personas). They are added, in file order, until the prefix
(tool-use overhead, tool schema, system prompt) reaches the model's minimum cacheable
length, counted low so that the real tokenizer agrees: on a model with a 4,096-token
minimum a prefix that falls short is billed in full on every call, so the examples are
nearly free there (cache reads bill at 0.1x), while on a 1,024-token model each would add
to every call for a prefix that is cached anyway.

The folder is found, in order: the directory the deployment names; the package's own
``prompts`` (an installed wheel, where pyproject force-includes it); ``<repo>/prompts`` (a
checkout). Examples are validated against the operation schema when loaded, so a custom
folder with a broken example fails at start-up, not in the middle of extraction.
"""

from __future__ import annotations

import json
import string
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .cache_limits import cache_minimum, low_token_count, min_cacheable_tokens
from .extract import (
    TOOL_DESCRIPTION,
    TOOL_NAME,
    TOOL_USE_OVERHEAD,
    catalogue_block,
    extraction_schema,
    render_data_block,
)
from .models import DataChunk, Extraction, Kind

__all__ = ["find_prompts_dir", "load_prompt", "prompt_cache_report", "render_examples"]

_KINDS = ("user", "assistant")


def find_prompts_dir(prompts_dir: Path | str | None = None) -> Traversable:
    """The folder holding the prompt files.

    Raises:
        FileNotFoundError: the named folder, or any default one, does not exist.
    """
    if prompts_dir is not None:
        folder = Path(prompts_dir).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"prompts directory {str(folder)!r} does not exist")
        return folder
    packaged = resources.files("mcp_profiles") / "prompts"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent / "prompts"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(
        "no prompts directory: neither mcp_profiles/prompts (installed) nor <repo>/prompts (checkout) "
        "exists; reinstall the package or set the prompts directory setting"
    )


def _read(folder: Traversable, name: str) -> str:
    file = folder / name
    if not file.is_file():
        raise FileNotFoundError(f"prompt file {name!r} is missing from {str(folder)!r}")
    return file.read_text(encoding="utf-8")


def render_examples(examples: list[dict[str, Any]], source: str = "examples") -> str:
    """Few-shot examples as the model will see real requests: context, data block, answer.

    Raises:
        ValueError: an example is malformed or its answer does not match the schema.
    """
    parts = []
    for number, example in enumerate(examples, 1):
        try:
            chunk = DataChunk(f"ex{number}", example.get("input_type"), example["data"])
            answer = Extraction.model_validate(example["answer"])
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"{source}: example {number} needs 'data' and 'answer' ({e!r})") from None
        except ValidationError as e:
            raise ValueError(f"{source}: example {number} answer does not match the schema: {e}") from None
        lines = [f"<example>\n{example.get('title', f'Example {number}')}"]
        if example.get("context"):
            lines.append(f"Current profile:\n{example['context']}")
        lines.append(render_data_block(chunk))
        answer_json = json.dumps(answer.model_dump(mode="json", exclude_none=True), ensure_ascii=False)
        lines.append(f"Tool input:\n{answer_json}\n</example>")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def load_prompt(kind: Kind, prompts_dir: Path | str | None = None, min_prefix_tokens: int = 0) -> str:
    """The system prompt for extracting a ``kind`` profile (same bytes on every call).

    ``min_prefix_tokens``: the model's minimum cacheable length; extended examples are added
    until the request prefix reaches it (0: core examples only).

    Raises:
        FileNotFoundError: the folder or one of its files is missing.
        ValueError: the examples are malformed or the template names an unknown ``$var``.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(_KINDS)}, got {kind!r}")
    return _load(kind, None if prompts_dir is None else Path(prompts_dir), max(0, min_prefix_tokens))


def _fixed_prefix_tokens(kind: Kind) -> int:
    """The cached prefix outside the instructions: tool-use overhead, the tool, and the topic
    catalogue at its smallest (no topics; a deployment's topics only lengthen it)."""
    tool = {"name": TOOL_NAME, "description": TOOL_DESCRIPTION, "input_schema": extraction_schema()}
    catalogue = catalogue_block(kind, (), allow_sensitive=False)
    return TOOL_USE_OVERHEAD + low_token_count(json.dumps(tool, ensure_ascii=False) + catalogue)


@lru_cache(maxsize=16)
def _load(kind: Kind, prompts_dir: Path | None, min_prefix_tokens: int) -> str:
    folder = find_prompts_dir(prompts_dir)
    template = _read(folder, f"extract_{kind}.md")
    examples_name = f"examples_{kind}.json"
    try:
        examples = json.loads(_read(folder, examples_name))
    except json.JSONDecodeError as e:
        raise ValueError(f"{examples_name}: not valid JSON ({e})") from None
    if not isinstance(examples, list):
        raise ValueError(f"{examples_name}: must be a JSON list of examples")
    core = [e for e in examples if not (isinstance(e, dict) and e.get("extended"))]
    extended = [e for e in examples if isinstance(e, dict) and e.get("extended")]
    render_examples(examples, examples_name)  # every example is checked, used or not
    if examples[: len(core)] != core:
        raise ValueError(f"{examples_name}: extended examples must come after the others")
    chosen = core
    while True:
        rendered = render_examples(chosen, examples_name)
        try:
            prompt = string.Template(template).substitute(examples=rendered)
        except (KeyError, ValueError) as e:
            raise ValueError(f"extract_{kind}.md: bad template placeholder ({e})") from None
        if (
            len(chosen) == len(examples)
            or _fixed_prefix_tokens(kind) + low_token_count(prompt) >= min_prefix_tokens
        ):
            return prompt
        chosen = [*chosen, extended[len(chosen) - len(core)]]


def prompt_cache_report(
    model: str,
    override: int,
    catalogues: dict[Kind, tuple[str, ...]],
    allow_sensitive: bool,
    prompts_dir: Path | str | None = None,
) -> dict[str, Any]:
    """Whether the extraction prefix can be cached on ``model``, for ``mcp-profiles stats``.

    With the cache tokens that calls recorded, a person can tell whether caching works: a
    prefix that reaches the minimum but shows no cache reads points at the model's real
    minimum being higher than the table's (set ``MCP_PROFILES_CACHE_MIN_TOKENS``).
    """
    minimum, published = min_cacheable_tokens(model)
    target = cache_minimum(model, override)
    prefix: dict[str, int] = {}
    for kind, catalogue in catalogues.items():
        system = load_prompt(kind, prompts_dir, target)
        tool = {"name": TOOL_NAME, "description": TOOL_DESCRIPTION, "input_schema": extraction_schema()}
        text = (
            json.dumps(tool, ensure_ascii=False)
            + system
            + "\n\n"
            + catalogue_block(kind, catalogue, allow_sensitive)
        )
        prefix[kind] = TOOL_USE_OVERHEAD + low_token_count(text)
    return {
        "model": model,
        "min_cacheable_tokens": target,
        "minimum_source": "configured" if override > 0 else ("published" if published else "assumed"),
        "table_minimum": minimum,
        "prefix_tokens": prefix,
        "cacheable": all(n >= target for n in prefix.values()),
    }

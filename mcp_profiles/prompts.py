"""The static extraction instructions, read from ``prompts/`` and rendered once.

The system prompt is the cacheable prefix of every extraction request, so it must be the
same bytes on every call: the Markdown instructions with the few-shot examples rendered
into ``$examples``, nothing time- or profile-dependent, cached per (kind, folder).

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

from .extract import render_data_block
from .models import DataChunk, Extraction, Kind

__all__ = ["find_prompts_dir", "load_prompt", "render_examples"]

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


def load_prompt(kind: Kind, prompts_dir: Path | str | None = None) -> str:
    """The system prompt for extracting a ``kind`` profile (same bytes on every call).

    Raises:
        FileNotFoundError: the folder or one of its files is missing.
        ValueError: the examples are malformed or the template names an unknown ``$var``.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(_KINDS)}, got {kind!r}")
    return _load(kind, None if prompts_dir is None else Path(prompts_dir))


@lru_cache(maxsize=8)
def _load(kind: Kind, prompts_dir: Path | None) -> str:
    folder = find_prompts_dir(prompts_dir)
    template = _read(folder, f"extract_{kind}.md")
    examples_name = f"examples_{kind}.json"
    try:
        examples = json.loads(_read(folder, examples_name))
    except json.JSONDecodeError as e:
        raise ValueError(f"{examples_name}: not valid JSON ({e})") from None
    if not isinstance(examples, list):
        raise ValueError(f"{examples_name}: must be a JSON list of examples")
    rendered = render_examples(examples, examples_name)
    try:
        return string.Template(template).substitute(examples=rendered)
    except (KeyError, ValueError) as e:
        raise ValueError(f"extract_{kind}.md: bad template placeholder ({e})") from None

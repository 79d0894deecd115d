"""Write edited sections (Resources, Environment) back into a project's backend config file.

Only the sections the user edited change: in a YAML file every other line —
comments, other keys, their order — is kept as written; the edited top-level
blocks are replaced in place (comments inside them are not kept). The result is
validated as a whole before anything is written.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import Problem, UserInputError
from . import config as config_mod
from . import config_discovery, paths

EDITABLE_SECTIONS = ("Resources", "Environment")

_TOP_KEY_RE = re.compile(r"^(?P<key>[A-Za-z_][\w-]*)\s*:")


def _block_spans(lines: list[str]) -> dict[str, tuple[int, int]]:
    """Top-level key → (first line, end line) of its block, comments before the next key
    excluded."""
    starts: list[tuple[str, int]] = []
    for i, line in enumerate(lines):
        match = _TOP_KEY_RE.match(line)
        if match:
            starts.append((match.group("key"), i))
    spans: dict[str, tuple[int, int]] = {}
    for n, (key, start) in enumerate(starts):
        end = starts[n + 1][1] if n + 1 < len(starts) else len(lines)
        # Trailing blank lines and column-0 comments belong to what follows.
        while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
            end -= 1
        spans[key] = (start, end)
    return spans


def _dump_section(key: str, value: dict[str, Any]) -> list[str]:
    text = yaml.safe_dump({key: value}, sort_keys=False, default_flow_style=False,
                          allow_unicode=True)
    return text.splitlines(keepends=True)


def replace_sections(text: str, sections: dict[str, dict[str, Any] | None], is_json: bool) -> str:
    """``text`` with each top-level section of ``sections`` replaced (None: removed)."""
    if is_json:
        data = json.loads(text) if text.strip() else {}
        for key, value in sections.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    # Replace from the bottom up so earlier spans stay valid.
    spans = _block_spans(lines)
    edits = sorted(
        ((spans.get(key), key, value) for key, value in sections.items()),
        key=lambda e: -(e[0][0] if e[0] else -1),
    )
    appended: list[str] = []
    for span, key, value in edits:
        new = [] if value is None else _dump_section(key, value)
        if span is None:
            appended = new + appended
        else:
            lines[span[0]:span[1]] = new
    return "".join(lines + appended)


_PROJECT = "the project"


def _find_config(project_dir: Path, relpath: str) -> str:
    """``relpath``, cleaned, if it names a config the project's discovery lists and it
    lies, links resolved, inside the project."""
    rel = paths.clean_relpath(relpath, "config", root_name=_PROJECT)
    target = paths.confine(project_dir, rel, "config", root_name=_PROJECT) if rel else None
    for found in config_discovery.find_backend_configs(project_dir):
        if paths.real(found) == target:
            return rel
    raise UserInputError(Problem(
        f"{relpath!r} is not a backend config of the project", key="path"
    ))


def save_sections(project_dir: Path, relpath: str,
                  sections: dict[str, dict[str, Any] | None]) -> str:
    """Rewrite the sections in the config file; its path relative to the project."""
    unknown = [k for k in sections if k not in EDITABLE_SECTIONS]
    if unknown:
        raise UserInputError([
            Problem(f"section {k!r} cannot be edited here; "
                    f"only {', '.join(EDITABLE_SECTIONS)}", key=k)
            for k in unknown
        ])
    rel = _find_config(project_dir, relpath)
    is_json = rel.lower().endswith(".json")

    def update(text: str) -> str:
        new_text = replace_sections(text, sections, is_json)
        # Validate the whole new file before writing: problems carry this file's name and lines.
        config_mod.parse_backend_config(new_text, source=rel)
        return new_text

    # Read, checked and replaced through a descriptor of its real folder inside the project.
    paths.replace_file(project_dir, rel, update, "config", _PROJECT)
    return rel

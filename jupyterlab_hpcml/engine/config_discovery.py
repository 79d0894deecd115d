"""Finding the backend configs of a project: which files in its root,
``backend-configs/`` and ``configs/`` are backend configs (read without validating them;
``config.load_backend_config`` judges a file once chosen)."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from . import limits, yamlio

KNOWN_TOP_LEVEL_KEYS = ("Backend", "UnicoreApiUrl", "Firecrest", "SSH", "Local", "Resources",
                        "Environment")
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
CONFIG_SUBDIRS = ("backend-configs", "configs")
# Project files that are YAML but never backend configs.
_NOT_CONFIGS = {"mlproject", "conda.yaml", "conda.yml", "python_env.yaml", "python_env.yml"}


def find_backend_configs(project_dir: Path) -> list[Path]:
    """Config files in the project root, ``backend-configs/`` and ``configs/``, in that order.

    A file counts if its top level is a mapping with a known key. In the dedicated
    ``backend-configs/`` folder a file YAML/JSON cannot read counts too, so that
    loading it shows the user the syntax error instead of hiding the file.
    """
    found: list[Path] = []
    for folder in (project_dir, *(project_dir / sub for sub in CONFIG_SUBDIRS)):
        if not folder.is_dir():
            continue
        dedicated = folder.name == CONFIG_SUBDIRS[0] and folder.parent == project_dir
        for candidate in sorted(folder.iterdir()):
            if _is_config_candidate(candidate) and _looks_like_backend_config(candidate, dedicated):
                found.append(candidate)
    return found


def _is_config_candidate(path: Path) -> bool:
    return (
        path.suffix.lower() in CONFIG_SUFFIXES
        and path.name.lower() not in _NOT_CONFIGS
        and path.is_file()
    )


def _looks_like_backend_config(path: Path, dedicated: bool) -> bool:
    try:
        if path.stat().st_size > limits.MAX_CONFIG_BYTES:  # data, not configs
            return False
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yamlio.safe_load(text)
    except (ValueError, yaml.YAMLError):
        return dedicated
    return isinstance(data, dict) and any(key in data for key in KNOWN_TOP_LEVEL_KEYS)

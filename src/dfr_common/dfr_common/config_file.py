"""Reading a YAML or JSON configuration file with errors that name the file and what is wrong."""
from __future__ import annotations

import json
from pathlib import Path

import yaml


def _text(path: Path, error: type[Exception], what: str) -> str:
    try:
        return path.read_text()
    except OSError as err:
        raise error(f"cannot read {what} {path}: {err.strerror}") from err


def load_yaml(path, error: type[Exception], what: str):
    """The parsed content of `path`; a missing or malformed file raises `error` saying which and why."""
    path = Path(path)
    text = _text(path, error, what)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise error(f"{path}: not valid YAML: {err}") from err


def ros_parameters(path, node: str) -> dict:
    """A node's ros__parameters in a ROS 2 parameter file ({} when the file has no section for it);
    a missing or malformed file raises ValueError."""
    data = load_yaml(path, ValueError, f"{node} parameters") or {}
    return (data.get(node) or {}).get("ros__parameters", {})


def load_json(path, error: type[Exception], what: str):
    """As load_yaml, for JSON (GeoJSON) files."""
    path = Path(path)
    text = _text(path, error, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise error(f"{path}: not valid JSON: {err}") from err

"""Reading a YAML configuration file with errors that name the file and what is wrong."""
from __future__ import annotations

from pathlib import Path

import yaml


def load_yaml(path, error: type[Exception], what: str):
    """The parsed content of `path`; a missing or malformed file raises `error` saying which and why."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise error(f"cannot read {what} {path}: {err.strerror}") from err
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise error(f"{path}: not valid YAML: {err}") from err

"""The middleware settings a graph's processes start with, for the runner and the launch files alike."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

FASTDDS_PROFILE = Path("dds") / "fastdds_local.xml"
_PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


def middleware_environment(config_dir: Path, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Variables to add to the environment: the Fast DDS profile of config/dds/, unless the user runs
    another middleware or names a profile of their own (see config/dds/fastdds_local.xml for why)."""
    rmw = environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    if not rmw.startswith("rmw_fastrtps") or any(environ.get(name) for name in _PROFILE_VARIABLES):
        return {}
    return {"FASTRTPS_DEFAULT_PROFILES_FILE": str(Path(config_dir) / FASTDDS_PROFILE)}

"""The middleware settings a graph's processes start with, for the runner and the launch files alike."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

FASTDDS_PROFILE = Path("dds") / "fastdds_local.xml"
_PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")
PUBLICATION_MODE = "RMW_FASTRTPS_PUBLICATION_MODE"


def middleware_environment(config_dir: Path, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Variables to add to the environment for Fast DDS, each unless the user set it or runs another middleware:

    - the profile of config/dds/ (see config/dds/fastdds_local.xml for why);
    - asynchronous publication: a publish hands the message to Fast DDS's own thread and returns. With
      rmw_fastrtps's synchronous default, a Python node's publish delivers to every reader itself, holding
      the interpreter's lock, and on a busy machine waits for them: the simulator (the graph's clock, with
      eighteen /clock readers) spent half its wall time in publish at 10 x real time.
    """
    rmw = environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    if not rmw.startswith("rmw_fastrtps"):
        return {}
    env = {}
    if not any(environ.get(name) for name in _PROFILE_VARIABLES):
        env["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(Path(config_dir) / FASTDDS_PROFILE)
    if not environ.get(PUBLICATION_MODE):
        env[PUBLICATION_MODE] = "ASYNCHRONOUS"
    return env

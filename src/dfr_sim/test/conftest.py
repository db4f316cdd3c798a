"""Shared test pieces of dfr_sim: the model harness is imported from this directory, and the
shipped street map, in a frame at Islington police station, is a fixture."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from world_fixtures import MAP_FILE  # noqa: E402

from dfr_common.geodesy import GeoPoint, LocalFrame  # noqa: E402
from dfr_sim.street_map import load_street_map  # noqa: E402

ORIGIN = GeoPoint(51.5338, -0.1109, 0.0)


@pytest.fixture(scope="module")
def frame():
    return LocalFrame(ORIGIN)


@pytest.fixture(scope="module")
def street_map(frame):
    return load_street_map(MAP_FILE, frame)

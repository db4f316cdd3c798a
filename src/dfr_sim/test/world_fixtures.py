"""The shipped street map, for the tests of the map and of the actors on it."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
MAP_FILE = REPO / "config" / "world" / "islington.geojson"

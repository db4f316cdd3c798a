"""The ground world a scenario describes: the street map, and the actors moving on it.

The simulator node steps the actors; the camera node draws the same map. Both place
it in the site frame of the fleet file, so a street is where every node thinks it is.
"""
from __future__ import annotations

from dfr_common.geodesy import LocalFrame
from dfr_sim.ground_actors import GroundActors, parse_actor_specs, parse_background
from dfr_sim.street_map import StreetMap, generate_buildings, load_street_map


class WorldError(ValueError):
    """A scenario asks for actors without a map, or the map or the actors are malformed."""


def load_world(world_file: str, frame: LocalFrame, with_buildings: bool = False, seed: int = 0) -> StreetMap | None:
    if not world_file:
        return None
    street_map = load_street_map(world_file, frame)
    return generate_buildings(street_map, seed) if with_buildings else street_map


def ground_actors(street_map: StreetMap | None, scenario: dict, frame: LocalFrame, seed: int,
                  where: str = "scenario") -> GroundActors | None:
    """The scenario's `actors:` and `background_traffic:` on the map; None when it has neither."""
    raw_actors = scenario.get("actors")
    raw_background = scenario.get("background_traffic")
    if raw_actors is None and raw_background is None:
        return None
    if street_map is None:
        raise WorldError(f"{where} has actors but no street map is given (parameter world_file)")
    specs = parse_actor_specs(raw_actors or [], frame, where=f"{where}: actors")
    background = parse_background(raw_background, where=f"{where}: background_traffic")
    return GroundActors(street_map, specs, background, seed=seed)

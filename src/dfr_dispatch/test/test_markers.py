"""The rviz2 markers place bases, zones, drones, incidents and routes in the site frame."""
import math
from pathlib import Path

from visualization_msgs.msg import Marker

from dfr_common.fleet import load_fleet
from dfr_dispatch.airspace import load_restrictions
from dfr_dispatch.markers import FRAME_ID, live_markers, static_markers
from dfr_interfaces.msg import Incident, VehicleStatus

CONFIG = Path(__file__).resolve().parents[3] / "config"


def test_static_markers_draw_every_base_and_zone_in_the_site_frame():
    fleet = load_fleet(CONFIG / "fleet" / "islington.yaml")
    zones = [(r.name, r.geometry) for r in load_restrictions(CONFIG / "airspace" / "london_restrictions.geojson")]
    markers = static_markers(fleet.site_frame(), fleet, zones, None).markers
    bases = [m for m in markers if m.ns == "bases"]
    assert len(bases) == 3 and all(m.header.frame_id == FRAME_ID for m in markers)
    assert (bases[0].pose.position.x, bases[0].pose.position.y) == (0.0, 0.0)    # the first base is the origin
    outlines = [m for m in markers if m.ns == "no_fly"]
    assert len(outlines) == len(zones) and all(m.type == Marker.LINE_STRIP and len(m.points) > 4 for m in outlines)
    assert {m.text for m in markers if m.ns == "no_fly_names"} == {name for name, _ in zones}


def test_live_markers_skip_drones_without_a_position_and_fade_ineligible_incidents():
    fleet = load_fleet(CONFIG / "fleet" / "islington.yaml")
    ok = VehicleStatus(vehicle_id="uav1", available=True, altitude_rel_m=50.0)
    ok.position.latitude, ok.position.longitude = 51.5338, -0.1109
    lost = VehicleStatus(vehicle_id="uav2")
    lost.position.latitude = lost.position.longitude = math.nan
    eligible, refused = Incident(grade="I", drone_eligible=True), Incident(grade="I", drone_eligible=False)
    for incident in (eligible, refused):
        incident.location.latitude, incident.location.longitude = 51.54, -0.10
    route = {"uav1": ((51.5338, -0.1109, 60.0), (51.54, -0.10, 60.0))}
    markers = live_markers(fleet.site_frame(), [ok, lost], [eligible, refused], route, None, 2.0).markers
    assert len([m for m in markers if m.ns == "drones"]) == 1
    cubes = [m for m in markers if m.ns == "incidents"]
    assert cubes[0].color.a == 1.0 and cubes[1].color.a < 0.5
    (line,) = [m for m in markers if m.ns == "routes"]
    assert len(line.points) == 2 and line.points[1].z == 60.0

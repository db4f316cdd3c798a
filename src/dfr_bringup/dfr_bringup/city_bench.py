"""The dispatch comparison of `make bench`: one seeded city evening, the planner against nearest-idle.

The scenario's calls go through intake's own rules (merging of repeat calls, the launch
policy from config/intake.yaml), the incidents that may get a drone are replayed through
dispatch's decisions (dfr_dispatch.replay) with the airspace and settings of
config/dispatch.yaml, once per policy, and the two are reported side by side.
"""
from __future__ import annotations

import time
from pathlib import Path

from dfr_common.config_file import load_yaml
from dfr_common.fleet import load_fleet
from dfr_dispatch.airspace import Airspace, load_restrictions
from dfr_dispatch.assignment import AssignmentConfig
from dfr_dispatch.replay import ReplayConfig, ReplayDrone, ReplayIncident, replay
from dfr_intake.incident_book import IncidentBook, MergeRules
from dfr_intake.launch_policy import LaunchPolicy
from dfr_intake.scenario import load_scenario


def _node_parameters(config_dir: Path, file_name: str, node: str) -> dict:
    data = load_yaml(config_dir / file_name, ValueError, "parameters")
    return data[node]["ros__parameters"]


def scenario_incidents(scenario_file: Path, config_dir: Path) -> tuple[list[ReplayIncident], dict]:
    """The incidents intake would open from the scenario's calls, and counts of what it refused."""
    intake = _node_parameters(config_dir, "intake.yaml", "/dfr/intake")
    policy = LaunchPolicy(frozenset(intake["policy"]["eligible_grades"]),
                          frozenset(intake["policy"]["eligible_categories"]),
                          frozenset(intake["policy"]["excluded_categories"]))
    rules = MergeRules.from_parameters(intake["merge_radius_m"], intake["merge_window_s"], intake["merge_groups"],
                                       intake["categories"], policy.excluded_categories)
    book = IncidentBook(merge_rules=rules)
    scenario = load_scenario(scenario_file)
    first: dict[str, float] = {}
    for call in scenario.calls:
        outcome = book.accept_call(call.as_call(call.at_s), policy)
        first.setdefault(outcome.record.incident_id, call.at_s)
    incidents, refused = [], 0
    for record in book.incidents.values():
        if not record.drone_eligible:
            refused += 1
            continue
        call = record.first_call
        incidents.append(ReplayIncident(record.incident_id, first[record.incident_id], record.grade, record.category,
                                        (call.latitude, call.longitude)))
    counts = {"calls": len(scenario.calls), "incidents": len(book.incidents), "incidents_eligible": len(incidents),
              "incidents_refused_by_policy": refused}
    return incidents, counts


def compare_policies(scenario_file: Path, config_dir: Path, fleet_file: Path,
                     policies=("planner", "nearest_idle")) -> dict:
    config_dir, scenario_file, fleet_file = Path(config_dir), Path(scenario_file), Path(fleet_file)
    dispatch = _node_parameters(config_dir, "dispatch.yaml", "/dfr/dispatch")
    bridge = _node_parameters(config_dir, "bridge.yaml", "/**/bridge")
    fleet = load_fleet(fleet_file)
    airspace = Airspace(load_restrictions(config_dir / "airspace" / "london_restrictions.geojson"),
                        fleet.site_frame(), frozenset(dispatch["airspace_permissions"]),
                        dispatch["airspace_buffer_m"], dispatch["ceiling_m"])
    assignment = AssignmentConfig(
        cruise_speed_m_s=dispatch["cruise_speed_m_s"], cruise_altitude_m=dispatch["cruise_altitude_m"],
        on_scene_time_s=dispatch["on_scene_duration_s"] or dispatch["assumed_on_scene_s"],
        battery_reserve_fraction=dispatch["battery_reserve"], nominal_endurance_s=dispatch["nominal_endurance_s"],
        coverage_tolerance_s=dispatch["coverage_tolerance_s"])
    config = ReplayConfig(on_scene_s=dispatch["on_scene_duration_s"] or dispatch["assumed_on_scene_s"],
                          endurance_s=dispatch["nominal_endurance_s"], battery_reserve=dispatch["battery_reserve"],
                          min_launch_battery=bridge.get("min_launch_battery", 0.5),
                          decision_period_s=dispatch["decision_period_s"])
    drones = [ReplayDrone(v.vehicle_id, v.base_id, (h.latitude, h.longitude))
              for v in fleet.vehicles.values() for h in [fleet.vehicle_home(v.vehicle_id)]]
    incidents, counts = scenario_incidents(scenario_file, config_dir)
    routes: dict[tuple, float] = {}

    def travel(a, b) -> float:
        key = (a, b)
        if key not in routes:
            routes[key] = airspace.route(a, b).length_m / assignment.cruise_speed_m_s
        return routes[key]

    out = {"scenario": str(scenario_file), "fleet": str(fleet_file), "vehicles": len(drones), **counts,
           "model": {"on_scene_s": config.on_scene_s, "endurance_s": config.endurance_s,
                     "launch_s": assignment.launch_s, "cruise_speed_m_s": assignment.cruise_speed_m_s}}
    for policy in policies:
        result = replay(policy, incidents, drones, assignment, config, travel, clock=time.perf_counter)
        out[policy] = result.summary(config.response_target_s)
    if "planner" in out and "nearest_idle" in out:
        p, n = out["planner"]["response_time_s"], out["nearest_idle"]["response_time_s"]
        out["planner_p90_gain_s"] = n["p90"] - p["p90"]
        out["planner_p50_gain_s"] = n["p50"] - p["p50"]
    return out

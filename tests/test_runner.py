"""The project's runner starts the graph as separate processes, runs a scenario to its end and writes metrics.

This is the path `make demo` takes: real executables from the colcon install, the
parameter files in config/, DDS between processes, sim time from the simulator.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dfr_bringup.graph import SimRun, sim_graph
from dfr_bringup.runner import apply_overrides

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_a_scenario_runs_to_its_end_in_separate_processes(tmp_path):
    command = [sys.executable, "-m", "dfr_bringup.runner", "--config-dir", str(REPO / "config"),
               "--fleet", str(FIXTURES / "fleet_two_bases.yaml"),
               "--scenario", "scenarios/foundation_single_call.yaml", "--speed", "15",
               "--param", "/dfr/dispatch:on_scene_duration_s=10", "--runs-dir", str(tmp_path), "--quiet"]
    # A domain of its own: the in-process tests of this session may still be known to DDS.
    env = {**os.environ, "ROS_DOMAIN_ID": str(1 + (int(os.environ["ROS_DOMAIN_ID"]) + 50) % 100)}
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = (tmp_path / "latest").resolve()
    assert run_dir.parent == tmp_path
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["complete"] is True
    assert metrics["calls_received"] == 1 and metrics["incidents_eligible"] == 1
    assert metrics["incidents_attended"] == 1
    assert metrics["flights"] == 1 and metrics["flights_without_incident"] == 0
    assert 20.0 < metrics["response_time_s"]["p50"] < 200.0
    log = (run_dir / "graph.log").read_text()
    assert "3 bridges in this process: /uav1/bridge, /uav2/bridge, /uav3/bridge" in log
    assert "[uav1.bridge]: mission" in log or "[uav2.bridge]: mission" in log
    assert "Traceback" not in log
    graph = json.loads((run_dir / "graph.json").read_text())
    assert {n["node"] for n in graph} >= {"/sim", "/dfr/intake", "/dfr/dispatch", "/dfr/bridge_fleet"}


def test_param_overrides_reach_one_node_and_bad_ones_are_refused():
    specs = sim_graph(SimRun(REPO / "config", FIXTURES / "fleet_two_bases.yaml",
                             REPO / "config" / "scenarios" / "foundation_single_call.yaml", Path("/tmp/x"),
                             bridges_in_one_process=False))
    changed = apply_overrides(specs, ["/dfr/dispatch:cruise_speed_m_s=12.5", "/uav2/bridge:min_launch_battery=0.8"])
    by_name = {s.fully_qualified_name: s for s in changed}
    assert by_name["/dfr/dispatch"].overrides["cruise_speed_m_s"] == 12.5
    assert by_name["/uav2/bridge"].overrides["min_launch_battery"] == 0.8
    assert "min_launch_battery" not in by_name["/uav1/bridge"].overrides
    for bad in ["/nope:x=1", "/dfr/dispatch", "/dfr/dispatch:=3"]:
        with pytest.raises(SystemExit):
            apply_overrides(specs, [bad])


def test_with_every_bridge_in_one_process_an_override_reaches_them_all_and_one_bridge_alone_is_explained():
    specs = sim_graph(SimRun(REPO / "config", FIXTURES / "fleet_two_bases.yaml",
                             REPO / "config" / "scenarios" / "foundation_single_call.yaml", Path("/tmp/x")))
    fleet = next(s for s in specs if s.executable == "bridge_fleet")
    assert fleet.fully_qualified_name == "/dfr/bridge_fleet" and fleet.nodes == len(fleet.overrides["vehicles"]) > 1
    changed = apply_overrides(specs, ["/dfr/bridge_fleet:min_launch_battery=0.8"])
    assert next(s for s in changed if s.executable == "bridge_fleet").overrides["min_launch_battery"] == 0.8
    with pytest.raises(SystemExit, match="runs in /dfr/bridge_fleet with every other bridge.*per-vehicle"):
        apply_overrides(specs, ["/uav2/bridge:min_launch_battery=0.8"])

"""The soak, cut short: the whole graph in separate processes answers a few minutes of calls while every
kind of fault strikes once (intake, dispatch and a flying drone's bridge killed and started again, a link
dropped, GPS lost, OFFBOARD refused, a battery drained mid-chase), and the run's own record shows that no
call and no incident was lost. `make soak` runs the hour."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_a_short_soak_under_every_fault_loses_no_call_and_no_incident(tmp_path):
    command = [sys.executable, "-m", "dfr_bringup.soak", "--config-dir", str(REPO / "config"),
               "--fleet", str(FIXTURES / "fleet_two_bases.yaml"),
               "--scenario", str(FIXTURES / "scenario_soak_short.yaml"), "--speed", "10",
               # The battery drain first, waiting for a drone on scene; the processes next; then the faults that
               # need a drone in transit or docked, which may find none in time (skipped, and said so).
               "--faults", "battery_drain,kill_dispatch,kill_intake,refuse_offboard,link_loss,kill_bridge,gps_loss",
               "--fault-period-s", "40", "--first-fault-s", "60", "--warm-up-s", "60",
               "--param", "/dfr/dispatch:on_scene_duration_s=90", "--runs-dir", str(tmp_path), "--quiet"]
    env = {**os.environ, "ROS_DOMAIN_ID": str(1 + (int(os.environ["ROS_DOMAIN_ID"]) + 70) % 100)}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    run_dir = (tmp_path / "latest").resolve()
    report = json.loads((run_dir / "soak.json").read_text())
    summary = "\n".join(line for line in result.stdout.splitlines() if line.startswith("[soak]"))
    assert result.returncode == 0 and report["passed"], summary + result.stderr[-2000:]

    assert report["calls_made"] == 9 and report["calls_lost"] == [] and report["incidents_lost"] == []
    assert report["incidents_attended"] == report["incidents_eligible"] == 7
    assert report["flights_without_incident"] == 0
    # Every flight has its end on the record, a flight whose bridge was killed included.
    assert report["flights_without_a_recorded_end"] == [], report["flights_without_a_recorded_end"]
    struck = {f["kind"] for f in report["faults"] if f["result"] == "struck"}
    assert {"kill_intake", "kill_dispatch", "battery_drain"} <= struck, report["faults"]
    assert len(report["faults"]) == 7 and len(struck) >= 5, report["faults"]
    assert all(f["result"] in ("struck", "skipped") for f in report["faults"]), report["faults"]
    log = (run_dir / "graph.log").read_text()
    assert log.count("killed by SIGKILL: starting it again") >= 2
    drained = next(f for f in report["faults"] if f["kind"] == "battery_drain")
    assert drained["detail"].startswith(("in follow", "in on_scene")), drained       # on scene: the chase
    relief = [line for line in log.splitlines() if "[dfr.dispatch]" in line and "relief" in line]
    assert any(drained["vehicle_id"] in line for line in relief), relief or log[-3000:]   # another drone took over
    # Memory: every node sampled, the restarted ones as two processes.
    memory = report["memory"]
    assert {"/dfr/intake", "/dfr/dispatch", "/sim", "/uav1/bridge"} <= set(memory)
    assert memory["/dfr/intake"]["processes"] == 2 and memory["/dfr/dispatch"]["processes"] == 2

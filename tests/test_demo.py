"""The main job end to end, cut short: the runner runs a few minutes of the evening through the whole
graph in separate processes, and the run directory holds what `make demo` promises.

Asserted on the run's own record: every eligible call attended, the refused one refused, no flight
without an incident, the e-bike's rider in the drone's camera for part of the chase, the report and
its images written, and the audit log intact.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

from rosbags.highlevel import AnyReader

from dfr_audit.audit_log import EntryKind, read_entries
from dfr_audit.verify import verify

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _chase_story(run_dir: Path) -> str:
    """What perception and follow said during the run: enough to tell, from a failed run alone, which tracks
    the drone took for the rider and when it lost him."""
    lines = [line for line in (run_dir / "graph.log").read_text(errors="replace").splitlines()
             if ("[dfr.perception]" in line or "[dfr.follow]" in line) and ": uav" in line]
    return "the chase as the graph told it:\n" + "\n".join(line[:300] for line in lines[-60:])


def test_a_short_evening_is_answered_recorded_and_reported(tmp_path):
    command = [sys.executable, "-m", "dfr_bringup.runner", "--config-dir", str(REPO / "config"),
               "--fleet", str(FIXTURES / "fleet_two_bases.yaml"),
               "--scenario", str(FIXTURES / "scenario_evening_short.yaml"), "--speed", "10",
               "--param", "/dfr/dispatch:on_scene_duration_s=90", "--runs-dir", str(tmp_path), "--progress"]
    env = {**os.environ, "ROS_DOMAIN_ID": str(1 + (int(os.environ["ROS_DOMAIN_ID"]) + 60) % 100)}
    result = subprocess.run(command, capture_output=True, text=True, timeout=420, env=env)
    run_dir = (tmp_path / "latest").resolve()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "[progress]" in result.stdout          # not a terminal: plain progress lines

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["complete"] is True
    assert metrics["calls_received"] == 3
    assert metrics["incidents_eligible"] == 2 and metrics["incidents_refused_by_policy"] == 1
    assert metrics["incidents_attended"] == metrics["incidents_eligible"]
    assert metrics["flights_without_incident"] == 0
    assert metrics["response_time_s"]["max"] < 300.0
    assert 1.0 <= metrics["response_lower_bound_ratio_p50"] < 5.0
    # The chase: scored against the simulator's ground truth while the drone watched the e-bike's incident.
    assert metrics["chase_samples"] > 20
    # How well the drone keeps the rider in view varies from run to run (a closed loop on a motion detector
    # that loses him for a moment, and sometimes to a false track): over thirteen runs of this graph on 2
    # cores, in view 0.13 to 0.95 of the chase, the drone's own target on him 0.006 to 0.43. That is measured
    # (README, Perception and follow; `make bench` for the evaluation), not asserted: asked here is that the
    # chase was scored and the rider was in the drone's camera during it.
    assert metrics["target_in_view_fraction"] > 0.0, _chase_story(run_dir)
    refused = [i for i in metrics["per_incident"] if not i["drone_eligible"]]
    assert refused and refused[0]["category"] == "noise" and refused[0]["policy_reason"]

    paths = json.loads((run_dir / "flight_paths.json").read_text())
    assert paths["vehicles"] and any(len(p) > 10 for p in paths["vehicles"].values())
    progress = json.loads((run_dir / "progress.json").read_text())
    assert progress["finished"] is True and progress["incidents_attended"] == 2
    for name in ("report.md", "map.png", "response_times.png"):
        assert (run_dir / name).stat().st_size > 0, name
    assert "CAD-TEST" in (run_dir / "report.md").read_text() or "INC-" in (run_dir / "report.md").read_text()
    assert verify(run_dir / "audit_log.sqlite").ok
    assignments = list(read_entries(run_dir / "audit_log.sqlite", kind=EntryKind.ASSIGNMENT))
    assert {a.incident_id for a in assignments} >= {i["incident_id"] for i in metrics["per_incident"]
                                                    if i["drone_eligible"]}
    # Each assignment names every other drone of the fleet: weighed and not sent, or why it was not weighed.
    assert all(len(a.detail["alternatives"]) == 2 for a in assignments)
    assert all(a.detail["reason"] and all(o["reason"] for o in a.detail["alternatives"]) for a in assignments)
    # The bag: rosbag2's MCAP layout, read by rosbags; the record keeps the target, never the other tracks.
    with AnyReader([run_dir / "bag.mcap"]) as bag:
        topics = {c.topic: c for c in bag.connections}
        assert {"/dfr/incidents", "/uav1/vehicle_status", "/uav1/perception/target"} <= set(topics)
        assert "/clock" not in topics             # the bag's own timeline is sim time: `ros2 bag play --clock`
        assert not [t for t in topics if t.endswith(("/perception/tracks", "/camera/image_raw"))]
        incidents = [bag.deserialize(raw, c.msgtype) for c, _, raw in bag.messages([topics["/dfr/incidents"]])]
        assert {i.incident_id for i in incidents} == {i["incident_id"] for i in metrics["per_incident"]}
        # The e-bike followed: a drone on its incident chose a target (seen in this image, or lost a moment
        # and followed on its prediction) and flew in FOLLOW.
        ebike = next(i.incident_id for i in incidents if any(c.cad_ref == "CAD-TEST-0001" for c in i.calls))
        watched = {c.topic.split("/")[1]: c for c in bag.connections if c.topic.endswith("/perception/target")}
        chosen = [t for c in watched.values() for _, _, raw in bag.messages([c])
                  for t in [bag.deserialize(raw, c.msgtype)] if t.incident_id == ebike and t.state != 0]
        assert chosen, "no drone chose a target for the e-bike's incident"
        statuses = [c for c in bag.connections if c.topic.endswith("/vehicle_status")]
        assert any(s.incident_id == ebike and s.phase.value == 5 for c in statuses
                   for _, _, raw in bag.messages([c]) for s in [bag.deserialize(raw, c.msgtype)]), \
            "no drone flew in FOLLOW on the e-bike's incident"
    # The target's track and the redacted video went into the retention store when the mission ended, on the
    # record; the bag holds no images.
    recorded = [e for e in read_entries(run_dir / "audit_log.sqlite", kind=EntryKind.FOOTAGE_RECORDED)
                if e.incident_id == ebike]
    assert {e.detail["artifact_kind"] for e in recorded} == {"track", "footage"}
    assert all((run_dir / "recordings" / e.detail["artifact"]).is_file() for e in recorded)
    assert not [t for t in topics if t.endswith("/perception/image_redacted")]
    assert "Traceback" not in (run_dir / "graph.log").read_text()

"""The dispatch comparison of `make bench`, on a short evening."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from dfr_bringup.city_bench import compare_policies, scenario_incidents

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "config"
# The chase evaluation's scenario, fleet and world
CHASE_FILES = (CONFIG / "scenarios" / "foundation_single_call.yaml", CONFIG / "fleet" / "islington.yaml",
               CONFIG / "world" / "islington.geojson")


def short_evening(tmp_path: Path, hours: float = 1.0) -> Path:
    data = yaml.safe_load((CONFIG / "scenarios" / "islington_evening.yaml").read_text())
    data["call_stream"]["duration_s"] = hours * 3600
    path = tmp_path / "short.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_intake_rules_decide_which_incidents_dispatch_sees(tmp_path):
    incidents, counts = scenario_incidents(short_evening(tmp_path), CONFIG)
    assert counts["incidents_eligible"] == len(incidents) > 0
    assert counts["incidents"] == counts["incidents_eligible"] + counts["incidents_refused_by_policy"]
    assert counts["incidents"] < counts["calls"]                 # second callers merged into one incident
    assert all(i.grade in ("I", "S") for i in incidents)


def test_both_policies_answer_every_incident_of_a_short_evening(tmp_path):
    result = compare_policies(short_evening(tmp_path), CONFIG, CONFIG / "fleet" / "islington.yaml")
    for policy in ("planner", "nearest_idle"):
        summary = result[policy]
        assert summary["incidents"] == result["incidents_eligible"]
        assert summary["attended"] + summary["unattended"] == summary["incidents"]
        assert summary["response_time_s"]["p50"] <= summary["response_time_s"]["p90"]
        assert summary["flights"] >= 1 and summary["decision_ms"]["p99"] > 0
    assert result["nearest_idle"]["retasked_in_flight"] == 0
    assert "planner_p90_gain_s" in result


def test_the_chase_evaluation_scores_a_short_chase_with_trackeval():
    from dfr_bringup.chase_eval import ChaseConfig, run_chase
    result = run_chase(*CHASE_FILES,
                       ChaseConfig(duration_s=4.0, lead_in_s=3.0, width=320, height=240, processing_width=320))
    assert result["frames"] == 4.0 * ChaseConfig.frame_rate_hz and result["truth_boxes"] > 0
    assert all(math.isfinite(result[key]) for key in ("MOTA", "IDF1", "HOTA", "pipeline_fps"))
    assert 0.0 <= result["target_in_view_fraction"] <= 1.0 and result["IDF1"] <= 1.0
    assert set(result["target_geolocation_error_m"]) == {"p50", "p90", "samples"}


def test_the_chase_evaluation_can_start_after_the_rider_set_off_and_trace_each_frame():
    from dfr_bringup.chase_eval import ChaseConfig, run_chase
    trace = []
    config = ChaseConfig(duration_s=2.0, lead_in_s=1.0, arrival_s=3.0, width=320, height=240, processing_width=320)
    run_chase(*CHASE_FILES, config, trace=trace)
    assert len(trace) == 2.0 * ChaseConfig.frame_rate_hz
    # the chase's clock starts where the rider's flight left it
    assert trace[0]["t"] == 3.0 and trace[-1]["t"] == 3.0 + 2.0 - 1.0 / ChaseConfig.frame_rate_hz
    assert {"suspect_box", "suspect_detected", "suspect_track", "target", "follow", "look_at"} <= set(trace[0])
    assert all(r["follow"] in ("acquiring", "following", "searching", "lost") for r in trace)


def test_the_chase_evaluation_can_fly_the_follow_commands_late_as_the_graph_does():
    from dfr_bringup.chase_eval import ChaseConfig, run_chase
    small = dict(duration_s=2.0, lead_in_s=1.0, width=320, height=240, processing_width=320)
    trace = []
    result = run_chase(*CHASE_FILES, ChaseConfig(command_delay_frames=2, **small), trace=trace)
    assert len(trace) == 2.0 * ChaseConfig.frame_rate_hz and 0.0 <= result["target_in_view_fraction"] <= 1.0
    with pytest.raises(ValueError, match="command_delay_frames must be 0 or more"):
        run_chase(*CHASE_FILES, ChaseConfig(command_delay_frames=-1, **small))
    trace = []
    result = run_chase(*CHASE_FILES, ChaseConfig(observation_delay_frames=1, **small), trace=trace)
    assert len(trace) == 2.0 * ChaseConfig.frame_rate_hz and 0.0 <= result["target_in_view_fraction"] <= 1.0
    with pytest.raises(ValueError, match="observation_delay_frames must be 0 or more"):
        run_chase(*CHASE_FILES, ChaseConfig(observation_delay_frames=-2, **small))


def test_the_chase_evaluation_can_bring_the_drone_on_scene_where_the_graph_s_drone_arrives():
    from dfr_bringup.chase_eval import ChaseConfig, run_chase
    small = dict(duration_s=0.4, lead_in_s=0.2, width=320, height=240, processing_width=320)
    starts = {}
    for offset in ((0.0, -30.0), (-23.0, -34.0)):
        trace = []
        run_chase(*CHASE_FILES, ChaseConfig(start_offset_m=offset, **small), trace=trace)
        starts[offset] = trace[0]["drone"][:2]
    moved = [a - b for a, b in zip(starts[(-23.0, -34.0)], starts[(0.0, -30.0)], strict=True)]
    assert moved == pytest.approx([-23.0, -4.0], abs=0.5)
    with pytest.raises(ValueError, match="start_offset_m must be finite"):
        run_chase(*CHASE_FILES, ChaseConfig(start_offset_m=(math.nan, 0.0), **small))

"""The run recorder without a scenario (a live shift on real airframes): it keeps the
record on wall time, rewrites metrics.json as it goes and a last time when stopped, and
never ends the run itself."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def recorder(tmp_path):
    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    from dfr_bringup.run_recorder_node import RunRecorderNode

    context = Context()
    rclpy.init(args=["--ros-args", "--params-file", str(REPO / "config" / "run_recorder.yaml")], context=context)
    node = RunRecorderNode(context=context, namespace="dfr", parameter_overrides=[
        Parameter("fleet_file", value=str(REPO / "config" / "fleet" / "islington.yaml")),
        Parameter("scenario_file", value=""), Parameter("output_dir", value=str(tmp_path)),
        Parameter("use_sim_time", value=False)])
    yield node
    node.destroy_node()
    context.try_shutdown()


def test_a_shift_is_written_as_it_goes_and_when_stopped(recorder, tmp_path):
    assert recorder.scenario is None and recorder.params.write_period_s == 60.0
    recorder._check_done()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["scenario"] == "" and metrics["complete"] is False and metrics["incidents"] == 0
    assert not recorder.finished

    (tmp_path / "metrics.json").unlink()
    recorder._check_done()          # within write_period_s: nothing new
    assert not (tmp_path / "metrics.json").exists()

    recorder.on_shutdown()
    assert json.loads((tmp_path / "metrics.json").read_text())["flights_without_incident"] == 0
    assert not recorder.finished and recorder.exit_code == 0

"""Every benchmark still runs against the current code, on tiny sizes (speeds are not checked)."""
import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent / "bench" / "run_benchmarks.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("run_benchmarks", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_benchmark_runs_on_a_tiny_size(bench):
    assert bench.bench_vehicle_model(2, seconds=0.1)["steps_per_s"] > 0
    assert bench.bench_simulator_node(2, seconds=0.5)["real_time_factor"] > 0
    assert bench.bench_mission_sequencer(updates=20)["mean_us"] > 0
    wake = bench.bench_executor_wake(seconds=0.5)
    assert wake["rclpy_single_threaded"]["telemetry_messages"] > 0 and wake["lean"]["telemetry_messages"] > 0
    assert bench.bench_call_validation(calls=20)["calls_per_s"] > 0
    assert bench.bench_camera_islington(frames=3, width=64, height=48)["down_fps"] > 0
    burst = bench.bench_intake_burst(calls=30, in_flight=4)
    assert burst["accepted"] + burst["refused"] == 30 and burst["acknowledged_not_published"] == 0
    assert burst["acknowledged_not_in_journal"] == 0
    assert set(bench.BENCHMARKS) == {"vehicle_model_9", "vehicle_model_50", "simulator_node_9_vehicles",
                                     "simulator_node_50_vehicles", "mission_sequencer_update",
                                     "executor_wake_bridge_sized", "call_validation",
                                     "camera_islington_640x480", "camera_synthetic_10km_640x480",
                                     "intake_burst_10000", "dispatch_city_evening", "dispatch_decision_9_drones",
                                     "dispatch_decision_100_drones", "dispatch_decision_500_drones",
                                     "dispatch_routes_london", "perception_detector_640x480",
                                     "perception_detector_1280x720", "perception_detector_1280x720_full",
                                     "perception_tracker_20_tracks", "perception_chase",
                                     "perception_chase_after_arrival", "perception_chase_evening_peak"}

"""Benchmarks: how fast the pieces run on this machine, written as JSON.

    make bench            # or: python tests/bench/run_benchmarks.py --output-dir runs/bench

Each benchmark writes runs/bench/<name>.json with its figures and the machine it ran
on. Nothing here asserts a speed: targets are read off these files, not enforced by
tests that would fail on a slower machine.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"


def machine() -> dict:
    return {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine()}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_vehicle_model(vehicles: int, seconds: float = 2.0) -> dict:
    """Physics steps per second of the PX4 vehicle model, all vehicles flying offboard."""
    from dfr_sim.multirotor import Multirotor
    models = [Multirotor(f"uav{i}") for i in range(vehicles)]
    now, dt = 0.0, 0.05
    for m in models:
        m.arm(True, now)
        m.takeoff(now, math.nan)
    steps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        now += dt
        for i, m in enumerate(models):
            m.setpoint(now, position=(100.0 * i, 50.0, 30.0), velocity=(5.0, 0.0, 0.0))
            m.step(now, dt)
        steps += 1
    elapsed = time.perf_counter() - start
    return {"vehicles": vehicles, "step_s": dt, "steps_per_s": steps / elapsed,
            "model_real_time_factor": steps * dt / elapsed}


def bench_simulator_node(vehicles: int, seconds: float = 8.0) -> dict:
    """Real-time factor the simulator node reaches alone, every MAVROS topic published, no cameras."""
    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    from dfr_common.ros.node_main import make_executor
    from dfr_sim.sim_node import SimulatorNode

    fleet = Path(f"/tmp/dfr_bench_fleet_{vehicles}.yaml")
    lines = ["site: {name: bench, ground_amsl_m: 30.0, geoid_undulation_m: 46.0}",
             "bases:", "  - {id: base, name: Base, latitude: 51.5338, longitude: -0.1109}", "vehicles:"]
    lines += [f"  - {{id: uav{i + 1}, base: base, dock: [{6.0 * i}, 0.0]}}" for i in range(vehicles)]
    fleet.write_text("\n".join(lines) + "\n")
    context = Context()
    rclpy.init(args=["--ros-args", "--params-file", str(CONFIG / "sim.yaml")], context=context)
    try:
        node = SimulatorNode(context=context, parameter_overrides=[
            Parameter("fleet_file", value=str(fleet)), Parameter("speed", value=1000.0)])
        executor = make_executor(context)
        executor.add_node(node)
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            executor.spin_once(timeout_sec=0.01)
        rtf = node.real_time_factor()
        executor.shutdown()
        node.destroy_node()
    finally:
        context.try_shutdown()
    return {"vehicles": vehicles, "cameras": False, "real_time_factor": rtf, "peak_rss_mb": peak_rss_mb()}


def _executor_wake(executor_kind: str, seconds: float) -> dict:
    """CPU of the spinning thread of a bridge-sized node, woken as in the graph at 10 x: /clock every 20 ms
    of wall time (0.2 s of sim time) and three telemetry messages with each tick, from another participant."""
    import threading

    import rclpy
    from builtin_interfaces.msg import Time
    from rclpy.action import ActionClient, ActionServer
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from std_msgs.msg import String

    from dfr_common.ros.lean_node import LeanNode
    from dfr_common.ros.node_main import make_executor
    from dfr_interfaces.action import ExecuteMission
    from dfr_interfaces.srv import ReportIncident

    node_context, source_context = Context(), Context()
    rclpy.init(context=node_context)
    rclpy.init(context=source_context)
    stop = threading.Event()
    try:
        node = LeanNode("bench_bridge", context=node_context,
                        parameter_overrides=[Parameter("use_sim_time", value=True)])
        calls = {"telemetry": 0, "setpoint_timer": 0}

        def count(what):
            calls[what] += 1

        node.create_subscription(String, "/bench/telemetry", lambda m: count("telemetry"), 10)
        for i in range(11):
            node.create_subscription(String, f"/bench/idle{i}", lambda m: None, 10)
        node.create_timer(0.1, lambda: count("setpoint_timer"))
        for period_s in (0.5, 1.0, 2.0):
            node.create_timer(period_s, lambda: None)
        for i in range(4):
            node.create_client(ReportIncident, f"/bench/client{i}")
        for i in range(2):
            ActionServer(node, ExecuteMission, f"/bench/action{i}", lambda goal: ExecuteMission.Result())
        ActionClient(node, ExecuteMission, "/bench/dispatch")
        source = rclpy.create_node("bench_source", context=source_context)
        clock_pub = source.create_publisher(Clock, "/clock",
                                            QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        telemetry_pub = source.create_publisher(String, "/bench/telemetry", 10)

        def publish():
            sim_ns = 0
            while not stop.is_set():
                sim_ns += 200_000_000
                clock_pub.publish(Clock(clock=Time(sec=sim_ns // 1_000_000_000, nanosec=sim_ns % 1_000_000_000)))
                for _ in range(3):
                    telemetry_pub.publish(String(data="x" * 100))
                time.sleep(0.02)

        executor = (SingleThreadedExecutor(context=node_context) if executor_kind == "rclpy"
                    else make_executor(node_context))
        executor.add_node(node)
        feeder = threading.Thread(target=publish, daemon=True)
        feeder.start()
        warm_until = time.monotonic() + 1.0
        while time.monotonic() < warm_until:
            executor.spin_once(timeout_sec=0.1)
        before = dict(calls)
        cpu0, wall0 = time.thread_time(), time.monotonic()
        while time.monotonic() - wall0 < seconds:
            executor.spin_once(timeout_sec=0.1)
        cpu, wall = time.thread_time() - cpu0, time.monotonic() - wall0
        stop.set()
        feeder.join()
        executor.shutdown()
        for made in (node, source):
            made.destroy_node()
    finally:
        stop.set()
        node_context.try_shutdown()
        source_context.try_shutdown()
    called = {k: calls[k] - before[k] for k in calls}
    if not called["telemetry"] or not called["setpoint_timer"]:
        raise RuntimeError(f"the bridge-sized node was not woken as it should be: {called}")
    return {"cpu_fraction_of_a_core": cpu / wall, "telemetry_messages": called["telemetry"],
            "setpoint_timer_calls": called["setpoint_timer"],
            "cpu_ms_per_callback": 1e3 * cpu / max(1, sum(called.values()))}


def bench_executor_wake(seconds: float = 10.0) -> dict:
    """rclpy's SingleThreadedExecutor against the graph's LeanExecutor (dfr_common.ros.lean_executor) on the
    same bridge-sized node: the spinning thread's CPU (Fast DDS's own threads are the same for both)."""
    rclpy_executor = _executor_wake("rclpy", seconds)
    lean_executor = _executor_wake("lean", seconds)
    return {"node": "12 subscriptions, 4 timers on sim time, 4 clients, 2 action servers, 1 action client",
            "wake": "/clock every 20 ms wall (0.2 s sim, 10 x) and 3 telemetry messages each tick",
            "seconds": seconds, "rclpy_single_threaded": rclpy_executor, "lean": lean_executor,
            "cpu_saved_fraction": 1.0 - lean_executor["cpu_fraction_of_a_core"]
            / max(1e-9, rclpy_executor["cpu_fraction_of_a_core"])}


def bench_mission_sequencer(updates: int = 20000) -> dict:
    """Cost of one sequencer update in transit (the bridge runs it at 10 Hz per vehicle)."""
    from dfr_bridge.mission_sequencer import MissionSequencer, MissionSpec, SequencerConfig, Telemetry, Waypoint
    from dfr_common.geodesy import GeoPoint, LocalFrame
    from dfr_common.mission import Phase
    home = GeoPoint(51.5338, -0.1109, 76.0)
    lat, lon, _ = LocalFrame(home).to_geodetic(2000.0, 1000.0, 0.0)
    spec = MissionSpec("M", "I", [Waypoint(float(lat), float(lon), 60.0)], GeoPoint(float(lat), float(lon)),
                       18.0, 0.0, [Waypoint(home.latitude, home.longitude, 60.0)])
    seq = MissionSequencer(spec, SequencerConfig())
    t = Telemetry(now_s=0.0, connected=True, mode="AUTO.LOITER", landed_state=1, latitude=home.latitude,
                  longitude=home.longitude, altitude_rel_m=0.0, gps_fix=True, battery_fraction=1.0, home=home,
                  last_state_s=0.0, last_position_s=0.0)
    # Through arming and take-off by the public interface, to transit in OFFBOARD.
    for step in range(100):
        t.now_s = t.last_state_s = t.last_position_s = step * 0.1
        for request in seq.update(t):
            seq.on_request_done(request, True)
            if request.kind == "arm":
                t.armed = True
            elif request.kind == "takeoff":
                t.landed_state, t.altitude_rel_m = 2, 2.5
            else:
                t.mode = request.mode
        if seq.phase == Phase.TRANSIT and t.mode == "OFFBOARD":
            break
    assert seq.phase == Phase.TRANSIT and t.mode == "OFFBOARD", (seq.phase, t.mode, seq.reason)
    samples = []
    for i in range(updates):
        t.now_s = t.last_state_s = t.last_position_s = 10.0 + i * 0.1
        start = time.perf_counter()
        seq.update(t)
        samples.append(time.perf_counter() - start)
    return {"updates": updates, "mean_us": statistics.fmean(samples) * 1e6,
            "p99_us": float(np.percentile(samples, 99) * 1e6)}


def bench_call_validation(calls: int = 20000) -> dict:
    """Calls checked per second by intake's field-by-field validation and launch policy."""
    from dfr_common.areas import load_areas
    from dfr_intake.calls import Call, CallRules, call_problems
    from dfr_intake.launch_policy import LaunchPolicy
    rules = CallRules(frozenset({"dangerous_driving", "protest"}),
                      load_areas(CONFIG / "airspace" / "operating_area.geojson")[0])
    policy = LaunchPolicy(frozenset({"I", "S"}), frozenset({"dangerous_driving"}), frozenset({"protest"}))
    rng = np.random.default_rng(1)
    batch = [Call(f"CAD-{i}", 1000.0, "I", "dangerous_driving", 51.5 + rng.normal(0, 0.05),
                  -0.1 + rng.normal(0, 0.05), 30.0) for i in range(calls)]
    start = time.perf_counter()
    for call in batch:
        if not call_problems(call, rules, 1000.0):
            policy.decide(call)
    elapsed = time.perf_counter() - start
    return {"calls": calls, "calls_per_s": calls / elapsed}


def bench_camera_islington(frames: int = 60, width: int = 640, height: int = 480) -> dict:
    """Frames per second one drone's camera renders over the Islington map, with the evening's traffic.

    The node's own path: the street map with generated buildings as texture, actors from the
    ground actor model, a drone crossing the borough at 60 m and 15 m/s, the gimbal down (on
    scene), oblique (tracking) and level (transit, as the camera policy asks).
    """
    from dfr_common.fleet import load_fleet
    from dfr_sim.camera_node import ground_texture_of
    from dfr_sim.camera_renderer import CameraModel, CameraRenderer, gimbal_to_world_rotation
    from dfr_sim.ground_actors import BackgroundTraffic, GroundActors
    from dfr_sim.ground_world import load_world

    frame = load_fleet(CONFIG / "fleet" / "islington.yaml").site_frame()
    start = time.perf_counter()
    street_map = load_world(str(CONFIG / "world" / "islington.geojson"), frame, with_buildings=True, seed=1)
    renderer = CameraRenderer(ground_texture_of(street_map, 1, 0.25), CameraModel(width, height, math.radians(80)))
    setup_s = time.perf_counter() - start
    actors = GroundActors(street_map, [], BackgroundTraffic(cars=40, pedestrians=60, seed=7), seed=1)
    for step in range(50):
        actors.step(step * 0.1, 0.1)
    states = actors.states()
    result = {"width": width, "height": height, "frames": frames, "actors": len(states), "setup_s": setup_s,
              "buildings": len(street_map.buildings)}
    for view, pitch in (("down", -90.0), ("oblique", -30.0), ("level", 0.0)):
        times = []
        for k in range(frames):
            position = (-800.0 + 15.0 * 0.2 * k, 200.0, 60.0)        # 5 Hz frames at 15 m/s
            start = time.perf_counter()
            renderer.render(position, gimbal_to_world_rotation(0.0, pitch), states)
            times.append(time.perf_counter() - start)
        result[f"{view}_fps"] = 1.0 / statistics.fmean(times[1:])
        result[f"{view}_p99_ms"] = float(np.percentile(times[1:], 99) * 1e3)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def bench_camera_synthetic_10km(frames: int = 100) -> dict:
    """The renderer alone over a 10 km x 10 km synthetic town: its memory bound and speed."""
    from dfr_sim.camera_bench import benchmark_render
    return benchmark_render(frames=frames)


def bench_intake_burst(calls: int = 10000, in_flight: int = 8) -> dict:
    """A burst of calls through ReportIncident: accepted calls per second, ack to publication, nothing lost.

    The client keeps `in_flight` requests outstanding, as a CAD link with a connection pool
    would, and asks again after a second without an answer, as CAD retries (a service
    reply can be dropped when more are outstanding than the reply history holds). Every
    call is journalled (synced) before its answer; the check at the end is that every
    acknowledged call is on /dfr/incidents and in the journal, once.
    """
    import tempfile

    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    from dfr_common.ros import qos
    from dfr_common.ros.node_main import make_executor
    from dfr_intake.intake_node import IntakeNode
    from dfr_intake.journal import Journal
    from dfr_interfaces.msg import Call, Incident
    from dfr_interfaces.srv import ReportIncident

    context = Context()
    rclpy.init(args=["--ros-args", "--params-file", str(CONFIG / "intake.yaml")], context=context)
    journal_dir = tempfile.mkdtemp(prefix="dfr_bench_journal_")
    journal_file = str(Path(journal_dir) / "journal.sqlite")
    try:
        intake = IntakeNode(context=context, namespace="dfr", parameter_overrides=[
            Parameter("journal_file", value=journal_file), Parameter("incident_history_depth", value=100000),
            Parameter("operating_area_file", value=str(CONFIG / "airspace" / "operating_area.geojson"))])
        client_node = rclpy.create_node("bench_cad", context=context)
        client = client_node.create_client(ReportIncident, "/dfr/report_incident")
        published: dict[str, float] = {}
        client_node.create_subscription(
            Incident, "/dfr/incidents",
            lambda m: [published.setdefault(c.cad_ref, time.perf_counter()) for c in m.calls], qos.incidents(100000))
        executor = make_executor(context)
        executor.add_node(intake)
        executor.add_node(client_node)
        rng = np.random.default_rng(3)
        categories = ["dangerous_driving", "robbery", "assault", "burglary", "noise", "protest", "fire"]
        acked: dict[str, float] = {}
        refused = []
        pending: dict[object, tuple[str, object, float]] = {}
        sent = retries = 0
        while not client.wait_for_service(timeout_sec=0.1):
            executor.spin_once(timeout_sec=0.01)
        start = time.perf_counter()
        while len(acked) + len(refused) < calls:
            while sent < calls and len(pending) < in_flight:
                stamp = client_node.get_clock().now().to_msg()
                call = Call(cad_ref=f"BENCH-{sent:06d}", call_time=stamp, grade=str(rng.choice(["I", "S", "E"])),
                            category=str(rng.choice(categories)), latitude=51.50 + rng.uniform(-0.08, 0.08),
                            longitude=-0.12 + rng.uniform(-0.15, 0.15), location_uncertainty_m=50.0)
                request = ReportIncident.Request(call=call)
                pending[client.call_async(request)] = (call.cad_ref, request, time.monotonic())
                sent += 1
            executor.spin_once(timeout_sec=0.01)
            for future in [f for f in pending if f.done()]:
                ref, _, _ = pending.pop(future)
                (acked.__setitem__(ref, time.perf_counter()) if future.result().accepted else refused.append(ref))
            for future, (ref, request, asked) in list(pending.items()):
                if time.monotonic() - asked > 1.0:         # unanswered: ask again; intake knows a repeat
                    del pending[future]
                    pending[client.call_async(request)] = (ref, request, time.monotonic())
                    retries += 1
        elapsed = time.perf_counter() - start
        deadline = time.monotonic() + 30
        while len(set(acked) - set(published)) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.01)
        # Negative: the incident reached a subscriber before the caller had its answer (intake
        # journals, publishes, then answers).
        lag = [published[r] - acked[r] for r in acked if r in published]
        executor.shutdown()
        intake.on_shutdown()           # its journal closed: now read it as a restart would
        intake.destroy_node()
        client_node.destroy_node()
        journal = Journal(journal_file)
        in_journal = {c.cad_ref for record in journal.replay().incidents.values() for c in record.calls}
        journal.close()
    finally:
        context.try_shutdown()
    return {"calls": calls, "in_flight": in_flight, "accepted": len(acked), "refused": len(refused), "retries": retries,
            "accepted_calls_per_s": len(acked) / elapsed,
            "ack_to_publication_p99_ms": float(np.percentile(lag, 99) * 1e3) if lag else math.nan,
            "acknowledged_not_published": len(set(acked) - set(published)),
            "acknowledged_not_in_journal": len(set(acked) - in_journal), "peak_rss_mb": peak_rss_mb()}


def bench_dispatch_city_evening() -> dict:
    """The seeded city evening through dispatch's decisions, planner against nearest-idle."""
    from dfr_bringup.city_bench import compare_policies
    return compare_policies(REPO / "config" / "scenarios" / "islington_evening.yaml", REPO / "config",
                            REPO / "config" / "fleet" / "islington.yaml")


def _dispatch_decisions(drones: int) -> dict:
    from dfr_dispatch.dispatch_bench import bench_decisions
    return bench_decisions(drones, 50, rounds=200 if drones <= 100 else 50)


def bench_dispatch_routes_london() -> dict:
    from dfr_dispatch.dispatch_bench import bench_routes
    return bench_routes(REPO / "config" / "airspace" / "london_restrictions.geojson")


def _detector(width: int, height: int, processing_width: int) -> dict:
    from dfr_perception.motion_detector import MotionDetectorConfig
    from dfr_perception.perception_bench import bench_detector
    return {"processing_width": processing_width,
            **bench_detector(width, height, frames=200, config=MotionDetectorConfig(processing_width=processing_width))}


def bench_tracker_20() -> dict:
    from dfr_perception.perception_bench import bench_tracker
    return bench_tracker(20, steps=3000)


def bench_perception_chase(duration_s: float = 90.0, seeds: tuple[int, ...] = (1, 2, 3, 4, 5, 6),
                           scenario: str = "config/scenarios/foundation_single_call.yaml",
                           fleet: str = "config/fleet/islington.yaml", arrival_s: float = 0.0) -> dict:
    """The e-bike chase, closed loop on the embedded simulator, scored against its ground truth, once per
    seed of the background traffic: the loop is sensitive to its first seconds, so one run says little."""
    import cv2
    import numpy as np

    from dfr_bringup.chase_eval import ChaseConfig, run_chase
    cv2.setNumThreads(1)
    runs = [run_chase(REPO / scenario, REPO / fleet, REPO / "config" / "world" / "islington.geojson",
                      ChaseConfig(duration_s=duration_s, seed=seed, arrival_s=arrival_s)) for seed in seeds]
    keys = ("target_in_view_fraction", "target_is_the_e_bike_fraction", "MOTA", "IDF1", "HOTA", "pipeline_fps")
    return {"scenario": scenario, "arrival_s": arrival_s, "seeds": list(seeds), "duration_s": duration_s,
            "frame_rate_hz": ChaseConfig.frame_rate_hz,
            "mean": {k: float(np.mean([r[k] for r in runs])) for k in keys},
            "min_target_in_view_fraction": float(min(r["target_in_view_fraction"] for r in runs)),
            "runs": runs}


BENCHMARKS = {
    "vehicle_model_9": lambda: bench_vehicle_model(9),
    "vehicle_model_50": lambda: bench_vehicle_model(50),
    "simulator_node_9_vehicles": lambda: bench_simulator_node(9),
    "simulator_node_50_vehicles": lambda: bench_simulator_node(50),
    "mission_sequencer_update": bench_mission_sequencer,
    "executor_wake_bridge_sized": bench_executor_wake,
    "call_validation": bench_call_validation,
    "camera_islington_640x480": bench_camera_islington,
    "intake_burst_10000": bench_intake_burst,
    "camera_synthetic_10km_640x480": bench_camera_synthetic_10km,
    "dispatch_city_evening": bench_dispatch_city_evening,
    "dispatch_decision_9_drones": lambda: _dispatch_decisions(9),
    "dispatch_decision_100_drones": lambda: _dispatch_decisions(100),
    "dispatch_decision_500_drones": lambda: _dispatch_decisions(500),
    "dispatch_routes_london": bench_dispatch_routes_london,
    "perception_detector_640x480": lambda: _detector(640, 480, 640),
    "perception_detector_1280x720": lambda: _detector(1280, 720, 640),
    "perception_detector_1280x720_full": lambda: _detector(1280, 720, 1280),
    "perception_tracker_20_tracks": bench_tracker_20,
    "perception_chase": bench_perception_chase,
    # As in the graph: the drone is on scene a minute after the rider set off on the short evening's loop.
    "perception_chase_after_arrival": lambda: bench_perception_chase(
        seeds=(1, 2, 3, 4), scenario="tests/fixtures/scenario_evening_short.yaml",
        fleet="tests/fixtures/fleet_two_bases.yaml", arrival_s=60.0),
    # As in make demo: the evening peak's rider on his Upper Street loop, turning back at each end; the drone
    # on scene 100 s after he set off.
    "perception_chase_evening_peak": lambda: bench_perception_chase(
        duration_s=200.0, scenario="config/scenarios/islington_evening_peak.yaml", arrival_s=100.0),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=REPO / "runs" / "bench")
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all): {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for name in args.names or BENCHMARKS:
        result = {"benchmark": name, "machine": machine(), **BENCHMARKS[name]()}
        (args.output_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        shown = {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in result.items() if k != "machine"}
        print(json.dumps(shown), flush=True)
    print(f"results in {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Scores perception, tracking and follow against the simulator's ground truth: the chase,
closed loop, without ROS in between.

A drone starts on scene over a scenario's incident. Each frame, the simulator's ground
actors move, the embedded renderer draws what the drone's camera sees, the perception
pipeline finds and tracks what moves and keeps a target chosen from the incident's
words, and the follow controller says where the drone and its gimbal go next; a simple
multirotor (speed and acceleration limits, a gimbal that slews) flies there. The truth
is where every actor's box falls in the image and on the ground.

Reported: MOTA, IDF1 and HOTA (trackeval's CLEAR, Identity and HOTA, over the actors that
move: a motion detector cannot see what stands still), the share of the chase with the
target in view, and the geolocation error of the target and of all matched tracks.

    python -m dfr_bringup.chase_eval --scenario config/scenarios/foundation_single_call.yaml
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from dfr_common.camera_geometry import gimbal_to_world_rotation, project
from dfr_common.config_file import load_yaml
from dfr_common.fleet import load_fleet
from dfr_common.mount import mount_angles_to
from dfr_follow.follow_controller import (
    FollowConfig,
    FollowController,
    FollowState,
    TargetObservation,
    target_in_view,
)
from dfr_perception.detection import iou_matrix
from dfr_perception.motion_detector import MotionDetector, config_for_frame_rate
from dfr_perception.pipeline import CameraPose, PerceptionPipeline, TargetKeeper
from dfr_perception.target_selection import TargetCriteria
from dfr_perception.tracker import TrackerConfig
from dfr_sim.camera_node import ground_texture_of
from dfr_sim.camera_renderer import CameraModel, CameraRenderer, RenderConfig
from dfr_sim.ground_world import ground_actors, load_world

REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class ChaseConfig:
    duration_s: float = 120.0
    frame_rate_hz: float = 5.0                  # the graph's camera rate_hz and perception max_rate_hz
    width: int = 640
    height: int = 480
    horizontal_fov_deg: float = 80.0
    processing_width: int = 640                 # the motion detector's working width: a 2 m e-bike at 50 m is ~12 px
    high_score: float = 0.35                    # the tracker's split of motion blobs (config/perception.yaml)
    new_track_score: float = 0.4
    start_height_m: float = 40.0                # the bridge's on_scene_height_m
    lead_in_s: float = 5.0                      # on scene, watching, before the actors start (detector warm-up)
    arrival_s: float = 0.0                      # the actors move this long before the drone is on scene (its flight)
    max_speed_m_s: float = 15.0
    max_accel_m_s2: float = 4.0
    gimbal_slew_deg_s: float = 30.0             # of the gimbal against the nose (the bridge's limit is in the world)
    # Frames between the follow controller's command and the drone flying it. 0: at once. In the graph a
    # setpoint goes from follow through the bridge to the autopilot, and the pose follow works from is
    # MAVROS's last report, so the drone answers a frame or two late.
    command_delay_frames: int = 0
    # Frames between an image and its sighting reaching the follow controller, which then steers at once
    # from the sighting carried on to its own time: the graph's lockstep lets sim time run a tick ahead
    # of perception, so most sightings come a frame after their image.
    observation_delay_frames: int = 0
    # Where the drone comes on scene, east and north of the incident (m). The graph's drone arrives on its
    # orbit round the incident, on the side it flew in from, and looks at the incident from there.
    start_offset_m: tuple[float, float] = (0.0, -30.0)
    gps_error_m: float = 0.0                    # a constant offset of the drone's reported position
    min_visible_px: float = 4.0                 # a truth box smaller than this is not counted
    moving_speed_m_s: float = 0.5               # actors slower than this are not in the tracking truth
    seed: int = 7


def _cuboid(position, heading, length, width, height) -> np.ndarray:
    c, s = math.cos(heading), math.sin(heading)
    corners = []
    for dx in (-length / 2, length / 2):
        for dy in (-width / 2, width / 2):
            for z in (0.0, height):
                corners.append((position[0] + c * dx - s * dy, position[1] + s * dx + c * dy, z))
    return np.array(corners)


def truth_boxes(camera: CameraModel, position, rotation, actors, config: ChaseConfig):
    """Image boxes of the actors the camera sees: {actor id: (box, ground xy, moving)}."""
    out = {}
    for a in actors:
        uv, inside = project(camera, position, rotation, _cuboid(a.position, a.heading, a.length_m, a.width_m,
                                                                 a.height_m))
        if not np.isfinite(uv).all():
            continue
        x0, y0 = np.clip(uv.min(axis=0), 0, (camera.width - 1, camera.height - 1))
        x1, y1 = np.clip(uv.max(axis=0), 0, (camera.width - 1, camera.height - 1))
        if x1 - x0 < config.min_visible_px or y1 - y0 < config.min_visible_px:
            continue
        out[a.id] = ((float(x0), float(y0), float(x1), float(y1)), np.array(a.position[:2], dtype=float),
                     a.speed_m_s >= config.moving_speed_m_s)
    return out


class _Drone:
    """A point-mass multirotor with a slewing gimbal: enough to close the follow loop."""

    def __init__(self, position, config: ChaseConfig):
        self.position = np.array(position, dtype=float)
        self.velocity = np.zeros(3)
        self.heading = math.pi / 2
        self.pitch, self.yaw = -60.0, 0.0
        self.config = config

    def step(self, dt: float, setpoint, feed_forward, heading, pitch, yaw) -> None:
        cfg = self.config
        error = np.asarray(setpoint, float) - self.position
        wanted = np.asarray(feed_forward, float) + 0.8 * error
        speed = np.linalg.norm(wanted[:2])
        if speed > cfg.max_speed_m_s:
            wanted[:2] *= cfg.max_speed_m_s / speed
        dv = wanted - self.velocity
        limit = cfg.max_accel_m_s2 * dt
        if np.linalg.norm(dv) > limit:
            dv *= limit / np.linalg.norm(dv)
        self.velocity += dv
        self.position += self.velocity * dt
        if math.isfinite(heading):
            turn = (heading - self.heading + math.pi) % (2 * math.pi) - math.pi
            self.heading += max(-1.5 * dt, min(1.5 * dt, turn))
        slew = cfg.gimbal_slew_deg_s * dt
        self.pitch += max(-slew, min(slew, pitch - self.pitch))
        yaw_error = (yaw - self.yaw + 180.0) % 360.0 - 180.0
        self.yaw += max(-slew, min(slew, yaw_error))


def _delayed(queue: deque, item, frames: int):
    """`item` in, and what came in `frames` frames ago out (None until then)."""
    queue.append(item)
    return queue.popleft() if len(queue) > frames else None


def _trackeval(gt_ids, tr_ids, similarity) -> dict:
    """MOTA, IDF1 and HOTA by trackeval's own metrics, from per-frame ids and IoU matrices."""
    with contextlib.redirect_stdout(io.StringIO()):       # trackeval prints about its optional datasets
        from trackeval.metrics import CLEAR, HOTA, Identity
    gt_map = {g: i for i, g in enumerate(sorted({g for ids in gt_ids for g in ids}))}
    tr_map = {t: i for i, t in enumerate(sorted({t for ids in tr_ids for t in ids}))}
    data = {"num_timesteps": len(gt_ids), "num_gt_ids": len(gt_map), "num_tracker_ids": len(tr_map),
            "num_gt_dets": sum(len(x) for x in gt_ids), "num_tracker_dets": sum(len(x) for x in tr_ids),
            "gt_ids": [np.array([gt_map[g] for g in ids], dtype=int) for ids in gt_ids],
            "tracker_ids": [np.array([tr_map[t] for t in ids], dtype=int) for ids in tr_ids],
            "similarity_scores": similarity}
    out = {}
    with contextlib.redirect_stdout(io.StringIO()):
        clear = CLEAR({"THRESHOLD": 0.3, "PRINT_CONFIG": False}).eval_sequence(data)
        identity = Identity({"THRESHOLD": 0.3, "PRINT_CONFIG": False}).eval_sequence(data)
        hota = HOTA().eval_sequence(data)
    out["MOTA"] = float(clear["MOTA"])
    out["IDF1"] = float(identity["IDF1"])
    out["HOTA"] = float(np.mean(hota["HOTA"]))
    out["id_switches"] = int(clear["IDSW"])
    out["truth_boxes"], out["track_boxes"] = data["num_gt_dets"], data["num_tracker_dets"]
    return out


def run_chase(scenario_file: Path, fleet_file: Path, world_file: Path, config: ChaseConfig = ChaseConfig(),
              target_kind: str = "ebike", trace: list | None = None) -> dict:
    """The chase's scores; with `trace`, a record per frame is appended to it (where the suspect is, whether
    the detector and the tracker found it, and what the target and the follow controller were doing)."""
    scenario = load_yaml(scenario_file, ValueError, "scenario")
    fleet = load_fleet(fleet_file)
    frame = fleet.site_frame()
    street = load_world(str(world_file), frame, with_buildings=True, seed=1)
    actors = ground_actors(street, scenario, frame, config.seed, str(scenario_file))
    if actors is None:
        raise ValueError(f"{scenario_file} has no actors to chase")
    call = (scenario.get("calls") or [{}])[0]
    incident_xy = np.array(frame.to_enu(float(call["latitude"]), float(call["longitude"]))[:2], dtype=float)
    camera = CameraModel(config.width, config.height, math.radians(config.horizontal_fov_deg))
    renderer = CameraRenderer(ground_texture_of(street, 1, 0.25), camera, RenderConfig(noise_std=1.5))
    k = camera.k
    pipeline = PerceptionPipeline(MotionDetector(config_for_frame_rate(config.frame_rate_hz,
                                                                       processing_width=config.processing_width)),
                                  TrackerConfig(high_score=config.high_score, new_track_score=config.new_track_score))
    keeper = TargetKeeper()
    keeper.set_incident(TargetCriteria.from_incident(call.get("category", ""), call.get("description", ""),
                                                     call.get("suspect_description", "")), incident_xy)
    follow = FollowController(FollowConfig(height_m=config.start_height_m))
    east, north = config.start_offset_m
    if not (math.isfinite(east) and math.isfinite(north)):
        raise ValueError(f"start_offset_m must be finite metres, got {config.start_offset_m}")
    drone = _Drone((incident_xy[0] + east, incident_xy[1] + north, config.start_height_m), config)
    drone.pitch, drone.yaw = mount_angles_to(drone.position, drone.heading, incident_xy)
    gps_offset = np.array([config.gps_error_m, 0.0, 0.0])

    dt = 1.0 / config.frame_rate_hz
    for name in ("command_delay_frames", "observation_delay_frames"):
        if getattr(config, name) < 0:
            raise ValueError(f"{name} must be 0 or more, got {getattr(config, name)}")
    commands: deque = deque()
    observations: deque = deque()
    gt_ids, tr_ids, similarity = [], [], []
    in_view, target_errors, track_errors, correct_target = [], [], [], []
    timings = []
    actors.step(0.0, 0.0)
    arrival_steps = int(round(config.arrival_s * config.frame_rate_hz))
    for n in range(arrival_steps):
        actors.step((n + 1) * dt, dt)
    lead_in = int(round(config.lead_in_s * config.frame_rate_hz))
    steps = int(round(config.duration_s * config.frame_rate_hz))
    for n in range(-lead_in, steps):
        t = (arrival_steps + n) * dt
        if n > 0:
            actors.step(t, dt)
        states = actors.states()
        rotation = gimbal_to_world_rotation(drone.heading, drone.pitch, 0.0, drone.yaw)
        image = renderer.render(drone.position, rotation, states)
        began = time.perf_counter()
        pose = CameraPose(tuple(drone.position + gps_offset), drone.heading, drone.pitch, drone.yaw)
        tracks = pipeline.process(image, t, pose, k)
        target = keeper.update(t, tracks)
        observation = None
        if target.state == "tracking":
            observation = TargetObservation(t, tuple(target.track.position_xy), tuple(
                np.nan_to_num(target.track.velocity_xy)), str(target.track.track_id))
        seen = _delayed(observations, observation, config.observation_delay_frames)
        command = follow.update(t, drone.position, drone.heading, seen)
        timings.append(time.perf_counter() - began)
        if n < 0:
            continue
        # the truth of this frame
        truth = truth_boxes(camera, drone.position, rotation, states, config)
        moving = {i: v for i, v in truth.items() if v[2]}
        live = [tr for tr in tracks if tr.state == "confirmed"]
        gt_ids.append(list(moving))
        tr_ids.append([tr.track_id for tr in live])
        if moving and live:
            sim = iou_matrix(np.array([v[0] for v in moving.values()]), np.array([tr.box for tr in live]))
        else:
            sim = np.zeros((len(moving), len(live)))
        similarity.append(sim)
        if sim.size:
            rows, cols = linear_sum_assignment(-sim)
            for r, c in zip(rows, cols):
                if sim[r, c] >= 0.3 and live[c].placed:
                    track_errors.append(float(np.hypot(*(live[c].position_xy - list(moving.values())[r][1]))))
        bike = next((a for a in states if a.kind == target_kind), None)
        if bike is not None:
            bike_xy = np.array(bike.position[:2])
            in_view.append(bool(target_in_view(k, camera.width, camera.height, drone.position, rotation, bike_xy)))
            if target.state == "tracking":
                target_errors.append(float(np.hypot(*(target.track.position_xy - bike_xy))))
                ids = [i for i, v in truth.items() if i == bike.id]
                correct_target.append(bool(ids) and float(iou_matrix(np.array([truth[bike.id][0]]),
                                                                     np.array([target.track.box]))[0, 0]) >= 0.1)
        if trace is not None:
            trace.append(_trace_record(t, drone, truth.get(bike.id) if bike is not None else None,
                                       pipeline.last_detections, live, target, command,
                                       bike.position[:2] if bike is not None else None))
        flown = _delayed(commands, command, config.command_delay_frames)
        if flown is None or flown.state is FollowState.ACQUIRING:
            # No target yet: the follow node sends nothing, and the bridge's on-scene orbit keeps the camera
            # on the incident; here the drone holds and looks at it.
            pitch, yaw = mount_angles_to(drone.position, drone.heading, incident_xy)
            drone.step(dt, drone.position, np.zeros(3), math.nan, pitch, yaw)
        else:
            drone.step(dt, flown.setpoint_enu, flown.velocity_enu, flown.heading_rad,
                       flown.gimbal_pitch_deg, flown.gimbal_yaw_deg)
    metrics = _trackeval(gt_ids, tr_ids, similarity)
    ms = np.array(timings) * 1e3
    return {
        "scenario": str(scenario_file), "duration_s": config.duration_s, "frames": steps,
        "image": f"{config.width}x{config.height}", "gps_error_m": config.gps_error_m,
        **metrics,
        "target_in_view_fraction": float(np.mean(in_view)) if in_view else math.nan,
        "target_tracked_fraction": len(target_errors) / len(in_view) if in_view else math.nan,
        "target_is_the_e_bike_fraction": float(np.mean(correct_target)) if correct_target else math.nan,
        "target_geolocation_error_m": _summary(target_errors),
        "track_geolocation_error_m": _summary(track_errors),
        "pipeline_ms": {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))},
        "pipeline_fps": float(1e3 / np.mean(ms)),
    }


def _trace_record(t: float, drone, suspect_truth, detections, live, target, command, suspect_xy=None) -> dict:
    record = {"t": round(t, 2), "drone": [round(float(v), 1) for v in drone.position],
              "suspect_xy": None if suspect_xy is None else [round(float(v), 1) for v in suspect_xy],
              "gimbal": [round(drone.pitch, 1), round(drone.yaw, 1)], "suspect_box": None,
              "suspect_detected": False, "suspect_track": None, "target": target.state,
              "target_track": target.track.track_id if target.track is not None else None,
              "follow": command.state.value, "detections": len(detections), "tracks": len(live),
              "look_at": [round(float(v), 1) for v in command.look_at_xy], "target_xy": None, "target_v": None}
    if target.track is not None:
        record["target_xy"] = [round(float(v), 1) for v in target.track.position_xy]
        record["target_v"] = [round(float(v), 1) for v in np.nan_to_num(target.track.velocity_xy)]
    if suspect_truth is not None:
        box = np.array([suspect_truth[0]])
        record["suspect_box"] = [round(v, 1) for v in suspect_truth[0]]
        if detections:
            record["suspect_detected"] = bool((iou_matrix(box, detections) > 0.05).any())
        if live:
            overlap = iou_matrix(box, np.array([tr.box for tr in live]))[0]
            if overlap.max() > 0.05:
                record["suspect_track"] = live[int(overlap.argmax())].track_id
    return record


def _summary(values) -> dict:
    if not values:
        return {"p50": math.nan, "p90": math.nan, "samples": 0}
    return {"p50": float(np.percentile(values, 50)), "p90": float(np.percentile(values, 90)),
            "samples": len(values)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", type=Path, default=REPO / "config" / "scenarios" / "foundation_single_call.yaml")
    parser.add_argument("--fleet", type=Path, default=REPO / "config" / "fleet" / "islington.yaml")
    parser.add_argument("--world", type=Path, default=REPO / "config" / "world" / "islington.geojson")
    parser.add_argument("--duration", type=float, default=120.0, help="sim seconds of chase")
    parser.add_argument("--gps-error", type=float, default=0.0, help="metres of position error in the pose")
    parser.add_argument("--seed", type=int, default=7, help="seed of the background traffic")
    parser.add_argument("--frame-rate", type=float, default=ChaseConfig.frame_rate_hz,
                        help="images per second the pipeline sees (the graph's perception max_rate_hz)")
    parser.add_argument("--arrival", type=float, default=0.0,
                        help="sim seconds the actors move before the drone is on scene (in the graph: its flight)")
    parser.add_argument("--height", type=float, default=ChaseConfig.start_height_m, help="the drone's height on scene")
    parser.add_argument("--command-delay", type=int, default=0, metavar="FRAMES",
                        help="frames between the follow controller's command and the drone flying it (the graph's "
                             "drone answers a frame or two late)")
    parser.add_argument("--observation-delay", type=int, default=0, metavar="FRAMES",
                        help="frames between an image and its sighting reaching the follow controller (the graph's "
                             "lockstep lets sim time run a frame ahead of perception)")
    parser.add_argument("--start-offset", type=float, nargs=2, default=ChaseConfig.start_offset_m,
                        metavar=("EAST", "NORTH"), help="where the drone comes on scene, from the incident (m)")
    parser.add_argument("--output", type=Path, help="write the result as JSON here")
    parser.add_argument("--trace", type=Path, help="write a JSON line per frame here: the suspect, its detection, "
                                                    "its track, the target and the follow state")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    trace = [] if args.trace else None
    result = run_chase(args.scenario, args.fleet, args.world,
                       ChaseConfig(duration_s=args.duration, gps_error_m=args.gps_error, frame_rate_hz=args.frame_rate,
                                   seed=args.seed, arrival_s=args.arrival, start_height_m=args.height,
                                   command_delay_frames=args.command_delay,
                                   observation_delay_frames=args.observation_delay,
                                   start_offset_m=tuple(args.start_offset)), trace=trace)
    if args.trace:
        args.trace.parent.mkdir(parents=True, exist_ok=True)
        args.trace.write_text("".join(json.dumps(r) + "\n" for r in trace))
    text = json.dumps(result, indent=2)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

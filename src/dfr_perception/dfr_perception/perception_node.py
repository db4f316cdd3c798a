"""The perception node: each drone's video in, tracks on the ground and the drone's target out.

One node serves the fleet. A drone's camera is read only while it is on scene or
following (so the simulator's lazy cameras render only then); its images go through
dfr_perception.pipeline with the pose MAVROS reports (position, height above home,
heading) and the gimbal's orientation at the image's stamp: the camera's own stamped
attitude where it sends one (`<vehicle>/camera/mount_orientation`), else MAVROS's
unstamped mount orientation placed by when it arrived. Out, per drone:
`<vehicle>/perception/tracks` (every track, live views only: never recorded) and
`<vehicle>/perception/target` (the one track the mission record keeps), plus, when
asked, `<vehicle>/perception/image_redacted` with everything but the target blurred.
The target is chosen from the incident's description, by an operator through
`/dfr/perception/select_target`, or handed over from the drone a relief replaces.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import numpy as np
from geographic_msgs.msg import GeoPoint as GeoPointMsg
from geometry_msgs.msg import Quaternion, QuaternionStamped, Vector3
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from dfr_common.angle_history import AngleHistory
from dfr_common.fleet import fleet_and_vehicle_ids
from dfr_common.mission import Phase
from dfr_common.ros import qos
from dfr_common.ros.lazy_subscriptions import LazySubscriptions
from dfr_common.ros.lean_node import LeanNode
from dfr_common.ros.mount_orientation import mount_degrees
from dfr_common.ros.node_main import run
from dfr_common.ros.parameters import Param, declare, documented_config, documented_params
from dfr_common.ros.stamps import from_seconds, to_seconds
from dfr_common.ros.vehicle_pose import VehiclePose
from dfr_common.sampling import sample_due
from dfr_interfaces.msg import Incident, Target, Track, TrackArray, VehicleStatus
from dfr_interfaces.srv import SelectTarget
from dfr_perception.dnn_detector import DnnDetectorConfig, make_detector
from dfr_perception.motion_detector import config_for_frame_rate
from dfr_perception.pipeline import CameraPose, GroundTrack, PerceptionPipeline, TargetKeeper, TargetKeeperConfig
from dfr_perception.privacy import PrivacyConfig, blur_except
from dfr_perception.target_selection import PERSON, TargetCriteria, can_look_for
from dfr_perception.track_markers import PlacedTrack, track_markers
from dfr_perception.tracker import TrackerConfig

_WATCHING = (Phase.ON_SCENE.value, Phase.FOLLOW.value)


@dataclass
class _Drone:
    """One drone's pipeline and what MAVROS last said about its pose."""

    vehicle_id: str
    pipeline: PerceptionPipeline
    keeper: TargetKeeper
    pose: VehiclePose = field(default_factory=VehiclePose)
    gimbal_deg: tuple[float, float, float] = (math.nan, math.nan, math.nan)   # roll, pitch, yaw (MOUNT)
    gimbals: AngleHistory = field(default_factory=AngleHistory)   # the same, by stamp (or arrival: MAVROS's)
    camera_attitude: bool = False   # the camera stamps its attitude: MAVROS's unstamped one is not needed
    attitude_late: int = 0          # images processed before their stamped attitude came
    k: np.ndarray | None = None
    status: VehicleStatus | None = None
    image_subscription: object = None
    camera: LazySubscriptions | None = None     # gimbal attitude and camera_info: held while its mission is watched
    last_processed_s: float = -math.inf
    last_redacted_s: float = -math.inf
    tracks: list[GroundTrack] = field(default_factory=list)
    frames: int = 0                 # images processed since it started watching
    images: int = 0                 # images received since then
    watching_since_s: float = math.nan


class PerceptionNode(LeanNode):
    def __init__(self, **kwargs):
        super().__init__("perception", **kwargs)
        p = self.params = declare(self, [
            Param("fleet_file", "", "path of the fleet file (config/fleet/*.yaml)"),
            Param("vehicles", [], "vehicle ids to watch; empty: every vehicle of the fleet"),
            Param("mavros_namespace", "mavros", "each vehicle's MAVROS namespace, under the vehicle's"),
            Param("detector", "motion", "'motion' (ego-motion compensated differencing) or 'dnn' (the ONNX model "
                  "at dnn_model_path; without one the motion detector stands in, and the log says so)"),
            Param("dnn_model_path", "", "ONNX detector model (YOLOv5/YOLOv8 layout); none ships with the project"),
            Param("processing_width", 640, "the motion detector shrinks wider images to this: at 640 a 2 m e-bike "
                  "seen from 50 m is about 12 px", 64, 4096),
            Param("tracker_high_score", 0.35, "detections at least this confident are matched first", 0.0, 1.0),
            Param("tracker_new_track_score", 0.4, "an unmatched detection at least this confident starts a track "
                  "(a dark e-bike on a dark road scores 0.4 to 0.55 with the motion detector)", 0.0, 1.0),
            Param("max_rate_hz", 10.0, "images processed per sim second per drone at most; others are skipped "
                  "(the camera should send at least this many)", 0.1, 60.0),
            Param("image_queue_depth", 1, "images of a drone waiting to be read, at most: 1 reads the newest "
                  "and drops what came while busy, as on a drone; with the simulator's lockstep, deep enough for "
                  "every image it lets perception fall behind by (frame_sync_s x the camera's rate, plus one)",
                  1, 100),
            Param("motion_reference_lags_s", [0.2, 0.4, 0.6], "how far back the motion detector compares each "
                  "image, seconds (frames at max_rate_hz)"),
            Param("motion_warm_up_s", 3.0, "after a start or a lost camera motion, how long before the motion "
                  "detector trusts its background, seconds", 0.1, 60.0),
            Param("publish_redacted_image", False, "publish <vehicle>/perception/image_redacted: everything but "
                  "the target blurred, for any recording of the video"),
            Param("redaction", "blur", "'blur' or 'pixelate' for the redacted image"),
            Param("redacted_image_rate_hz", 0.0, "redacted images per sim second per drone at most (the recording's "
                  "rate: blurring and sending every image costs as much as reading it); 0 for every image read",
                  0.0, 60.0),
            Param("incident_history_depth", 1000, "depth of the latched incident subscription", 10, 100000),
            Param("watch", "all", "'all': read the camera of every drone on scene; 'described': only of drones "
                  "whose incident's words say what to look for (a suspect on an e-bike, on foot, in a car) and the "
                  "detector can find it (the motion detector no person): on a small computer, the CPU goes to the "
                  "chases"),
            # How each drone keeps its target: choice, loss and re-acquisition (target.reacquire_radius_m, ...).
            *documented_params(TargetKeeperConfig, "target"),
        ])
        if p.watch not in ("all", "described"):
            raise ValueError(f"parameter 'watch' is '{p.watch}': use 'all' or 'described'")
        fleet, vehicle_ids = fleet_and_vehicle_ids(p.fleet_file, p.vehicles)
        if p.redaction not in ("blur", "pixelate"):
            raise ValueError(f"parameter 'redaction' is '{p.redaction}': use 'blur' or 'pixelate'")
        self.privacy = PrivacyConfig(method=p.redaction)
        self.incidents: dict[str, Incident] = {}
        self.drones: dict[str, _Drone] = {}
        self.pubs = {}
        warned = False
        for vehicle_id in vehicle_ids:
            motion = config_for_frame_rate(p.max_rate_hz, tuple(p.motion_reference_lags_s), p.motion_warm_up_s,
                                           processing_width=p.processing_width)
            detector, warning = make_detector(
                p.detector, motion,
                DnnDetectorConfig(model_path=p.dnn_model_path) if p.detector == "dnn" else None)
            if warning and not warned:
                self.get_logger().warning(warning)
                warned = True
            tracking = TrackerConfig(high_score=p.tracker_high_score, new_track_score=p.tracker_new_track_score)
            keeper = TargetKeeper(documented_config(TargetKeeperConfig, p, "target"))
            drone = self.drones[vehicle_id] = _Drone(vehicle_id, PerceptionPipeline(detector, tracking), keeper)
            ns, mavros = f"/{vehicle_id}", f"/{vehicle_id}/{p.mavros_namespace}"
            drone.pose.subscribe(self, mavros, moving=False)     # followed while its camera is read
            sub = self.create_subscription
            sub(VehicleStatus, f"{ns}/vehicle_status", lambda m, d=drone: self._on_status(d, m), qos.LATCHED_STATE)
            drone.camera = LazySubscriptions(self, [
                (QuaternionStamped, f"{ns}/camera/mount_orientation",
                 lambda m, d=drone: self._on_camera_attitude(d, m), qos.RELIABLE),
                (Quaternion, f"{mavros}/mount_control/orientation", lambda m, d=drone: self._on_gimbal(d, m),
                 qos.RELIABLE),
                (CameraInfo, f"{ns}/camera/camera_info", lambda m, d=drone: self._on_camera_info(d, m),
                 qos.SENSOR_DATA)])
            self.pubs[vehicle_id] = (
                self.create_publisher(TrackArray, f"{ns}/perception/tracks", qos.SENSOR_DATA),
                self.create_publisher(Target, f"{ns}/perception/target", qos.RELIABLE),
                self.create_publisher(Image, f"{ns}/perception/image_redacted", qos.SENSOR_DATA)
                if p.publish_redacted_image else None)
        self.create_subscription(Incident, "incidents", self._on_incident, qos.incidents(p.incident_history_depth))
        self.create_service(SelectTarget, "perception/select_target", self._on_select)
        self.site_frame = fleet.site_frame()
        self.markers_pub = self.create_publisher(MarkerArray, "perception/markers", qos.RELIABLE)
        # The newest image done per drone: a simulator running faster than real time waits for it.
        self.frames_done_pub = self.create_publisher(Header, "perception/frames_done", qos.RELIABLE)
        self.get_logger().info(f"perception on {len(self.drones)} drones with the {p.detector} detector")

    # ----------------------------------------------------------------- inputs
    def _on_incident(self, msg: Incident):
        known = self.incidents.get(msg.incident_id)
        if known is None or msg.revision >= known.revision:
            self.incidents[msg.incident_id] = msg

    def _on_gimbal(self, drone: _Drone, msg: Quaternion):
        if not drone.camera_attitude:
            self._note_gimbal(drone, self.get_clock().now().nanoseconds * 1e-9, msg)

    def _on_camera_attitude(self, drone: _Drone, msg: QuaternionStamped):
        if not drone.camera_attitude:
            drone.camera_attitude = True
            drone.gimbals.clear()            # arrival-timed samples would be out of step with stamped ones
        self._note_gimbal(drone, to_seconds(msg.header.stamp), msg.quaternion)

    @staticmethod
    def _note_gimbal(drone: _Drone, when_s: float, attitude: Quaternion):
        drone.gimbal_deg = mount_degrees(attitude)
        drone.gimbals.add(when_s, *drone.gimbal_deg)

    def _on_camera_info(self, drone: _Drone, msg: CameraInfo):
        k = np.asarray(msg.k, dtype=float).reshape(3, 3)
        if np.isfinite(k).all() and k[0, 0] > 0 and k[1, 1] > 0:
            drone.k = k

    def _on_status(self, drone: _Drone, msg: VehicleStatus):
        before = drone.status
        drone.status = msg
        if before is None or before.mission_id != msg.mission_id:
            self._start_mission(drone, msg)
        elif msg.mission_id and (drone.keeper.criteria is None or drone.keeper.incident_xy is None):
            # The mission was heard of before its incident (two topics, no order between them), or before the
            # drone's home: without what to look for, its camera would never be read.
            self._learn_incident(drone, msg)
        described = self._can_look_for(drone)
        watched_mission = bool(msg.mission_id) and (self.params.watch == "all" or described)
        watching = watched_mission and msg.phase.value in _WATCHING
        # The camera's attitude and intrinsics from take-off, so that they are there on arrival.
        drone.camera.want(watched_mission)
        drone.pose.follow_motion(watching)
        if watching and drone.image_subscription is None:
            drone.image_subscription = self.create_subscription(
                Image, f"/{drone.vehicle_id}/camera/image_raw", lambda m, d=drone: self._on_image(d, m),
                qos.latest_images(self.params.image_queue_depth))
            drone.frames = drone.images = drone.attitude_late = 0
            drone.watching_since_s = self.get_clock().now().nanoseconds * 1e-9
            self.get_logger().info(f"{drone.vehicle_id} on scene for {msg.incident_id}: watching its camera")
        elif not watching and drone.image_subscription is not None:
            self.destroy_subscription(drone.image_subscription)
            drone.image_subscription = None
            drone.pipeline.reset()
            self.frames_done_pub.publish(Header(frame_id=drone.vehicle_id))     # zero stamp: not watching
            watched_s = self.get_clock().now().nanoseconds * 1e-9 - drone.watching_since_s
            self.get_logger().info(f"{drone.vehicle_id} left the scene: its camera is no longer read; "
                                   f"{drone.frames} images processed of {drone.images} received in "
                                   f"{watched_s:.0f} s sim ({drone.frames / max(watched_s, 1e-9):.1f} a second)"
                                   + (f"; {drone.attitude_late} before their camera attitude" if drone.camera_attitude
                                      else "; the gimbal's attitude placed by arrival (unstamped)"))

    @staticmethod
    def _can_look_for(drone: _Drone) -> bool:
        return can_look_for(drone.keeper.criteria, getattr(drone.pipeline.detector, "finds_people", True))

    def _start_mission(self, drone: _Drone, msg: VehicleStatus):
        """A new mission: the target comes from its incident's words, or from the drone it relieves."""
        drone.pipeline.reset()
        drone.keeper.clear()
        if msg.mission_id:
            self._learn_incident(drone, msg)

    def _learn_incident(self, drone: _Drone, msg: VehicleStatus):
        """What the incident's words say to look for, and where it is; nothing while it is not known yet."""
        incident = self.incidents.get(msg.incident_id)
        if incident is None:
            return
        call = incident.calls[-1] if incident.calls else None
        criteria = TargetCriteria.from_incident(incident.category, call.description if call else "",
                                                call.suspect_description if call else "")
        xy = None
        if drone.pose.frame is not None:
            east, north, _ = drone.pose.frame.to_enu(incident.location.latitude, incident.location.longitude)
            xy = (float(east), float(north))
        drone.keeper.set_incident(criteria, xy)
        if criteria is not None and criteria.object_class == PERSON and not self._can_look_for(drone):
            self.get_logger().info(f"{drone.vehicle_id} {msg.incident_id}: looking for {criteria.describe()}, which "
                                   "the motion detector cannot make out from on scene: its camera is streamed but "
                                   "not read (a DNN detector can)")

    def _offer_handover(self, drone: _Drone):
        """Another drone on this incident sees a target: this one is its relief, and takes that target."""
        status = drone.status
        for other in self.drones.values():
            last = other.keeper.last
            if other is drone or last is None or other.status is None or other.pose.frame is None \
                    or drone.pose.frame is None or status is None or other.status.incident_id != status.incident_id:
                continue
            lat, lon, _ = other.pose.frame.to_geodetic(float(last.position_xy[0]), float(last.position_xy[1]), 0.0)
            east, north, _ = drone.pose.frame.to_enu(lat, lon)
            drone.keeper.handover((float(east), float(north)), last.velocity_xy, other.keeper.last_seen_s,
                                  other.vehicle_id)
            return

    # ------------------------------------------------------------------ images
    def _pose(self, drone: _Drone, stamp_s: float) -> CameraPose | None:
        where = drone.pose.position_at(stamp_s)
        if where is None:
            return None
        # The attitude when the image was taken, not the latest: a panning camera has moved on since.
        if drone.camera_attitude and drone.gimbals.latest_s < stamp_s - 1e-6:
            drone.attitude_late += 1
        roll, pitch, yaw = drone.gimbals.at(stamp_s) or drone.gimbal_deg
        return CameraPose((where[0], where[1], drone.pose.height_m), drone.pose.heading_at(stamp_s), pitch, yaw,
                          roll)

    def _on_image(self, drone: _Drone, msg: Image):
        drone.images += 1
        try:
            stamp_s = to_seconds(msg.header.stamp)
            if sample_due(drone.last_processed_s, stamp_s, self.params.max_rate_hz):
                self._process_image(drone, msg, stamp_s)
        finally:
            self.frames_done_pub.publish(Header(stamp=msg.header.stamp, frame_id=drone.vehicle_id))

    def _process_image(self, drone: _Drone, msg: Image, stamp_s: float):
        if drone.k is None or drone.pose.frame is None:
            return
        if msg.encoding not in ("rgb8", "bgr8", "mono8") or msg.height * msg.step != len(msg.data):
            self.get_logger().warning(f"{drone.vehicle_id}: image {msg.width}x{msg.height} '{msg.encoding}' "
                                      "cannot be read (rgb8, bgr8 or mono8 expected): skipped",
                                      throttle_duration_sec=10.0)
            return
        pose = self._pose(drone, stamp_s)
        if pose is None:
            return
        channels = 1 if msg.encoding == "mono8" else 3
        image = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)[:, :msg.width * channels]
        image = image.reshape(msg.height, msg.width, channels) if channels == 3 else image
        drone.last_processed_s = stamp_s
        drone.tracks = drone.pipeline.process(image, stamp_s, pose, drone.k)
        drone.frames += 1
        if drone.keeper.target_id is None:
            self._offer_handover(drone)
        target = drone.keeper.update(stamp_s, drone.tracks)
        for event in target.events:
            self.get_logger().info(f"{drone.vehicle_id} {drone.status.incident_id if drone.status else ''}: {event}")
        self._publish(drone, msg, target, image)

    def _track_msg(self, drone: _Drone, track: GroundTrack, header) -> Track:
        msg = Track(header=header, track_id=int(track.track_id), state=track.state,
                    object_class=track.object_class, confidence=float(track.confidence),
                    x_min=track.box[0], y_min=track.box[1], x_max=track.box[2], y_max=track.box[3],
                    position_uncertainty_m=float(track.uncertainty_m), ground_size_m=float(track.ground_size_m))
        if track.placed:
            lat, lon, _ = drone.pose.frame.to_geodetic(float(track.position_xy[0]), float(track.position_xy[1]), 0.0)
            msg.position = GeoPointMsg(latitude=float(lat), longitude=float(lon), altitude=math.nan)
        else:
            msg.position = GeoPointMsg(latitude=math.nan, longitude=math.nan, altitude=math.nan)
        vx, vy = (float(v) for v in track.velocity_xy)
        msg.velocity = Vector3(x=vx, y=vy, z=0.0)
        return msg

    def _publish(self, drone: _Drone, image_msg: Image, target, image: np.ndarray):
        tracks_pub, target_pub, redacted_pub = self.pubs[drone.vehicle_id]
        status = drone.status
        header = image_msg.header
        mission_id = status.mission_id if status else ""
        incident_id = status.incident_id if status else ""
        if tracks_pub.get_subscription_count():
            tracks_pub.publish(TrackArray(
                header=header, vehicle_id=drone.vehicle_id, mission_id=mission_id, incident_id=incident_id,
                tracks=[self._track_msg(drone, t, header) for t in drone.tracks],
                target_track_id=int(drone.keeper.target_id or 0)))
        state = {"none": Target.STATE_NONE, "tracking": Target.STATE_TRACKING, "lost": Target.STATE_LOST}[target.state]
        out = Target(header=header, vehicle_id=drone.vehicle_id, mission_id=mission_id, incident_id=incident_id,
                     state=state, selected_by=target.selected_by, reason=target.reason)
        if target.track is not None:
            out.track = self._track_msg(drone, target.track, header)
            out.last_seen = from_seconds(target.last_seen_s)
        target_pub.publish(out)
        if self.markers_pub.get_subscription_count():
            placed = [PlacedTrack(int(m.track_id), m.position.latitude, m.position.longitude, m.object_class,
                                  int(m.track_id) == int(drone.keeper.target_id or 0))
                      for m in (self._track_msg(drone, t, header) for t in drone.tracks if t.state == "confirmed")]
            self.markers_pub.publish(track_markers(self.site_frame, drone.vehicle_id, placed, header.stamp))
        stamp_s = to_seconds(header.stamp)
        if (redacted_pub is not None and sample_due(drone.last_redacted_s, stamp_s, self.params.redacted_image_rate_hz)
                and redacted_pub.get_subscription_count()):
            drone.last_redacted_s = stamp_s
            keep = [target.track.box] if target.state == "tracking" and target.track is not None else []
            redacted = blur_except(image, keep, config=self.privacy)
            redacted_pub.publish(Image(header=header, height=image_msg.height, width=image_msg.width,
                                       encoding=image_msg.encoding, step=image_msg.width * (
                                           1 if image_msg.encoding == "mono8" else 3),
                                       data=np.ascontiguousarray(redacted).tobytes()))

    # ----------------------------------------------------------------- service
    def _on_select(self, request, response):
        drone = self.drones.get(request.vehicle_id)
        who = request.requested_by.strip()
        if drone is None:
            response.success, response.message = False, (f"no drone '{request.vehicle_id}' here; drones: "
                                                         f"{', '.join(self.drones)}")
        elif not who:
            response.success, response.message = False, "requested_by is empty: every choice names who made it"
        elif request.track_id == 0:
            drone.keeper.clear()
            if drone.status is not None:
                self._start_mission(drone, drone.status)
            response.success, response.message = True, (f"{request.vehicle_id}: target cleared by {who}; the "
                                                         "incident's description chooses again")
        else:
            try:
                response.message = f"{request.vehicle_id}: " + drone.keeper.operator_select(
                    int(request.track_id), who, drone.tracks)
                response.success = True
            except ValueError as err:
                response.success, response.message = False, f"{request.vehicle_id}: {err}"
        if response.success:
            self.get_logger().info(f"select_target: {response.message}")
        else:
            self.get_logger().warning(f"select_target refused: {response.message}")
        return response


def main(args=None):
    sys.exit(run(PerceptionNode, args))


if __name__ == "__main__":
    main()

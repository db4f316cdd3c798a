"""The simulated gimbal cameras: one image stream per drone, rendered from the ground truth.

It runs beside the simulator, in its own process, so rendering never slows the
vehicles' physics. Each frame is drawn from the drone's true pose and gimbal angles at
one instant of the simulator's ground truth, with the ground actors moved on to that
instant, over the same street map they move on, and is stamped with that instant, as a
camera stamps its exposure: the pose the drone reported for that stamp is where the
picture was taken, however late the frame arrives. A camera therefore sends at most
the ground truth's rate. Topics follow a camera driver's conventions (and the remaps
of the PX4 SITL camera bridge): `/<vehicle>/camera/image_raw` and `camera_info`.

Each frame's gimbal attitude goes out just before it, stamped alike, on
`/<vehicle>/camera/mount_orientation` (geometry_msgs/QuaternionStamped, in MAVROS's
mount_control/orientation convention), as a gimbal camera's driver reports it: MAVROS's
own is unstamped, and placed by when it arrives it can be a sim tick off the picture,
which a panning camera turns into tens of pixels.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import QuaternionStamped
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from dfr_common.fleet import load_fleet
from dfr_common.ros import qos
from dfr_common.ros.lazy_subscriptions import LazySubscriptions
from dfr_common.ros.lean_node import LeanNode
from dfr_common.ros.mount_orientation import mount_quaternion
from dfr_common.ros.node_main import run
from dfr_common.ros.parameters import Param, declare
from dfr_common.ros.stamps import to_seconds
from dfr_common.sampling import sample_due
from dfr_interfaces.msg import GroundTruthActors, GroundTruthVehicles
from dfr_sim.camera_renderer import CameraModel, CameraRenderer, RenderConfig, gimbal_to_world_rotation
from dfr_sim.ground_texture import GroundTexture
from dfr_sim.ground_world import load_world


@dataclass
class _Actor:
    """What the renderer needs of a ground actor, in site metres."""

    kind: str
    position: tuple[float, float, float]
    heading: float
    length_m: float
    width_m: float
    height_m: float
    colour: tuple[int, int, int]


def ground_texture_of(street_map, seed: int, metres_per_pixel: float) -> GroundTexture:
    """The renderer's texture of a street map with its generated buildings."""
    return GroundTexture(
        street_map.bounds,
        roads=[(np.asarray(road.line.coords), road.width_m, road.road_class) for road in street_map.roads],
        parks=[np.asarray(park.exterior.coords) for park in street_map.parks],
        buildings=[np.asarray(b.exterior.coords) for b in street_map.buildings],
        seed=seed, metres_per_pixel=metres_per_pixel)


class CameraNode(LeanNode):
    def __init__(self, **kwargs):
        super().__init__("camera", **kwargs)
        self.params = declare(self, [
            Param("fleet_file", "", "path of the fleet file: its site frame places the street map"),
            Param("world_file", "", "GeoJSON street map to render (config/world/*.geojson)"),
            Param("seed", 1, "seed of the generated buildings and the texture; the same map and seed give the "
                  "same town", 0, 2**31 - 1),
            Param("width", 640, "image width, pixels", 16, 4096),
            Param("height", 480, "image height, pixels", 16, 4096),
            Param("horizontal_fov_deg", 80.0, "horizontal field of view", 5.0, 170.0),
            Param("rate_hz", 5.0, "frames per sim second per camera, at most the simulator's "
                  "ground_truth_rate_hz (each frame is one instant of its ground truth)", 0.1, 60.0),
            Param("only_airborne", True, "render only for drones in the air: a docked drone's camera is off"),
            Param("lazy", True, "render a camera only while something subscribes to its image, as lazy camera "
                  "drivers do: frames nobody reads cost a core (camera_info is sent whenever asked for)"),
            Param("vehicles", [], "vehicle ids with a camera; empty: every vehicle of the fleet"),
            Param("metres_per_pixel", 0.25, "finest ground texture resolution", 0.05, 2.0),
            Param("noise_std", 1.5, "sensor noise, grey levels", 0.0, 50.0),
        ])
        p = self.params
        if not p.fleet_file or not p.world_file:
            raise ValueError("parameters 'fleet_file' and 'world_file' are both needed to place and draw the world")
        fleet = load_fleet(p.fleet_file)
        self.frame = fleet.site_frame()
        unknown = set(p.vehicles) - set(fleet.vehicles)
        if unknown:
            raise ValueError(f"parameter 'vehicles' names {sorted(unknown)}, not in {p.fleet_file}")
        street_map = load_world(p.world_file, self.frame, with_buildings=True, seed=p.seed)
        self.camera = CameraModel(p.width, p.height, math.radians(p.horizontal_fov_deg))
        self.renderer = CameraRenderer(ground_texture_of(street_map, p.seed, p.metres_per_pixel), self.camera,
                                       RenderConfig(noise_std=p.noise_std))
        self.vehicle_ids = list(p.vehicles) or list(fleet.vehicles)
        self.image_pubs = {v: self.create_publisher(Image, f"/{v}/camera/image_raw", qos.SENSOR_DATA)
                           for v in self.vehicle_ids}
        self.info_pubs = {v: self.create_publisher(CameraInfo, f"/{v}/camera/camera_info", qos.SENSOR_DATA)
                          for v in self.vehicle_ids}
        self.mount_pubs = {v: self.create_publisher(QuaternionStamped, f"/{v}/camera/mount_orientation", qos.RELIABLE)
                           for v in self.vehicle_ids}
        self._actors: GroundTruthActors | None = None
        self._rendered_s = -math.inf        # the ground truth instant last drawn
        self.frames_published = 0
        # Ground truth is read only while some camera is watched: a hundred actors at 10 Hz cost CPU.
        self._truth = LazySubscriptions(self, [
            (GroundTruthVehicles, "/sim/ground_truth/vehicles", self._on_vehicles, qos.RELIABLE),
            (GroundTruthActors, "/sim/ground_truth/actors", self._on_actors, qos.RELIABLE)], self._forget_truth)
        # Frames are drawn as the ground truth arrives, one instant every 1 / rate_hz: a timer of its own
        # would beat against the ground truth's instants and space the frames 0.1, 0.2 or 0.3 s apart.
        self.create_timer(1.0 / p.rate_hz, self._want_truth)
        self.get_logger().info(f"cameras on {len(self.vehicle_ids)} vehicles: {p.width}x{p.height} at "
                               f"{p.rate_hz:g} Hz, {p.horizontal_fov_deg:g} deg")

    def _on_vehicles(self, msg: GroundTruthVehicles):
        taken_s = to_seconds(msg.header.stamp)
        if taken_s < self._rendered_s:
            self._rendered_s = -math.inf        # the clock went back: a new simulation
        if sample_due(self._rendered_s, taken_s, self.params.rate_hz):
            self._rendered_s = taken_s
            self._render_all(msg)

    def _want_truth(self):
        self._truth.want(any(self._watched(v) for v in self.vehicle_ids))

    def _on_actors(self, msg: GroundTruthActors):
        self._actors = msg

    def _forget_truth(self):
        self._actors = None

    def _watched(self, vehicle_id: str) -> bool:
        """Whether anyone reads this camera's images. camera_info alone costs no rendering: it is sent
        to whoever asks for it whatever the lazy setting."""
        return not self.params.lazy or bool(self.image_pubs[vehicle_id].get_subscription_count())

    def _render_all(self, vehicles: GroundTruthVehicles):
        """Every watched airborne camera at the instant of this ground truth."""
        stamp = vehicles.header.stamp
        actors = self._actor_list(to_seconds(stamp))
        for truth in vehicles.vehicles:
            if truth.vehicle_id not in self.image_pubs:
                continue
            if self.params.only_airborne and not truth.airborne:
                continue
            if not self._watched(truth.vehicle_id):
                if self.info_pubs[truth.vehicle_id].get_subscription_count():
                    self.info_pubs[truth.vehicle_id].publish(self._camera_info(
                        Header(stamp=stamp, frame_id=f"{truth.vehicle_id}/camera_optical_frame")))
                continue
            east, north, _ = self.frame.to_enu(truth.position.latitude, truth.position.longitude)
            position = (east, north, max(0.0, truth.height_above_ground_m))
            rotation = gimbal_to_world_rotation(truth.heading, truth.gimbal_pitch_deg, truth.gimbal_roll_deg,
                                                truth.gimbal_yaw_deg)
            pixels = self.renderer.render(position, rotation, actors)
            self.mount_pubs[truth.vehicle_id].publish(QuaternionStamped(
                header=Header(stamp=stamp, frame_id=f"{truth.vehicle_id}/base_link"),
                quaternion=mount_quaternion(truth.gimbal_roll_deg, truth.gimbal_pitch_deg, truth.gimbal_yaw_deg)))
            header = Header(stamp=stamp, frame_id=f"{truth.vehicle_id}/camera_optical_frame")
            self.image_pubs[truth.vehicle_id].publish(Image(
                header=header, height=self.camera.height, width=self.camera.width, encoding="rgb8",
                is_bigendian=0, step=self.camera.width * 3, data=pixels.tobytes()))
            self.info_pubs[truth.vehicle_id].publish(self._camera_info(header))
            self.frames_published += 1

    def _actor_list(self, now_s: float) -> list[_Actor]:
        if self._actors is None or not self._actors.actors:
            return []
        age = now_s - to_seconds(self._actors.header.stamp)
        truth = self._actors.actors
        east, north, _ = self.frame.to_enu(np.array([a.position.latitude for a in truth]),
                                           np.array([a.position.longitude for a in truth]))
        return [_Actor(a.kind, (float(east[i]) + a.velocity.x * age, float(north[i]) + a.velocity.y * age, 0.0),
                       a.heading, a.length_m, a.width_m, a.height_m,
                       (int(a.color.r * 255), int(a.color.g * 255), int(a.color.b * 255)))
                for i, a in enumerate(truth)]

    def _camera_info(self, header: Header) -> CameraInfo:
        info = self.camera.camera_info()
        return CameraInfo(header=header, width=info["width"], height=info["height"],
                          distortion_model=info["distortion_model"], d=[float(x) for x in info["d"]],
                          k=[float(x) for x in info["k"]], r=[float(x) for x in info["r"]],
                          p=[float(x) for x in info["p"]])


def main(args=None):
    sys.exit(run(CameraNode, args))


if __name__ == "__main__":
    main()

"""The follow node: each drone's target in, follow setpoints for its bridge out.

One node serves the fleet. For a drone on scene or following, every
`<vehicle>/perception/target` goes through its FollowController (stand-off, lead,
search, loss) in the drone's home frame, kept inside the operating area and out of the
no-fly areas it holds no permission for; the command goes to the bridge on
`<vehicle>/follow/setpoint` for this mission. Between target messages a timer keeps
the search and the loss pattern going. When a relief comes on scene for an incident a
drone is following, that drone hands over: it keeps following until the relief's own
perception tracks the target (or the handover times out), then stops sending setpoints.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import numpy as np
import shapely
from geographic_msgs.msg import GeoPoint as GeoPointMsg
from geometry_msgs.msg import Vector3
from shapely.geometry import Polygon
from shapely.ops import unary_union

from dfr_common.areas import load_areas
from dfr_common.fleet import fleet_and_vehicle_ids
from dfr_common.geodesy import LocalFrame
from dfr_common.mission import Phase
from dfr_common.ros import qos
from dfr_common.ros.lean_node import LeanNode
from dfr_common.ros.node_main import run
from dfr_common.ros.parameters import Param, declare
from dfr_common.ros.stamps import to_seconds
from dfr_common.ros.vehicle_pose import VehiclePose
from dfr_dispatch.airspace import load_restrictions
from dfr_follow.follow_controller import FollowConfig, FollowController, FollowState, TargetObservation
from dfr_interfaces.msg import FollowSetpoint, Target, VehicleStatus

_ON_SCENE = (Phase.ON_SCENE.value, Phase.FOLLOW.value)


@dataclass
class _Drone:
    vehicle_id: str
    pose: VehiclePose = field(default_factory=VehiclePose)
    status: VehicleStatus | None = None
    controller: FollowController | None = None
    mission_id: str = ""
    tracking: bool = False
    last_command_state: str = ""


class FollowNode(LeanNode):
    def __init__(self, **kwargs):
        super().__init__("follow", **kwargs)
        defaults = FollowConfig()
        p = self.params = declare(self, [
            Param("fleet_file", "", "path of the fleet file (config/fleet/*.yaml)"),
            Param("vehicles", [], "vehicle ids to fly; empty: every vehicle of the fleet"),
            Param("mavros_namespace", "mavros", "each vehicle's MAVROS namespace, under the vehicle's"),
            Param("permitted_area_file", "", "GeoJSON whose polygons (united) follow setpoints stay inside"),
            Param("airspace_file", "", "GeoJSON of no-fly and restricted areas; empty: none"),
            Param("airspace_permissions", [], "restriction permissions held, e.g. police_permitted"),
            Param("rate_hz", 5.0, "setpoint rate while searching or circling without a target message", 1.0, 50.0),
            Param("standoff_m", defaults.standoff_m, "horizontal distance kept from the target", 0.0, 1000.0),
            Param("height_m", defaults.height_m, "height above the ground to follow at", 0.0, 500.0),
            Param("floor_m", defaults.floor_m, "never lower than this while following", 0.0, 500.0),
            Param("ceiling_m", defaults.ceiling_m, "never higher than this", 1.0, 500.0),
            Param("max_speed_m_s", defaults.max_speed_m_s, "fastest the setpoint moves", 0.1, 50.0),
            Param("lead_time_s", defaults.lead_time_s, "stand-off kept from where the target will be this soon",
                  0.0, 10.0),
            Param("side_turn_rate_deg_s", defaults.side_turn_rate_deg_s, "fastest the stand-off swings round the "
                  "target (0: no limit)", 0.0, 3600.0),
            Param("search_time_s", defaults.search_time_s, "search along the last velocity for this long, then "
                  "report the target lost", 0.0, 600.0),
            Param("search_speed_m_s", defaults.search_speed_m_s, "fastest the drone flies while searching",
                  0.0, 50.0),
            Param("no_fly_buffer_m", defaults.no_fly_buffer_m, "setpoints keep this far from no-fly areas",
                  0.0, 1000.0),
            Param("min_depression_deg", defaults.min_depression_deg, "the camera never looks flatter than this "
                  "below the horizon", 0.0, 90.0),
        ])
        _, vehicle_ids = fleet_and_vehicle_ids(p.fleet_file, p.vehicles)
        self.config = FollowConfig(standoff_m=p.standoff_m, height_m=p.height_m, floor_m=p.floor_m,
                                   ceiling_m=p.ceiling_m, max_speed_m_s=p.max_speed_m_s, lead_time_s=p.lead_time_s,
                                   search_time_s=p.search_time_s, search_speed_m_s=p.search_speed_m_s,
                                   no_fly_buffer_m=p.no_fly_buffer_m, min_depression_deg=p.min_depression_deg,
                                   side_turn_rate_deg_s=p.side_turn_rate_deg_s)
        self.permitted = None
        if p.permitted_area_file:
            self.permitted = unary_union([a.geometry for a in load_areas(p.permitted_area_file)])
        self.no_fly = []
        if p.airspace_file:
            held = frozenset(x for x in p.airspace_permissions if x)
            self.no_fly = [(r.name, r.geometry) for r in load_restrictions(p.airspace_file)
                           if r.permission == "never" or r.permission not in held]
        self.drones: dict[str, _Drone] = {}
        self.setpoint_pubs = {}
        for vehicle_id in vehicle_ids:
            drone = self.drones[vehicle_id] = _Drone(vehicle_id)
            ns, mavros = f"/{vehicle_id}", f"/{vehicle_id}/{p.mavros_namespace}"
            drone.pose.subscribe(self, mavros, moving=False)     # followed while on scene
            sub = self.create_subscription
            sub(VehicleStatus, f"{ns}/vehicle_status", lambda m, d=drone: self._on_status(d, m), qos.LATCHED_STATE)
            sub(Target, f"{ns}/perception/target", lambda m, d=drone: self._on_target(d, m), qos.RELIABLE)
            self.setpoint_pubs[vehicle_id] = self.create_publisher(FollowSetpoint, f"{ns}/follow/setpoint",
                                                                   qos.SENSOR_DATA)
        self.create_timer(1.0 / p.rate_hz, self._tick)
        self.get_logger().info(f"follow for {len(self.drones)} drones; {len(self.no_fly)} no-fly areas kept out of")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # ----------------------------------------------------------------- inputs
    def _on_status(self, drone: _Drone, msg: VehicleStatus):
        drone.status = msg
        on_scene = msg.phase.value in _ON_SCENE and bool(msg.mission_id)
        if not on_scene or msg.mission_id != drone.mission_id:
            drone.controller, drone.mission_id, drone.tracking = None, "", False
            drone.pose.follow_motion(False)      # until perception watches this mission's camera
        if on_scene and drone.controller is None and drone.pose.frame is not None:
            drone.controller = FollowController(self.config, self._local(drone.pose.frame, self.permitted),
                                                [(n, self._local(drone.pose.frame, g)) for n, g in self.no_fly])
            drone.mission_id = msg.mission_id
            self._relief_arrived(drone)

    def _relief_arrived(self, relief: _Drone) -> None:
        """A drone has come on scene for an incident another drone is following: that one hands its target over
        (perception gives the relief the same target) and keeps following until the relief sees it."""
        for other in self.drones.values():
            if other is relief or other.controller is None or other.status is None \
                    or other.status.incident_id != relief.status.incident_id or not other.status.incident_id:
                continue
            if other.controller.state in (FollowState.FOLLOWING, FollowState.SEARCHING, FollowState.LOST):
                other.controller.start_handover(self._now(), relief.vehicle_id)
                self.get_logger().info(f"{other.vehicle_id}: {relief.vehicle_id} is on scene for "
                                       f"{relief.status.incident_id}: handing the target over")

    def _relief_sees_target(self, relief: _Drone) -> None:
        for other in self.drones.values():
            if other is not relief and other.controller is not None \
                    and other.controller.state is FollowState.HANDOVER and other.controller.relief == relief.vehicle_id:
                other.controller.relief_confirmed(self._now())

    @staticmethod
    def _local(frame: LocalFrame, geometry):
        """A lon/lat geometry in the drone's home frame (metres)."""
        if geometry is None:
            return None

        def to_enu(lon_lat):
            east, north, _ = frame.to_enu(lon_lat[:, 1], lon_lat[:, 0])
            return np.column_stack([east, north])
        local = shapely.transform(geometry, to_enu)
        return local if not isinstance(local, Polygon) or local.is_valid else local.buffer(0)

    def _on_target(self, drone: _Drone, msg: Target):
        if drone.controller is None or msg.mission_id != drone.mission_id or drone.pose.frame is None:
            return
        # Most drones on scene have nothing to follow, and perception does not read their cameras:
        # their telemetry (three topics at 5 Hz) is listened to from perception's first word on them.
        drone.pose.follow_motion(True)
        observation = None
        if msg.state == Target.STATE_TRACKING:
            p, v = msg.track.position, msg.track.velocity
            if math.isfinite(p.latitude) and math.isfinite(p.longitude):
                east, north, _ = drone.pose.frame.to_enu(p.latitude, p.longitude)
                velocity = (v.x, v.y) if math.isfinite(v.x) and math.isfinite(v.y) else (0.0, 0.0)
                observation = TargetObservation(to_seconds(msg.header.stamp), (float(east), float(north)),
                                                velocity, str(msg.track.track_id))
        drone.tracking = drone.tracking or observation is not None
        if observation is not None:
            self._relief_sees_target(drone)
        self._command(drone, observation)

    def _tick(self):
        for drone in self.drones.values():
            if drone.controller is not None and drone.tracking:
                self._command(drone, None)

    # ---------------------------------------------------------------- output
    def _command(self, drone: _Drone, observation):
        where = drone.pose.position()
        if where is None or not math.isfinite(where[2]):
            return
        heading = drone.pose.heading_enu if math.isfinite(drone.pose.heading_enu) else 0.0
        try:
            command = drone.controller.update(self._now(), where, heading, observation)
        except ValueError as err:
            self.get_logger().warning(f"{drone.vehicle_id}: follow update refused: {err}", throttle_duration_sec=5.0)
            return
        for event in command.events:
            self.get_logger().info(f"{drone.vehicle_id} {drone.mission_id}: {event}")
        if command.state.value != drone.last_command_state:
            drone.last_command_state = command.state.value
            self.get_logger().info(f"{drone.vehicle_id}: follow {command.state.value}: {command.reason}")
        if command.state in (FollowState.ACQUIRING, FollowState.RELEASED):
            return
        lat, lon, _ = drone.pose.frame.to_geodetic(float(command.setpoint_enu[0]), float(command.setpoint_enu[1]), 0.0)
        look_lat, look_lon, _ = drone.pose.frame.to_geodetic(float(command.look_at_xy[0]), float(command.look_at_xy[1]),
                                                        0.0)
        msg = FollowSetpoint(mission_id=drone.mission_id, track_id=command.track_id or "",
                             latitude=float(lat), longitude=float(lon), altitude_rel_m=float(command.setpoint_enu[2]),
                             velocity=Vector3(x=float(command.velocity_enu[0]), y=float(command.velocity_enu[1]),
                                              z=0.0),
                             look_at=GeoPointMsg(latitude=float(look_lat), longitude=float(look_lon),
                                                 altitude=math.nan))
        msg.header.stamp = self.get_clock().now().to_msg()
        self.setpoint_pubs[drone.vehicle_id].publish(msg)


def main(args=None):
    sys.exit(run(FollowNode, args))


if __name__ == "__main__":
    main()

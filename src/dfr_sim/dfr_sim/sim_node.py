"""The simulator node: every vehicle of the fleet behind MAVROS's topics and services, and /clock.

Each vehicle answers under `/<vehicle>/<mavros_namespace>/...` with the names, types
and QoS that MAVROS 2 uses with PX4, so a bridge cannot tell it from the real thing.
The node owns simulated time: it steps the vehicles on a wall-clock timer (its only
use of the wall clock) and publishes /clock on every tick of `clock_period_s`.
"""
from __future__ import annotations

import math
import sys

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, Quaternion, TwistStamped
from mavros_msgs.msg import (
    ExtendedState,
    GlobalPositionTarget,
    HomePosition,
    MountControl,
    PositionTarget,
    State,
    StatusText,
    Waypoint,
    WaypointList,
    WaypointReached,
)
from mavros_msgs.srv import (
    CommandBool,
    CommandTOL,
    SetMode,
    WaypointClear,
    WaypointPull,
    WaypointPush,
    WaypointSetCurrent,
)
from rclpy.clock import Clock, ClockType
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import BatteryState, NavSatFix, NavSatStatus
from shapely import prepare
from shapely.geometry import Polygon
from shapely.ops import unary_union
from std_msgs.msg import Float64, Header

from dfr_common import px4
from dfr_common.areas import load_areas
from dfr_common.config_file import load_yaml
from dfr_common.fleet import Fleet, load_fleet
from dfr_common.geodesy import LocalFrame
from dfr_common.quaternions import yaw_of
from dfr_common.ros import qos
from dfr_common.ros.lean_node import LeanNode
from dfr_common.ros.mount_orientation import mount_quaternion
from dfr_common.ros.node_main import run
from dfr_common.ros.parameters import Param, declare, documented_config, documented_params
from dfr_interfaces.msg import GroundTruthActor, GroundTruthActors, GroundTruthVehicle, GroundTruthVehicles
from dfr_interfaces.srv import InjectFault
from dfr_sim import faults
from dfr_sim import mission_items as mi
from dfr_sim.gimbal import MOUNT_MODE_GPS_POINT
from dfr_sim.ground_world import ground_actors, load_world
from dfr_sim.mavros_conversions import SetpointError, local_setpoint, raw_item
from dfr_sim.multirotor import Multirotor, MultirotorConfig
from dfr_sim.pacing import LateHold, Pacer
from dfr_sim.vehicle_config import parse_overrides, with_overrides

_SEVERITY = {"info": StatusText.INFO, "warning": StatusText.WARNING, "critical": StatusText.CRITICAL}


def _yaw_quaternion(yaw: float) -> Quaternion:
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2.0), w=math.cos(yaw / 2.0))


class _Schedule:
    """Publishes at a fixed rate in sim time."""

    def __init__(self, rate_hz: float):
        self.period = 1.0 / rate_hz
        self.next_s = 0.0

    def due(self, now: float) -> bool:
        if now + 1e-9 < self.next_s:
            return False
        self.next_s = max(self.next_s + self.period, now)
        return True


class SimulatedVehicle:
    """One Multirotor and its MAVROS face."""

    def __init__(self, node: SimulatorNode, fleet: Fleet, vehicle_id: str, index: int, config: MultirotorConfig,
                 mavros_ns: str, rates):
        self.node = node
        self.site = fleet.site
        self.vehicle_id = vehicle_id
        self.model = Multirotor(vehicle_id, config, ground_amsl_m=fleet.site.ground_amsl_m, index=index)
        self.frame = LocalFrame(fleet.vehicle_home(vehicle_id))
        ns = f"/{vehicle_id}/{mavros_ns}"
        self.link_timeout_s = rates.mavros_connection_timeout_s
        self._connected = True

        pub = node.create_publisher
        self.state_pub = pub(State, f"{ns}/state", qos.LATCHED_STATE)
        self.extended_state_pub = pub(ExtendedState, f"{ns}/extended_state", qos.LATCHED_STATE)
        self.battery_pub = pub(BatteryState, f"{ns}/battery", qos.SENSOR_DATA)
        self.global_pub = pub(NavSatFix, f"{ns}/global_position/global", qos.SENSOR_DATA)
        self.rel_alt_pub = pub(Float64, f"{ns}/global_position/rel_alt", qos.SENSOR_DATA)
        self.heading_pub = pub(Float64, f"{ns}/global_position/compass_hdg", qos.SENSOR_DATA)
        self.pose_pub = pub(PoseStamped, f"{ns}/local_position/pose", qos.SENSOR_DATA)
        self.velocity_pub = pub(TwistStamped, f"{ns}/local_position/velocity_local", qos.SENSOR_DATA)
        self.home_pub = pub(HomePosition, f"{ns}/home_position/home", qos.LATCHED_STATE)
        self.statustext_pub = pub(StatusText, f"{ns}/statustext/recv", qos.SENSOR_DATA)
        self.waypoints_pub = pub(WaypointList, f"{ns}/mission/waypoints", qos.MAVROS_MISSION)
        self.reached_pub = pub(WaypointReached, f"{ns}/mission/reached", qos.MAVROS_MISSION)
        self.mount_pub = pub(Quaternion, f"{ns}/mount_control/orientation", qos.RELIABLE)

        sub = node.create_subscription
        sub(GlobalPositionTarget, f"{ns}/setpoint_raw/global", self._on_global_setpoint, qos.SENSOR_DATA)
        sub(PositionTarget, f"{ns}/setpoint_raw/local", self._on_local_setpoint, qos.SENSOR_DATA)
        sub(PoseStamped, f"{ns}/setpoint_position/local", self._on_position_setpoint, qos.SENSOR_DATA)
        sub(TwistStamped, f"{ns}/setpoint_velocity/cmd_vel", self._on_velocity_setpoint, qos.SENSOR_DATA)
        sub(MountControl, f"{ns}/mount_control/command", self._on_mount_command, qos.RELIABLE)
        srv = node.create_service
        srv(CommandBool, f"{ns}/cmd/arming", self._on_arming)
        srv(SetMode, f"{ns}/set_mode", self._on_set_mode)
        srv(CommandTOL, f"{ns}/cmd/takeoff", self._on_takeoff)
        srv(CommandTOL, f"{ns}/cmd/land", self._on_land)
        srv(WaypointPush, f"{ns}/mission/push", self._on_mission_push)
        srv(WaypointClear, f"{ns}/mission/clear", self._on_mission_clear)
        srv(WaypointSetCurrent, f"{ns}/mission/set_current", self._on_mission_set_current)
        srv(WaypointPull, f"{ns}/mission/pull", self._on_mission_pull)

        self.heartbeat = _Schedule(rates.state_rate_hz)
        self.position_schedule = _Schedule(rates.position_rate_hz)
        self.docked_position_schedule = _Schedule(rates.docked_position_rate_hz)
        self.battery_schedule = _Schedule(rates.battery_rate_hz)
        self.home_schedule = _Schedule(rates.home_rate_hz)

    @property
    def link_up(self) -> bool:
        return self.model.link_up

    def set_fence(self, polygon_lon_lat: Polygon | None) -> None:
        if polygon_lon_lat is None:
            return
        lon, lat = polygon_lon_lat.exterior.coords.xy
        east, north, _ = self.frame.to_enu(list(lat), list(lon))
        fence = Polygon(list(zip(east, north, strict=True)))
        prepare(fence)
        self.model.fence_polygon = fence

    # ----------------------------------------------------------- MAVROS services
    # With the link down, a command's COMMAND_ACK never comes: MAVROS answers success false.
    def _on_arming(self, request, response):
        if not self.link_up:
            response.success, response.result = False, px4.MAV_RESULT_FAILED
            return response
        response.success, response.result = self.model.arm(bool(request.value), self.node.sim_now)
        return response

    def _on_set_mode(self, request, response):
        if request.base_mode != 0 and not request.custom_mode:
            # Base-mode-only requests are not a PX4 workflow; MAVROS would send them blindly.
            response.mode_sent = True
            self.model.say(self.node.sim_now, "warning", f"Ignored base_mode {request.base_mode}")
            return response
        if not self.link_up:
            # SET_MODE has no acknowledgement: MAVROS sends it into the void and says it did.
            response.mode_sent = request.custom_mode.upper() in px4.KNOWN_MODES
            return response
        response.mode_sent = self.model.set_mode(request.custom_mode, self.node.sim_now)
        return response

    def _on_takeoff(self, request, response):
        if not self.link_up:
            response.success, response.result = False, px4.MAV_RESULT_FAILED
            return response
        position = None
        if math.isfinite(request.latitude) and math.isfinite(request.longitude):
            east, north, _ = self.frame.to_enu(request.latitude, request.longitude)
            position = (float(east), float(north))
        response.success, response.result = self.model.takeoff(self.node.sim_now, float(request.altitude), position)
        return response

    def _on_land(self, request, response):
        if not self.link_up:
            response.success, response.result = False, px4.MAV_RESULT_FAILED
            return response
        response.success, response.result = self.model.land(self.node.sim_now)
        return response

    def _on_mission_push(self, request, response):
        response.success, response.wp_transfered = False, 0
        if not self.link_up:
            return response       # the transfer protocol times out
        items = [raw_item(w) for w in request.waypoints]
        model = self.model
        local = mi.to_local(items, self._enu_of, self.site.ground_amsl_m, float(model.home[2]))
        if model.push_mission(local, int(request.start_index), self.node.sim_now):
            response.success, response.wp_transfered = True, len(items)
        return response

    def _on_mission_clear(self, request, response):
        response.success = self.link_up and self.model.clear_mission(self.node.sim_now)
        return response

    def _on_mission_set_current(self, request, response):
        response.success = self.link_up and self.model.set_mission_current(int(request.wp_seq), self.node.sim_now)
        return response

    def _on_mission_pull(self, request, response):
        response.success = self.link_up
        response.wp_received = len(self.model.mission) if self.link_up else 0
        if self.link_up:
            self.model.mission_changed = True      # MAVROS republishes mission/waypoints after a pull
        return response

    def _enu_of(self, latitude, longitude):
        east, north, _ = self.frame.to_enu(latitude, longitude)
        return float(east), float(north)

    # --------------------------------------------------------------- setpoints
    def _offboard_input(self) -> bool:
        """Messages from the bridge reach PX4 only over a live link."""
        return self.link_up

    def _on_global_setpoint(self, msg: GlobalPositionTarget):
        if not self._offboard_input():
            return
        now = self.node.sim_now
        if msg.coordinate_frame not in (px4.FRAME_GLOBAL_INT, px4.FRAME_GLOBAL_REL_ALT,
                                        px4.FRAME_GLOBAL_TERRAIN_ALT):
            self.model.say(now, "critical",
                           f"SET_POSITION_TARGET_GLOBAL_INT invalid coordinate frame {msg.coordinate_frame}")
            return
        position = None
        position_mask = px4.IGNORE_LATITUDE | px4.IGNORE_LONGITUDE | px4.IGNORE_ALTITUDE
        if not msg.type_mask & position_mask:
            if not (abs(msg.latitude) <= 90.0 and abs(msg.longitude) <= 180.0):
                self.model.say(now, "critical", f"Setpoint at {msg.latitude}, {msg.longitude} is not on the Earth: "
                               "ignored")
                return
            east, north, _ = self.frame.to_enu(msg.latitude, msg.longitude)
            if msg.coordinate_frame == px4.FRAME_GLOBAL_INT:
                up = msg.altitude - self.site.ground_amsl_m
            elif msg.coordinate_frame == px4.FRAME_GLOBAL_REL_ALT:
                up = msg.altitude + float(self.model.home[2])
            else:  # above terrain: the simulated ground is flat
                up = msg.altitude
            position = (float(east), float(north), float(up))
        velocity = None
        velocity_mask = px4.IGNORE_VX | px4.IGNORE_VY | px4.IGNORE_VZ
        if not msg.type_mask & velocity_mask:
            velocity = (msg.velocity.x, msg.velocity.y, msg.velocity.z)
        yaw = None if msg.type_mask & px4.IGNORE_YAW else float(msg.yaw)
        if not all(math.isfinite(v) for v in (position or ()) + (velocity or ()) + ((yaw,) if yaw is not None
                                                                                    else ())):
            self.model.say(now, "critical", "Setpoint with a non-finite value ignored")
            return
        self.model.setpoint(now, position=position, velocity=velocity, yaw=yaw)

    def _on_local_setpoint(self, msg: PositionTarget):
        if not self._offboard_input():
            return
        model, now = self.model, self.node.sim_now
        p, v = msg.position, msg.velocity
        try:
            position, velocity, yaw, yaw_rate = local_setpoint(
                msg.coordinate_frame, msg.type_mask, (p.x, p.y, p.z), (v.x, v.y, v.z), float(msg.yaw),
                float(msg.yaw_rate), model.estimated_position, model.yaw)
        except SetpointError as err:
            model.say(now, "critical", str(err))
            return
        model.setpoint(now, position=position, velocity=velocity, yaw=yaw, yaw_rate=yaw_rate)

    def _on_position_setpoint(self, msg: PoseStamped):
        if not self._offboard_input():
            return
        p, q = msg.pose.position, msg.pose.orientation
        values = (p.x, p.y, p.z, q.x, q.y, q.z, q.w)
        if not all(math.isfinite(x) for x in values):
            self.model.say(self.node.sim_now, "critical", "Setpoint with a non-finite value ignored")
            return
        self.model.setpoint(self.node.sim_now, position=(p.x, p.y, p.z), yaw=yaw_of(q.x, q.y, q.z, q.w))

    def _on_velocity_setpoint(self, msg: TwistStamped):
        if not self._offboard_input():
            return
        v, w = msg.twist.linear, msg.twist.angular
        if not all(math.isfinite(x) for x in (v.x, v.y, v.z, w.z)):
            self.model.say(self.node.sim_now, "critical", "Setpoint with a non-finite value ignored")
            return
        self.model.setpoint(self.node.sim_now, velocity=(v.x, v.y, v.z), yaw_rate=float(w.z))

    def _on_mount_command(self, msg: MountControl):
        if not self._offboard_input():
            return
        model, now = self.model, self.node.sim_now
        if msg.mode == MOUNT_MODE_GPS_POINT:
            latitude, longitude = msg.latitude * 1e-7, msg.longitude * 1e-7      # MountControl carries degE7
            if not (math.isfinite(latitude) and math.isfinite(longitude) and math.isfinite(msg.altitude)
                    and abs(latitude) <= 90.0 and abs(longitude) <= 180.0):
                model.say(now, "warning", "Gimbal point of interest is not a position: ignored")
                return
            east, north = self._enu_of(latitude, longitude)
            # DO_MOUNT_CONTROL carries the point's altitude AMSL.
            model.gimbal.command_point((east, north, float(msg.altitude) - self.site.ground_amsl_m))
            return
        if msg.mode > MOUNT_MODE_GPS_POINT or not all(math.isfinite(x) for x in (msg.pitch, msg.roll, msg.yaw)):
            model.say(now, "warning", f"Gimbal command with mode {msg.mode} or non-finite angles ignored")
            return
        model.gimbal.command_angles(int(msg.mode), float(msg.pitch), float(msg.roll), float(msg.yaw))

    # ---------------------------------------------------------------- telemetry
    def publish(self, now: float, stamp: Time):
        model = self.model
        if not model.link_up:
            self._publish_link_lost(now, stamp)
            return
        if self.heartbeat.due(now):
            self._connected = True
            self.state_pub.publish(self._state(stamp, connected=True))
            self.extended_state_pub.publish(ExtendedState(
                header=self._header(stamp), vtol_state=0, landed_state=model.landed_state))
        docked = not model.armed and model.landed_state == px4.LANDED_STATE_ON_GROUND
        if (self.docked_position_schedule if docked else self.position_schedule).due(now):
            self._publish_position(stamp)
        if self.battery_schedule.due(now):
            self._publish_battery(stamp)
        if self.home_schedule.due(now):
            self._publish_home(stamp)
        self._publish_mission(stamp)
        self._publish_events(stamp)

    def _state(self, stamp, connected: bool) -> State:
        model = self.model
        if not connected:       # what MAVROS's sys_status says when the heartbeat times out
            return State(header=self._header(stamp), connected=False, armed=False, guided=False, mode="",
                         system_status=0)
        return State(connected=connected, armed=model.armed, guided=model.mode not in px4.PILOT_MODES,
                     manual_input=model.config.rc_available, mode=model.mode,
                     system_status=px4.MAV_STATE_ACTIVE if model.armed else px4.MAV_STATE_STANDBY,
                     header=self._header(stamp))

    def _publish_link_lost(self, now: float, stamp):
        """MAVROS hears nothing; after its heartbeat timeout it says so, once, in State.connected."""
        model = self.model
        model.events.clear()       # STATUSTEXT sent while the link is down never arrives
        model.mission_reached.clear()
        if self._connected and now - model.link_lost_at >= self.link_timeout_s:
            self._connected = False
            self.state_pub.publish(self._state(stamp, connected=False))
            self.node.get_logger().warning(f"[{self.vehicle_id}] MAVROS: connection to the FCU lost")

    @staticmethod
    def _header(stamp, frame_id=""):
        return Header(stamp=stamp, frame_id=frame_id)

    def _publish_position(self, stamp):
        model = self.model
        e, n, u = model.reported_position
        if model.gps_ok:
            # PX4 sends GLOBAL_POSITION_INT only while it has a global position.
            lat, lon, alt = self.frame.to_geodetic(float(e), float(n), float(u))
            fix = NavSatFix(header=self._header(stamp, "base_link"), latitude=float(lat),
                            longitude=float(lon), altitude=float(alt))
            fix.status.status = NavSatStatus.STATUS_FIX
            fix.status.service = NavSatStatus.SERVICE_GPS
            fix.position_covariance_type = NavSatFix.COVARIANCE_TYPE_UNKNOWN
            self.global_pub.publish(fix)
            self.rel_alt_pub.publish(Float64(data=float(u - model.home[2])))
            self.heading_pub.publish(Float64(data=math.degrees(math.pi / 2 - model.yaw) % 360.0))
        pose = PoseStamped(header=self._header(stamp, "map"))
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(e), float(n), float(u))
        pose.pose.orientation = _yaw_quaternion(model.yaw)
        self.pose_pub.publish(pose)
        twist = TwistStamped(header=self._header(stamp, "map"))
        twist.twist.linear.x, twist.twist.linear.y, twist.twist.linear.z = (float(v) for v in model.velocity)
        self.velocity_pub.publish(twist)
        gimbal = model.gimbal
        self.mount_pub.publish(mount_quaternion(gimbal.roll, gimbal.pitch, gimbal.yaw))

    def _publish_battery(self, stamp):
        model = self.model
        cells = model.config.battery_cells
        voltage = cells * (3.5 + 0.7 * model.battery_fraction)      # a LiPo's usable range, 3.5-4.2 V a cell
        self.battery_pub.publish(BatteryState(
            header=self._header(stamp), percentage=float(model.battery_fraction), voltage=float(voltage),
            current=float(-model.power_w / voltage), present=True,
            power_supply_status=BatteryState.POWER_SUPPLY_STATUS_DISCHARGING,
            power_supply_health=BatteryState.POWER_SUPPLY_HEALTH_GOOD,
            power_supply_technology=BatteryState.POWER_SUPPLY_TECHNOLOGY_LIPO,
            charge=float("nan"), capacity=float("nan"), design_capacity=float("nan"),
            temperature=float("nan"), cell_voltage=[float(voltage / cells)] * cells))

    def _publish_home(self, stamp):
        home = self.model.home
        lat, lon, alt = self.frame.to_geodetic(float(home[0]), float(home[1]), float(home[2]))
        msg = HomePosition(header=self._header(stamp, "map"))
        msg.geo.latitude, msg.geo.longitude, msg.geo.altitude = float(lat), float(lon), float(alt)
        msg.position.x, msg.position.y, msg.position.z = (float(v) for v in home)
        msg.orientation = _yaw_quaternion(0.0)
        self.home_pub.publish(msg)

    def _publish_mission(self, stamp):
        model = self.model
        while model.mission_reached:
            seq = model.mission_reached.popleft()
            self.reached_pub.publish(WaypointReached(header=self._header(stamp), wp_seq=seq))
        if model.mission_changed:
            model.mission_changed = False
            waypoints = []
            for item in model.mission:
                raw = item.raw
                waypoints.append(Waypoint(
                    frame=raw.frame, command=raw.command, is_current=item.seq == model.mission_seq,
                    autocontinue=raw.autocontinue, param1=raw.param1, param2=raw.param2, param3=raw.param3,
                    param4=raw.param4, x_lat=raw.x_lat, y_long=raw.y_long, z_alt=raw.z_alt))
            self.waypoints_pub.publish(WaypointList(current_seq=model.mission_seq, waypoints=waypoints))

    def _publish_events(self, stamp):
        while self.model.events:
            event = self.model.events.popleft()
            self.statustext_pub.publish(StatusText(header=self._header(stamp),
                                                   severity=_SEVERITY[event.severity], text=event.text))
            log = self.node.get_logger()
            line = f"[{self.vehicle_id}] PX4: {event.text}"
            if event.severity == "critical":
                log.warning(line)
            else:
                log.info(line)

    def ground_truth(self) -> GroundTruthVehicle:
        model = self.model
        e, n, u = model.position
        lat, lon, alt = self.frame.to_geodetic(float(e), float(n), float(u))
        truth = GroundTruthVehicle(vehicle_id=self.vehicle_id, height_above_ground_m=float(u), heading=model.yaw,
                                   gimbal_pitch_deg=model.gimbal.pitch, gimbal_roll_deg=model.gimbal.roll,
                                   gimbal_yaw_deg=model.gimbal.yaw, armed=model.armed, airborne=model.airborne,
                                   mode=model.mode, battery_fraction=float(model.battery_fraction),
                                   link_up=model.link_up, gps_ok=model.gps_ok)
        truth.position.latitude, truth.position.longitude, truth.position.altitude = float(lat), float(lon), float(alt)
        truth.velocity.x, truth.velocity.y, truth.velocity.z = (float(v) for v in model.velocity)
        return truth


class SimulatorNode(LeanNode):
    def __init__(self, **kwargs):
        super().__init__("sim", **kwargs)
        self.params = declare(self, [
            Param("fleet_file", "", "path of the fleet file (config/fleet/*.yaml)"),
            Param("mavros_namespace", "mavros", "MAVROS namespace under each vehicle's namespace"),
            Param("speed", 10.0, "target ratio of sim time to wall time", 0.1, 1000.0),
            Param("clock_period_s", 0.1, "/clock resolution: the sim time between two /clock messages; "
                  "timers in other nodes fire on these ticks", 0.01, 0.5),
            Param("physics_substeps", 2, "physics steps per clock tick", 1, 50),
            Param("state_rate_hz", 1.0, "State and ExtendedState rate, as PX4's HEARTBEAT", 0.2, 50.0),
            Param("position_rate_hz", 5.0, "global/local position and velocity rate", 0.5, 100.0),
            Param("docked_position_rate_hz", 5.0, "the same for a vehicle disarmed on the ground: it does not "
                  "move, and nine docked drones' telemetry at 10 x real time is work for every listener",
                  0.1, 100.0),
            Param("battery_rate_hz", 1.0, "BatteryState rate", 0.1, 50.0),
            Param("home_rate_hz", 0.5, "HomePosition rate, as PX4 streams HOME_POSITION", 0.1, 10.0),
            Param("ground_truth_rate_hz", 10.0, "rate of /sim/ground_truth/* (for the camera and evaluation)",
                  0.5, 100.0),
            Param("mavros_connection_timeout_s", 10.0, "heartbeat silence after which MAVROS reports "
                  "State.connected false (MAVROS conn/timeout)", 0.5, 120.0),
            Param("vehicle_overrides", [], "per-vehicle differences from the vehicle.* parameters, as "
                  "VEHICLE.FIELD=VALUE, e.g. uav9.initial_battery_fraction=0.4"),
            Param("geofence_file", "", "GeoJSON whose polygons (united) are every vehicle's inclusion fence, as "
                  "if uploaded to PX4; empty: distance and height limits only"),
            Param("scenario_file", "", "scenario whose faults: list the simulator injects on schedule, and whose "
                  "actors: and background_traffic: move on the street map"),
            Param("world_file", "", "GeoJSON street map (config/world/*.geojson) the ground actors move on"),
            Param("actor_seed", 1, "random seed of the ground actors' choices", 0, 2**31 - 1),
            Param("wait_for_clock_subscribers", 0, "hold sim time at zero until this many /clock "
                  "subscribers are up, so that a graph starts together", 0, 10000),
            Param("stream_sync_s", 0.3, "hold sim time while a vehicle in OFFBOARD has had no setpoint for "
                  "this long, so that a busy machine is not mistaken for a lost stream; 0 disables", 0.0, 5.0),
            Param("stream_sync_max_wall_s", 1.0, "the longest wall time sim time waits for a late stream; a "
                  "stream silent for longer is let go, and PX4's offboard-loss failsafe follows", 0.05, 30.0),
            Param("frame_sync_topic", "", "std_msgs/Header topic where perception marks each drone's newest "
                  "image done (frame_id the vehicle, stamp the image's; a zero stamp: no longer watching); sim "
                  "time waits for it as for a setpoint stream. Empty: perception is not waited for"),
            Param("frame_sync_s", 0.6, "hold sim time while perception is this far behind a camera it watches",
                  0.05, 10.0),
            Param("frame_sync_max_wall_s", 1.0, "the longest wall time sim time waits for perception; then it "
                  "runs on until perception marks a newer image", 0.01, 30.0),
            *documented_params(MultirotorConfig, "vehicle"),
        ])
        if not self.params.fleet_file:
            raise ValueError("parameter 'fleet_file' is empty: give the path of a fleet file")
        fleet = load_fleet(self.params.fleet_file)
        config = documented_config(MultirotorConfig, self.params, "vehicle")
        overrides = parse_overrides([e for e in self.params.vehicle_overrides if e], fleet.vehicles)
        self.vehicles = [SimulatedVehicle(self, fleet, vehicle_id, index,
                                          with_overrides(config, overrides.get(vehicle_id, {})),
                                          self.params.mavros_namespace, self.params)
                         for index, vehicle_id in enumerate(fleet.vehicles)]
        self._by_id = {v.vehicle_id: v for v in self.vehicles}
        if self.params.geofence_file:
            fence = unary_union([area.geometry for area in load_areas(self.params.geofence_file)])
            if fence.geom_type != "Polygon":
                raise ValueError(f"{self.params.geofence_file}: the fence must be one connected polygon")
            for vehicle in self.vehicles:
                vehicle.set_fence(fence)
        scenario = load_yaml(self.params.scenario_file, ValueError, "scenario") if self.params.scenario_file else {}
        scenario = scenario if isinstance(scenario, dict) else {}
        self.site_frame = fleet.site_frame()
        self.actors = ground_actors(load_world(self.params.world_file, self.site_frame), scenario, self.site_frame,
                                    self.params.actor_seed, self.params.scenario_file or "scenario")
        self.actors_pub = self.create_publisher(GroundTruthActors, "/sim/ground_truth/actors", qos.RELIABLE)
        self.fault_timeline = faults.FaultTimeline(faults.parse_schedule(
            scenario.get("faults"), self._by_id, f"{self.params.scenario_file}: faults"))
        self.ground_truth_schedule = _Schedule(self.params.ground_truth_rate_hz)
        self.ground_truth_pub = self.create_publisher(GroundTruthVehicles, "/sim/ground_truth/vehicles",
                                                      qos.RELIABLE)
        self.create_service(InjectFault, "/sim/inject_fault", self._on_inject_fault)
        self.pacer = Pacer(self.params.clock_period_s, self.params.speed)
        self.physics_dt = self.params.clock_period_s / self.params.physics_substeps
        self.sim_now = 0.0
        self._subscribers_seen = -1
        self._graph_up = False
        self.finished = False
        self.exit_code = 0
        self._stream_hold = LateHold(self.params.stream_sync_s, self.params.stream_sync_max_wall_s)
        self._frame_hold = LateHold(self.params.frame_sync_s, self.params.frame_sync_max_wall_s)
        self._frames_done: dict[str, float] = {}        # vehicle -> stamp of the newest image perception finished
        if self.params.frame_sync_topic:
            self.create_subscription(Header, self.params.frame_sync_topic, self._on_frame_done, qos.RELIABLE)
        self.clock_pub = self.create_publisher(ClockMsg, "/clock", 10)
        self._wall = Clock(clock_type=ClockType.STEADY_TIME)
        self.held_wall_s: dict[str, float] = {}      # wall time sim time stood still, by what it waited for
        self._last_tick_wall = self._wall_seconds()
        self._since_last_tick = 0.0
        # At most one clock tick per timer call, so that the rest of the graph gets a turn
        # between ticks; the timer checks twice per tick period, and if the machine falls
        # behind, sim time runs slower rather than in bursts.
        self._timer = self.create_timer(0.5 * self.params.clock_period_s / self.params.speed, self._tick,
                                        clock=self._wall)
        self._publish_all(0)
        self.get_logger().info(
            f"simulating {len(self.vehicles)} vehicles of {fleet.source} at {self.params.speed:g}x "
            f"real time, /clock every {self.params.clock_period_s:g} s")

    def _tick(self):
        if self._waiting_for_graph():
            self._last_tick_wall = self._wall_seconds()
            return
        wall = self._wall_seconds()
        self._since_last_tick, self._last_tick_wall = wall - self._last_tick_wall, wall
        if self._waiting_for_streams(wall) or self._waiting_for_frames(wall):
            return
        if not self.pacer.ticks_due(wall):
            return
        start = self.sim_now
        now_ns = self.pacer.advance()
        self.sim_now = now_ns * 1e-9
        for k in range(1, self.params.physics_substeps + 1):
            t = start + k * self.physics_dt
            for vehicle in self.vehicles:
                vehicle.model.step(t, self.physics_dt)
        if self.actors is not None:
            self.actors.step(self.sim_now, self.sim_now - start)
        self._publish_all(now_ns)

    def _publish_all(self, now_ns: int):
        stamp = Time(sec=now_ns // 1_000_000_000, nanosec=now_ns % 1_000_000_000)
        self.clock_pub.publish(ClockMsg(clock=stamp))
        now = now_ns * 1e-9
        for command in self.fault_timeline.due(now):
            self._inject(command)
        for vehicle in self.vehicles:
            vehicle.publish(now, stamp)
        if self.ground_truth_schedule.due(now):
            # Built only for a listener (the camera renderer, evaluation): a hundred actors cost CPU.
            header = Header(stamp=stamp, frame_id="map")
            if self.ground_truth_pub.get_subscription_count():
                self.ground_truth_pub.publish(GroundTruthVehicles(
                    header=header, vehicles=[v.ground_truth() for v in self.vehicles]))
            if self.actors is not None and self.actors_pub.get_subscription_count():
                self.actors_pub.publish(GroundTruthActors(header=header, actors=self._actor_truth()))

    def _actor_truth(self) -> list[GroundTruthActor]:
        states = self.actors.states()
        if not states:
            return []
        east = [s.position[0] for s in states]
        north = [s.position[1] for s in states]
        lat, lon, alt = self.site_frame.to_geodetic(np.array(east), np.array(north), np.zeros(len(states)))
        out = []
        for i, state in enumerate(states):
            actor = GroundTruthActor(id=state.id, kind=state.kind, heading=float(state.heading),
                                     length_m=float(state.length_m), width_m=float(state.width_m),
                                     height_m=float(state.height_m), red_lights_run=int(state.ran_red_light_count))
            actor.position.latitude, actor.position.longitude = float(lat[i]), float(lon[i])
            actor.position.altitude = float(alt[i])
            actor.velocity.x, actor.velocity.y = float(state.velocity[0]), float(state.velocity[1])
            r, g, b = state.colour
            actor.color.r, actor.color.g, actor.color.b, actor.color.a = r / 255.0, g / 255.0, b / 255.0, 1.0
            out.append(actor)
        return out

    def _inject(self, command: faults.FaultCommand) -> str:
        """Apply a fault command; raises FaultError if it names no vehicle, fault or mode."""
        faults.check(command, self._by_id)
        done = faults.apply(self._by_id[command.vehicle_id].model, command, self.sim_now)
        self.get_logger().warning(f"[{command.vehicle_id}] fault injected: {done}")
        return done

    def _on_inject_fault(self, request, response):
        command = faults.FaultCommand(request.vehicle_id, request.fault, bool(request.active), request.argument,
                                      float(request.value))
        try:
            response.message = self._inject(command)
            response.success = True
        except faults.FaultError as err:
            response.success, response.message = False, str(err)
        return response

    def _waiting_for_graph(self) -> bool:
        """Hold sim time until the expected /clock subscribers have matched the publisher.

        Counted from DDS matching of the /clock publisher, not from the ROS graph cache,
        which can miss participants that start at the same moment (ros2/rmw_fastrtps#792).
        """
        wanted = self.params.wait_for_clock_subscribers
        if not wanted or self._graph_up:
            return False
        if self.count_publishers("/clock") > 1:
            # Two clocks in one graph make every timer wrong: refuse rather than run.
            self.get_logger().error("another node already publishes /clock on this ROS domain (a simulator "
                                    "or a bag played with --clock): set ROS_DOMAIN_ID apart, or stop it")
            self.exit_code = 1
            self.finished = True
            return True
        present = self.clock_pub.get_subscription_count()
        if present < wanted:
            if present != self._subscribers_seen:
                self._subscribers_seen = present
                self.get_logger().info(f"holding sim time: {present} of {wanted} /clock subscribers up")
            return True
        self.get_logger().info(f"all {wanted} /clock subscribers up: sim time starts")
        self._graph_up = True
        return False

    def _waiting_for_streams(self, wall: float) -> bool:
        """Hold sim time while an offboard setpoint stream is late, up to a wall-time limit.

        A stream silent past the limit is let go, and PX4's offboard-loss failsafe follows
        as on a real vehicle.
        """
        if not self.params.stream_sync_s:
            return False
        streams = {v.vehicle_id: v.model.last_setpoint_s for v in self.vehicles
                   if v.model.mode == px4.OFFBOARD and v.model.armed}
        return self._held(self._stream_hold.check(wall, self.sim_now, streams), wall, "offboard setpoints")

    def _waiting_for_frames(self, wall: float) -> bool:
        """Hold sim time while perception is behind a drone's camera, up to a wall-time limit.

        The chase is only as good as the frames perception gets to see: on a busy machine the
        graph runs slower rather than perception seeing one image in four.
        """
        if not self.params.frame_sync_topic:
            return False
        return self._held(self._frame_hold.check(wall, self.sim_now, self._frames_done), wall,
                          "perception's images")

    def _on_frame_done(self, msg: Header):
        """Perception's mark of the newest image it has finished for a drone; a zero stamp: no longer watching."""
        stamp_s = msg.stamp.sec + msg.stamp.nanosec * 1e-9
        if stamp_s > 0.0:
            self._frames_done[msg.frame_id] = stamp_s
        else:
            self._frames_done.pop(msg.frame_id, None)

    def _held(self, decision, wall: float, what: str) -> bool:
        if decision.hold:
            self.held_wall_s[what] = self.held_wall_s.get(what, 0.0) + self._since_last_tick
        for client, behind_s, held_s in decision.released:
            self.get_logger().warning(f"[{client}] {what} late by {behind_s:.1f} s sim and {held_s:.1f} s wall: "
                                      "letting sim time run on")
        if decision.resume:
            self.pacer.resync(wall)       # no catching up for the time held
        return decision.hold

    def _wall_seconds(self) -> float:
        return self._wall.now().nanoseconds * 1e-9

    def real_time_factor(self) -> float:
        return self.pacer.real_time_factor(self._wall_seconds())

    def on_shutdown(self):
        held = ", ".join(f"{seconds:.1f} s for {what}" for what, seconds in self.held_wall_s.items()) or "never"
        self.get_logger().info(
            f"sim time {self.sim_now:.1f} s, real-time factor {self.real_time_factor():.1f}; "
            f"held (wall time): {held}")


def main(args=None):
    sys.exit(run(SimulatorNode, args))


if __name__ == "__main__":
    main()

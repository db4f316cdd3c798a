"""The bridge node: one per vehicle, in the vehicle's namespace.

It serves the ExecuteMission action, turns MAVROS telemetry into a Telemetry snapshot
for the MissionSequencer, makes the autopilot requests the sequencer asks for through
MAVROS's services, streams its setpoints on setpoint_raw/global, and publishes the
vehicle's VehicleStatus. Everything PX4-specific lives in the sequencer; this module
is plumbing.
"""
from __future__ import annotations

import math
import sys

from geographic_msgs.msg import GeoPoint as GeoPointMsg
from geometry_msgs.msg import TwistStamped, Vector3
from mavros_msgs.msg import ExtendedState, GlobalPositionTarget, HomePosition, State, StatusText
from mavros_msgs.srv import CommandBool, CommandTOL, SetMode
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.node import Node
from rclpy.task import Future
from sensor_msgs.msg import BatteryState, NavSatFix, NavSatStatus
from std_msgs.msg import Float64

from dfr_bridge.endurance import EnduranceEstimator
from dfr_bridge.mission_sequencer import (
    MissionSequencer,
    MissionSpec,
    Outcome,
    Phase,
    Request,
    SequencerConfig,
    Telemetry,
    Waypoint,
)
from dfr_bridge.route_follower import FollowerConfig
from dfr_common import qos
from dfr_common.geodesy import GeoPoint
from dfr_common.node_main import run
from dfr_common.parameters import Param, declare
from dfr_common.ros_time import from_seconds
from dfr_interfaces.action import ExecuteMission
from dfr_interfaces.msg import MissionPhase, VehicleStatus

# Stream position, velocity feed-forward and yaw; ignore acceleration and yaw rate.
_SETPOINT_MASK = (GlobalPositionTarget.IGNORE_AFX | GlobalPositionTarget.IGNORE_AFY
                  | GlobalPositionTarget.IGNORE_AFZ | GlobalPositionTarget.IGNORE_YAW_RATE)
_LANDED_ON_GROUND = ExtendedState.LANDED_STATE_ON_GROUND


class BridgeNode(Node):
    def __init__(self, **kwargs):
        super().__init__("bridge", **kwargs)
        p = self.params = declare(self, [
            Param("vehicle_id", "", "the vehicle this bridge flies, as in the fleet file"),
            Param("base_id", "", "the base the vehicle belongs to"),
            Param("mavros_namespace", "mavros", "namespace of this vehicle's MAVROS, relative to the bridge's"),
            Param("control_rate_hz", 10.0, "sequencer and setpoint stream rate; PX4 wants 2 Hz or more",
                  2.0, 50.0),
            Param("status_rate_hz", 2.0, "VehicleStatus rate", 0.2, 20.0),
            Param("feedback_rate_hz", 2.0, "mission action feedback rate", 0.2, 20.0),
            Param("request_timeout_s", 10.0, "time to wait for MAVROS to answer a service call", 1.0, 60.0),
            Param("min_launch_battery", 0.5, "battery fraction needed to accept a mission", 0.05, 1.0),
            Param("battery_reserve", 0.2, "battery fraction kept in reserve for landing and contingencies",
                  0.0, 0.9),
            Param("nominal_endurance_s", 1800.0, "full-battery flight time, until a drain rate is measured",
                  60.0, 20000.0),
            Param("max_altitude_m", 120.0, "ceiling above home; plans that climb higher are refused", 5.0, 500.0),
            Param("preflight_timeout_s", 10.0, "time for pre-flight checks to pass", 1.0, 120.0),
            Param("takeoff_complete_alt_m", 2.0, "height above home at which PX4's take-off counts as done",
                  0.5, 50.0),
            Param("takeoff_timeout_s", 60.0, "time allowed for each take-off step", 5.0, 600.0),
            Param("offboard_prestream_s", 1.0, "setpoint streaming before asking for OFFBOARD", 0.5, 10.0),
            Param("mode_confirm_timeout_s", 3.0, "time for the autopilot to report a requested mode",
                  1.0, 30.0),
            Param("request_attempts", 3, "tries of a refused request before the mission fails", 1, 10),
            Param("retry_backoff_s", 1.0, "wait after the first refusal, doubled after each", 0.1, 30.0),
            Param("link_timeout_s", 5.0, "MAVROS State silence after which the link counts as lost",
                  1.5, 60.0),
            Param("land_timeout_s", 180.0, "time allowed from the land request to disarm", 10.0, 1200.0),
            Param("climb_speed_m_s", 3.0, "climb rate planned for vertical legs", 0.5, 10.0),
            Param("descent_speed_m_s", 1.5, "descent rate planned for descending legs", 0.3, 10.0),
            Param("accel_m_s2", 3.0, "acceleration assumed when braking for a route's end", 0.5, 10.0),
            Param("acceptance_radius_m", 3.0, "distance at which a route's last point counts as reached",
                  0.5, 50.0),
            Param("altitude_tolerance_m", 1.5, "height error allowed at a route's last point", 0.2, 20.0),
        ])
        if not p.vehicle_id:
            raise ValueError("parameter 'vehicle_id' is empty: a bridge flies one named vehicle")
        self.sequencer_config = SequencerConfig(
            min_launch_battery=p.min_launch_battery, preflight_timeout_s=p.preflight_timeout_s,
            takeoff_complete_alt_m=p.takeoff_complete_alt_m, takeoff_timeout_s=p.takeoff_timeout_s,
            offboard_prestream_s=p.offboard_prestream_s, mode_confirm_timeout_s=p.mode_confirm_timeout_s,
            request_attempts=p.request_attempts, retry_backoff_s=p.retry_backoff_s,
            link_timeout_s=p.link_timeout_s, land_timeout_s=p.land_timeout_s, max_altitude_m=p.max_altitude_m)
        self.endurance = EnduranceEstimator(p.nominal_endurance_s, p.battery_reserve)

        self.telemetry = Telemetry(now_s=0.0)
        self.velocity = Vector3()
        self._altitude_ellipsoid = math.nan
        self.sequencer: MissionSequencer | None = None
        self.goal_handle = None
        self._mission_done: Future | None = None
        self._incident_id = ""
        self._requests_in_flight: dict[Request, tuple[float, str]] = {}
        self._detail = ""

        ns = p.mavros_namespace
        sub = self.create_subscription
        sub(State, f"{ns}/state", self._on_state, qos.LATCHED_STATE)
        sub(ExtendedState, f"{ns}/extended_state", self._on_extended_state, qos.LATCHED_STATE)
        sub(NavSatFix, f"{ns}/global_position/global", self._on_global, qos.SENSOR_DATA)
        sub(Float64, f"{ns}/global_position/rel_alt", self._on_rel_alt, qos.SENSOR_DATA)
        sub(TwistStamped, f"{ns}/local_position/velocity_local", self._on_velocity, qos.SENSOR_DATA)
        sub(BatteryState, f"{ns}/battery", self._on_battery, qos.SENSOR_DATA)
        sub(HomePosition, f"{ns}/home_position/home", self._on_home, qos.LATCHED_STATE)
        sub(StatusText, f"{ns}/statustext/recv", self._on_statustext, qos.SENSOR_DATA)
        self.arming_client = self.create_client(CommandBool, f"{ns}/cmd/arming")
        self.takeoff_client = self.create_client(CommandTOL, f"{ns}/cmd/takeoff")
        self.set_mode_client = self.create_client(SetMode, f"{ns}/set_mode")
        self.setpoint_pub = self.create_publisher(GlobalPositionTarget, f"{ns}/setpoint_raw/global",
                                                  qos.SENSOR_DATA)
        self.status_pub = self.create_publisher(VehicleStatus, "vehicle_status", qos.LATCHED_STATE)

        self.action_server = ActionServer(
            self, ExecuteMission, "execute_mission", execute_callback=self._execute,
            goal_callback=self._on_goal, cancel_callback=self._on_cancel)
        self.create_timer(1.0 / p.control_rate_hz, self._control)
        self.create_timer(1.0 / p.status_rate_hz, self._publish_status)
        self.create_timer(1.0 / p.feedback_rate_hz, self._publish_feedback)
        self.get_logger().info(f"bridge for {p.vehicle_id} on {self.resolve_topic_name(ns)}")

    # ------------------------------------------------------------- telemetry
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_state(self, msg: State):
        t = self.telemetry
        t.connected, t.armed, t.mode = msg.connected, msg.armed, msg.mode
        t.last_state_s = self._now()

    def _on_extended_state(self, msg: ExtendedState):
        self.telemetry.landed_state = msg.landed_state

    def _on_global(self, msg: NavSatFix):
        t = self.telemetry
        t.latitude, t.longitude = msg.latitude, msg.longitude
        t.gps_fix = msg.status.status >= NavSatStatus.STATUS_FIX
        self._altitude_ellipsoid = msg.altitude

    def _on_rel_alt(self, msg: Float64):
        self.telemetry.altitude_rel_m = msg.data

    def _on_velocity(self, msg: TwistStamped):
        self.velocity = msg.twist.linear

    def _on_battery(self, msg: BatteryState):
        self.telemetry.battery_fraction = msg.percentage
        flying = self.telemetry.armed and self.telemetry.landed_state != _LANDED_ON_GROUND
        self.endurance.update(self._now(), msg.percentage, flying)

    def _on_home(self, msg: HomePosition):
        self.telemetry.home = GeoPoint(msg.geo.latitude, msg.geo.longitude, msg.geo.altitude)

    def _on_statustext(self, msg: StatusText):
        if msg.severity <= StatusText.WARNING:
            self.telemetry.autopilot_message = msg.text
            if self.sequencer is not None:
                self.sequencer.note_autopilot_message(msg.text)

    # ---------------------------------------------------------------- action
    def _on_goal(self, goal: ExecuteMission.Goal) -> GoalResponse:
        if self.sequencer is not None and not self.sequencer.done:
            self.get_logger().warning(
                f"refused mission {goal.plan.mission_id}: already flying {self.sequencer.spec.mission_id}")
            return GoalResponse.REJECT
        problem = _plan_problem(goal)
        if problem:
            self.get_logger().error(f"refused mission {goal.plan.mission_id}: {problem}")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_cancel(self, goal_handle) -> CancelResponse:
        if self.sequencer is not None and goal_handle is self.goal_handle:
            self.get_logger().info(f"mission {self.sequencer.spec.mission_id} canceled: returning")
            self.sequencer.cancel()
        return CancelResponse.ACCEPT

    async def _execute(self, goal_handle):
        goal = goal_handle.request
        plan = goal.plan
        spec = MissionSpec(
            mission_id=plan.mission_id, incident_id=goal.incident.incident_id,
            route=[Waypoint(w.latitude, w.longitude, w.altitude_rel_m) for w in plan.route],
            scene=GeoPoint(plan.scene.latitude, plan.scene.longitude, plan.scene.altitude),
            cruise_speed_m_s=plan.cruise_speed_m_s, standoff_radius_m=plan.standoff_radius_m,
            on_scene_duration_s=plan.on_scene_duration_s,
            return_route=[Waypoint(w.latitude, w.longitude, w.altitude_rel_m) for w in plan.return_route])
        config = self.sequencer_config
        config.follower = FollowerConfig(
            cruise_speed_m_s=plan.cruise_speed_m_s, climb_speed_m_s=self.params.climb_speed_m_s,
            descent_speed_m_s=self.params.descent_speed_m_s, accel_m_s2=self.params.accel_m_s2,
            acceptance_radius_m=self.params.acceptance_radius_m,
            altitude_tolerance_m=self.params.altitude_tolerance_m)
        self.sequencer = MissionSequencer(spec, config)
        self.goal_handle = goal_handle
        self._incident_id = spec.incident_id
        self._mission_done = Future()
        self._detail = f"mission {spec.mission_id} for incident {spec.incident_id} started"
        self.get_logger().info(self._detail)
        await self._mission_done

        seq = self.sequencer
        result = ExecuteMission.Result(outcome=seq.outcome.value, reason=seq.reason,
                                       reached_scene=seq.on_scene_since_s is not None,
                                       distance_flown_m=float(seq.distance_flown_m))
        if seq.on_scene_since_s is not None:
            result.on_scene_stamp = from_seconds(seq.on_scene_since_s)
        if seq.takeoff_time_s is not None:
            end = seq.landed_time_s if seq.landed_time_s is not None else self._now()
            result.flight_time_s = float(end - seq.takeoff_time_s)
        self._detail = f"mission {spec.mission_id} ended: {seq.outcome.name.lower()}: {seq.reason}"
        log = self.get_logger().info if seq.outcome == Outcome.COMPLETED else self.get_logger().warning
        log(self._detail)
        if seq.outcome == Outcome.COMPLETED:
            goal_handle.succeed()
        elif seq.outcome == Outcome.CANCELED and goal_handle.is_cancel_requested:
            goal_handle.canceled()
        else:
            goal_handle.abort()
        self.goal_handle = None
        return result

    # --------------------------------------------------------------- control
    def _control(self):
        seq = self.sequencer
        if seq is None or seq.done:
            return
        now = self._now()
        self.telemetry.now_s = now
        self._expire_requests(now)
        for request in seq.update(self.telemetry):
            self._send(request, now)
        if seq.setpoint is not None:
            self._publish_setpoint(seq)
        if seq.done and self._mission_done is not None and not self._mission_done.done():
            self._mission_done.set_result(True)

    def _send(self, request: Request, now: float):
        if request.kind == "arm":
            client, msg, name = self.arming_client, CommandBool.Request(value=True), "cmd/arming"
        elif request.kind == "takeoff":
            # NaN position: take off in place; NaN altitude: PX4's MIS_TAKEOFF_ALT.
            client, name = self.takeoff_client, "cmd/takeoff"
            msg = CommandTOL.Request(min_pitch=0.0, yaw=math.nan, latitude=math.nan,
                                     longitude=math.nan, altitude=math.nan)
        else:
            client, msg, name = self.set_mode_client, SetMode.Request(base_mode=0, custom_mode=request.mode), \
                "set_mode"
        # No service_is_ready() gate: it reads the ROS graph cache, which can miss a server that
        # DDS has matched (ros2/rmw_fastrtps#792). An unanswered call times out instead.
        self._requests_in_flight[request] = (now, name)
        self.get_logger().info(f"requesting {request.describe()}")
        client.call_async(msg).add_done_callback(lambda future: self._on_response(request, future))

    def _on_response(self, request: Request, future):
        if self._requests_in_flight.pop(request, None) is None or self.sequencer is None:
            return   # timed out already
        response = future.result()
        if request.kind == "mode":
            accepted, detail = response.mode_sent, "MAVROS did not send the mode (unknown name)"
        else:
            accepted = response.success
            detail = f"MAV_RESULT {response.result}"
        if not accepted:
            self.get_logger().warning(f"{request.describe()} refused: {detail}")
        self.sequencer.on_request_done(request, accepted, detail)

    def _expire_requests(self, now: float):
        for request, (sent, name) in list(self._requests_in_flight.items()):
            if now - sent > self.params.request_timeout_s:
                del self._requests_in_flight[request]
                self.sequencer.on_request_done(request, False, f"no answer from MAVROS {name} within "
                                               f"{self.params.request_timeout_s:.0f} s")

    def _publish_setpoint(self, seq: MissionSequencer):
        sp = seq.setpoint
        msg = GlobalPositionTarget(coordinate_frame=GlobalPositionTarget.FRAME_GLOBAL_REL_ALT,
                                   type_mask=_SETPOINT_MASK, latitude=sp.latitude, longitude=sp.longitude,
                                   altitude=sp.altitude_rel_m, yaw=sp.yaw_enu, yaw_rate=0.0)
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.velocity = Vector3(x=sp.velocity_enu[0], y=sp.velocity_enu[1], z=sp.velocity_enu[2])
        self.setpoint_pub.publish(msg)

    def _publish_feedback(self):
        seq = self.sequencer
        if self.goal_handle is None or seq is None or seq.done:
            return
        t = self.telemetry
        feedback = ExecuteMission.Feedback(
            phase=MissionPhase(value=seq.phase.value), altitude_rel_m=_f32(t.altitude_rel_m),
            distance_to_go_m=_f32(seq.distance_to_go_m), eta_s=_f32(seq.eta_s),
            battery_fraction=_f32(t.battery_fraction))
        feedback.position = self._position_msg()
        self.goal_handle.publish_feedback(feedback)

    # ---------------------------------------------------------------- status
    def _position_msg(self) -> GeoPointMsg:
        t = self.telemetry
        return GeoPointMsg(latitude=t.latitude, longitude=t.longitude, altitude=self._altitude_ellipsoid)

    def _publish_status(self):
        t = self.telemetry
        seq = self.sequencer
        flying_mission = seq is not None and not seq.done
        status = VehicleStatus(
            vehicle_id=self.params.vehicle_id, base_id=self.params.base_id,
            connected=t.connected and self._now() - t.last_state_s <= self.params.link_timeout_s,
            armed=t.armed, mode=t.mode, landed_state=t.landed_state, position=self._position_msg(),
            altitude_rel_m=_f32(t.altitude_rel_m), velocity=self.velocity,
            battery_fraction=_f32(t.battery_fraction),
            flight_time_remaining_s=_f32(self.endurance.remaining_s(t.battery_fraction)),
            mission_id=seq.spec.mission_id if flying_mission else "",
            incident_id=self._incident_id if flying_mission else "",
            phase=MissionPhase(value=seq.phase.value if flying_mission else Phase.IDLE.value),
            detail=self._detail)
        status.available = (not flying_mission and status.connected and not t.armed
                            and t.landed_state == _LANDED_ON_GROUND and t.gps_fix and t.home is not None
                            and t.battery_fraction >= self.params.min_launch_battery)
        status.header.stamp = self.get_clock().now().to_msg()
        self.status_pub.publish(status)


def _f32(value: float) -> float:
    return float(value) if value is not None else math.nan


def _plan_problem(goal: ExecuteMission.Goal) -> str:
    """Why a mission goal cannot be flown as given; empty when it can."""
    plan = goal.plan
    if not plan.mission_id:
        return "the plan has no mission_id"
    if not goal.incident.incident_id:
        return "the mission names no incident: every flight must answer one"
    if not plan.route:
        return "the plan has no route"
    for name, points in (("route", plan.route), ("return_route", plan.return_route)):
        for i, w in enumerate(points):
            if not all(math.isfinite(v) for v in (w.latitude, w.longitude, w.altitude_rel_m)):
                return f"{name}[{i}] has a non-finite coordinate"
            if not (-90 <= w.latitude <= 90 and -180 <= w.longitude <= 180):
                return f"{name}[{i}] is not on the Earth"
    if not (math.isfinite(plan.cruise_speed_m_s) and plan.cruise_speed_m_s > 0):
        return f"cruise speed {plan.cruise_speed_m_s} is not a positive number"
    if not math.isfinite(plan.on_scene_duration_s) or plan.on_scene_duration_s < 0:
        return f"on-scene duration {plan.on_scene_duration_s} is not a non-negative number"
    return ""


def main(args=None):
    sys.exit(run(BridgeNode, args))


if __name__ == "__main__":
    main()

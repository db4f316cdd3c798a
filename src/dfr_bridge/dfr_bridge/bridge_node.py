"""The bridge node: one per vehicle, in the vehicle's namespace.

It serves the ExecuteMission action, turns MAVROS telemetry into a Telemetry snapshot
for the MissionSequencer, makes the autopilot requests the sequencer asks for through
MAVROS's services, streams its setpoints on setpoint_raw/global, and publishes the
vehicle's VehicleStatus. Everything PX4-specific lives in the sequencer; this module
is plumbing, plus the flight rules (dfr_audit.rules) as the bridge itself knows the incidents
from intake's latched topic: it refuses a mission whose incident is not open and eligible (or
unknown to it) before arming, and takes a drone home from an incident closed with no recall.
"""
from __future__ import annotations

import functools
import itertools
import math
import sys

from geographic_msgs.msg import GeoPoint as GeoPointMsg
from geometry_msgs.msg import TwistStamped, Vector3
from mavros_msgs.msg import (
    ExtendedState,
    GlobalPositionTarget,
    HomePosition,
    MountControl,
    State,
    StatusText,
    Waypoint,
    WaypointReached,
)
from mavros_msgs.srv import CommandBool, CommandTOL, SetMode, WaypointPush
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.task import Future
from sensor_msgs.msg import BatteryState, NavSatFix, NavSatStatus
from shapely.ops import unary_union
from std_msgs.msg import Float64

from dfr_audit.rules import Authorization, must_leave_scene
from dfr_audit.rules_ros import FlightRulesOnNode, flight_rule_params, incident_facts, keep_latest
from dfr_bridge.endurance import EnduranceEstimator
from dfr_bridge.follow_limits import FollowLimitsConfig
from dfr_bridge.mission_sequencer import (
    FollowTarget,
    MissionSequencer,
    MissionSpec,
    Request,
    SequencerConfig,
    Telemetry,
    plan_problems,
    route_mission,
)
from dfr_bridge.mission_sequencer import Waypoint as RoutePoint
from dfr_bridge.route_follower import FollowerConfig
from dfr_common import px4
from dfr_common.areas import load_areas
from dfr_common.geodesy import GeoPoint
from dfr_common.mission import Outcome, Phase
from dfr_common.ros import qos
from dfr_common.ros.lean_node import WARN_INCOMPATIBLE_SUBSCRIPTION, LeanNode
from dfr_common.ros.node_main import run
from dfr_common.ros.parameters import Param, declare
from dfr_common.ros.stamps import from_seconds, to_seconds
from dfr_interfaces.action import ExecuteMission
from dfr_interfaces.msg import FollowSetpoint, Incident, MissionPhase, MissionPlan, VehicleStatus

# Stream position, velocity feed-forward and yaw; ignore acceleration and yaw rate.
_SETPOINT_MASK = (GlobalPositionTarget.IGNORE_AFX | GlobalPositionTarget.IGNORE_AFY
                  | GlobalPositionTarget.IGNORE_AFZ | GlobalPositionTarget.IGNORE_YAW_RATE)


def mission_spec(goal: ExecuteMission.Goal) -> MissionSpec:
    plan = goal.plan
    return MissionSpec(
        mission_id=plan.mission_id, incident_id=goal.incident.incident_id,
        route=[RoutePoint(w.latitude, w.longitude, w.altitude_rel_m) for w in plan.route],
        scene=GeoPoint(plan.scene.latitude, plan.scene.longitude, plan.scene.altitude),
        cruise_speed_m_s=plan.cruise_speed_m_s, on_scene_duration_s=plan.on_scene_duration_s,
        return_route=[RoutePoint(w.latitude, w.longitude, w.altitude_rel_m) for w in plan.return_route],
        standoff_radius_m=plan.standoff_radius_m, flight_kind=plan.flight_kind or MissionPlan.FLIGHT_KIND_INCIDENT)


class BridgeNode(LeanNode):
    def __init__(self, **kwargs):
        super().__init__("bridge", **kwargs)
        p = self.params = declare(self, [
            Param("vehicle_id", "", "the vehicle this bridge flies, as in the fleet file"),
            Param("base_id", "", "the base the vehicle belongs to"),
            Param("mavros_namespace", "mavros", "namespace of this vehicle's MAVROS, relative to the bridge's"),
            Param("control_rate_hz", 10.0, "sequencer and setpoint stream rate; PX4 wants 2 Hz or more",
                  2.0, 50.0),
            Param("status_rate_hz", 2.0, "VehicleStatus rate", 0.2, 20.0),
            Param("docked_status_period_s", 2.0, "while the drone is docked, disarmed and has no mission, its "
                  "status is sent this often, and at the next status tick after any change; keep it well "
                  "under dispatch's status_timeout_s", 0.1, 10.0),
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
            Param("position_timeout_s", 3.0, "position silence in flight after which the bridge gives up",
                  0.5, 60.0),
            Param("land_timeout_s", 180.0, "time allowed from the land request to disarm", 10.0, 1200.0),
            Param("land_radius_m", 1.0, "home from a mission, the drone holds within this of its dock for "
                  "land_settle_s before PX4 is asked to land (PX4 lands straight down)", 0.1, 20.0),
            Param("land_settle_s", 1.0, "how long it holds within land_radius_m", 0.0, 30.0),
            Param("land_hold_max_s", 15.0, "the longest it holds over the dock; then it lands where it is",
                  0.0, 300.0),
            Param("climb_speed_m_s", 3.0, "climb rate planned for vertical legs", 0.5, 10.0),
            Param("descent_speed_m_s", 1.5, "descent rate planned for descending legs", 0.3, 10.0),
            Param("accel_m_s2", 3.0, "acceleration assumed when braking for a route's end", 0.5, 10.0),
            Param("route_setpoint_lead_max_s", 1.5, "the route's setpoint moves on in time up to this much flight "
                  "ahead of the last reported position: the loop's delay it absorbs without slowing the drone",
                  0.0, 5.0),
            Param("acceptance_radius_m", 3.0, "distance at which a route's last point counts as reached",
                  0.5, 50.0),
            Param("altitude_tolerance_m", 1.5, "height error allowed at a route's last point", 0.2, 20.0),
            Param("transit_mode", "offboard", "how the route is flown: 'offboard' streams setpoint_raw/global; "
                  "'mission' pushes it as a PX4 mission and flies it in AUTO.MISSION"),
            Param("mission_acceptance_radius_m", 5.0, "acceptance radius of the pushed mission's waypoints",
                  0.5, 100.0),
            Param("on_scene_pattern", "orbit", "on scene: 'orbit' the incident at the plan's stand-off radius, "
                  "or 'hold' at the route's end"),
            Param("orbit_speed_m_s", 5.0, "speed along the orbit", 0.5, 20.0),
            Param("follow_timeout_s", 2.0, "follow setpoints older than this end the follow: back to the orbit",
                  0.2, 30.0),
            Param("follow_max_speed_m_s", 15.0, "speed limit while following", 1.0, 30.0),
            Param("follow_min_altitude_m", 30.0, "lowest height above home while following", 5.0, 120.0),
            Param("follow_max_distance_m", 1500.0, "how far from the incident a follow may lead", 50.0, 20000.0),
            Param("permitted_area_file", "", "GeoJSON whose polygons (united) follow setpoints are kept inside; "
                  "empty: no area limit beyond the distance from the incident"),
            Param("return_margin_s", 60.0, "time kept beyond the estimated flight home before turning back on "
                  "the battery reserve", 0.0, 1200.0),
            Param("gimbal_rate_hz", 10.0, "rate of mount_control commands: the gimbal's yaw is from the nose, so "
                  "it is re-aimed as the nose turns", 0.2, 50.0),
            Param("max_yaw_rate_deg_s", 45.0, "the nose turns no faster than this (PX4's MPC_YAWRAUTO_MAX default), "
                  "and the camera with it", 1.0, 360.0),
            Param("on_scene_height_m", 40.0, "height above home the scene is watched from (the transit layers are "
                  "higher): from 40 m a 640 px camera of 80 degrees makes out a 2 m e-bike 60 m away in about 13 px; "
                  "0 keeps the height it arrives at", 0.0, 120.0),
            Param("max_camera_rate_deg_s", 90.0, "looking down, the camera pans no faster than this in the world: "
                  "a new target is panned to, not jumped to, yet a rider passing close by is kept", 1.0, 360.0),
            Param("camera_ahead_pitch_deg", 0.0, "camera pitch (MOUNT degrees, 0 level) wherever the flight rules "
                  "keep it from looking down: in transit, on the way home", -20.0, 20.0),
            Param("incidents_topic", "/dfr/incidents", "intake's latched incidents, by which missions are checked"),
            Param("incident_history_depth", 1000, "depth of the latched incident subscription", 10, 100000),
            Param("closed_incident_grace_s", 10.0, "time a drone may stay on a closed incident waiting for "
                  "dispatch's recall before the bridge takes it home itself", 0.0, 600.0),
            *flight_rule_params(),
        ])
        if not p.vehicle_id:
            raise ValueError("parameter 'vehicle_id' is empty: a bridge flies one named vehicle")
        self.sequencer_config = SequencerConfig(
            min_launch_battery=p.min_launch_battery, preflight_timeout_s=p.preflight_timeout_s,
            takeoff_complete_alt_m=p.takeoff_complete_alt_m, takeoff_timeout_s=p.takeoff_timeout_s,
            offboard_prestream_s=p.offboard_prestream_s, mode_confirm_timeout_s=p.mode_confirm_timeout_s,
            request_attempts=p.request_attempts, retry_backoff_s=p.retry_backoff_s,
            link_timeout_s=p.link_timeout_s, position_timeout_s=p.position_timeout_s,
            land_timeout_s=p.land_timeout_s, land_radius_m=p.land_radius_m, land_settle_s=p.land_settle_s,
            land_hold_max_s=p.land_hold_max_s, max_altitude_m=p.max_altitude_m,
            follower=FollowerConfig(climb_speed_m_s=p.climb_speed_m_s, descent_speed_m_s=p.descent_speed_m_s,
                                    accel_m_s2=p.accel_m_s2, max_lead_s=p.route_setpoint_lead_max_s,
                                    acceptance_radius_m=p.acceptance_radius_m,
                                    altitude_tolerance_m=p.altitude_tolerance_m),
            transit_mode=p.transit_mode, mission_acceptance_radius_m=p.mission_acceptance_radius_m,
            on_scene_pattern=p.on_scene_pattern, orbit_speed_m_s=p.orbit_speed_m_s,
            on_scene_height_m=p.on_scene_height_m,
            follow_timeout_s=p.follow_timeout_s,
            follow_limits=FollowLimitsConfig(max_speed_m_s=p.follow_max_speed_m_s,
                                             min_altitude_m=p.follow_min_altitude_m, max_altitude_m=p.max_altitude_m,
                                             max_distance_m=p.follow_max_distance_m),
            return_margin_s=p.return_margin_s, camera_ahead_pitch_deg=p.camera_ahead_pitch_deg,
            max_yaw_rate_deg_s=p.max_yaw_rate_deg_s, max_camera_rate_deg_s=p.max_camera_rate_deg_s)
        self.flight_rules = FlightRulesOnNode(self, p)
        if p.transit_mode not in ("offboard", "mission"):
            raise ValueError(f"parameter 'transit_mode' is '{p.transit_mode}': use 'offboard' or 'mission'")
        if p.on_scene_pattern not in ("orbit", "hold"):
            raise ValueError(f"parameter 'on_scene_pattern' is '{p.on_scene_pattern}': use 'orbit' or 'hold'")
        self.permitted_area = None
        if p.permitted_area_file:
            self.permitted_area = unary_union([a.geometry for a in load_areas(p.permitted_area_file)])
            if self.permitted_area.geom_type != "Polygon":
                raise ValueError(f"{p.permitted_area_file}: the permitted area must be one connected polygon")
        self.endurance = EnduranceEstimator(p.nominal_endurance_s, p.battery_reserve)

        self.telemetry = Telemetry(now_s=0.0)
        self.velocity = Vector3()
        self._altitude_ellipsoid = math.nan
        self.sequencer: MissionSequencer | None = None
        self.goal_handle = None
        self._busy = False            # a goal has been accepted and not yet finished
        self._retask_pending = False  # a retask goal has been accepted and not yet taken over
        self._mission_done: Future | None = None
        self._calls = itertools.count()
        self._in_flight: dict[int, tuple[Request, float, str]] = {}   # call id -> request, sent, service
        self._detail = ""
        self.incidents: dict[str, Incident] = {}      # intake's latest revision of each, as this bridge heard it
        self._closed_since: dict[str, float] = {}     # incident -> when this bridge heard it closed

        ns = p.mavros_namespace
        # A real MAVROS's QoS is not ours to fix: a mismatch is warned about, as rclpy does by default.
        sub = functools.partial(self.create_subscription, event_callbacks=WARN_INCOMPATIBLE_SUBSCRIPTION)
        sub(State, f"{ns}/state", self._on_state, qos.LATCHED_STATE)
        sub(ExtendedState, f"{ns}/extended_state", self._on_extended_state, qos.LATCHED_STATE)
        sub(NavSatFix, f"{ns}/global_position/global", self._on_global, qos.SENSOR_DATA)
        sub(Float64, f"{ns}/global_position/rel_alt", self._on_rel_alt, qos.SENSOR_DATA)
        sub(TwistStamped, f"{ns}/local_position/velocity_local", self._on_velocity, qos.SENSOR_DATA)
        sub(BatteryState, f"{ns}/battery", self._on_battery, qos.SENSOR_DATA)
        sub(HomePosition, f"{ns}/home_position/home", self._on_home, qos.LATCHED_STATE)
        sub(StatusText, f"{ns}/statustext/recv", self._on_statustext, qos.SENSOR_DATA)
        sub(Float64, f"{ns}/global_position/compass_hdg", self._on_heading, qos.SENSOR_DATA)
        sub(WaypointReached, f"{ns}/mission/reached", self._on_mission_reached, qos.MAVROS_MISSION)
        self.create_subscription(FollowSetpoint, "follow/setpoint", self._on_follow_setpoint, qos.SENSOR_DATA)
        self.create_subscription(Incident, p.incidents_topic, self._on_incident,
                                 qos.incidents(p.incident_history_depth))
        self.mavros_clients = {
            "arm": (self.create_client(CommandBool, f"{ns}/cmd/arming"), "cmd/arming"),
            "takeoff": (self.create_client(CommandTOL, f"{ns}/cmd/takeoff"), "cmd/takeoff"),
            "mode": (self.create_client(SetMode, f"{ns}/set_mode"), "set_mode"),
            "mission": (self.create_client(WaypointPush, f"{ns}/mission/push"), "mission/push"),
        }
        self.setpoint_pub = self.create_publisher(GlobalPositionTarget, f"{ns}/setpoint_raw/global",
                                                  qos.SENSOR_DATA)
        self.mount_pub = self.create_publisher(MountControl, f"{ns}/mount_control/command", qos.RELIABLE)
        self.status_pub = self.create_publisher(VehicleStatus, "vehicle_status", qos.LATCHED_STATE)

        self.action_server = ActionServer(
            self, ExecuteMission, "execute_mission", execute_callback=self._execute,
            goal_callback=self._on_goal, cancel_callback=self._on_cancel)
        self.create_timer(1.0 / p.status_rate_hz, self._publish_status)
        # The setpoint stream, gimbal and feedback run only while a mission flies: a docked drone's
        # bridge wakes for its status alone (the nine bridges were a third of the graph's CPU at
        # 10 x real time, most of them docked).
        self._mission_timers: list = []
        self._last_status_content: tuple | None = None
        self._last_status_s = -math.inf
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
        t.last_position_s = self._now()
        self._altitude_ellipsoid = msg.altitude

    def _on_rel_alt(self, msg: Float64):
        self.telemetry.altitude_rel_m = msg.data

    def _on_velocity(self, msg: TwistStamped):
        self.velocity = msg.twist.linear

    def _on_battery(self, msg: BatteryState):
        self.telemetry.battery_fraction = msg.percentage
        flying = self.telemetry.armed and self.telemetry.landed_state != px4.LANDED_STATE_ON_GROUND
        self.endurance.update(self._now(), msg.percentage, flying)

    def _on_heading(self, msg: Float64):
        # compass_hdg: degrees clockwise from north; REP-103 yaw: radians counter-clockwise from east.
        self.telemetry.heading_enu = math.radians(90.0 - msg.data)

    def _on_mission_reached(self, msg: WaypointReached):
        self.telemetry.mission_reached_seq = msg.wp_seq

    def _on_follow_setpoint(self, msg: FollowSetpoint):
        seq = self.sequencer
        if seq is None or seq.done or msg.mission_id != seq.spec.mission_id:
            return      # only for the mission in the air: a setpoint for another is never flown
        values = (msg.latitude, msg.longitude, msg.altitude_rel_m, msg.velocity.x, msg.velocity.y)
        if not all(math.isfinite(v) for v in values) or abs(msg.latitude) > 90 or abs(msg.longitude) > 180:
            self.get_logger().warning(f"follow setpoint for track {msg.track_id} is not a position: ignored")
            return
        seq.follow(FollowTarget(to_seconds(msg.header.stamp), msg.track_id, msg.latitude, msg.longitude,
                                msg.altitude_rel_m, (msg.velocity.x, msg.velocity.y, 0.0),
                                msg.look_at.latitude, msg.look_at.longitude))
        if seq.phase == Phase.FOLLOW:
            # Flown and aimed at once, not at the next control tick: on a 0.2 s clock that tick is a
            # frame later, and a frame's delay cost the chase evaluation a fifth of the rider in view.
            self._control()
            self._publish_gimbal()

    def _on_incident(self, msg: Incident):
        if keep_latest(self.incidents, msg) and msg.state != Incident.STATE_OPEN:
            self._closed_since.setdefault(msg.incident_id, self._now())

    def _on_home(self, msg: HomePosition):
        self.telemetry.home = GeoPoint(msg.geo.latitude, msg.geo.longitude, msg.geo.altitude)

    def _on_statustext(self, msg: StatusText):
        if msg.severity <= StatusText.WARNING and self.sequencer is not None:
            self.sequencer.note_autopilot_message(msg.text, self._now())

    # ---------------------------------------------------------------- action
    def _publish_decision(self, decision: Authorization, mission_id: str, incident_id: str):
        self.flight_rules.publish(decision, self.params.vehicle_id, mission_id, incident_id)

    def _on_goal(self, goal: ExecuteMission.Goal) -> GoalResponse:
        mission_id = goal.plan.mission_id or "(no id)"
        # The incident as this bridge heard it from intake, never as the goal describes it.
        incident_id = goal.incident.incident_id
        decision = self.flight_rules.authorize(goal.plan.flight_kind, incident_id, self.incidents.get(incident_id))
        if not decision.allowed:
            self.get_logger().error(f"refused mission {mission_id} by the flight rules ({decision.rule}): "
                                    f"{decision.reason}")
            self._publish_decision(decision, mission_id, incident_id)
            return GoalResponse.REJECT
        if self._busy:
            current = self.sequencer.spec.mission_id if self.sequencer else "a mission"
            if not goal.plan.retask_in_flight:
                self.get_logger().warning(f"refused mission {mission_id}: already flying {current}")
                return GoalResponse.REJECT
            problem = ("another retask is being taken up" if self._retask_pending
                       else self.sequencer.retask_problem() if self.sequencer else "no mission is flying")
            if problem:
                self.get_logger().warning(f"refused mission {mission_id} in place of {current}: {problem}")
                return GoalResponse.REJECT
        elif goal.plan.retask_in_flight:
            self.get_logger().warning(f"refused mission {mission_id}: it is planned from the vehicle's position "
                                      "in flight, and the vehicle is not flying a mission")
            return GoalResponse.REJECT
        problems = plan_problems(mission_spec(goal), self.sequencer_config)
        if problems:
            self.get_logger().error(f"refused mission {mission_id}: {'; '.join(problems)}")
            return GoalResponse.REJECT
        self._retask_pending = self._busy
        self._busy = True     # before the next goal is looked at: one mission at a time
        if decision.flight_kind != MissionPlan.FLIGHT_KIND_INCIDENT:
            self.get_logger().warning(f"mission {mission_id}: {decision.reason}")
            self._publish_decision(decision, mission_id, incident_id)
        return GoalResponse.ACCEPT

    def _on_cancel(self, goal_handle) -> CancelResponse:
        if self.sequencer is not None and goal_handle is self.goal_handle:
            self.get_logger().info(f"mission {self.sequencer.spec.mission_id} canceled: returning")
            self.sequencer.cancel()
        return CancelResponse.ACCEPT

    async def _execute(self, goal_handle):
        spec = mission_spec(goal_handle.request)
        previous = self.sequencer if goal_handle.request.plan.retask_in_flight else None
        self._retask_pending = False
        if previous is not None:
            problem = previous.retask_problem()
            if problem:       # changed between acceptance and now
                self.get_logger().warning(f"mission {spec.mission_id} cannot take over: {problem}")
                goal_handle.abort()
                return ExecuteMission.Result(outcome=Outcome.FAILED.value,
                                             reason=f"could not take over in flight: {problem}")
            seq = MissionSequencer.continuing(spec, self.sequencer_config, previous, self.permitted_area)
            previous.hand_over(spec.mission_id)
            if self._mission_done is not None and not self._mission_done.done():
                self._mission_done.set_result(True)
        else:
            seq = MissionSequencer(spec, self.sequencer_config, self.permitted_area)
        done = Future()
        self.sequencer, self.goal_handle, self._mission_done = seq, goal_handle, done
        self._run_mission_timers(True)
        self._in_flight.clear()
        self._detail = (f"mission {spec.mission_id} for incident {spec.incident_id} "
                        + (f"took over from {previous.spec.mission_id} in flight" if previous else "started"))
        self.get_logger().info(self._detail)
        try:
            await done
        finally:
            if self.sequencer is seq:     # not when a retask took the vehicle over
                self._busy = False
                self._run_mission_timers(False)

        result = ExecuteMission.Result(outcome=seq.outcome.value, reason=seq.reason,
                                       reached_scene=seq.on_scene_since_s is not None,
                                       distance_flown_m=float(seq.distance_flown_m))
        if seq.on_scene_since_s is not None:
            result.on_scene_stamp = from_seconds(seq.on_scene_since_s)
        if seq.takeoff_time_s is not None:
            end = seq.landed_time_s if seq.landed_time_s is not None else self._now()
            result.flight_time_s = float(end - seq.takeoff_time_s)
        ended = f"mission {spec.mission_id} ended: {seq.outcome.name.lower()}: {seq.reason}"
        if self.sequencer is seq:
            self._detail = ended
        if seq.outcome in (Outcome.COMPLETED, Outcome.RETASKED):
            # (rclpy refuses one call site logging at two severities: one call per severity)
            self.get_logger().info(ended)
            goal_handle.succeed()
        elif seq.outcome == Outcome.CANCELED and goal_handle.is_cancel_requested:
            self.get_logger().warning(ended)
            goal_handle.canceled()
        else:
            self.get_logger().warning(ended)
            goal_handle.abort()
        if self.goal_handle is goal_handle:
            self.goal_handle = None
        return result

    # --------------------------------------------------------------- control
    def _run_mission_timers(self, run: bool):
        if run and not self._mission_timers:
            p = self.params
            self._mission_timers = [self.create_timer(1.0 / p.control_rate_hz, self._control),
                                    self.create_timer(1.0 / p.feedback_rate_hz, self._publish_feedback),
                                    self.create_timer(1.0 / p.gimbal_rate_hz, self._publish_gimbal)]
        elif not run:
            for timer in self._mission_timers:
                self.destroy_timer(timer)
            self._mission_timers = []

    def _control(self):
        seq = self.sequencer
        if seq is None:
            return
        if seq.done:
            # A mission can end in a service answer (a last refusal), between two control ticks.
            if not self._mission_done.done():
                self._mission_done.set_result(True)
            return
        now = self._now()
        self.telemetry.now_s = now
        self.telemetry.flight_time_remaining_s = self.endurance.remaining_s(self.telemetry.battery_fraction)
        self._expire_calls(now)
        self._leave_closed_incident(seq, now)
        for request in seq.update(self.telemetry):
            self._send(request, now)
        if seq.setpoint is not None:
            self._publish_setpoint(seq)
        if seq.done and not self._mission_done.done():
            self._mission_done.set_result(True)

    def _leave_closed_incident(self, seq: MissionSequencer, now: float):
        """No loitering: dispatch recalls a drone when its incident closes; should the recall not come
        within closed_incident_grace_s, the bridge sends the drone home itself and says so."""
        spec = seq.spec
        if spec.flight_kind != MissionPlan.FLIGHT_KIND_INCIDENT or seq.leaving or seq.phase in (
                Phase.RETURN, Phase.LAND):
            return
        known = incident_facts(self.incidents.get(spec.incident_id))
        if not must_leave_scene(known.state if known else None):
            return
        closed_for = now - self._closed_since.setdefault(spec.incident_id, now)
        if closed_for < self.params.closed_incident_grace_s:
            return
        reason = (f"incident {spec.incident_id} closed {closed_for:.0f} s ago and no recall came: the drone "
                  f"left in {seq.phase.name.lower()} for its base")
        self.get_logger().warning(f"mission {spec.mission_id}: {reason}")
        seq.leave(reason)
        self._detail = f"mission {spec.mission_id}: {reason}"
        self._publish_decision(Authorization(False, reason, "no_loitering_after_close", spec.flight_kind),
                               spec.mission_id, spec.incident_id)

    def _send(self, request: Request, now: float):
        client, service = self.mavros_clients[request.kind]
        if request.kind == "arm":
            message = CommandBool.Request(value=True)
        elif request.kind == "mission":
            message = WaypointPush.Request(start_index=0, waypoints=self._mission_items(request))
        elif request.kind == "takeoff":
            # NaN position: take off in place (0, 0 would send PX4 to 0 N 0 E); NaN altitude: MIS_TAKEOFF_ALT.
            message = CommandTOL.Request(min_pitch=0.0, yaw=math.nan, latitude=math.nan, longitude=math.nan,
                                         altitude=math.nan)
        else:
            message = SetMode.Request(base_mode=0, custom_mode=request.mode)
        # No service_is_ready() gate: it reads the ROS graph cache, which can miss a server that
        # DDS has matched (ros2/rmw_fastrtps#792). An unanswered call times out instead.
        call_id = next(self._calls)
        self._in_flight[call_id] = (request, now, service)
        self.get_logger().info(f"requesting {request.describe()}")
        client.call_async(message).add_done_callback(lambda future: self._on_response(call_id, future))

    def _on_response(self, call_id: int, future):
        entry = self._in_flight.pop(call_id, None)
        if entry is None or self.sequencer is None:
            return   # the call timed out, or belonged to an earlier mission: its answer means nothing now
        request, _, service = entry
        response = future.result()
        if request.kind == "mode":
            accepted, detail = response.mode_sent, f"MAVROS {service} did not send the mode (unknown name)"
        elif request.kind == "mission":
            accepted, detail = response.success, f"MAVROS {service}: the autopilot refused the mission"
            if accepted:
                self.telemetry.mission_reached_seq = -1     # progress counts from this mission on
        else:
            accepted, detail = response.success, f"MAVROS {service}: MAV_RESULT {response.result}"
        if not accepted:
            self.get_logger().warning(f"{request.describe()} refused: {detail}")
        self.sequencer.on_request_done(request, accepted, detail)

    def _expire_calls(self, now: float):
        for call_id, (request, sent, service) in list(self._in_flight.items()):
            if now - sent > self.params.request_timeout_s:
                del self._in_flight[call_id]
                self.sequencer.on_request_done(request, False, f"no answer from MAVROS {service} within "
                                               f"{self.params.request_timeout_s:.0f} s")

    def _mission_items(self, request: Request) -> list[Waypoint]:
        items = route_mission(request.route, request.speed_m_s, self.params.mission_acceptance_radius_m)
        return [Waypoint(frame=i.frame, command=i.command, is_current=k == 0, autocontinue=True, param1=i.param1,
                         param2=i.param2, param3=i.param3, param4=i.param4, x_lat=i.latitude, y_long=i.longitude,
                         z_alt=i.altitude) for k, i in enumerate(items)]

    def _publish_gimbal(self):
        """The camera policy on mount_control (MAVLINK_TARGETING angles), steadily while a mission flies."""
        seq = self.sequencer
        if seq is None or seq.done or seq.phase == Phase.PREFLIGHT:
            return
        pitch, yaw = seq.gimbal
        self.mount_pub.publish(MountControl(mode=2, pitch=float(pitch), roll=0.0, yaw=float(yaw)))

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
            phase=MissionPhase(value=seq.phase.value), position=self._position_msg(),
            altitude_rel_m=float(t.altitude_rel_m), distance_to_go_m=float(seq.distance_to_go_m),
            eta_s=float(seq.eta_s), battery_fraction=float(t.battery_fraction),
            flight_time_remaining_s=float(t.flight_time_remaining_s), relief_needed=seq.relief_needed)
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
            altitude_rel_m=float(t.altitude_rel_m), velocity=self.velocity,
            battery_fraction=float(t.battery_fraction),
            flight_time_remaining_s=float(self.endurance.remaining_s(t.battery_fraction)),
            mission_id=seq.spec.mission_id if flying_mission else "",
            incident_id=seq.spec.incident_id if flying_mission else "",
            flight_kind=seq.spec.flight_kind if flying_mission else "",
            phase=MissionPhase(value=seq.phase.value if flying_mission else Phase.IDLE.value),
            relief_needed=flying_mission and seq.relief_needed, detail=self._detail)
        idle_on_ground = not self._busy and not t.armed and t.landed_state == px4.LANDED_STATE_ON_GROUND
        status.available = (idle_on_ground and status.connected and t.gps_fix and t.home is not None
                            and t.battery_fraction >= self.params.min_launch_battery)
        if not self._status_due(status, docked=idle_on_ground and not flying_mission):
            return
        status.header.stamp = self.get_clock().now().to_msg()
        self.status_pub.publish(status)

    def _status_due(self, status: VehicleStatus, docked: bool) -> bool:
        """A docked drone's status says nothing new twice a second, and six nodes read every drone's: it goes
        out every docked_status_period_s, or at once when something in it other than the clock has changed."""
        content = (status.connected, status.armed, status.mode, status.landed_state, status.available,
                   status.mission_id, status.phase.value, status.relief_needed, status.detail,
                   round(status.battery_fraction, 2) if math.isfinite(status.battery_fraction) else None)
        now = self._now()
        changed = content != self._last_status_content
        if docked and not changed and now - self._last_status_s < self.params.docked_status_period_s:
            return False
        self._last_status_content, self._last_status_s = content, now
        return True


def main(args=None):
    sys.exit(run(BridgeNode, args))


if __name__ == "__main__":
    main()

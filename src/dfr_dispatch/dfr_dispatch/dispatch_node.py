"""The dispatch node: incidents in, missions out through each vehicle's ExecuteMission action.

It keeps the fleet picture from every vehicle's VehicleStatus, picks a drone for each
open, eligible incident, sends the mission, and follows it to its result: an incident
whose drone never reached the scene goes back in the queue for another. Only incidents the
flight rules (dfr_audit.rules) allow are dispatched; a refusal of its own is published for the
audit log.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from dfr_audit.rules_ros import (
    ASSIGNMENT_DECISIONS,
    ASSIGNMENT_DECISIONS_QOS,
    FlightRulesOnNode,
    flight_rule_params,
    keep_latest,
)
from dfr_common import px4
from dfr_common.fleet import load_fleet
from dfr_common.geodesy import ground_distance_m
from dfr_common.grading import urgency
from dfr_common.mission import Phase
from dfr_common.ros import qos
from dfr_common.ros.lean_node import LeanNode
from dfr_common.ros.node_main import run
from dfr_common.ros.parameters import Param, declare
from dfr_common.ros.stamps import to_seconds
from dfr_dispatch.airspace import Airspace, load_restrictions
from dfr_dispatch.assignment import Alternative, AssignmentConfig, DroneState, OpenIncident
from dfr_dispatch.dispatch_record import DispatchRecord, DispatchRecordError
from dfr_dispatch.fleet_picture import FleetPicture, VehicleView, not_ready_reason
from dfr_dispatch.markers import live_markers, static_markers
from dfr_dispatch.mission_plan import PlanConfig, plan_mission
from dfr_dispatch.policies import POLICIES, decide
from dfr_interfaces.action import ExecuteMission
from dfr_interfaces.msg import (
    AssignmentAlternative,
    AssignmentDecision,
    FleetStatus,
    GeoWaypoint,
    Incident,
    MissionPlan,
    VehicleStatus,
)

# Mission outcomes that take a drone off its scene before its time: the incident needs a relief.
_R = ExecuteMission.Result
LEFT_THE_SCENE_EARLY = frozenset((_R.OUTCOME_AUTOPILOT_FAILSAFE, _R.OUTCOME_VEHICLE_LOST, _R.OUTCOME_PILOT_TAKEOVER,
                                  _R.OUTCOME_FAILED, _R.OUTCOME_BATTERY_RESERVE))

# Phases in which a drone is on its way to its incident or there.
FLYING_TO_SCENE = frozenset(p.value for p in (Phase.PREFLIGHT, Phase.TAKEOFF, Phase.TRANSIT, Phase.ON_SCENE,
                                              Phase.FOLLOW))


@dataclass
class Assignment:
    vehicle_id: str
    mission_id: str
    sent_s: float
    goal_handle: object = None
    sent_steady_s: float = field(default_factory=time.monotonic)   # when it was sent, on the steady clock
    expired: bool = False      # the bridge did not answer in time; a late acceptance is canceled
    route: tuple = ()          # (latitude, longitude, altitude above home) from the base, for the map
    due_s: float = float("inf")  # when dispatch expects it on scene
    on_scene_s: float | None = None   # when its status first showed it on scene
    adopted: bool = False      # flying when this dispatcher started (it restarted): known from status alone
    elsewhere_s: float | None = None   # since when the drone's status, accepted the mission, shows another or none
    # (incident, assignment) it pre-empts, until the bridge answers: the drone flies on with that if it refuses
    replaces: tuple[str, Assignment] | None = None


def _both_clocks_past(now: float, since: tuple[float, float], seconds: float) -> bool:
    """`seconds` gone by since `since` (ROS time, steady time) on both clocks. A wait on the network (DDS
    discovery, a bridge's answer) takes wall time however fast sim time goes: at 10 x, 5 s of sim time is
    half a wall second, and in CI a bridge answered a goal after the dispatcher had given it up."""
    return now - since[0] >= seconds and time.monotonic() - since[1] >= seconds


def flies_home_as_planned(msg: VehicleStatus, assignment: Assignment) -> bool:
    """The drone flies home on the assignment's own mission, not on its battery reserve: a scene it reached
    was seen to. Gone from its mission otherwise (a failsafe, the link, the pilot), it was not."""
    return (msg.mission_id == assignment.mission_id and msg.vehicle_id == assignment.vehicle_id
            and msg.phase.value == Phase.RETURN.value and not msg.relief_needed)


class DispatchNode(LeanNode):
    def __init__(self, **kwargs):
        super().__init__("dispatch", **kwargs)
        p = self.params = declare(self, [
            Param("fleet_file", "", "path of the fleet file (config/fleet/*.yaml)"),
            Param("cruise_altitude_m", 60.0, "transit height above home", 10.0, 120.0),
            Param("cruise_speed_m_s", 15.0, "planned transit speed", 1.0, 40.0),
            Param("standoff_radius_m", 40.0, "horizontal distance kept from the scene", 0.0, 500.0),
            Param("on_scene_duration_s", 120.0, "time on scene before returning; 0 until canceled",
                  0.0, 7200.0),
            Param("airspace_file", "", "GeoJSON of no-fly and restricted areas (config/airspace/*); empty: "
                  "straight routes"),
            Param("airspace_permissions", [], "restriction permissions this operator holds, e.g. police_permitted"),
            Param("airspace_buffer_m", 50.0, "margin kept from every no-fly area", 0.0, 1000.0),
            Param("ceiling_m", 120.0, "highest flight altitude above the surface", 10.0, 500.0),
            Param("policy", "planner", "'planner': the whole queue against the fleet at once (grade, ETA, battery, "
                  "coverage); 'nearest_idle': each incident in turn to the nearest idle drone"),
            Param("coverage_tolerance_s", 60.0, "a base keeps its last drone when another can serve within "
                  "this much more time", 0.0, 1800.0),
            Param("battery_reserve", 0.2, "battery fraction a mission must leave unused", 0.0, 0.9),
            Param("nominal_endurance_s", 2400.0, "full-battery flight time when a drone reports none", 60.0, 20000.0),
            Param("assumed_on_scene_s", 600.0, "time on scene counted for the battery when a mission's is open-ended",
                  0.0, 7200.0),
            Param("retask_returning", True, "a drone flying home from a finished scene may be sent on to a new "
                  "incident without landing (planner only)"),
            Param("preemptible_grades", ["E", "R"], "grades whose missions an I-grade call may take a drone from "
                  "(planner only)"),
            Param("preemption_margin_s", 120.0, "a drone is taken off a mission only if it is this much faster "
                  "than the best free one", 0.0, 3600.0),
            Param("relief_lead_s", 300.0, "a relief drone is sent when the drone on scene must leave within this "
                  "time (its flight time left, less the way home and the return margin)", 0.0, 3600.0),
            Param("return_margin_s", 60.0, "the bridge's margin kept beyond the way home (bridge.yaml)", 0.0, 1200.0),
            Param("late_margin_s", 90.0, "a drone this late on its expected arrival gets a replacement sent; "
                  "the first of the two on scene stays", 10.0, 3600.0),
            Param("decision_period_s", 1.0, "how often open incidents are matched to drones", 0.1, 30.0),
            Param("status_timeout_s", 5.0, "VehicleStatus age after which a vehicle is not counted on",
                  1.0, 60.0),
            Param("goal_response_timeout_s", 5.0, "time for a bridge to accept or refuse a mission (on both the sim "
                  "and the wall clock)", 1.0, 60.0),
            Param("mission_lost_after_s", 10.0, "a mission its bridge accepted and whose drone's status has shown "
                  "another or none for this long is lost (the bridge restarted): its incident goes back in the "
                  "queue; and how long a restarted dispatcher holds an incident an earlier one sent a drone to, "
                  "until it hears from that drone (on both sim and wall clocks)", 2.0, 600.0),
            Param("record_file", "", "SQLite file of the incidents a drone has attended and the missions sent, "
                  "read again on a restart so that no incident is flown twice and no mission id is reused; "
                  "empty: kept in memory only"),
            Param("incident_history_depth", 1000, "depth of the latched incident subscription", 10, 100000),
            *flight_rule_params(),
        ])
        self.flight_rules = FlightRulesOnNode(self, p)
        if not p.fleet_file:
            raise ValueError("parameter 'fleet_file' is empty: give the path of a fleet file")
        self.fleet = load_fleet(p.fleet_file)
        self.plan_config = PlanConfig(p.cruise_altitude_m, p.cruise_speed_m_s, p.standoff_radius_m,
                                      p.on_scene_duration_s)
        self.airspace = None
        if p.airspace_file:
            self.airspace = Airspace(load_restrictions(p.airspace_file), self.fleet.site_frame(),
                                     frozenset(x for x in p.airspace_permissions if x), p.airspace_buffer_m,
                                     p.ceiling_m)
            self.get_logger().info(f"airspace {p.airspace_file}: {len(self.airspace.no_fly)} no-fly areas")
        self.picture = FleetPicture(self.fleet, p.status_timeout_s)
        self.statuses: dict[str, VehicleStatus] = {}
        self.incidents: dict[str, Incident] = {}
        self.assignments: dict[str, Assignment] = {}
        try:
            self.record = DispatchRecord(p.record_file or None)
        except DispatchRecordError as err:
            raise ValueError(str(err)) from err
        if self.record.missions_sent:
            self.get_logger().info(f"{p.record_file}: {self.record.missions_sent} missions sent before, "
                                   f"{len(self.record)} incidents attended: none is flown again")
        self.relieved: dict[str, str] = {}           # incident -> the vehicle that left it on its reserve
        self.refused_by: dict[str, set[str]] = {}     # incident -> vehicles whose bridge refused it
        self.queue_reasons: dict[str, str] = {}
        self.preempted_missions: set[str] = set()      # taken off their incident for a more urgent one
        self.superseded: dict[str, Assignment] = {}     # incident -> a late drone's mission, still flying
        self.relief_pending: dict[str, Assignment] = {}  # incident -> the mission on scene a relief will take over
        self._sent_missions: set[str] = set()            # every mission this dispatcher sent, ended or not
        self._listening_since: tuple[float, float] | None = None  # its first decision round: its clock, steady
        self._rule_refusals: set[tuple[str, str]] = set()   # (incident, rule) whose refusal is published

        self.create_subscription(Incident, "incidents", self._on_incident,
                                 qos.incidents(p.incident_history_depth))
        self.clients_by_vehicle = {}
        for vehicle_id in self.fleet.vehicles:
            self.create_subscription(VehicleStatus, f"/{vehicle_id}/vehicle_status", self._on_status,
                                     qos.LATCHED_STATE)
            self.clients_by_vehicle[vehicle_id] = ActionClient(self, ExecuteMission,
                                                               f"/{vehicle_id}/execute_mission")
        self.fleet_pub = self.create_publisher(FleetStatus, "fleet_status", qos.RELIABLE)
        self.markers_pub = self.create_publisher(MarkerArray, "markers", qos.RELIABLE)
        self.assignment_pub = self.create_publisher(AssignmentDecision, ASSIGNMENT_DECISIONS,
                                                    ASSIGNMENT_DECISIONS_QOS)
        self.static_markers_pub = self.create_publisher(MarkerArray, "static_markers", qos.LATCHED_STATE)
        if p.policy not in POLICIES:
            raise ValueError(f"parameter 'policy' is '{p.policy}': use one of {', '.join(POLICIES)}")
        self.assignment_config = AssignmentConfig(
            cruise_speed_m_s=p.cruise_speed_m_s, cruise_altitude_m=p.cruise_altitude_m,
            on_scene_time_s=p.on_scene_duration_s or p.assumed_on_scene_s, battery_reserve_fraction=p.battery_reserve,
            nominal_endurance_s=p.nominal_endurance_s, coverage_tolerance_s=p.coverage_tolerance_s,
            preemptible_grades=frozenset(g for g in p.preemptible_grades if g),
            preemption_margin_s=p.preemption_margin_s)
        self._route_times: dict[tuple, float] = {}
        zones = [] if self.airspace is None else [(r.name, r.geometry) for r in self.airspace.no_fly]
        self.static_markers_pub.publish(static_markers(self.fleet.site_frame(), self.fleet, zones,
                                                      self.get_clock().now().to_msg()))
        self.create_timer(p.decision_period_s, self._decide)
        self.get_logger().info(f"dispatching {len(self.fleet.vehicles)} vehicles from "
                               f"{len(self.fleet.bases)} bases ({self.fleet.source})")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # ----------------------------------------------------------------- inputs
    def _on_incident(self, msg: Incident):
        if not keep_latest(self.incidents, msg) or msg.state != Incident.STATE_CLOSED:
            return
        # Every drone on it comes home: its own, one a relief is replacing, and a late one.
        for assignment in (self.assignments.get(msg.incident_id), self.relief_pending.get(msg.incident_id),
                           self.superseded.get(msg.incident_id)):
            if assignment is not None and assignment.goal_handle is not None:
                self.get_logger().info(f"{msg.incident_id} closed: recalling {assignment.vehicle_id}")
                assignment.goal_handle.cancel_goal_async()

    def _on_status(self, msg: VehicleStatus):
        if msg.vehicle_id not in self.fleet.vehicles:
            self.get_logger().warning(f"status from unknown vehicle '{msg.vehicle_id}' ignored")
            return
        self.statuses[msg.vehicle_id] = msg
        self._note_mission_shown(msg)
        self._adopt(msg)
        self._note_on_scene(msg)
        self._note_left_scene(msg)
        self._relieve_early(msg)
        self._relieve(msg)
        self._settle_replacement(msg)
        self.picture.update(VehicleView(
            msg.vehicle_id, msg.base_id, msg.position.latitude, msg.position.longitude, msg.available, self._now(),
            "" if msg.available else not_ready_reason(
                msg.connected, msg.armed, msg.landed_state == px4.LANDED_STATE_ON_GROUND,
                msg.phase.value, msg.incident_id, msg.battery_fraction)))

    def _note_mission_shown(self, msg: VehicleStatus):
        """For _drop_lost: since when the status of a drone whose bridge accepted a mission shows it no more."""
        for assignment in self.assignments.values():
            if assignment.vehicle_id == msg.vehicle_id and assignment.goal_handle is not None:
                if msg.mission_id == assignment.mission_id:
                    assignment.elsewhere_s = None
                elif assignment.elsewhere_s is None:
                    assignment.elsewhere_s = self._now()

    def _drop_lost(self, now: float):
        """Missions their bridge accepted and its status then stopped showing, other statuses coming all the
        while (it restarted, and the mission died with it; the autopilot's own failsafe has the drone): their
        incidents go back in the queue. A drone whose status stops coming is the fleet picture's to judge."""
        for incident_id, assignment in list(self.assignments.items()):
            if assignment.elsewhere_s is None or now - assignment.elsewhere_s <= self.params.mission_lost_after_s:
                continue
            self.queue_reasons[incident_id] = f"{assignment.vehicle_id} lost {assignment.mission_id}"
            self.get_logger().warning(f"{assignment.vehicle_id}'s status has shown no {assignment.mission_id} for "
                                      f"{now - assignment.elsewhere_s:.0f} s (its bridge restarted?): {incident_id} "
                                      "goes back in the queue")
            self._end_assignment(incident_id, assignment)

    def _adopt(self, msg: VehicleStatus):
        """Missions this dispatcher did not send, known from the bridges' status: after a restart, one flying to
        or at its incident holds that incident (no second drone is sent), and the incident counts as attended
        once the drone was seen on scene. It runs to its end under its bridge; being no goal of this
        dispatcher's, it cannot be recalled from here, and it ends when the status shows the drone off it."""
        adopted = next((a for a in self.assignments.values() if a.adopted and a.vehicle_id == msg.vehicle_id), None)
        if adopted is not None and (msg.mission_id != adopted.mission_id or msg.phase.value not in FLYING_TO_SCENE):
            incident_id = next(i for i, a in self.assignments.items() if a is adopted)
            del self.assignments[incident_id]
            if adopted.on_scene_s is None:
                self.get_logger().info(f"{adopted.mission_id} (adopted) is off {incident_id}: not seen on scene; "
                                       "it goes back in the queue")
            elif flies_home_as_planned(msg, adopted):
                self._mark_attended(incident_id, adopted)
                self.get_logger().info(f"{adopted.mission_id} (adopted) is off {incident_id}: attended")
            else:
                self._relief_for(incident_id, adopted.vehicle_id, f"{adopted.mission_id} (adopted) ended on scene")
            return
        if adopted is None and self._left_before_this_dispatcher(msg):
            self._relief_for(msg.incident_id, msg.vehicle_id,
                             f"{msg.mission_id} (sent before this dispatcher started) left on its battery reserve")
            return
        if (adopted is not None or not msg.incident_id or not msg.mission_id or msg.mission_id in self._sent_missions
                or msg.phase.value not in FLYING_TO_SCENE or msg.incident_id in self.assignments):
            return
        self.assignments[msg.incident_id] = Assignment(msg.vehicle_id, msg.mission_id, self._now(), adopted=True)
        self.get_logger().warning(f"{msg.incident_id}: {msg.vehicle_id} is flying {msg.mission_id}, which this "
                                  f"dispatcher did not send (a restart): adopted; the incident is held by it")

    def _left_before_this_dispatcher(self, msg: VehicleStatus) -> bool:
        """A drone an earlier dispatcher sent, first heard leaving its open, unattended incident on its battery
        reserve: the incident needs the relief that dispatcher would have sent, with a relief's priority."""
        incident = self.incidents.get(msg.incident_id)
        return (msg.relief_needed and bool(msg.mission_id) and msg.mission_id not in self._sent_missions
                and incident is not None and incident.state == Incident.STATE_OPEN
                and msg.incident_id not in self.assignments and msg.incident_id not in self.relieved
                and msg.incident_id not in self.relief_pending and msg.incident_id not in self.record)

    def _note_on_scene(self, msg: VehicleStatus):
        assignment = self.assignments.get(msg.incident_id)
        on_scene = msg.phase.value in (Phase.ON_SCENE.value, Phase.FOLLOW.value)
        if on_scene and assignment is not None and assignment.vehicle_id == msg.vehicle_id \
                and assignment.on_scene_s is None:
            assignment.on_scene_s = self._now()
        relieved = self.relief_pending.get(msg.incident_id)
        if on_scene and relieved is not None and relieved.vehicle_id != msg.vehicle_id and assignment is not None \
                and assignment.vehicle_id == msg.vehicle_id:
            # The relief is on scene: the drone it relieves may go home now, not before.
            del self.relief_pending[msg.incident_id]
            self.relieved.pop(msg.incident_id, None)
            if relieved.goal_handle is not None:
                relieved.goal_handle.cancel_goal_async()
            self.get_logger().info(f"{msg.incident_id}: {msg.vehicle_id} on scene; {relieved.vehicle_id} relieved")

    def _note_left_scene(self, msg: VehicleStatus):
        """A drone that was on scene and now flies home from it, not for a relief nor taken off for another
        incident, has attended its incident: on the record now, not at its landing, so that a dispatcher
        restarted while it flies home does not send a second drone."""
        assignment = self.assignments.get(msg.incident_id)
        if (assignment is not None and flies_home_as_planned(msg, assignment) and assignment.on_scene_s is not None
                and assignment.mission_id not in self.preempted_missions):
            self._mark_attended(msg.incident_id, assignment)

    def _relieve_early(self, msg: VehicleStatus):
        """Send a relief while the drone on scene can still wait for it, so eyes stay on the scene."""
        incident_id = msg.incident_id
        assignment = self.assignments.get(incident_id)
        incident = self.incidents.get(incident_id)
        if (assignment is None or assignment.vehicle_id != msg.vehicle_id or assignment.on_scene_s is None
                or msg.relief_needed or incident_id in self.relief_pending or incident is None
                or incident.state != Incident.STATE_OPEN or not math.isfinite(msg.flight_time_remaining_s)
                or not (math.isfinite(msg.position.latitude) and math.isfinite(msg.position.longitude))):
            return
        home = self.fleet.vehicle_home(msg.vehicle_id)
        way_home_s = (float(ground_distance_m(msg.position.latitude, msg.position.longitude, home.latitude,
                                              home.longitude)) / self.plan_config.cruise_speed_m_s
                      + self.assignment_config.landing_s + self.params.return_margin_s)
        must_leave_in = msg.flight_time_remaining_s - way_home_s
        planned = self.plan_config.on_scene_duration_s
        staying_for = math.inf if planned <= 0 else planned - (self._now() - assignment.on_scene_s)
        if must_leave_in >= self.params.relief_lead_s or staying_for <= must_leave_in:
            return
        del self.assignments[incident_id]
        self.relief_pending[incident_id] = assignment
        self.relieved[incident_id] = msg.vehicle_id
        self.queue_reasons[incident_id] = (f"relief for {msg.vehicle_id}, which must leave in "
                                           f"{max(0.0, must_leave_in):.0f} s and stays until the relief is on scene")
        self.get_logger().warning(f"{incident_id}: {msg.vehicle_id} must leave in {max(0.0, must_leave_in):.0f} s: "
                                  "sending its relief now")

    def _relieve(self, msg: VehicleStatus):
        """A drone leaving its incident on its battery reserve: the incident goes back in the queue at
        once, so that a relief drone is on its way while the first one flies home."""
        incident_id = msg.incident_id
        pending = self.relief_pending.get(incident_id)
        if msg.relief_needed and pending is not None and pending.vehicle_id == msg.vehicle_id:
            del self.relief_pending[incident_id]       # it could not wait: the relief already on its way goes on
            return
        assignment = self.assignments.get(incident_id)
        if not msg.relief_needed or assignment is None or assignment.vehicle_id != msg.vehicle_id:
            return
        incident = self.incidents.get(incident_id)
        if incident is None or incident.state != Incident.STATE_OPEN:
            return
        del self.assignments[incident_id]      # its mission runs on to landing; the picture keeps it reserved
        self.relieved[incident_id] = msg.vehicle_id
        self.queue_reasons[incident_id] = f"relief for {msg.vehicle_id}, returning on its battery reserve"
        self.get_logger().warning(f"{incident_id}: {msg.vehicle_id} returns on its battery reserve: sending relief")

    # --------------------------------------------------------------- decisions
    def _flight_allowed(self, incident: Incident) -> bool:
        """The flight rules on the incident. Intake's own decisions (closed, not eligible) are on the record
        already; a refusal of the rules' own (an excluded category, say) is published once per incident and rule."""
        decision = self.flight_rules.authorize(MissionPlan.FLIGHT_KIND_INCIDENT, incident.incident_id, incident)
        if decision.allowed or decision.rule in ("incident_closed", "incident_not_eligible"):
            return decision.allowed
        self.queue_reasons[incident.incident_id] = f"refused by the flight rules: {decision.reason}"
        key = (incident.incident_id, decision.rule)
        if key not in self._rule_refusals:
            self._rule_refusals.add(key)
            self.get_logger().error(f"{incident.incident_id} not dispatched ({decision.rule}): {decision.reason}")
            self.flight_rules.publish(decision, "", "", incident.incident_id)
        return False

    def _waiting(self) -> list[Incident]:
        waiting = [i for i in self.incidents.values()
                   if i.incident_id not in self.assignments and i.incident_id not in self.record
                   and self._flight_allowed(i)]
        return sorted(waiting, key=lambda i: (urgency(i.grade), to_seconds(i.calls[0].call_time)
                                              if i.calls else 0.0))

    def _heard_the_fleet(self, now: float) -> bool:
        """Before its first decision a dispatcher listens until every drone has reported with a live link to its
        autopilot, or status_timeout_s: restarted, it must hear of a drone already flying to an incident before
        it sends another there; started with the graph, it would send a far drone while a near one's bridge
        waits for its first MAVROS State."""
        if self._listening_since is None:
            self._listening_since = (now, time.monotonic())
        heard = len(self.statuses) == len(self.fleet.vehicles) and all(s.connected for s in self.statuses.values())
        return heard or self._listened_for(now, self.params.status_timeout_s)

    def _listened_for(self, now: float, seconds: float) -> bool:
        return _both_clocks_past(now, self._listening_since, seconds)

    def _unheard_earlier_drone(self, incident_id: str, now: float) -> str:
        """Why an incident an earlier dispatcher sent a drone to waits (empty if it does not): that drone may be
        on it still, and only its status can say. Waited for up to mission_lost_after_s."""
        if self._listened_for(now, self.params.mission_lost_after_s):
            return ""
        unheard = [(m, v) for m, v in self.record.earlier_missions.get(incident_id, ()) if v not in self.statuses]
        return "" if not unheard else (f"waiting to hear from {unheard[-1][1]}, sent as {unheard[-1][0]} "
                                       "before this dispatcher started")

    def _decide(self):
        now = self._now()
        if now <= 0.0 or not self._heard_the_fleet(now):
            return
        self._expire_unanswered(now)
        self._drop_lost(now)
        self._replace_late(now)
        self._decide_round(now)
        self._publish_fleet_status()

    def _decide_round(self, now: float):
        """Every waiting incident against every idle drone, by the configured policy (dfr_dispatch.policies)."""
        waiting = []
        for incident in self._waiting():
            held_for = self._unheard_earlier_drone(incident.incident_id, now)
            if held_for:
                if self.queue_reasons.get(incident.incident_id) != held_for:
                    self.get_logger().info(f"{incident.incident_id} held: {held_for}")
                self.queue_reasons[incident.incident_id] = held_for
            elif math.isfinite(incident.location.latitude) and math.isfinite(incident.location.longitude):
                waiting.append(incident)
            else:
                self.queue_reasons[incident.incident_id] = "the incident has no usable location"
        if not waiting:
            return
        drones = []
        for view in self.picture.idle(now):
            status = self.statuses.get(view.vehicle_id)
            home = self.fleet.vehicle_home(view.vehicle_id)
            drones.append(DroneState(
                view.vehicle_id, view.base_id, (view.latitude, view.longitude), available=True,
                battery_fraction=status.battery_fraction if status else math.nan,
                flight_time_remaining_s=status.flight_time_remaining_s if status else math.nan,
                home=(home.latitude, home.longitude)))
        drones += self._drones_in_flight(now)
        incidents = [OpenIncident(i.incident_id, i.grade, (i.location.latitude, i.location.longitude),
                                  to_seconds(i.calls[0].call_time) if i.calls else now,
                                  self.relieved.get(i.incident_id)) for i in waiting]
        decisions = decide(self.params.policy, drones, incidents, self.assignment_config, now,
                           travel_time_s=self._route_time if self.airspace is not None else None,
                           excluded=self.refused_by)
        by_id = {i.incident_id: i for i in waiting}
        in_flight = {d.vehicle_id: d for d in drones if d.airborne}
        taken_off = {}
        for vehicle_id, old_incident, new_incident in decisions.preempt:
            old = self.assignments.pop(old_incident, None)
            if old is not None:
                self.preempted_missions.add(old.mission_id)
                taken_off[vehicle_id] = (old_incident, old)
            self.queue_reasons[old_incident] = f"{vehicle_id} was taken off it for grade I {new_incident}"
            self.get_logger().warning(f"{old_incident}: {vehicle_id} pre-empted for {new_incident}; "
                                      f"{old_incident} goes back in the queue")
        for vehicle_id, incident_id, eta_s in decisions.assign:
            drone = in_flight.get(vehicle_id)
            self._send_mission(by_id[incident_id], vehicle_id, f"{self.params.policy} ETA {eta_s:.0f} s"
                               + (" from the air" if drone else ""), start=drone.position if drone else None,
                               eta_s=eta_s, reason=decisions.why.get(incident_id, ""),
                               alternatives=self._every_other_drone(vehicle_id, decisions.alternatives.get(
                                   incident_id, ()), now), replaces=taken_off.get(vehicle_id))
        self.queue_reasons.update(decisions.queued)

    def _every_other_drone(self, sent: str, weighed, now: float) -> list[Alternative]:
        """The policy's account of the drones it weighed, and why each other drone of the fleet was not
        weighed at all: the record names every drone that was not sent."""
        named = {a.vehicle_id for a in weighed} | {sent}
        return [*weighed, *(Alternative(v, None, self.picture.why_not_free(v, now))
                            for v in self.fleet.vehicles if v not in named)]

    def _replace_late(self, now: float):
        """A drone well behind its expected arrival: send another, keep it flying; the first on scene stays."""
        for incident_id, assignment in list(self.assignments.items()):
            status = self.statuses.get(assignment.vehicle_id)
            if (assignment.goal_handle is None or incident_id in self.superseded or status is None
                    or now <= assignment.due_s + self.params.late_margin_s
                    or status.incident_id != incident_id
                    or status.phase.value not in (Phase.PREFLIGHT.value, Phase.TAKEOFF.value, Phase.TRANSIT.value)):
                continue
            del self.assignments[incident_id]
            self.superseded[incident_id] = assignment
            self.relieved[incident_id] = assignment.vehicle_id
            self.queue_reasons[incident_id] = (f"{assignment.vehicle_id} is {now - assignment.due_s:.0f} s late: "
                                               "sending a replacement")
            self.get_logger().warning(f"{incident_id}: {assignment.vehicle_id} expected on scene "
                                      f"{now - assignment.due_s:.0f} s ago and still in "
                                      f"{Phase(status.phase.value).name.lower()}: sending a replacement")

    def _settle_replacement(self, msg: VehicleStatus):
        """Of a late drone and its replacement, the first on scene stays and the other is recalled."""
        late = self.superseded.get(msg.incident_id)
        if late is None or msg.phase.value not in (Phase.ON_SCENE.value, Phase.FOLLOW.value):
            return
        replacement = self.assignments.get(msg.incident_id)
        if msg.vehicle_id == late.vehicle_id:
            keep, recall = late, replacement
        elif replacement is not None and msg.vehicle_id == replacement.vehicle_id:
            keep, recall = replacement, late
        else:
            return
        del self.superseded[msg.incident_id]
        self.relieved.pop(msg.incident_id, None)
        self.assignments[msg.incident_id] = keep
        if recall is not None:
            self.preempted_missions.add(recall.mission_id)      # its end is not the incident's
            if recall.goal_handle is not None:
                recall.goal_handle.cancel_goal_async()
            self.get_logger().info(f"{msg.incident_id}: {keep.vehicle_id} on scene first; recalling "
                                   f"{recall.vehicle_id}")

    def _drones_in_flight(self, now: float) -> list[DroneState]:
        """Drones the planner may send without a landing: on their way home from a finished scene, or
        on a mission an I-grade call may pre-empt."""
        if self.params.policy != "planner":
            return []
        drones = []
        for vehicle_id, status in self.statuses.items():
            phase = status.phase.value
            if (status.relief_needed or not status.connected or not self.picture.fresh(vehicle_id, now)
                    or self.picture.reserved.get(vehicle_id, status.incident_id) != status.incident_id
                    or not (math.isfinite(status.position.latitude) and math.isfinite(status.position.longitude))):
                continue
            home = self.fleet.vehicle_home(vehicle_id)
            common = dict(battery_fraction=status.battery_fraction,
                          flight_time_remaining_s=status.flight_time_remaining_s,
                          home=(home.latitude, home.longitude))
            position = (status.position.latitude, status.position.longitude)
            if phase == Phase.RETURN.value and self.params.retask_returning:
                drones.append(DroneState(vehicle_id, status.base_id, position, available=True, in_flight=True,
                                         **common))
            elif phase in (Phase.TRANSIT.value, Phase.ON_SCENE.value, Phase.FOLLOW.value):
                incident = self.incidents.get(status.incident_id)
                if incident is not None and self.assignments.get(status.incident_id) is not None:
                    drones.append(DroneState(vehicle_id, status.base_id, position, busy_with=status.incident_id,
                                             busy_grade=incident.grade, **common))
        return drones

    def _route_time(self, drone: DroneState, incident: OpenIncident) -> float:
        """Cruise time by the airspace's route, cached per (drone position, incident)."""
        key = (round(drone.position[0], 5), round(drone.position[1], 5), incident.incident_id)
        if key not in self._route_times:
            if len(self._route_times) > 20000:      # drones in flight move: keep the cache bounded
                self._route_times.clear()
            route = self.airspace.route(drone.position, incident.position)
            self._route_times[key] = route.length_m / self.plan_config.cruise_speed_m_s
        return self._route_times[key]

    def _send_mission(self, incident: Incident, vehicle_id: str, why: str, start: tuple[float, float] | None = None,
                      eta_s: float = float("inf"), reason: str = "", alternatives: tuple[Alternative, ...] = (),
                      replaces: tuple[str, Assignment] | None = None):
        """`start`: the position of a drone already in flight, which the bridge is asked to retask.
        `reason` and `alternatives`: the policy's account of the choice, for the audit log. `replaces`: the
        (incident, assignment) this one pre-empts."""
        # No server_is_ready() gate: it reads the ROS graph cache, which can miss a server that
        # DDS has matched (ros2/rmw_fastrtps#792). An unanswered goal expires instead.
        client = self.clients_by_vehicle[vehicle_id]
        try:
            mission_id = self.record.add_mission(incident.incident_id, vehicle_id, self._now())
        except DispatchRecordError as err:
            mission_id = err.mission_id
            self.get_logger().error(f"{mission_id} not recorded on disk; after a restart its id could be used "
                                    f"again: {err}")
        self._sent_missions.add(mission_id)
        home = self.fleet.vehicle_home(vehicle_id)
        plan = plan_mission(home, incident.location.latitude, incident.location.longitude, self.plan_config,
                            self.airspace, start=start)
        for note in plan.notes:
            self.get_logger().warning(f"{incident.incident_id}: {note}")
        goal = ExecuteMission.Goal(incident=incident, plan=MissionPlan(
            mission_id=mission_id,
            route=[GeoWaypoint(latitude=w.latitude, longitude=w.longitude, altitude_rel_m=w.altitude_rel_m)
                   for w in plan.route],
            cruise_speed_m_s=self.plan_config.cruise_speed_m_s,
            standoff_radius_m=self.plan_config.standoff_radius_m,
            on_scene_duration_s=self.plan_config.on_scene_duration_s,
            return_route=[GeoWaypoint(latitude=w.latitude, longitude=w.longitude,
                                      altitude_rel_m=w.altitude_rel_m) for w in plan.return_route],
            retask_in_flight=start is not None, flight_kind=MissionPlan.FLIGHT_KIND_INCIDENT))
        goal.plan.scene = incident.location
        origin = (home.latitude, home.longitude) if start is None else start
        first = (*origin, plan.route[0].altitude_rel_m if plan.route else 0.0)
        assignment = Assignment(vehicle_id, mission_id, self._now(), due_s=self._now() + eta_s, route=(first, *(
            (w.latitude, w.longitude, w.altitude_rel_m) for w in plan.route)), replaces=replaces)
        self.assignments[incident.incident_id] = assignment
        self.picture.reserve(vehicle_id, incident.incident_id)
        self.queue_reasons.pop(incident.incident_id, None)
        self.get_logger().info(f"{incident.incident_id} (grade {incident.grade} {incident.category}): "
                               f"sending {vehicle_id}, {why}, as {mission_id}")
        self.assignment_pub.publish(AssignmentDecision(
            header=Header(stamp=self.get_clock().now().to_msg()), incident_id=incident.incident_id,
            vehicle_id=vehicle_id, mission_id=mission_id, policy=self.params.policy, reason=reason or why,
            eta_s=float(eta_s), from_the_air=start is not None,
            alternatives=[AssignmentAlternative(vehicle_id=a.vehicle_id, reason=a.reason,
                                                eta_s=math.nan if a.eta_s is None else float(a.eta_s))
                          for a in alternatives]))
        future = client.send_goal_async(goal)
        future.add_done_callback(lambda f: self._on_goal_response(incident.incident_id, assignment, f))

    def _expire_unanswered(self, now: float):
        for incident_id, assignment in list(self.assignments.items()):
            if assignment.goal_handle is None and not assignment.adopted and _both_clocks_past(
                    now, (assignment.sent_s, assignment.sent_steady_s), self.params.goal_response_timeout_s):
                assignment.expired = True
                self.get_logger().warning(f"{assignment.vehicle_id} did not answer {assignment.mission_id} within "
                                          f"{self.params.goal_response_timeout_s:.0f} s; {incident_id} goes back "
                                          "in the queue")
                self.queue_reasons[incident_id] = f"{assignment.vehicle_id}'s bridge did not answer"
                self._end_assignment(incident_id, assignment)

    def _on_goal_response(self, incident_id: str, assignment: Assignment, future):
        goal_handle = future.result()
        if assignment.expired:
            if goal_handle.accepted:
                self.get_logger().warning(f"{assignment.mission_id} accepted after it expired: canceling it")
                goal_handle.cancel_goal_async()
            return
        if not goal_handle.accepted:
            self.get_logger().warning(f"{assignment.vehicle_id} refused {assignment.mission_id} (its log says why); "
                                      f"{incident_id} goes back in the queue for another drone")
            self.refused_by.setdefault(incident_id, set()).add(assignment.vehicle_id)
            self._end_assignment(incident_id, assignment)
            self._keep_preempted(assignment)
            return
        assignment.goal_handle = goal_handle
        assignment.replaces = None         # taken: the pre-empted mission ends RETASKED
        goal_handle.get_result_async().add_done_callback(
            lambda f: self._on_result(incident_id, assignment, f))

    def _keep_preempted(self, refused: Assignment):
        """A drone that refused the mission pre-empting its own (a bridge takes a retask only in OFFBOARD, not
        while it takes off) flies on with its own: that incident is its again, not queued for another drone."""
        if refused.replaces is None:
            return
        old_incident, old = refused.replaces
        if old.mission_id not in self.preempted_missions or old_incident in self.assignments:
            return          # it has ended meanwhile, or another drone has been sent
        self.preempted_missions.discard(old.mission_id)
        self.assignments[old_incident] = old
        self.picture.reserve(old.vehicle_id, old_incident)
        self.queue_reasons.pop(old_incident, None)
        self.get_logger().warning(f"{old_incident}: {old.vehicle_id} refused to be taken off it, and flies on "
                                  f"with {old.mission_id}")

    def _on_result(self, incident_id: str, assignment: Assignment, future):
        response = future.result()
        result = response.result
        preempted = assignment.mission_id in self.preempted_missions
        if result.reached_scene and not preempted and self.assignments.get(incident_id) in (None, assignment):
            if result.outcome in LEFT_THE_SCENE_EARLY and incident_id not in self.record:
                # Taken off the scene before its time by a failsafe, the link or the pilot: a relief goes.
                self._relief_for(incident_id, assignment.vehicle_id, f"{assignment.mission_id} ended on scene")
            else:
                self._mark_attended(incident_id, assignment)      # not while a relief drone is on its way
        outcome = {v: k for k, v in vars(ExecuteMission.Result).items() if k.startswith("OUTCOME_")}.get(
            result.outcome, str(result.outcome))
        status = "succeeded" if response.status == GoalStatus.STATUS_SUCCEEDED else "did not succeed"
        self.get_logger().info(f"{assignment.mission_id} {status}: {outcome}: {result.reason}"
                               + ("" if result.reached_scene and not preempted
                                  else f"; {incident_id} goes back in the queue"))
        self._end_assignment(incident_id, assignment)

    def _relief_for(self, incident_id: str, vehicle_id: str, why: str):
        """The incident back in the queue for a relief: the drone that was on scene has gone before its time."""
        self.relieved[incident_id] = vehicle_id
        self.queue_reasons[incident_id] = f"relief for {vehicle_id}: {why}"
        self.get_logger().warning(f"{incident_id}: {why} before its time: sending a relief for {vehicle_id}")

    def _mark_attended(self, incident_id: str, assignment: Assignment):
        try:
            self.record.add(incident_id, assignment.vehicle_id, assignment.mission_id, self._now())
        except DispatchRecordError as err:
            self.get_logger().error(f"{incident_id} attended, but not recorded on disk: after a restart it would "
                                    f"be flown again: {err}")

    def on_shutdown(self):
        self.record.close()

    def _end_assignment(self, incident_id: str, assignment: Assignment):
        if self.assignments.get(incident_id) is assignment:
            del self.assignments[incident_id]
        if self.superseded.get(incident_id) is assignment:     # a late drone that ended before either arrived
            del self.superseded[incident_id]
        if self.relief_pending.get(incident_id) is assignment:  # ended before its relief arrived
            del self.relief_pending[incident_id]
        self.picture.release(assignment.vehicle_id, incident_id)

    # ------------------------------------------------------------------ output
    def _publish_fleet_status(self):
        queued = [i.incident_id for i in self._waiting()]
        msg = FleetStatus(vehicles=[self.statuses[v] for v in self.fleet.vehicles if v in self.statuses],
                          queued_incident_ids=queued,
                          queue_reasons=[self.queue_reasons.get(i, "waiting for the next decision")
                                         for i in queued])
        msg.vehicles_available = len(self.picture.idle(self._now()))
        msg.header.stamp = self.get_clock().now().to_msg()
        self.fleet_pub.publish(msg)
        if self.markers_pub.get_subscription_count():      # drawn only for a viewer
            open_incidents = [i for i in self.incidents.values() if i.state == Incident.STATE_OPEN]
            routes = {a.vehicle_id: a.route for a in self.assignments.values() if a.route}
            self.markers_pub.publish(live_markers(self.fleet.site_frame(), list(self.statuses.values()),
                                                  open_incidents, routes, msg.header.stamp,
                                                  2.0 * self.params.decision_period_s))


def main(args=None):
    sys.exit(run(DispatchNode, args))


if __name__ == "__main__":
    main()

"""The flight rules, attacked through the real nodes: goals sent straight to a bridge for incidents a
drone may not fly for, maintenance flights, an incident closed with no recall, the camera in transit,
and an excluded category made eligible upstream. Every refusal must be refused and on the audit log."""
import math
from pathlib import Path

import pytest
from rclpy.action import ActionClient
from rclpy.parameter import Parameter

from dfr_audit.audit_log import EntryKind, read_entries
from dfr_audit.audit_node import AuditNode
from dfr_audit.verify import verify
from dfr_common.geodesy import LocalFrame
from dfr_common.mission import Phase
from dfr_interfaces.action import ExecuteMission
from dfr_interfaces.msg import Call, GeoWaypoint, Incident, MissionPlan

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FLEET = FIXTURES / "fleet_two_bases.yaml"
Result = ExecuteMission.Result


class RulesGraph:
    """The simulator and the bridges (and dispatch where asked), with the audit node writing a log."""

    def __init__(self, graph_factory, log_file: Path, **kwargs):
        self.graph = graph = graph_factory(fleet_file=FLEET, **kwargs)
        self.log_file = log_file
        self.audit = AuditNode(context=graph.context, namespace="dfr", parameter_overrides=[
            Parameter("use_sim_time", value=True), Parameter("log_file", value=str(log_file)),
            Parameter("fleet_file", value=str(FLEET))])
        graph.nodes.append(self.audit)
        graph.executor.add_node(self.audit)
        self.action = ActionClient(graph.client_node, ExecuteMission, "/uav1/execute_mission")
        self.frame = LocalFrame(graph.fleet.vehicle_home("uav1"))
        self.model = graph.vehicle("uav1").model

    def goal(self, incident_id="INC-R", mission_id="M-rules", east=300.0, on_scene_s=2.0, flight_kind=""):
        lat, lon, _ = self.frame.to_geodetic(east, 0.0, 0.0)
        home = self.graph.fleet.vehicle_home("uav1")
        plan = MissionPlan(mission_id=mission_id, cruise_speed_m_s=15.0, standoff_radius_m=0.0,
                           on_scene_duration_s=on_scene_s, flight_kind=flight_kind,
                           route=[GeoWaypoint(latitude=float(lat), longitude=float(lon), altitude_rel_m=30.0)],
                           return_route=[GeoWaypoint(latitude=home.latitude, longitude=home.longitude,
                                                     altitude_rel_m=30.0)])
        plan.scene.latitude, plan.scene.longitude, plan.scene.altitude = float(lat), float(lon), math.nan
        # The goal's own copy always claims an open, eligible incident: the bridge must not believe it.
        incident = Incident(incident_id=incident_id, state=Incident.STATE_OPEN, drone_eligible=True,
                            grade="I", category="dangerous_driving")
        return ExecuteMission.Goal(incident=incident, plan=plan)

    def incident(self, incident_id, state=Incident.STATE_OPEN, eligible=True, category="dangerous_driving"):
        return self.graph.publish_incident(Incident(incident_id=incident_id, state=state, drone_eligible=eligible,
                                                    grade="I", category=category,
                                                    policy_reason="as intake decided it"))

    def call_in(self, incident_id, category, cad_ref, policy_reason, east=300.0):
        """An open incident intake calls eligible, one grade I call east of uav1's home, for dispatch."""
        lat, lon, _ = self.frame.to_geodetic(east, 0.0, 0.0)
        incident = Incident(incident_id=incident_id, state=Incident.STATE_OPEN, drone_eligible=True, grade="I",
                            category=category, policy_reason=policy_reason,
                            calls=[Call(cad_ref=cad_ref, grade="I", category=category)])
        incident.location.latitude, incident.location.longitude, incident.location.altitude = lat, lon, math.nan
        return self.graph.publish_incident(incident)

    def send(self, goal_msg):
        self.action = self.graph.wait_for_action_server(self.action)
        future = self.action.send_goal_async(goal_msg)
        self.graph.spin_until(future.done, 10, "the goal response")
        return future.result()

    def result(self, handle, timeout_s=90.0):
        future = handle.get_result_async()
        self.graph.spin_until(future.done, timeout_s, "the mission's result")
        return future.result().result

    def entries(self, kind):
        return list(read_entries(self.log_file, kind=kind))

    def wait_for_entries(self, kind, count, timeout_s=10.0):
        return self.graph.spin_until(lambda: len(self.entries(kind)) >= count and self.entries(kind), timeout_s,
                                     f"{count} {kind.value} entries")

    def close(self):
        self.audit.on_shutdown()


@pytest.fixture
def rules_graph(graph_factory, tmp_path):
    made = []

    def make(**kwargs):
        made.append(RulesGraph(graph_factory, tmp_path / "audit.sqlite", **kwargs))
        return made[-1]

    yield make
    for graph in made:
        graph.close()


def test_goals_sent_straight_to_the_bridge_for_no_open_eligible_incident_are_refused_and_recorded(rules_graph):
    g = rules_graph(with_dispatch=False)
    g.incident("INC-CLOSED", state=Incident.STATE_CLOSED)
    g.incident("INC-INELIGIBLE", eligible=False)
    g.incident("INC-PROTEST", category="protest")          # intake's policy bypassed: the rules still hold
    attempts = {"INC-CLOSED": "incident_closed", "INC-INELIGIBLE": "incident_not_eligible",
                "INC-NEVER-PUBLISHED": "unknown_incident", "INC-PROTEST": "excluded_category"}
    for incident_id in attempts:
        assert not g.send(g.goal(incident_id, mission_id=f"M-{incident_id}")).accepted, incident_id
    maintenance = g.goal("", mission_id="M-maint", flight_kind=MissionPlan.FLIGHT_KIND_MAINTENANCE)
    assert not g.send(maintenance).accepted, "maintenance flights are not allowed by config/bridge.yaml"
    assert not g.model.armed

    refusals = g.wait_for_entries(EntryKind.RULE_VIOLATION_REFUSED, 5)
    by_mission = {e.mission_id: e for e in refusals}
    for incident_id, rule in attempts.items():
        entry = by_mission[f"M-{incident_id}"]
        assert entry.detail["rule"] == rule and entry.incident_id == incident_id
        assert entry.vehicle_id == "uav1" and entry.actor == "/uav1/bridge"
        assert incident_id in entry.detail["reason"]
    assert by_mission["M-INC-NEVER-PUBLISHED"].detail["reason"].startswith("incident INC-NEVER-PUBLISHED is unknown")
    assert by_mission["M-maint"].detail == {"rule": "maintenance_flights_not_allowed", "flight_kind": "maintenance",
                                            "reason": "maintenance flights are not allowed by the rules"}
    assert not g.entries(EntryKind.LAUNCH)
    assert verify(g.log_file).ok


def test_an_allowed_maintenance_flight_flies_and_is_recorded_as_maintenance(rules_graph):
    g = rules_graph(with_dispatch=False, bridge_overrides={"flight_rules.allow_maintenance_flights": True})
    claims_incident = g.goal("INC-M", mission_id="M-claims", flight_kind=MissionPlan.FLIGHT_KIND_MAINTENANCE)
    g.incident("INC-M")
    assert not g.send(claims_incident).accepted, "a maintenance flight may not answer an incident"
    handle = g.send(g.goal("", mission_id="M-maint", east=100.0, on_scene_s=1.0,
                           flight_kind=MissionPlan.FLIGHT_KIND_MAINTENANCE))
    assert handle.accepted
    assert g.result(handle).outcome == Result.OUTCOME_COMPLETED

    launch, = g.wait_for_entries(EntryKind.LAUNCH, 1)
    assert launch.mission_id == "M-maint" and not launch.incident_id
    assert launch.detail["flight_kind"] == "maintenance"
    assert "recorded as a maintenance flight" in launch.detail["authorization"]
    allowed, = g.entries(EntryKind.MAINTENANCE_FLIGHT)
    assert allowed.seq < launch.seq and allowed.actor == "/uav1/bridge"
    refused, = g.entries(EntryKind.RULE_VIOLATION_REFUSED)
    assert refused.mission_id == "M-claims" and refused.detail["rule"] == "non_incident_flight_with_incident"
    assert verify(g.log_file).ok


def test_a_drone_leaves_an_incident_closed_with_no_recall_and_looks_ahead_off_scene(rules_graph):
    # No dispatch in this graph: nothing recalls the drone but the bridge's own rule.
    g = rules_graph(with_dispatch=False, bridge_overrides={"closed_incident_grace_s": 3.0,
                                                           "camera_ahead_pitch_deg": -10.0})
    bridge = g.graph.bridges["uav1"]
    g.incident("INC-LOITER")
    handle = g.send(g.goal("INC-LOITER", mission_id="M-loiter", east=400.0, on_scene_s=0.0))   # until canceled
    assert handle.accepted

    def phase():
        seq = bridge.sequencer
        return seq.phase if seq is not None and not seq.done else None

    pitches = {Phase.TRANSIT: [], Phase.ON_SCENE: []}

    def sample_until(wanted, on_scene_s=0.0):
        # The gimbal as the simulator holds it, once it has had two seconds to slew in each phase.
        seq = bridge.sequencer
        in_phase_s = g.graph.sim.sim_now - seq._step_since if seq is not None else 0.0
        if phase() in pitches and in_phase_s > 2.0:
            pitches[phase()].append(g.model.gimbal.pitch)
        return phase() == wanted and in_phase_s >= on_scene_s

    g.graph.spin_until(lambda: sample_until(Phase.ON_SCENE), 60, "the scene")
    g.graph.spin_until(lambda: sample_until(None) or sample_until(Phase.ON_SCENE, on_scene_s=5.0), 30,
                       "time on scene")
    assert pitches[Phase.TRANSIT] and all(abs(p + 10.0) < 0.5 for p in pitches[Phase.TRANSIT]), \
        f"the camera looked down in transit: {min(pitches[Phase.TRANSIT]):.1f} deg"
    assert min(pitches[Phase.ON_SCENE]) < -60.0, "on scene the camera is on the incident below"

    g.incident("INC-LOITER", state=Incident.STATE_CLOSED)
    closed_at = g.graph.sim.sim_now
    g.graph.spin_until(lambda: phase() in (Phase.RETURN, Phase.LAND), 30, "the drone to leave the scene")
    # The bridge counts the grace on its own clock, from /clock, which may trail the simulator's own time
    # (read here) by a tick or two on a loaded machine (once in CI: 2.9 s).
    assert 3.0 - 0.25 <= g.graph.sim.sim_now - closed_at < 6.0, "it left within the grace time, not before"
    result = g.result(handle)
    assert result.outcome == Result.OUTCOME_COMPLETED and result.reached_scene
    assert "INC-LOITER closed" in result.reason and "no recall came" in result.reason
    assert g.model.landed and not g.model.armed

    refusal, = g.wait_for_entries(EntryKind.RULE_VIOLATION_REFUSED, 1)
    assert refusal.detail["rule"] == "no_loitering_after_close"
    assert refusal.incident_id == "INC-LOITER" and refusal.mission_id == "M-loiter"
    assert verify(g.log_file).ok


def test_dispatch_never_sends_a_drone_to_an_excluded_category_made_eligible_upstream(rules_graph):
    g = rules_graph(with_dispatch=True)
    graph = g.graph
    graph.spin_until(lambda: graph.dispatch.picture.idle(graph.dispatch._now()), 30, "an idle fleet")
    # A misconfigured intake (or a forged message) calls a protest eligible: dispatch must hold.
    g.call_in("INC-PROTEST", "protest", "CAD-P", "eligible (misconfigured)")
    refusal, = g.wait_for_entries(EntryKind.RULE_VIOLATION_REFUSED, 1)
    assert refusal.actor == "/dfr/dispatch" and refusal.incident_id == "INC-PROTEST"
    assert refusal.detail["rule"] == "excluded_category"
    start = graph.sim.sim_now
    graph.spin_until(lambda: graph.sim.sim_now - start > 5.0, 30, "five decision rounds")
    assert not graph.dispatch.assignments and not any(v.model.armed for v in graph.sim.vehicles)
    assert "refused by the flight rules" in graph.dispatch.queue_reasons["INC-PROTEST"]
    assert len(g.entries(EntryKind.RULE_VIOLATION_REFUSED)) == 1, "recorded once, not every round"
    assert not g.entries(EntryKind.LAUNCH)
    assert verify(g.log_file).ok


def test_dispatch_records_each_assignment_with_the_drones_it_did_not_send_and_why(rules_graph):
    g = rules_graph(with_dispatch=True)
    graph = g.graph
    graph.spin_until(lambda: len(graph.dispatch.picture.idle(graph.dispatch._now())) == len(graph.fleet.vehicles),
                     30, "an idle fleet")
    g.call_in("INC-ASSIGN", "dangerous_driving", "CAD-A", "grade I dangerous_driving: eligible")
    entry, = g.wait_for_entries(EntryKind.ASSIGNMENT, 1)
    assert entry.incident_id == "INC-ASSIGN" and entry.actor == "planner"
    assert entry.vehicle_id == graph.dispatch.assignments["INC-ASSIGN"].vehicle_id
    assert entry.mission_id.startswith("M") and entry.detail["eta_s"] > 0 and entry.vehicle_id in entry.detail["reason"]
    alternatives = entry.detail["alternatives"]
    assert {a["vehicle_id"] for a in alternatives} == set(graph.fleet.vehicles) - {entry.vehicle_id}
    assert all(a["reason"] and (a["eta_s"] is None or a["eta_s"] >= entry.detail["eta_s"]) for a in alternatives)
    assert verify(g.log_file).ok

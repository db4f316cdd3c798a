"""The bridge node's ExecuteMission action and VehicleStatus, through real rclpy against the simulator."""
import math
from pathlib import Path

import pytest
from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient

from dfr_common.geodesy import LocalFrame
from dfr_common.ros import qos
from dfr_interfaces.action import ExecuteMission
from dfr_interfaces.msg import GeoWaypoint, Incident, MissionPhase, MissionPlan, VehicleStatus

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def graph(graph_factory):
    graph = graph_factory(fleet_file=FIXTURES / "fleet_two_bases.yaml", with_dispatch=False)
    graph.status = {}
    graph.client_node.create_subscription(VehicleStatus, "/uav1/vehicle_status",
                                          lambda m: graph.status.__setitem__("uav1", m), qos.LATCHED_STATE)
    graph.action = ActionClient(graph.client_node, ExecuteMission, "/uav1/execute_mission")
    return graph


def goal(graph, incident_id="INC-1", east=300.0, north=0.0, on_scene_s=5.0):
    frame = LocalFrame(graph.fleet.vehicle_home("uav1"))
    lat, lon, _ = frame.to_geodetic(east, north, 0.0)
    home = graph.fleet.vehicle_home("uav1")
    plan = MissionPlan(mission_id="M-test", cruise_speed_m_s=15.0, standoff_radius_m=0.0,
                       on_scene_duration_s=on_scene_s,
                       route=[GeoWaypoint(latitude=float(lat), longitude=float(lon), altitude_rel_m=30.0)],
                       return_route=[GeoWaypoint(latitude=home.latitude, longitude=home.longitude,
                                                 altitude_rel_m=30.0)])
    plan.scene.latitude, plan.scene.longitude, plan.scene.altitude = float(lat), float(lon), math.nan
    incident = Incident(incident_id=incident_id, state=Incident.STATE_OPEN, drone_eligible=True, grade="I",
                        category="dangerous_driving",
                        policy_reason="grade I dangerous_driving: eligible for a drone")
    return ExecuteMission.Goal(incident=incident, plan=plan)


def send(graph, goal_msg, feedback=None):
    """Send the goal, its incident first published as intake would (the bridge checks its own copy)."""
    graph.action = graph.wait_for_action_server(graph.action)
    if goal_msg.incident.incident_id:
        graph.publish_incident(goal_msg.incident)
    future = graph.action.send_goal_async(goal_msg, feedback_callback=feedback)
    graph.spin_until(future.done, 10, "the goal response")
    return future.result()


def test_an_idle_vehicle_reports_itself_available(graph):
    status = graph.spin_until(lambda: graph.status.get("uav1") if graph.status.get("uav1") and
                              graph.status["uav1"].available else None, 15, "an available status")
    assert status.vehicle_id == "uav1" and status.base_id == "islington"
    assert status.connected and not status.armed and status.phase.value == MissionPhase.IDLE
    assert 0.99 <= status.battery_fraction <= 1.0
    assert status.flight_time_remaining_s > 1000.0


def test_a_docked_vehicle_reports_every_two_seconds_and_at_once_when_it_is_sent(graph):
    """config/bridge.yaml's docked_status_period_s: six nodes read every drone's status, and a docked one's
    says nothing new twice a second; a mission changes it, and that goes out at the next status tick."""
    stamps = []
    graph.client_node.create_subscription(
        VehicleStatus, "/uav1/vehicle_status",
        lambda m: stamps.append((m.header.stamp.sec + m.header.stamp.nanosec * 1e-9, m.available)), qos.LATCHED_STATE)
    graph.spin_until(lambda: len(stamps) >= 4 and all(a for _, a in stamps[-4:]), 30, "four docked statuses")
    docked = [t for t, available in stamps if available]
    gaps = [b - a for a, b in zip(docked[1:], docked[2:])]      # the first after subscribing is the latched one
    assert gaps and all(1.9 <= g <= 2.7 for g in gaps), gaps
    sent_at = graph.sim.sim_now
    assert send(graph, goal(graph)).accepted
    busy = graph.spin_until(lambda: next((t for t, available in stamps if not available), None), 10,
                            "a status that is no longer available")
    assert busy - sent_at <= 1.0, f"the change went out {busy - sent_at:.1f} s after the goal"


def test_a_flight_for_no_incident_is_refused(graph):
    handle = send(graph, goal(graph, incident_id=""))
    assert not handle.accepted
    assert not graph.vehicle("uav1").model.armed


def test_a_plan_with_a_nan_waypoint_is_refused(graph):
    bad = goal(graph)
    bad.plan.route[0].latitude = math.nan
    assert not send(graph, bad).accepted


def test_a_flight_for_an_incident_the_policy_refused_is_refused(graph):
    # The launch policy holds at the last step too: a goal sent by hand cannot fly a protest.
    protest = goal(graph)
    protest.incident.drone_eligible = False
    protest.incident.category = "protest"
    assert not send(graph, protest).accepted
    closed = goal(graph)
    closed.incident.state = Incident.STATE_CLOSED
    assert not send(graph, closed).accepted
    assert not graph.vehicle("uav1").model.armed


def test_two_goals_sent_together_fly_one_mission(graph):
    graph.action = graph.wait_for_action_server(graph.action)
    first, second = goal(graph, incident_id="INC-A"), goal(graph, incident_id="INC-B")
    graph.publish_incident(first.incident)
    graph.publish_incident(second.incident)
    first = graph.action.send_goal_async(first)
    second = graph.action.send_goal_async(second)
    graph.spin_until(lambda: first.done() and second.done(), 10, "both goal responses")
    assert [first.result().accepted, second.result().accepted].count(True) == 1


def test_a_mission_runs_with_feedback_refuses_a_second_goal_and_can_be_canceled(graph):
    bridge = graph.bridges["uav1"]
    # A docked drone's bridge runs its status timer only: no setpoint stream, gimbal or feedback.
    assert [t.timer_period_ns for t in bridge.timers] == [500_000_000]
    feedback = []
    handle = send(graph, goal(graph, east=800.0), feedback=lambda f: feedback.append(f.feedback))
    assert handle.accepted
    assert sorted(t.timer_period_ns for t in bridge.timers) == [100_000_000, 100_000_000, 500_000_000,
                                                                 500_000_000]
    graph.spin_until(lambda: any(f.phase.value == MissionPhase.TRANSIT for f in feedback), 30, "transit")
    status = graph.spin_until(lambda: graph.status["uav1"] if graph.status["uav1"].phase.value
                              == MissionPhase.TRANSIT else None, 10, "a transit status")
    assert not status.available and status.incident_id == "INC-1" and status.mission_id == "M-test"

    assert not send(graph, goal(graph, incident_id="INC-2")).accepted      # busy

    transit = [f for f in feedback if f.phase.value == MissionPhase.TRANSIT]
    assert transit[-1].distance_to_go_m > 0 and transit[-1].eta_s > 0
    cancel = handle.cancel_goal_async()
    graph.spin_until(cancel.done, 10, "the cancel response")
    result = handle.get_result_async()
    graph.spin_until(result.done, 60, "the mission to end")
    assert result.result().status == GoalStatus.STATUS_CANCELED
    assert result.result().result.outcome == ExecuteMission.Result.OUTCOME_CANCELED
    assert not result.result().result.reached_scene
    assert [t.timer_period_ns for t in bridge.timers] == [500_000_000]
    model = graph.vehicle("uav1").model
    assert model.landed and not model.armed and math.hypot(*model.position[:2]) < 2.0
    # The same bridge flies the next mission to the end: a second outcome, logged at another severity.
    graph.spin_until(lambda: graph.status["uav1"].available, 30, "the vehicle available again")
    again = send(graph, goal(graph, incident_id="INC-3", east=150.0, on_scene_s=1.0))
    assert again.accepted
    result = again.get_result_async()
    graph.spin_until(result.done, 120, "the second mission to end")
    assert result.result().status == GoalStatus.STATUS_SUCCEEDED
    assert result.result().result.outcome == ExecuteMission.Result.OUTCOME_COMPLETED


def test_only_the_mavros_subscriptions_carry_qos_warnings(graph):
    """dfr_common.ros.lean_node: our own endpoints have no QoS event handlers for the executor to visit on
    every wake; the bridge's subscriptions to MAVROS keep rclpy's warning of an incompatible QoS."""
    bridge = graph.bridges["uav1"]
    handlers = {s.topic_name: len(s.event_handlers) for s in bridge.subscriptions}
    assert handlers["/uav1/mavros/state"] >= 1 and handlers["/uav1/mavros/global_position/global"] >= 1
    assert handlers["/uav1/follow/setpoint"] == 0 and handlers["/clock"] == 0
    assert all(not p.event_handlers for p in bridge.publishers)
    assert all(not e.event_handlers for e in (*graph.sim.publishers, *graph.sim.subscriptions))

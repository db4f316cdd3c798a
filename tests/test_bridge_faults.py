"""The bridge against the simulator when the world says no: each case injected through the
simulator's fault service, the bridge driven only through its action, as dispatch drives it."""
import math
import time
from pathlib import Path

import pytest
from mavros_msgs.msg import State
from mavros_msgs.srv import SetMode
from rclpy.action import ActionClient

from dfr_common.geodesy import LocalFrame
from dfr_common.ros import qos
from dfr_interfaces.action import ExecuteMission
from dfr_interfaces.msg import FollowSetpoint, GeoWaypoint, Incident, MissionPhase, MissionPlan, VehicleStatus
from dfr_interfaces.srv import InjectFault

FIXTURES = Path(__file__).resolve().parent / "fixtures"
Result = ExecuteMission.Result


class Flight:
    """One vehicle's bridge, its action, its status, and the simulator's fault service."""

    def __init__(self, graph):
        self.graph = graph
        node = graph.client_node
        self.status: list[VehicleStatus] = []
        self.feedback = []
        self.states: list[State] = []
        node.create_subscription(VehicleStatus, "/uav1/vehicle_status", self.status.append, qos.LATCHED_STATE)
        node.create_subscription(State, "/uav1/mavros/state", self.states.append, qos.LATCHED_STATE)
        self.action = ActionClient(node, ExecuteMission, "/uav1/execute_mission")
        self.faults = node.create_client(InjectFault, "/sim/inject_fault")
        self.follow_pub = node.create_publisher(FollowSetpoint, "/uav1/follow/setpoint", qos.SENSOR_DATA)
        self.model = graph.vehicle("uav1").model
        self.frame = LocalFrame(graph.fleet.vehicle_home("uav1"))
        self.handle = None

    def goal(self, east=300.0, north=0.0, on_scene_s=5.0, standoff=0.0):
        lat, lon, _ = self.frame.to_geodetic(east - standoff, north, 0.0)
        scene_lat, scene_lon, _ = self.frame.to_geodetic(east, north, 0.0)
        home = self.graph.fleet.vehicle_home("uav1")
        plan = MissionPlan(mission_id="M-fault", cruise_speed_m_s=15.0, standoff_radius_m=float(standoff),
                           on_scene_duration_s=on_scene_s,
                           route=[GeoWaypoint(latitude=float(lat), longitude=float(lon), altitude_rel_m=40.0)],
                           return_route=[GeoWaypoint(latitude=home.latitude, longitude=home.longitude,
                                                     altitude_rel_m=40.0)])
        plan.scene.latitude, plan.scene.longitude, plan.scene.altitude = float(scene_lat), float(scene_lon), math.nan
        incident = Incident(incident_id="INC-F", state=Incident.STATE_OPEN, drone_eligible=True, grade="I",
                            category="dangerous_driving",
                            policy_reason="grade I: eligible")
        return ExecuteMission.Goal(incident=incident, plan=plan)

    def start(self, goal_msg):
        self.action = self.graph.wait_for_action_server(self.action)
        self.graph.publish_incident(goal_msg.incident)
        future = self.action.send_goal_async(goal_msg, feedback_callback=lambda f: self.feedback.append(f.feedback))
        self.graph.spin_until(future.done, 10, "the goal response")
        self.handle = future.result()
        assert self.handle.accepted

    def result(self, timeout_s=60.0):
        future = self.handle.get_result_async()
        self.graph.spin_until(future.done, timeout_s, "the mission's result")
        return future.result().result

    def inject(self, fault, active=True, argument="", value=0.0):
        answer = self.graph.call(self.faults, InjectFault.Request(vehicle_id="uav1", fault=fault, active=active,
                                                                  argument=argument, value=value))
        assert answer.success, answer.message

    def until_phase(self, phase, timeout_s=30.0):
        self.graph.spin_until(lambda: self.feedback and self.feedback[-1].phase.value == phase, timeout_s,
                              f"phase {phase}")

    def spin_for(self, sim_seconds):
        end = self.graph.sim.sim_now + sim_seconds
        self.graph.spin_until(lambda: self.graph.sim.sim_now >= end, 30, f"{sim_seconds} s of sim time")


@pytest.fixture
def flight(graph_factory):
    graph = graph_factory(fleet_file=FIXTURES / "fleet_two_bases.yaml", with_dispatch=False)
    graph.spin_until(lambda: graph.sim.sim_now > 4.0, 20, "the estimators to settle")
    return Flight(graph)


def test_arming_refused_every_time_fails_the_mission_with_the_autopilots_reason(flight):
    flight.inject("refuse_arming", argument="Preflight Fail: compass not calibrated")
    flight.start(flight.goal())
    result = flight.result()
    assert result.outcome == Result.OUTCOME_FAILED
    assert "arm refused 3 times" in result.reason and "compass not calibrated" in result.reason
    assert not flight.model.armed and flight.model.landed


def test_a_refused_offboard_fails_the_mission_and_hands_the_vehicle_to_return_to_launch(flight):
    flight.inject("refuse_mode", argument="OFFBOARD")
    flight.start(flight.goal())
    result = flight.result()
    assert result.outcome == Result.OUTCOME_FAILED
    assert "switch to OFFBOARD refused 3 times" in result.reason and "return to launch" in result.reason
    assert flight.model.mode == "AUTO.RTL"


def test_the_pilot_taking_control_is_yielded_to_at_once_and_never_fought(flight):
    flight.start(flight.goal(east=800.0))
    flight.until_phase(MissionPhase.TRANSIT)
    flight.graph.spin_until(lambda: flight.model.mode == "OFFBOARD", 20, "offboard")
    pilot = flight.graph.client_node.create_client(SetMode, "/uav1/mavros/set_mode")
    assert flight.graph.call(pilot, SetMode.Request(custom_mode="POSCTL")).mode_sent
    result = flight.result()
    assert result.outcome == Result.OUTCOME_PILOT_TAKEOVER and "POSCTL" in result.reason
    flight.spin_for(10.0)
    assert flight.model.mode == "POSCTL"                              # no request to take it back
    assert flight.graph.sim.sim_now - flight.model.last_setpoint_s > 9.0   # and no setpoints since


def test_a_lost_link_marks_the_vehicle_lost_and_its_status_recovers_when_the_link_returns(flight):
    flight.start(flight.goal(east=800.0))
    flight.until_phase(MissionPhase.TRANSIT)
    flight.inject("link_loss")
    result = flight.result()
    assert result.outcome == Result.OUTCOME_VEHICLE_LOST and "link" in result.reason
    flight.graph.spin_until(lambda: flight.status and not flight.status[-1].connected, 20, "a disconnected status")
    assert not flight.status[-1].available
    flight.graph.spin_until(lambda: flight.model.mode == "AUTO.RTL", 30, "PX4's data-link failsafe")
    flight.inject("link_loss", active=False)
    flight.graph.spin_until(lambda: flight.status[-1].connected, 20, "the link back in the status")
    # PX4 brings it home on its own; once it is down, the bridge offers it again.
    flight.graph.spin_until(lambda: flight.status[-1].available, 60, "the vehicle available again")


def test_offboard_lost_in_a_short_link_gap_is_reported_and_never_reentered(flight):
    flight.start(flight.goal(east=800.0))
    flight.until_phase(MissionPhase.TRANSIT)
    flight.graph.spin_until(lambda: flight.model.mode == "OFFBOARD", 20, "offboard")
    flight.inject("link_loss")                   # 3 s: setpoints stop reaching PX4, which leaves offboard
    flight.spin_for(3.0)
    flight.inject("link_loss", active=False)
    result = flight.result()
    assert result.outcome == Result.OUTCOME_AUTOPILOT_FAILSAFE, result.reason
    assert "offboard lost" in result.reason
    flight.spin_for(10.0)
    assert flight.model.mode == "POSCTL"


def test_a_low_battery_brings_it_home_on_the_reserve_and_asks_for_relief(flight):
    flight.start(flight.goal(on_scene_s=0.0))
    flight.until_phase(MissionPhase.ON_SCENE, 60)
    flight.inject("battery_level", value=0.22)
    flight.graph.spin_until(lambda: flight.status[-1].relief_needed, 20, "relief asked for in the status")
    flight.graph.spin_until(lambda: flight.feedback[-1].relief_needed, 10, "relief asked for in the feedback")
    assert flight.feedback[-1].phase.value == MissionPhase.RETURN
    result = flight.result(90)
    assert result.outcome == Result.OUTCOME_BATTERY_RESERVE and "reserve" in result.reason
    assert flight.model.battery_fraction > 0.15


def test_on_scene_it_orbits_with_the_camera_down_on_the_incident_and_follows_a_fresh_stream(flight):
    flight.start(flight.goal(on_scene_s=0.0, standoff=40.0))
    flight.until_phase(MissionPhase.TRANSIT)
    flight.spin_for(3.0)
    assert abs(flight.model.gimbal.pitch) < 1.0                       # level in transit
    flight.until_phase(MissionPhase.ON_SCENE, 60)
    flight.spin_for(15.0)
    assert flight.model.gimbal.pitch < -30.0                          # down on the scene, via mount_control
    distance = math.dist(flight.model.position[:2], (300.0 + 3.0, 0.0))   # uav1's dock is 3 m west of base
    assert distance == pytest.approx(40.0, abs=8.0)

    def follow(mission_id, east=350.0, north=60.0):
        lat, lon, _ = flight.frame.to_geodetic(east, north, 0.0)
        msg = FollowSetpoint(mission_id=mission_id, track_id="T1", latitude=float(lat), longitude=float(lon),
                             altitude_rel_m=40.0)
        msg.header.stamp = flight.graph.client_node.get_clock().now().to_msg()
        msg.look_at.latitude, msg.look_at.longitude, msg.look_at.altitude = float(lat), float(lon), math.nan
        flight.follow_pub.publish(msg)

    for _ in range(20):                      # for another mission: never flown
        follow("M-other")
        flight.spin_for(0.2)
    assert flight.feedback[-1].phase.value == MissionPhase.ON_SCENE
    deadline = time.monotonic() + 20
    while flight.feedback[-1].phase.value != MissionPhase.FOLLOW and time.monotonic() < deadline:
        follow("M-fault")
        flight.spin_for(0.2)
    assert flight.feedback[-1].phase.value == MissionPhase.FOLLOW
    for _ in range(100):
        follow("M-fault")
        flight.spin_for(0.2)
    assert math.dist(flight.model.position[:2], (350.0, 60.0)) < 10.0
    # A new setpoint is flown at once, not at the bridge's next control tick (a frame later on a 0.2 s
    # clock): with that tick stopped, it still reaches PX4.
    control = flight.graph.bridges["uav1"]._mission_timers[0]
    control.cancel()
    before = flight.model._setpoint.position.copy()
    follow("M-fault", east=320.0, north=30.0)
    flight.graph.spin_until(lambda: math.dist(flight.model._setpoint.position[:2], before[:2]) > 20.0, 5,
                            "the new follow setpoint at PX4 with the control tick stopped")
    control.reset()
    flight.spin_for(5.0)                     # the stream stops: back to circling
    assert flight.feedback[-1].phase.value == MissionPhase.ON_SCENE
    cancel = flight.handle.cancel_goal_async()
    flight.graph.spin_until(cancel.done, 10, "the cancel response")
    assert flight.result(90).outcome == Result.OUTCOME_CANCELED


def test_the_route_can_be_flown_as_a_px4_mission(graph_factory):
    graph = graph_factory(fleet_file=FIXTURES / "fleet_two_bases.yaml", with_dispatch=False,
                          bridge_overrides={"transit_mode": "mission"})
    graph.spin_until(lambda: graph.sim.sim_now > 4.0, 20, "the estimators to settle")
    flight = Flight(graph)
    modes = set()
    flight.start(flight.goal(east=500.0))
    graph.spin_until(lambda: modes.add(flight.model.mode) or (flight.feedback and flight.feedback[-1].phase.value
                                                               == MissionPhase.ON_SCENE), 60, "the scene")
    assert "AUTO.MISSION" in modes
    assert flight.result(90).outcome == Result.OUTCOME_COMPLETED

"""The bridge's mission sequencer flying the simulator's PX4 model, without ROS in between.

The link below carries what MAVROS would: State and ExtendedState once a second (PX4's
heartbeat), position five times a second, home every two seconds; service answers at
once; the sequencer's setpoint streamed at the control rate. Faults are injected in
the model or the link, and each case checks what the sequencer does about it.
"""
import math

import pytest

from dfr_bridge.mission_sequencer import MissionSequencer, MissionSpec, SequencerConfig, Telemetry, Waypoint
from dfr_bridge.route_follower import FollowerConfig
from dfr_common import px4
from dfr_common.geodesy import GeoPoint, LocalFrame
from dfr_common.mission import Outcome, Phase
from dfr_sim.multirotor import Multirotor, MultirotorConfig

HOME = GeoPoint(51.5338, -0.1109, 76.0)       # Islington, ground at 30 m AMSL + 46 m geoid
FRAME = LocalFrame(HOME)
DT = 0.05
CONTROL_PERIOD = 0.1


def point(east, north, altitude):
    lat, lon, _ = FRAME.to_geodetic(east, north, 0.0)
    return Waypoint(float(lat), float(lon), altitude)


def spec(route=None, on_scene_s=5.0, return_route=None):
    scene_lat, scene_lon, _ = FRAME.to_geodetic(420.0, 300.0, 0.0)
    return MissionSpec(
        mission_id="M1", incident_id="INC-1",
        route=route if route is not None else [point(400.0, 300.0, 40.0)],
        scene=GeoPoint(float(scene_lat), float(scene_lon), math.nan), cruise_speed_m_s=15.0,
        on_scene_duration_s=on_scene_s,
        return_route=return_route if return_route is not None else [point(0.0, 0.0, 40.0)])


class Link:
    """MAVROS between the sequencer and the model, with PX4's stream rates."""

    def __init__(self, model: Multirotor, sequencer: MissionSequencer):
        self.model = model
        self.sequencer = sequencer
        self.now = 10.0   # the autopilot booted a while ago: its estimator has settled
        self.telemetry = Telemetry(now_s=0.0)
        self.link_up = True
        self.positions_up = True
        self.deliver_setpoints = True
        self.refuse = {}            # request kind -> how many more times to refuse it
        self.requests = []
        self._next = {"state": 0.0, "position": 0.0, "home": 0.0, "control": 0.0}

    def _due(self, name, period):
        if self.now + 1e-9 >= self._next[name]:
            self._next[name] += period
            return True
        return False

    def _publish(self):
        t, m = self.telemetry, self.model
        if not self.link_up:
            return
        if self._due("state", 1.0):
            t.connected, t.armed, t.mode, t.landed_state = True, m.armed, m.mode, m.landed_state
            t.last_state_s = self.now
        if self._due("position", 0.2) and self.positions_up:
            lat, lon, _ = FRAME.to_geodetic(*m.position)
            t.latitude, t.longitude, t.altitude_rel_m = float(lat), float(lon), m.height_above_home
            t.gps_fix, t.battery_fraction = m.gps_ok, m.battery_fraction
            t.last_position_s = self.now
        if self._due("home", 2.0):
            t.home = HOME
        while m.events:
            event = m.events.popleft()
            if event.severity != "info":
                self.sequencer.note_autopilot_message(event.text, self.now)

    def _serve(self, request):
        self.requests.append(request.describe())
        if self.refuse.get(request.kind, 0) > 0:
            self.refuse[request.kind] -= 1
            self.sequencer.on_request_done(request, False, "MAV_RESULT 1")
            return
        if request.kind == "arm":
            ok, result = self.model.arm(True, self.now)
        elif request.kind == "takeoff":
            ok, result = self.model.takeoff(self.now, math.nan)
        else:
            ok = self.model.set_mode(request.mode, self.now)
        self.sequencer.on_request_done(request, ok, "" if ok else "MAV_RESULT 1")

    def run_until_transit_in_offboard(self):
        assert self.run(200, until=lambda: self.sequencer.phase == Phase.TRANSIT and self.model.mode == px4.OFFBOARD)

    def run(self, seconds, until=None):
        for _ in range(int(round(seconds / DT))):
            self._publish()
            if self._due("control", CONTROL_PERIOD):
                self.telemetry.now_s = self.now
                for request in self.sequencer.update(self.telemetry):
                    self._serve(request)
                sp = self.sequencer.setpoint
                if sp is not None and self.deliver_setpoints:
                    east, north, _ = FRAME.to_enu(sp.latitude, sp.longitude)
                    self.model.setpoint(self.now, position=(float(east), float(north), sp.altitude_rel_m),
                                        velocity=sp.velocity_enu, yaw=sp.yaw_enu)
            self.now += DT
            self.model.step(self.now, DT)
            if until is not None and until():
                return True
            if self.sequencer.done and until is None:
                return True
        return False


def fly(mission=None, config=None, model_config=None, battery=1.0):
    model = Multirotor("uav1", model_config or MultirotorConfig(max_speed_m_s=20.0, max_climb_m_s=6.0,
                                                                max_descent_m_s=3.0, max_accel_m_s2=4.0),
                       ground_amsl_m=30.0, battery_fraction=battery)
    config = config or SequencerConfig(follower=FollowerConfig(climb_speed_m_s=6.0, descent_speed_m_s=3.0,
                                                               accel_m_s2=4.0))
    sequencer = MissionSequencer(mission or spec(), config)
    return Link(model, sequencer)


def test_a_mission_is_flown_phase_by_phase_and_ends_landed_on_the_dock():
    link = fly()
    seq = link.sequencer
    phases = [seq.phase]

    def record():
        if not phases or phases[-1] != seq.phase:
            phases.append(seq.phase)
        return False

    link.run(400, until=lambda: record() or seq.done)
    assert seq.outcome == Outcome.COMPLETED, seq.reason
    assert phases == [Phase.PREFLIGHT, Phase.TAKEOFF, Phase.TRANSIT, Phase.ON_SCENE, Phase.RETURN, Phase.LAND]
    assert link.requests[:3] == ["arm", "takeoff", "switch to OFFBOARD"]
    assert link.requests[-1] == "switch to AUTO.LAND"
    assert not link.model.armed and link.model.landed
    assert math.hypot(*link.model.position[:2]) < 2.0
    assert seq.distance_flown_m == pytest.approx(2 * (500.0 + 40.0), rel=0.1)
    assert seq.takeoff_time_s < seq.on_scene_since_s < seq.landed_time_s


def test_the_stream_starts_before_offboard_is_asked_for():
    link = fly()
    seq = link.sequencer
    link.run(60, until=lambda: "switch to OFFBOARD" in link.requests)
    assert seq.setpoint is not None
    assert link.model.offboard_stream_ready(link.now)


def test_the_mission_climbs_over_home_before_heading_out():
    link = fly()
    track = []
    link.run(200, until=lambda: track.append(link.model.position.copy()) or link.sequencer.phase == Phase.ON_SCENE)
    below_cruise = [p for p in track if p[2] < 38.0]
    assert max(math.hypot(p[0], p[1]) for p in below_cruise) < 3.0


def test_arming_refused_twice_is_retried_with_backoff_and_then_flies():
    link = fly()
    link.refuse["arm"] = 2
    link.run(30, until=lambda: link.model.armed)
    assert link.requests[:3] == ["arm", "arm", "arm"]
    assert link.sequencer.phase == Phase.TAKEOFF
    assert link.now >= 1.0 + 2.0     # backed off 1 s, then 2 s


def test_arming_refused_every_time_fails_the_mission_with_the_reason():
    link = fly()
    link.refuse["arm"] = 99
    link.sequencer.note_autopilot_message("Arming denied: Resolve system health failures first", 0.0)
    link.run(60)
    seq = link.sequencer
    assert seq.outcome == Outcome.FAILED
    assert "arm refused 3 times" in seq.reason
    assert "Resolve system health failures first" in seq.reason
    assert not link.model.armed


def test_offboard_that_never_comes_fails_and_hands_the_vehicle_to_return_to_launch():
    link = fly()
    link.deliver_setpoints = False          # PX4 never sees a stream, so it refuses OFFBOARD
    link.run(120)
    seq = link.sequencer
    assert seq.outcome == Outcome.FAILED
    assert "switch to OFFBOARD refused 3 times" in seq.reason
    assert "handed over to PX4's return to launch" in seq.reason
    assert link.model.mode == px4.AUTO_RTL and seq.setpoint is None
    link.run(120, until=lambda: not link.model.armed)
    assert link.model.landed and math.hypot(*link.model.position[:2]) < 1.5     # PX4 brought it home


def test_a_pilot_taking_control_is_never_fought():
    link = fly()
    seq = link.sequencer
    link.run_until_transit_in_offboard()
    link.run(3)
    link.model.set_mode(px4.POSCTL, link.now)        # the pilot flips the switch
    link.run(5)
    assert seq.outcome == Outcome.PILOT_TAKEOVER
    assert "POSCTL" in seq.reason
    assert seq.setpoint is None
    requests = len(link.requests)
    link.run(10)
    assert len(link.requests) == requests and link.model.mode == px4.POSCTL


def test_a_silent_link_marks_the_vehicle_lost():
    link = fly()
    seq = link.sequencer
    link.run_until_transit_in_offboard()
    link.link_up = False
    link.run(10)
    assert seq.outcome == Outcome.VEHICLE_LOST
    assert "link" in seq.reason


def test_canceled_in_transit_it_retraces_its_route_and_lands():
    route = [point(0.0, 300.0, 40.0), point(300.0, 300.0, 40.0)]
    link = fly(spec(route=route))
    seq = link.sequencer
    link.run(300, until=lambda: seq.phase == Phase.TRANSIT and link.model.position[0] > 100.0)
    seq.cancel()
    track = []
    link.run(300, until=lambda: track.append(link.model.position.copy()) or seq.done)
    assert seq.outcome == Outcome.CANCELED
    assert seq.on_scene_since_s is None
    # Back the way it came: through the corner at (0, 300), never straight across the unflown area.
    assert min(math.hypot(p[0], p[1] - 300.0) for p in track) < 5.0
    assert all(p[0] < 5.0 or p[1] > 250.0 for p in track if p[2] > 5.0)
    assert link.model.landed and not link.model.armed


def test_canceled_before_take_off_it_never_arms():
    link = fly()
    link.sequencer.cancel()
    link.run(10)
    assert link.sequencer.outcome == Outcome.CANCELED
    assert link.requests == []


def test_preflight_names_every_problem_it_waited_for():
    link = fly(battery=0.3)
    link.model.gps_ok = False
    link.run(20)
    seq = link.sequencer
    assert seq.outcome == Outcome.FAILED
    assert "battery at 30%" in seq.reason and "no GPS fix" in seq.reason
    assert link.requests == []


def test_a_plan_that_cannot_be_flown_is_named_before_anything_moves():
    from dfr_bridge.mission_sequencer import plan_problems
    config = SequencerConfig()
    assert plan_problems(spec(), config) == []
    bad = spec(route=[point(400.0, 300.0, 150.0), Waypoint(math.nan, 0.0, 40.0), point(10.0, 0.0, 0.0)])
    bad.incident_id = ""
    problems = plan_problems(bad, config)
    assert "the mission names no incident: every flight must answer one" in problems
    assert any("route[0] at 150 m is outside (0, 120] m" in p for p in problems)
    assert "route[1] has a non-finite coordinate" in problems
    assert any(p.startswith("route[2] at 0 m") for p in problems)


def test_feedback_counts_down_distance_and_eta():
    link = fly()
    seq = link.sequencer
    link.run(200, until=lambda: seq.phase == Phase.TRANSIT and link.model.position[2] > 39.0)
    samples = []
    link.run(60, until=lambda: samples.append((seq.distance_to_go_m, seq.eta_s)) or seq.phase != Phase.TRANSIT)
    distances = [d for d, _ in samples]
    assert distances[0] == pytest.approx(500.0, abs=15.0)
    assert all(b <= a + 0.5 for a, b in zip(distances, distances[1:]))
    assert samples[0][1] == pytest.approx(500.0 / 15.0, rel=0.2)


def test_a_battery_failsafe_is_told_apart_from_a_pilot_takeover():
    model_config = MultirotorConfig(max_speed_m_s=20.0, max_climb_m_s=6.0, max_descent_m_s=3.0,
                                    max_accel_m_s2=4.0, battery_capacity_wh=300.0 * 150.0 / 3600.0)
    link = fly(spec(on_scene_s=0.0), model_config=model_config, battery=0.55)
    seq = link.sequencer
    link.run(400)
    assert seq.outcome == Outcome.AUTOPILOT_FAILSAFE, seq.reason
    assert "AUTO.RTL" in seq.reason and "battery" in seq.reason.lower()
    assert seq.setpoint is None


def test_losing_the_position_in_flight_hands_over_to_return_to_launch():
    link = fly()
    seq = link.sequencer
    link.run_until_transit_in_offboard()
    link.positions_up = False
    link.run(30)
    assert seq.outcome == Outcome.FAILED
    assert "no position from the autopilot" in seq.reason and "return to launch" in seq.reason
    assert link.model.mode == px4.AUTO_RTL

"""The follow controller: keeps the stand-off behind a target, never puts a setpoint (or the
straight line to the next one) into a no-fly zone or out of the permitted area, searches
and then reports a loss once, hands over, and keeps a curving target in a camera's view."""
import math

import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, Point, Polygon, box

from dfr_common.camera_geometry import gimbal_to_world_rotation
from dfr_follow.follow_controller import (
    FollowCommand,
    FollowConfig,
    FollowController,
    FollowState,
    TargetObservation,
    target_in_view,
)

DT = 0.1


class PointMassDrone:
    """A drone that flies to position setpoints with feed-forward, at limited speed and acceleration,
    turning to the commanded heading at a limited rate; its gimbal slews to the last command at a
    limited rate (as dfr_sim's gimbal does), stabilised against the airframe."""

    def __init__(self, xyz, heading=0.0, max_speed=15.0, max_accel=6.0, gain=1.0, yaw_rate=math.pi / 2,
                 gimbal_slew_deg_s=90.0):
        self.position = np.array(xyz, dtype=float)
        self.velocity = np.zeros(3)
        self.heading = heading
        self.max_speed, self.max_accel, self.gain, self.yaw_rate = max_speed, max_accel, gain, yaw_rate
        self.gimbal_slew_deg_s = gimbal_slew_deg_s
        self.gimbal = (-90.0, 0.0)

    def step(self, command: FollowCommand, dt: float = DT):
        want = command.velocity_enu + self.gain * (command.setpoint_enu - self.position)
        horizontal = want[:2]
        speed = float(np.hypot(*horizontal))
        if speed > self.max_speed:
            horizontal = horizontal * self.max_speed / speed
        want = np.array([*horizontal, np.clip(want[2], -3.0, 3.0)])
        change = want - self.velocity
        size = float(np.linalg.norm(change))
        if size > self.max_accel * dt:
            change *= self.max_accel * dt / size
        self.velocity += change
        self.position += self.velocity * dt
        # The gimbal's yaw is relative to the nose: hold its world bearing while the body turns.
        pitch, yaw = self.gimbal
        bearing = math.degrees(self.heading) - yaw
        turn = (command.heading_rad - self.heading + math.pi) % (2 * math.pi) - math.pi
        self.heading += float(np.clip(turn, -self.yaw_rate * dt, self.yaw_rate * dt))
        yaw = (math.degrees(self.heading) - bearing + 180.0) % 360.0 - 180.0
        slew = self.gimbal_slew_deg_s * dt
        yaw_error = (command.gimbal_yaw_deg - yaw + 180.0) % 360.0 - 180.0
        self.gimbal = (pitch + float(np.clip(command.gimbal_pitch_deg - pitch, -slew, slew)),
                       yaw + float(np.clip(yaw_error, -slew, slew)))

    def rotation(self):
        return gimbal_to_world_rotation(self.heading, self.gimbal[0], 0.0, self.gimbal[1])


def straight(t, speed=8.0, heading=0.0, start=(0.0, 0.0)):
    direction = np.array([math.cos(heading), math.sin(heading)])
    return np.asarray(start) + speed * t * direction, speed * direction


def run(controller, drone, target, duration, observe=lambda t: True, start_t=0.0):
    """Step the loop; returns the commands and the drone positions after each step."""
    commands, positions = [], []
    steps = int(round(duration / DT))
    for k in range(steps):
        t = start_t + k * DT
        position, velocity = target(t)
        observation = TargetObservation(t, position, velocity, "7") if observe(t) else None
        command = controller.update(t, drone.position, drone.heading, observation)
        drone.step(command)
        commands.append(command)
        positions.append(drone.position.copy())
    return commands, np.array(positions)


# --------------------------------------------------------------------------- following
def test_straight_driving_target_is_followed_at_the_standoff():
    config = FollowConfig(standoff_m=25.0, height_m=40.0, lead_time_s=0.5)
    controller = FollowController(config)
    drone = PointMassDrone((-60.0, 30.0, 35.0))
    commands, positions = run(controller, drone, lambda t: straight(t, 8.0, 0.3), 40.0)
    last = commands[-1]
    target, velocity = straight(40.0 - DT, 8.0, 0.3)
    led = target + velocity * config.lead_time_s
    assert last.state is FollowState.FOLLOWING and last.limits == ()
    assert np.hypot(*(last.setpoint_enu[:2] - led)) == pytest.approx(25.0)
    behind = -velocity / np.hypot(*velocity)
    assert last.setpoint_enu[:2] == pytest.approx(led + 25.0 * behind)
    assert last.setpoint_enu[2] == pytest.approx(40.0)
    assert last.velocity_enu == pytest.approx([*velocity, 0.0])
    assert last.look_at_xy == pytest.approx(target)
    # The drone itself settles at the stand-off from where the target will be lead_time_s on.
    drone_led = np.hypot(*(positions[-1][:2] - led))
    assert drone_led == pytest.approx(25.0, abs=1.5)
    assert positions[-1][2] == pytest.approx(40.0, abs=0.5)
    # Approaching from afar, the setpoint never moved faster than the limit.
    steps = np.hypot(*np.diff([c.setpoint_enu[:2] for c in commands], axis=0).T)
    assert steps.max() <= config.max_speed_m_s * DT + 1e-9
    assert any("slowed" in c.reason for c in commands[:20])
    # The camera points at the target from where the drone is: MOUNT pitch downwards.
    assert -90.0 < last.gimbal_pitch_deg < -45.0 and abs(last.gimbal_yaw_deg) < 5.0


def test_slow_target_is_watched_from_the_drones_side():
    controller = FollowController(FollowConfig(standoff_m=20.0, slow_target_speed_m_s=1.0))
    drone_xyz = (30.0, 40.0, 40.0)                 # north-east of the target
    command = None
    for k in range(300):
        t = k * DT
        command = controller.update(t, drone_xyz, 0.0, TargetObservation(t, (0.0, 0.0), (0.3, 0.0)))
    led = np.array([0.3 * (300 - 1) * DT + 0.3 * 0.5, 0.0])
    offset = command.setpoint_enu[:2] - (led - np.array([0.3 * (300 - 1) * DT, 0.0]))
    assert np.hypot(*offset) == pytest.approx(20.0, abs=0.5)
    assert offset / np.hypot(*offset) == pytest.approx(np.array([30.0, 40.0]) / 50.0, abs=0.05)
    assert "side" in command.reason


def test_a_target_that_turns_back_is_circled_round_to_not_overflown():
    """Behind a rider who turns back is on the far side of him: the stand-off swings round at
    side_turn_rate_deg_s, so the drone keeps its distance and its view instead of crossing over him."""
    config = FollowConfig(standoff_m=25.0, lead_time_s=0.0, side_turn_rate_deg_s=45.0)
    controller = FollowController(config)
    drone = PointMassDrone((-25.0, 0.0, 40.0))

    def out_and_back(t):
        return straight(t, 8.0) if t < 20.0 else straight(t - 20.0, 8.0, math.pi, start=(160.0, 0.0))
    commands, positions = run(controller, drone, out_and_back, 35.0)
    after = [(k * DT, c) for k, c in enumerate(commands) if k * DT >= 20.0]
    ranges = [np.hypot(*(c.setpoint_enu[:2] - out_and_back(t)[0])) for t, c in after]
    assert min(ranges) > 20.0          # never over him (the setpoint itself moves at 15 m/s at most)
    # Half way round after 2 s (45 degrees a second): beside him; behind him again once round.
    t, command = next((t, c) for t, c in after if t >= 22.0)
    beside = command.setpoint_enu[:2] - out_and_back(t)[0]
    assert abs(abs(math.atan2(beside[1], beside[0])) - math.pi / 2) < math.radians(30.0)
    assert after[-1][1].setpoint_enu[:2] == pytest.approx(out_and_back(after[-1][0])[0] + (25.0, 0.0), abs=0.5)
    # With no limit, the stand-off jumps to the far side at once: the drone's way there crosses the rider.
    jump = FollowController(FollowConfig(standoff_m=25.0, lead_time_s=0.0, side_turn_rate_deg_s=0.0))
    drone = PointMassDrone((-25.0, 0.0, 40.0))
    commands, _ = run(jump, drone, out_and_back, 35.0)
    assert min(np.hypot(*(c.setpoint_enu[:2] - out_and_back(k * DT)[0])) for k, c in enumerate(commands)
               if k * DT >= 20.0) < 10.0


def test_standoff_bearing_puts_the_drone_beside_the_target():
    config = FollowConfig(standoff_m=30.0, standoff_bearing_rad=math.pi / 2, lead_time_s=0.0)
    controller = FollowController(config)
    for k in range(200):
        t = k * DT
        command = controller.update(t, (0.0, 30.0, 40.0), 0.0, TargetObservation(t, (10.0 * t, 0.0), (10.0, 0.0)))
    # Heading east, behind is west; a quarter turn counter-clockwise from behind is south (its right).
    assert command.setpoint_enu[:2] == pytest.approx([10.0 * 19.9, -30.0], abs=1e-6)


# --------------------------------------------------------------------------- airspace
ZONES = {
    "school": box(200.0, -60.0, 300.0, 40.0),
    "prison": Polygon([(450.0, 60.0), (650.0, 60.0), (650.0, 260.0), (600.0, 260.0), (600.0, 110.0),
                       (450.0, 110.0)]),          # an L: the path runs into its inner corner
    "hospital": Polygon([(700.0, -150.0), (820.0, -40.0), (700.0, -40.0)]),
}
PERMITTED = box(-300.0, -400.0, 1100.0, 400.0)


def target_through_zones(t):
    """East through the school, north-east into the prison's corner, south-east across the
    hospital's hypotenuse, then out towards the permitted area's edge."""
    legs = [((0.0, 0.0), (520.0, 0.0)), ((520.0, 0.0), (620.0, 90.0)), ((620.0, 90.0), (760.0, -120.0)),
            ((760.0, -120.0), (1200.0, -120.0))]
    speed = 10.0
    for a, b in legs:
        a, b = np.array(a), np.array(b)
        length = float(np.hypot(*(b - a)))
        if t * speed <= length:
            direction = (b - a) / length
            return a + direction * t * speed, direction * speed
        t -= length / speed
    return np.array(legs[-1][1]), np.zeros(2)


def test_setpoints_never_enter_a_no_fly_zone_nor_leave_the_permitted_area():
    config = FollowConfig(no_fly_buffer_m=20.0, area_margin_m=10.0)
    controller = FollowController(config, PERMITTED, ZONES)
    drone = PointMassDrone((-30.0, 0.0, 40.0))
    commands, positions = run(controller, drone, target_through_zones, 170.0)
    setpoints = np.array([c.setpoint_enu[:2] for c in commands])
    zones = list(ZONES.values())
    inner = PERMITTED.buffer(-config.area_margin_m)
    for name, zone in ZONES.items():
        distance = shapely.distance(zone, shapely.points(setpoints))
        assert distance.min() >= 0.97 * config.no_fly_buffer_m, name      # the buffer, less its polygon's sag
    assert shapely.covers(inner.buffer(1e-6), shapely.points(setpoints)).all()
    # The straight line between consecutive setpoints (how a drone flies between them) stays clear too.
    segments = shapely.linestrings(np.stack([setpoints[:-1], setpoints[1:]], axis=1))
    for zone in zones:
        assert not shapely.intersects(zone, segments).any()
    # A drone flying them stays out as well (it cuts corners a little, within the buffer).
    for zone in zones:
        assert shapely.distance(zone, shapely.points(positions[:, :2])).min() > 0.0
    reasons = " ".join(c.reason for c in commands)
    assert "kept out of no-fly 'school'" in reasons and "going round no-fly 'school'" in reasons
    assert "no-fly 'prison'" in reasons and "no-fly 'hospital'" in reasons
    assert "kept inside the permitted area" in reasons
    # Held at an edge, the feed-forward does not push across it.
    held = [c for c in commands if any(lim.startswith("kept") for lim in c.limits)]
    assert held and all(np.hypot(*c.velocity_enu[:2]) <= config.max_speed_m_s + 1e-9 for c in held)
    # Having gone round, the drone follows again once the target is clear of the zones.
    assert any(c.limits == () for c in commands[70:90])


def test_a_target_inside_a_zone_holds_the_setpoint_at_its_edge():
    zone = Point(0.0, 0.0).buffer(100.0)
    controller = FollowController(FollowConfig(no_fly_buffer_m=20.0), no_fly_zones=[zone])
    command = None
    for k in range(100):
        t = k * DT
        command = controller.update(t, (-150.0, 0.0, 40.0), 0.0, TargetObservation(t, (0.0, 0.0), (0.0, 0.0)))
    assert zone.distance(Point(command.setpoint_enu[:2])) == pytest.approx(20.0, abs=0.5)
    assert "no-fly zone 1" in command.reason and command.velocity_enu == pytest.approx([0.0, 0.0, 0.0])
    assert command.look_at_xy == pytest.approx([0.0, 0.0])        # the camera stays on the target


@pytest.mark.parametrize("height, expected, word", [(150.0, 120.0, "ceiling"), (10.0, 30.0, "floor"),
                                                    (60.0, 60.0, None)])
def test_height_is_held_between_floor_and_ceiling(height, expected, word):
    controller = FollowController(FollowConfig(height_m=height, floor_m=30.0, ceiling_m=120.0))
    for k in range(20):
        command = controller.update(k * DT, (0.0, -25.0, 40.0), 0.0,
                                    TargetObservation(k * DT, (0.0, 0.0), (0.0, 5.0)))
    assert command.setpoint_enu[2] == pytest.approx(expected)
    if word:
        assert word in command.reason and any(word in lim for lim in command.limits)
    else:
        assert not any("ceiling" in lim or "floor" in lim for lim in command.limits)


def test_impossible_airspace_is_refused():
    with pytest.raises(ValueError, match="cover the whole permitted area"):
        FollowController(FollowConfig(), box(0, 0, 100, 100), [box(-50, -50, 150, 150)])
    with pytest.raises(ValueError, match="narrower"):
        FollowController(FollowConfig(area_margin_m=60.0), box(0, 0, 100, 100))
    with pytest.raises(ValueError, match="shapely Polygon"):
        FollowController(FollowConfig(), no_fly_zones=[LineString([(0, 0), (1, 1)])])
    with pytest.raises(ValueError, match="floor_m"):
        FollowConfig(floor_m=130.0, ceiling_m=120.0)
    with pytest.raises(ValueError, match="standoff_m"):
        FollowConfig(standoff_m=math.nan)


# --------------------------------------------------------------------------- loss and search
def test_loss_searches_along_the_last_velocity_then_reports_lost_exactly_once():
    config = FollowConfig(observation_timeout_s=1.0, search_time_s=8.0, lost_orbit_radius_m=30.0)
    controller = FollowController(config)
    drone = PointMassDrone((-25.0, 0.0, 40.0))
    seen_until = 10.0

    def target(t):
        return straight(t, 6.0, math.pi / 2)          # north at 6 m/s

    commands, positions = run(controller, drone, target, 40.0, observe=lambda t: t < seen_until - 1e-9)
    times = np.arange(len(commands)) * DT
    states = [c.state for c in commands]
    last_seen_t = seen_until - DT
    last_seen, velocity = target(last_seen_t)
    search_starts = next(t for t, s in zip(times, states) if s is FollowState.SEARCHING)
    assert search_starts == pytest.approx(last_seen_t + config.observation_timeout_s, abs=DT + 1e-9)
    assert all(s is FollowState.FOLLOWING for t, s in zip(times, states) if t < search_starts)
    lost_at = next(t for t, s in zip(times, states) if s is FollowState.LOST)
    assert lost_at == pytest.approx(search_starts + config.search_time_s, abs=1e-6)
    assert all(s is FollowState.SEARCHING for t, s in zip(times, states) if search_starts <= t < lost_at)
    # While searching, the camera is on the extrapolated position and the drone flies along it.
    for t, c in zip(times, commands):
        if search_starts <= t < lost_at:
            assert c.look_at_xy == pytest.approx(last_seen + velocity * (t - last_seen_t))
            assert "searching" in c.reason
    search_positions = positions[(times >= search_starts) & (times < lost_at)]
    assert search_positions[-1][1] - search_positions[0][1] > 0.8 * 6.0 * config.search_time_s * 0.8
    # The loss is reported once, with where the target was last seen; then the drone circles there.
    loss_events = [e for c in commands for e in c.events if e.startswith("target lost")]
    assert len(loss_events) == 1 and "last seen" in loss_events[0]
    assert all(s is FollowState.LOST for t, s in zip(times, states) if t >= lost_at)
    assert np.array([c.look_at_xy for c in commands[-5:]]) == pytest.approx(np.tile(last_seen, (5, 1)))
    radii = np.hypot(*(positions[-50:, :2] - last_seen).T)
    assert radii == pytest.approx(np.full(50, config.lost_orbit_radius_m), abs=3.0)
    # Seen again: following, and it says so.
    command = controller.update(50.0, positions[-1], 0.0, TargetObservation(50.0, (5.0, 80.0), (0.0, 6.0), "7"))
    assert command.state is FollowState.FOLLOWING
    assert any("reacquired" in e for e in command.events)


def test_short_gaps_keep_following_on_the_prediction():
    controller = FollowController(FollowConfig(observation_timeout_s=1.5))
    drone = PointMassDrone((-25.0, 0.0, 40.0))
    commands, _ = run(controller, drone, lambda t: straight(t, 8.0), 30.0,
                      observe=lambda t: (t % 5.0) < 4.0)         # one second unseen in every five
    assert all(c.state is FollowState.FOLLOWING for c in commands)
    assert any("last seen" in c.reason for c in commands)


# --------------------------------------------------------------------------- handover
def test_handover_keeps_following_until_the_relief_confirms():
    controller = FollowController()
    drone = PointMassDrone((-25.0, 0.0, 40.0))
    run(controller, drone, lambda t: straight(t, 8.0), 10.0)
    controller.start_handover(10.0, "uav2")
    commands, _ = run(controller, drone, lambda t: straight(t, 8.0), 5.0, start_t=10.0)
    assert all(c.state is FollowState.HANDOVER for c in commands)
    assert commands[0].events == ("handover requested: uav2 to take track 7",)
    assert all(c.events == () for c in commands[1:])
    target, velocity = straight(14.9)
    assert np.hypot(*(commands[-1].setpoint_enu[:2] - (target + velocity * 0.5))) == pytest.approx(25.0)
    controller.relief_confirmed(15.0)
    command = controller.update(15.0, drone.position, drone.heading, TargetObservation(15.0, *straight(15.0)))
    assert command.state is FollowState.RELEASED
    assert command.events == ("handover complete: uav2 confirmed the target after 5.0 s",)
    later = controller.update(16.0, drone.position, drone.heading, None)
    assert later.state is FollowState.RELEASED and later.events == ()
    assert later.setpoint_enu[:2] == pytest.approx(drone.position[:2])       # holds; the node takes it home
    with pytest.raises(ValueError, match="released"):
        controller.start_handover(17.0, "uav3")


def test_handover_times_out_into_release():
    controller = FollowController(FollowConfig(handover_timeout_s=5.0))
    drone = PointMassDrone((-25.0, 0.0, 40.0))
    run(controller, drone, lambda t: straight(t, 8.0), 5.0)
    controller.start_handover(5.0, "uav2")
    with pytest.raises(ValueError, match="already under way"):
        controller.start_handover(5.0, "uav3")
    commands, _ = run(controller, drone, lambda t: straight(t, 8.0), 6.0, start_t=5.0)
    states = [c.state for c in commands]
    released = states.index(FollowState.RELEASED)
    assert released * DT == pytest.approx(5.0, abs=1e-6)
    assert all(s is FollowState.HANDOVER for s in states[:released])
    timeouts = [e for c in commands for e in c.events if "timed out" in e]
    assert len(timeouts) == 1 and "without confirmation" in timeouts[0]


def test_handover_needs_a_target():
    controller = FollowController()
    with pytest.raises(ValueError, match="no target"):
        controller.start_handover(0.0, "uav2")
    with pytest.raises(ValueError, match="no handover"):
        controller.relief_confirmed(0.0)
    command = controller.update(0.0, (0.0, 0.0, 40.0), 0.0, None)
    assert command.state is FollowState.ACQUIRING and command.gimbal_pitch_deg == -90.0


# --------------------------------------------------------------------------- bad input
def test_bad_observations_and_inputs_are_rejected_clearly():
    with pytest.raises(ValueError, match="observation position"):
        TargetObservation(0.0, (math.nan, 0.0), (0.0, 0.0))
    with pytest.raises(ValueError, match="observation velocity"):
        TargetObservation(0.0, (0.0, 0.0), (math.inf, 0.0))
    with pytest.raises(ValueError, match="observation stamp"):
        TargetObservation(math.nan, (0.0, 0.0))
    controller = FollowController()
    with pytest.raises(ValueError, match="drone position"):
        controller.update(0.0, (0.0, math.nan, 40.0), 0.0, None)
    with pytest.raises(ValueError, match="drone heading"):
        controller.update(0.0, (0.0, 0.0, 40.0), math.nan, None)

    class Sneaky:          # an observation built without the dataclass's checks
        stamp_s, position_xy, velocity_xy = 0.0, (math.nan, 1.0), (0.0, 0.0)

    with pytest.raises(ValueError, match="observation position"):
        controller.update(0.0, (0.0, 0.0, 40.0), 0.0, Sneaky())
    controller.update(1.0, (0.0, 0.0, 40.0), 0.0, None)
    with pytest.raises(ValueError, match="time went backwards"):
        controller.update(0.5, (0.0, 0.0, 40.0), 0.0, None)


def test_an_older_observation_than_the_last_is_ignored():
    controller = FollowController(FollowConfig(lead_time_s=0.0, camera_lead_s=0.0))
    controller.update(1.0, (0.0, -25.0, 40.0), 0.0, TargetObservation(1.0, (0.0, 0.0), (0.0, 5.0)))
    command = controller.update(1.1, (0.0, -25.0, 40.0), 0.0, TargetObservation(0.5, (100.0, 100.0), (0.0, 5.0)))
    assert command.look_at_xy == pytest.approx([0.0, 0.5])


# --------------------------------------------------------------------------- the camera
FX = 640 / 2 / math.tan(math.radians(80.0) / 2)
K = np.array([[FX, 0.0, 319.5], [0.0, FX, 239.5], [0.0, 0.0, 1.0]])


def test_target_in_view_geometry():
    down = gimbal_to_world_rotation(0.0, -90.0)
    assert target_in_view(K, 640, 480, (0.0, 0.0, 40.0), down, (0.0, 0.0)) is True
    assert target_in_view(K, 640, 480, (0.0, 0.0, 40.0), down, (500.0, 0.0)) is False
    mask = target_in_view(K, 640, 480, (0.0, 0.0, 40.0), down, [(0.0, 0.0), (0.0, 500.0), (10.0, -10.0)])
    assert list(mask) == [True, False, True]


def curving(t):
    """8 m/s, turning left and right by turns, with one hard turn."""
    # Heading is the integral of a turn rate; integrate numerically on a fine grid (cached).
    grid = curving.grid
    k = min(int(t / grid[0]), len(grid[1]) - 1)
    return grid[1][k], grid[2][k]


def _curving_grid(duration=130.0, step=0.01, speed=8.0):
    times = np.arange(0.0, duration, step)
    rate = 0.25 * np.sin(2 * math.pi * times / 40.0) + np.where((times > 60.0) & (times < 63.0), 0.5, 0.0)
    heading = np.cumsum(rate) * step
    velocity = speed * np.column_stack([np.cos(heading), np.sin(heading)])
    position = np.cumsum(velocity, axis=0) * step
    return step, position, velocity


curving.grid = _curving_grid()


def test_closed_loop_keeps_a_curving_target_in_view():
    # Observations are noisy, 0.2 s old when they arrive, and one in ten is missed; the gimbal slews
    # at 90 degrees a second and the camera sees the next instant's truth.
    rng = np.random.default_rng(4)
    latency = 0.2
    config = FollowConfig(standoff_m=20.0, height_m=45.0, lead_time_s=0.5, camera_lead_s=latency)
    controller = FollowController(config)
    drone = PointMassDrone((-40.0, -30.0, 40.0), heading=1.0)
    seen = []
    for k in range(int(120.0 / DT)):
        t = k * DT
        truth, velocity = curving(max(t - latency, 0.0))
        noisy = TargetObservation(t - latency, truth + rng.normal(0.0, 0.5, 2), velocity + rng.normal(0.0, 0.5, 2),
                                  "7")
        observation = noisy if rng.random() > 0.1 else None
        command = controller.update(t, drone.position, drone.heading, observation)
        drone.step(command)
        truth_next, _ = curving(t + DT)
        seen.append(target_in_view(K, 640, 480, drone.position, drone.rotation(), truth_next))
    assert np.mean(seen) >= 0.95, np.mean(seen)


def test_the_camera_never_looks_flatter_than_the_minimum_depression():
    """A target 300 m away is not looked at along the rooftops: the gimbal stays at least min_depression_deg
    below the horizon, and looks straight at a target closer than that."""
    controller = FollowController(FollowConfig(min_depression_deg=35.0))
    far = controller.update(0.0, (0.0, 0.0, 50.0), 0.0, TargetObservation(0.0, (300.0, 0.0), (0.0, 0.0), "1"))
    assert far.gimbal_pitch_deg == pytest.approx(-35.0)
    near = FollowController(FollowConfig(min_depression_deg=35.0)).update(
        0.0, (0.0, 0.0, 50.0), 0.0, TargetObservation(0.0, (30.0, 0.0), (0.0, 0.0), "1"))
    assert near.gimbal_pitch_deg == pytest.approx(-math.degrees(math.atan2(50.0, 30.0)), abs=0.5)

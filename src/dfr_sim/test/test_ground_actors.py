"""Ground actors: specs are checked field by field, actors keep to roads and pavements, cars stop at red
while the e-bike weaves, speeds and runs the lights, routes are followed in order, and a seed repeats a run."""
import math
import statistics
import time

import numpy as np
import pytest
import shapely

from dfr_sim.ground_actors import (
    AMBER,
    GREEN,
    KIND_DEFAULTS,
    RED,
    ActorSpec,
    ActorSpecError,
    BackgroundTraffic,
    GroundActors,
    GroundActorsConfig,
    TrafficLightConfig,
    TrafficLights,
    parse_actor_specs,
    parse_background,
)

DT = 0.1

UPPER_STREET_SOUTH = (51.5365, -0.1035)
UPPER_STREET_NORTH = (51.5452, -0.1033)
ARCHWAY = (51.5650, -0.1342)



@pytest.fixture(scope="module")
def road_lines(street_map):
    return np.array([road.line for road in street_map.roads]), np.array([r.width_m for r in street_map.roads])


def run(actors: GroundActors, seconds: float, dt: float = DT, start: float = 0.0, every: float = 0.0):
    """Step for `seconds`; return the states sampled every `every` seconds (every step when 0)."""
    samples = []
    steps = int(round(seconds / dt))
    stride = max(int(round(every / dt)), 1)
    for k in range(1, steps + 1):
        now = start + k * dt
        actors.step(now, dt)
        if k % stride == 0:
            samples.append((now, actors.states()))
    return samples


def by_id(states):
    return {s.id: s for s in states}


def lat_lon(value):
    return {"latitude": value[0], "longitude": value[1]}


# ----------------------------------------------------------------- spec parsing
def test_specs_take_their_kinds_defaults_and_keep_overrides(frame):
    specs = parse_actor_specs([
        {"id": "suspect", "kind": "ebike", "start": lat_lon(UPPER_STREET_SOUTH),
         "route": [lat_lon(UPPER_STREET_NORTH)], "start_time_s": 12.5, "weave_amplitude_m": 1.0},
        {"id": "van", "kind": "car", "start": lat_lon(UPPER_STREET_NORTH), "colour": [255, 255, 255],
         "cruise_speed_m_s": 9},
        {"id": "walker", "kind": "pedestrian", "start": lat_lon(UPPER_STREET_NORTH), "at_route_end": "stop"},
    ], frame)
    bike, van, walker = specs
    assert bike.route == (UPPER_STREET_NORTH,) and bike.start == UPPER_STREET_SOUTH
    assert bike.start_time_s == 12.5 and bike.weave_amplitude_m == 1.0
    assert bike.runs_red_lights and bike.mounts_pavement and not bike.obeys_speed_limit
    assert 8.0 <= bike.cruise_speed_m_s <= 11.0
    assert bike.max_accel_m_s2 > KIND_DEFAULTS["car"].max_accel_m_s2
    assert van.colour == (255, 255, 255) and van.cruise_speed_m_s == 9.0 and not van.runs_red_lights
    assert 8.0 <= KIND_DEFAULTS["car"].cruise_speed_m_s <= 13.0
    assert walker.cruise_speed_m_s == pytest.approx(1.4) and walker.length_m < 1.0
    assert walker.at_route_end == "stop"


@pytest.mark.parametrize("entry, message", [
    ({"id": "b", "kind": "bus", "start": lat_lon(UPPER_STREET_SOUTH)},
     "actors[2].kind: 'bus' is not one of ebike, car, pedestrian"),
    ({"id": "b", "kind": "car", "start": lat_lon(UPPER_STREET_SOUTH), "speed": 3},
     "actors[2].speed: unknown key"),
    ({"id": "b", "kind": "car"}, "actors[2]: missing 'start'"),
    ({"id": "b", "kind": "car", "start": [51.5, -0.1]}, "actors[2].start: expected {latitude: ..., longitude: ...}"),
    ({"id": "b", "kind": "car", "start": {"latitude": 51.5}}, "actors[2].start: missing 'longitude'"),
    ({"id": "b", "kind": "car", "start": {"latitude": math.nan, "longitude": -0.1}},
     "actors[2].start.latitude: nan is not a finite number"),
    ({"id": "b", "kind": "car", "start": {"latitude": 51.5, "longitude": -190}},
     "actors[2].start.longitude: -190 is out of range -180..180"),
    ({"id": "b", "kind": "car", "start": {"latitude": 52.5, "longitude": -0.1}},
     "actors[2].start: 52.5, -0.1 is 107.5 km from the map origin (at most 30 km)"),
    ({"id": "b", "kind": "car", "start": lat_lon(UPPER_STREET_SOUTH), "route": [lat_lon(ARCHWAY), {"lat": 1}]},
     "actors[2].route[1].lat: unknown key"),
    ({"id": "b", "kind": "car", "start": lat_lon(UPPER_STREET_SOUTH), "cruise_speed_m_s": math.nan},
     "actors[2].cruise_speed_m_s: nan is not a finite number"),
    ({"id": "b", "kind": "car", "start": lat_lon(UPPER_STREET_SOUTH), "cruise_speed_m_s": 60},
     "actors[2].cruise_speed_m_s: 60 is out of range 0.1..25"),
    ({"id": "b", "kind": "car", "start": lat_lon(UPPER_STREET_SOUTH), "start_time_s": -1},
     "actors[2].start_time_s: -1 is out of range 0..1e+06"),
    ({"id": "b", "kind": "car", "start": lat_lon(UPPER_STREET_SOUTH), "length_m": True},
     "actors[2].length_m: True must be a number"),
    ({"id": "b", "kind": "car", "start": lat_lon(UPPER_STREET_SOUTH), "runs_red_lights": "yes"},
     "actors[2].runs_red_lights: 'yes' must be true or false"),
    ({"id": "b", "kind": "car", "start": lat_lon(UPPER_STREET_SOUTH), "colour": [1, 2]},
     "actors[2].colour: [1, 2] must be [red, green, blue]"),
    ({"id": "b", "kind": "car", "start": lat_lon(UPPER_STREET_SOUTH), "colour": [1, 2, 300]},
     "actors[2].colour: (1, 2, 300) must be three integers 0..255"),
    ({"id": "b", "kind": "car", "start": lat_lon(UPPER_STREET_SOUTH), "at_route_end": "vanish"},
     "actors[2].at_route_end: 'vanish' is not one of wander, stop"),
    ({"id": "b", "kind": "car", "start": lat_lon(UPPER_STREET_SOUTH), "max_decel_m_s2": 1.0},
     "actors[2].max_decel_m_s2: 1 is below comfortable_decel_m_s2 3"),
    ({"id": "b", "kind": "ebike", "start": lat_lon(UPPER_STREET_SOUTH), "pavement_duration_s": 100},
     "actors[2].pavement_duration_s: 100 is longer than pavement_interval_s 40"),
    ({"id": "2b", "kind": "car", "start": lat_lon(UPPER_STREET_SOUTH)},
     "actors[2].id: '2b' must be a name of letters, digits and _, starting with a letter"),
    ({"id": "a", "kind": "car", "start": lat_lon(UPPER_STREET_SOUTH)}, "actors[2].id: 'a' repeats actors[0].id"),
    ("car", "actors[2]: expected a mapping, got str"),
])
def test_bad_actor_entries_are_refused_naming_the_field(frame, entry, message):
    good = [{"id": "a", "kind": "car", "start": lat_lon(UPPER_STREET_SOUTH)},
            {"id": "c", "kind": "pedestrian", "start": lat_lon(UPPER_STREET_NORTH)}]
    with pytest.raises(ActorSpecError) as err:
        parse_actor_specs(good + [entry], frame)
    assert message in str(err.value)


def test_the_actors_section_must_be_a_list(frame):
    assert parse_actor_specs(None, frame) == []
    with pytest.raises(ActorSpecError, match="actors: expected a list of actors, got dict"):
        parse_actor_specs({"id": "a"}, frame)


def test_background_traffic_is_parsed_and_checked():
    assert parse_background(None) == BackgroundTraffic()
    assert parse_background({"cars": 40, "pedestrians": 60, "seed": 3}) == BackgroundTraffic(40, 60, 3)
    for raw, message in [
        ({"cars": -1}, "background_traffic.cars: -1 is out of range 0..2000"),
        ({"cars": 2.5}, "background_traffic.cars: 2.5 must be a whole number"),
        ({"buses": 3}, "background_traffic.buses: unknown key"),
        ({"seed": True}, "background_traffic.seed: True must be a whole number"),
        ([1], "background_traffic: expected a mapping"),
    ]:
        with pytest.raises(ActorSpecError) as err:
            parse_background(raw)
        assert message in str(err.value)


def test_a_start_far_from_every_road_is_refused(street_map):
    lost = ActorSpec(id="lost", kind="car", start=(51.5700, -0.0300))
    with pytest.raises(ActorSpecError, match=r"actor 'lost'.start: .* m from the nearest road"):
        GroundActors(street_map, [lost])


def test_directly_made_specs_are_checked_too():
    with pytest.raises(ActorSpecError, match=r"actor 'x'.weave_period_s: 0 is out of range"):
        ActorSpec(id="x", kind="ebike", start=UPPER_STREET_SOUTH, weave_period_s=0.0)
    with pytest.raises(ActorSpecError, match=r"actor 'x'.kind: 'tram' is not one of"):
        ActorSpec(id="x", kind="tram", start=UPPER_STREET_SOUTH)


# -------------------------------------------------------------- traffic lights
def test_one_street_at_a_time_has_green_and_amber_comes_before_red(street_map):
    lights = TrafficLights(street_map)
    cfg = lights.config
    node = next(n for n in range(street_map.node_count) if len(street_map.signal_groups(n)) == 3)
    groups = np.arange(3)
    times = np.arange(0.0, 2 * cfg.cycle_s, 0.5)
    table = np.array([lights.states([node] * 3, groups, t) for t in times])
    assert np.all((table != RED).sum(axis=1) <= 1)         # never two streets moving at once
    for g in groups:
        assert {GREEN, AMBER, RED} <= set(table[:, g].tolist())
        changes = [(a, b) for a, b in zip(table[:-1, g], table[1:, g]) if a != b]
        assert all(pair in {(GREEN, AMBER), (AMBER, RED), (RED, GREEN)} for pair in changes)
    green_time = (table[:, 0] == GREEN).mean() * cfg.cycle_s
    assert green_time == pytest.approx(cfg.cycle_s / 3 - cfg.amber_s - cfg.all_red_s, abs=1.0)


def test_neighbouring_junctions_are_out_of_step_and_unsignalised_ones_are_green(street_map):
    lights = TrafficLights(street_map)
    signalised = [n for n in range(street_map.node_count) if street_map.is_signalised(n)]
    first_green = [lights.states([n], [0], 0.0)[0] for n in signalised[:12]]
    assert len(set(first_green)) > 1
    plain = next(n for n in range(street_map.node_count) if not street_map.is_signalised(n))
    assert all(lights.state(plain, -1, t) == "green" for t in np.arange(0, 120, 7.0))


def test_a_cycle_too_short_for_the_busiest_junction_is_refused(street_map):
    with pytest.raises(ValueError, match="leaves no green"):
        TrafficLights(street_map, TrafficLightConfig(cycle_s=20.0))


# ----------------------------------------------------------------- behaviour
@pytest.fixture(scope="module")
def busy_run(street_map):
    """One e-bike and 200 wandering actors for three minutes, sampled every 2 s, with every stop-line passage."""
    suspect = ActorSpec(id="suspect", kind="ebike", start=UPPER_STREET_SOUTH)
    actors = GroundActors(street_map, [suspect], BackgroundTraffic(cars=100, pedestrians=100, seed=4), seed=11)
    samples, passages = [], []
    for k in range(1, 1801):
        now = k * DT
        actors.step(now, DT)
        passages += actors.take_signal_passages()
        if k % 20 == 0:
            samples.append((now, actors.states()))
    return actors, samples, passages


def test_vehicles_keep_to_the_carriageway_and_pedestrians_to_the_pavement(busy_run, road_lines):
    lines, widths = road_lines
    _, samples, _ = busy_run
    pavement = KIND_DEFAULTS["pedestrian"].pavement_offset_m
    off_carriageway = []
    for _, states in samples:
        points = shapely.points([s.position[:2] for s in states])
        beyond_kerb = shapely.distance(points[:, None], lines[None, :]) - widths[None, :] / 2
        outside = beyond_kerb.min(axis=1)      # <= 0: on some carriageway
        for state, margin in zip(states, outside):
            if state.kind == "car":
                assert margin <= 1e-6, state
            elif state.kind == "pedestrian":
                assert margin <= pavement + 1e-6, state
                off_carriageway.append(margin > -0.5)
            elif not state.on_pavement:
                assert margin <= 1e-6, state
    assert np.mean(off_carriageway) > 0.8      # walking beside the road, crossing only at junctions


def test_cars_stop_at_red_and_never_cross_on_it(busy_run):
    actors, samples, passages = busy_run
    car_passages = [p for p in passages if p.actor_id.startswith("background_car")]
    assert len(car_passages) > 50
    assert all(p.light != "red" for p in car_passages)
    waiting = [s for _, states in samples for s in states if s.kind == "car" and s.waiting_at_signal]
    assert any(s.speed_m_s < 0.1 for s in waiting)
    assert all(s.ran_red_light_count == 0 for s in samples[-1][1] if s.kind == "car")


def test_the_ebike_runs_red_lights_speeds_and_mounts_the_pavement(busy_run):
    actors, samples, passages = busy_run
    bike_passages = [p for p in passages if p.actor_id == "suspect"]
    red = [p for p in bike_passages if p.light == "red"]
    assert red
    suspect = by_id(samples[-1][1])["suspect"]
    assert suspect.ran_red_light_count == len(red)
    counts = actors.violation_counts("suspect")
    assert counts["red_light"] == len(red) and counts["speeding"] >= 1 and counts["pavement"] >= 2
    rules = {v.rule for v in suspect.violations}
    assert rules == {"red_light", "speeding", "pavement"}
    assert any(by_id(states)["suspect"].on_pavement for _, states in samples)


def test_speeds_stay_within_limits(busy_run, street_map):
    _, samples, _ = busy_run
    limits = {}
    for road in street_map.roads:
        limits[road.name] = max(limits.get(road.name, 0.0), road.speed_limit_m_s)
    cruise = {spec.id: spec.cruise_speed_m_s for spec in busy_run[0].specs}
    fastest_bike = 0.0
    for _, states in samples:
        for s in states:
            assert s.speed_m_s <= cruise[s.id] + 1e-6, s      # weaving and side-stepping included
            if s.kind == "car":
                assert s.speed_m_s <= limits[s.road] + 0.5, s
            if s.kind == "ebike":
                fastest_bike = max(fastest_bike, s.speed_m_s)
    assert fastest_bike > 8.94 + 0.5                      # faster than a 20 mph street allows


def test_ebike_weaves_across_its_lane_where_a_car_holds_its_line(street_map, frame):
    specs = [ActorSpec(id="bike", kind="ebike", start=UPPER_STREET_SOUTH, route=(UPPER_STREET_NORTH,),
                       at_route_end="stop", mounts_pavement=False),
             ActorSpec(id="car", kind="car", start=UPPER_STREET_SOUTH, route=(UPPER_STREET_NORTH,),
                       at_route_end="stop")]
    actors = GroundActors(street_map, specs, seed=2)
    upper_street = next(r for r in street_map.roads if r.name == "Upper Street").line
    offsets = {"bike": [], "car": []}
    for _, states in run(actors, 150.0):
        for s in states:
            point = shapely.Point(s.position[:2])
            near_junction = np.min(np.hypot(*(street_map.nodes - s.position[:2]).T)) < 40
            if s.road == "Upper Street" and not near_junction and s.speed_m_s > 3:
                offsets[s.id].append(upper_street.distance(point))
    assert len(offsets["bike"]) > 100 and len(offsets["car"]) > 100
    assert np.ptp(offsets["bike"]) > 2.0
    assert np.ptp(offsets["car"]) < 0.5
    lane = GroundActorsConfig().lane_offset_fraction * 14.0
    assert statistics.median(offsets["car"]) == pytest.approx(lane, abs=0.3)


def test_a_faster_car_keeps_its_distance_behind_a_slower_one(street_map):
    leader = ActorSpec(id="leader", kind="car", start=UPPER_STREET_SOUTH, route=(UPPER_STREET_NORTH,),
                       at_route_end="stop", cruise_speed_m_s=5.0)
    follower = ActorSpec(id="follower", kind="car", start=(51.5352, -0.1044), route=(UPPER_STREET_NORTH,),
                         at_route_end="stop", cruise_speed_m_s=12.0)
    actors = GroundActors(street_map, [leader, follower], seed=4)
    config = actors.config
    bumper_to_bumper = []
    close_behind = []
    for _, states in run(actors, 200.0):
        a, b = by_id(states)["leader"], by_id(states)["follower"]
        centres = math.dist(a.position, b.position)
        if a.speed_m_s > 0 or b.speed_m_s > 0:
            bumper_to_bumper.append(centres - (a.length_m + b.length_m) / 2)
        if centres < 20.0 and a.speed_m_s > 4.0:
            close_behind.append(b.speed_m_s)
    assert min(bumper_to_bumper) > config.following_gap_m - 0.5
    assert len(close_behind) > 50                       # it caught up, and then
    assert np.median(close_behind) == pytest.approx(5.0, abs=0.3)   # went at the leader's pace


def test_an_actor_passes_its_waypoints_in_order_and_stops_at_the_last(street_map, frame):
    waypoints = [(51.5440, -0.1080), (51.5500, -0.1087), (51.5566, -0.1180)]   # Liverpool Road to Nag's Head
    spec = ActorSpec(id="van", kind="car", start=(51.5385, -0.1072), route=tuple(waypoints), at_route_end="stop")
    actors = GroundActors(street_map, [spec], seed=3)
    targets = [np.array(frame.to_enu(lat, lon)[:2], dtype=float) for lat, lon in waypoints]
    closest = [(math.inf, -1.0)] * len(targets)
    samples = run(actors, 400.0)
    for now, states in samples:
        p = np.array(states[0].position[:2])
        for k, target in enumerate(targets):
            d = float(np.hypot(*(p - target)))
            if d < closest[k][0]:
                closest[k] = (d, now)
    assert all(d < 6.0 for d, _ in closest)
    times = [t for _, t in closest]
    assert times == sorted(times) and len(set(times)) == len(times)
    last = samples[-1][1][0]
    assert last.speed_m_s == 0.0
    assert np.hypot(*(np.array(last.position[:2]) - targets[-1])) < 6.0


def test_an_actor_appears_at_its_start_time(street_map):
    specs = [ActorSpec(id="early", kind="car", start=UPPER_STREET_SOUTH),
             ActorSpec(id="late", kind="pedestrian", start=UPPER_STREET_NORTH, start_time_s=10.0)]
    actors = GroundActors(street_map, specs, seed=1)
    assert actors.states() == []
    before = run(actors, 9.9)
    assert all(set(by_id(states)) == {"early"} for _, states in before)
    after = run(actors, 1.0, start=9.9)
    assert set(by_id(after[-1][1])) == {"early", "late"}
    late = by_id(after[-1][1])["late"]
    assert (late.length_m, late.width_m, late.height_m) == (KIND_DEFAULTS["pedestrian"].length_m,
                                                            KIND_DEFAULTS["pedestrian"].width_m,
                                                            KIND_DEFAULTS["pedestrian"].height_m)
    assert late.colour == KIND_DEFAULTS["pedestrian"].colour and late.position[2] == 0.0


def test_heading_points_along_the_velocity(busy_run):
    _, samples, _ = busy_run
    for s in samples[-1][1]:
        if s.speed_m_s > 0.5:
            assert math.cos(s.heading - math.atan2(s.velocity[1], s.velocity[0])) > 0.999


def test_the_same_seed_repeats_a_run_and_another_seed_does_not(street_map):
    def final_positions(seed):
        actors = GroundActors(street_map, [ActorSpec(id="suspect", kind="ebike", start=UPPER_STREET_SOUTH)],
                              BackgroundTraffic(cars=15, pedestrians=15, seed=9), seed=seed)
        states = run(actors, 60.0, every=60.0)[-1][1]
        return [(s.id, s.position, s.heading) for s in states]

    assert final_positions(5) == final_positions(5)
    assert final_positions(5) != final_positions(6)


def test_background_placement_follows_its_own_seed(street_map):
    one = GroundActors(street_map, [], BackgroundTraffic(cars=5, pedestrians=5, seed=1))
    two = GroundActors(street_map, [], BackgroundTraffic(cars=5, pedestrians=5, seed=1), seed=99)
    three = GroundActors(street_map, [], BackgroundTraffic(cars=5, pedestrians=5, seed=2))
    assert [s.start for s in one.specs] == [s.start for s in two.specs]
    assert [s.start for s in one.specs] != [s.start for s in three.specs]
    assert len({s.id for s in one.specs}) == 10


def test_stepping_200_actors_at_20_hz_costs_under_2_ms(street_map):
    actors = GroundActors(street_map, [ActorSpec(id="suspect", kind="ebike", start=UPPER_STREET_SOUTH)],
                          BackgroundTraffic(cars=120, pedestrians=79, seed=1), seed=1)
    dt = 0.05
    costs = []
    for k in range(1, 601):
        started = time.perf_counter()
        actors.step(k * dt, dt)
        costs.append(time.perf_counter() - started)
    assert len(actors.states()) == 200
    assert statistics.median(costs) < 0.002

"""People and vehicles on the ground: the suspect's e-bike, traffic and pedestrians.

Every actor moves along the street graph of a StreetMap: along a given route of
waypoints, or wandering from junction to junction. Vehicles keep to the left lane
(UK), pedestrians walk on the pavement beside the carriageway. Signalised junctions
run a fixed-cycle light per junction; actors that obey it stop at the stop line on
amber and red, and the e-bike, ridden dangerously, weaves across the lane, speeds,
mounts the pavement and runs red lights. Its rule breaking is recorded so that a
scenario can check what the drone was sent to watch.

Motion is one-dimensional along each actor's planned path plus a lateral offset
from the centreline; the arithmetic of a step runs over all actors at once in
numpy, and only the rare events (a new stretch of road, a stop line passed) are
handled one actor at a time.
"""
from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass, field, fields

import numpy as np

from dfr_common.geodesy import LocalFrame
from dfr_sim.street_map import EdgeStep, NoRouteError, StreetMap

KINDS = ("ebike", "car", "pedestrian")
VEHICLE_KINDS = ("ebike", "car")
ROUTE_ENDS = ("wander", "stop")
LIGHT_NAMES = ("green", "amber", "red")
GREEN, AMBER, RED = 0, 1, 2
RULES = ("red_light", "speeding", "pavement")

_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


class ActorSpecError(ValueError):
    """An actor or background traffic entry is malformed; the message names the field."""

    def __init__(self, message: str, field_name: str = "", problem: str = ""):
        super().__init__(message)
        self.field_name = field_name
        self.problem = problem


# ----------------------------------------------------------------- the specs
@dataclass(frozen=True)
class KindDefaults:
    """What an actor of one kind does unless its spec says otherwise."""

    cruise_speed_m_s: float
    max_accel_m_s2: float
    comfortable_decel_m_s2: float
    max_decel_m_s2: float
    length_m: float
    width_m: float
    height_m: float
    colour: tuple[int, int, int]
    runs_red_lights: bool
    obeys_speed_limit: bool
    weave_amplitude_m: float
    weave_period_s: float
    mounts_pavement: bool
    pavement_interval_s: float
    pavement_duration_s: float
    pavement_offset_m: float      # walking (or riding) line, beyond the kerb
    lateral_speed_m_s: float      # how fast it moves across the road
    follows_traffic: bool         # keeps its distance behind the vehicle ahead in its lane


KIND_DEFAULTS: dict[str, KindDefaults] = {
    # Ridden dangerously: fast, hard on the throttle, weaving, on and off the pavement, through red lights.
    "ebike": KindDefaults(cruise_speed_m_s=10.0, max_accel_m_s2=3.0, comfortable_decel_m_s2=3.0,
                          max_decel_m_s2=5.0, length_m=1.8, width_m=0.7, height_m=1.7, colour=(110, 110, 118),
                          runs_red_lights=True, obeys_speed_limit=False, weave_amplitude_m=1.5,
                          weave_period_s=3.0, mounts_pavement=True, pavement_interval_s=40.0,
                          pavement_duration_s=8.0, pavement_offset_m=1.5, lateral_speed_m_s=4.0,
                          follows_traffic=False),
    "car": KindDefaults(cruise_speed_m_s=11.0, max_accel_m_s2=2.0, comfortable_decel_m_s2=3.0, max_decel_m_s2=6.0,
                        length_m=4.5, width_m=1.8, height_m=1.5, colour=(40, 70, 140), runs_red_lights=False,
                        obeys_speed_limit=True, weave_amplitude_m=0.0, weave_period_s=4.0, mounts_pavement=False,
                        pavement_interval_s=60.0, pavement_duration_s=0.0, pavement_offset_m=1.5,
                        lateral_speed_m_s=1.5, follows_traffic=True),
    "pedestrian": KindDefaults(cruise_speed_m_s=1.4, max_accel_m_s2=1.0, comfortable_decel_m_s2=1.5,
                               max_decel_m_s2=3.0, length_m=0.4, width_m=0.5, height_m=1.75, colour=(190, 70, 50),
                               runs_red_lights=False, obeys_speed_limit=True, weave_amplitude_m=0.0,
                               weave_period_s=4.0, mounts_pavement=False, pavement_interval_s=60.0,
                               pavement_duration_s=0.0, pavement_offset_m=1.5, lateral_speed_m_s=1.0,
                               follows_traffic=False),
}

# Accepted ranges of the numeric fields of a spec.
_RANGES = {
    "start_time_s": (0.0, 1.0e6),
    "cruise_speed_m_s": (0.1, 25.0),
    "max_accel_m_s2": (0.1, 10.0),
    "comfortable_decel_m_s2": (0.1, 10.0),
    "max_decel_m_s2": (0.1, 12.0),
    "length_m": (0.1, 20.0),
    "width_m": (0.1, 4.0),
    "height_m": (0.1, 6.0),
    "weave_amplitude_m": (0.0, 5.0),
    "weave_period_s": (0.5, 120.0),
    "pavement_interval_s": (1.0, 3600.0),
    "pavement_duration_s": (0.0, 3600.0),
    "pavement_offset_m": (0.0, 10.0),
    "lateral_speed_m_s": (0.05, 10.0),
}
_FLAGS = ("runs_red_lights", "obeys_speed_limit", "mounts_pavement", "follows_traffic")


@dataclass(frozen=True)
class ActorSpec:
    """One ground actor as a scenario names it. Fields left None take the kind's defaults."""

    id: str
    kind: str
    start: tuple[float, float]                             # latitude, longitude
    route: tuple[tuple[float, float], ...] = ()            # waypoints to pass in order; none: wander
    at_route_end: str = "wander"                           # or "stop"
    start_time_s: float = 0.0
    cruise_speed_m_s: float | None = None
    max_accel_m_s2: float | None = None
    comfortable_decel_m_s2: float | None = None
    max_decel_m_s2: float | None = None
    length_m: float | None = None
    width_m: float | None = None
    height_m: float | None = None
    colour: tuple[int, int, int] | None = None             # RGB, 0-255
    runs_red_lights: bool | None = None
    obeys_speed_limit: bool | None = None
    weave_amplitude_m: float | None = None
    weave_period_s: float | None = None
    mounts_pavement: bool | None = None
    pavement_interval_s: float | None = None
    pavement_duration_s: float | None = None
    pavement_offset_m: float | None = None
    lateral_speed_m_s: float | None = None
    follows_traffic: bool | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            problem = f"{self.kind!r} is not one of {', '.join(KINDS)}"
            raise ActorSpecError(f"actor {self.id!r}.kind: {problem}", "kind", problem)
        defaults = KIND_DEFAULTS[self.kind]
        for f in fields(KindDefaults):
            if getattr(self, f.name) is None:
                object.__setattr__(self, f.name, getattr(defaults, f.name))
        object.__setattr__(self, "start", tuple(float(c) for c in self.start))
        object.__setattr__(self, "route", tuple(tuple(float(c) for c in p) for p in self.route))
        object.__setattr__(self, "colour", tuple(int(c) for c in self.colour))
        problem = _spec_problem(self)
        if problem:
            raise ActorSpecError(f"actor {self.id!r}.{problem[0]}: {problem[1]}", *problem)

    @property
    def is_vehicle(self) -> bool:
        return self.kind in VEHICLE_KINDS


def _spec_problem(spec: ActorSpec) -> tuple[str, str] | None:
    """(field, what is wrong) for the first bad field of a complete spec, or None."""
    if not isinstance(spec.id, str) or not _ID.fullmatch(spec.id):
        return "id", f"{spec.id!r} must be a name of letters, digits and _, starting with a letter"
    if spec.at_route_end not in ROUTE_ENDS:
        return "at_route_end", f"{spec.at_route_end!r} is not one of {', '.join(ROUTE_ENDS)}"
    for name, (lo, hi) in _RANGES.items():
        value = getattr(spec, name)
        if not math.isfinite(value):
            return name, f"{value!r} is not a finite number"
        if not lo <= value <= hi:
            return name, f"{value:g} is out of range {lo:g}..{hi:g}"
    if spec.max_decel_m_s2 < spec.comfortable_decel_m_s2:
        return "max_decel_m_s2", (f"{spec.max_decel_m_s2:g} is below comfortable_decel_m_s2 "
                                  f"{spec.comfortable_decel_m_s2:g}")
    if spec.pavement_duration_s > spec.pavement_interval_s:
        return "pavement_duration_s", (f"{spec.pavement_duration_s:g} is longer than pavement_interval_s "
                                       f"{spec.pavement_interval_s:g}")
    if len(spec.colour) != 3 or not all(0 <= c <= 255 for c in spec.colour):
        return "colour", f"{spec.colour!r} must be three integers 0..255"
    for name, point in [("start", spec.start)] + [(f"route[{k}]", p) for k, p in enumerate(spec.route)]:
        if len(point) != 2 or not all(math.isfinite(c) for c in point):
            return name, f"{point!r} must be a finite latitude, longitude"
        if not (-90.0 <= point[0] <= 90.0 and -180.0 <= point[1] <= 180.0):
            return name, f"{point[0]}, {point[1]} is not a latitude, longitude"
    return None


@dataclass(frozen=True)
class BackgroundTraffic:
    """Extra cars and pedestrians that wander the streets, placed from their own seed."""

    cars: int = 0
    pedestrians: int = 0
    seed: int = 0


_BACKGROUND_LIMITS = {"cars": (0, 2000), "pedestrians": (0, 5000), "seed": (0, 2**32 - 1)}


def parse_actor_specs(raw, frame: LocalFrame, max_distance_m: float = 30_000.0,
                      where: str = "actors") -> list[ActorSpec]:
    """The `actors:` section of a scenario. Each error names the field, e.g. actors[2].kind."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ActorSpecError(f"{where}: expected a list of actors, got {type(raw).__name__}")
    known = {f.name for f in fields(ActorSpec)}
    specs: list[ActorSpec] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(raw):
        here = f"{where}[{i}]"
        if not isinstance(entry, dict):
            raise ActorSpecError(f"{here}: expected a mapping, got {type(entry).__name__}")
        for key in entry:
            if key not in known:
                raise ActorSpecError(f"{here}.{key}: unknown key (known: {', '.join(sorted(known))})")
        for key in ("id", "kind", "start"):
            if key not in entry:
                raise ActorSpecError(f"{here}: missing '{key}'")
        if entry["kind"] not in KINDS:
            raise ActorSpecError(f"{here}.kind: {entry['kind']!r} is not one of {', '.join(KINDS)}")
        values = {"id": entry["id"], "kind": entry["kind"]}
        if not isinstance(values["id"], str):
            raise ActorSpecError(f"{here}.id: {values['id']!r} must be a string")
        values["start"] = _lat_lon(entry["start"], f"{here}.start", frame, max_distance_m)
        route = entry.get("route", [])
        if not isinstance(route, list):
            raise ActorSpecError(f"{here}.route: expected a list of {{latitude, longitude}}")
        values["route"] = tuple(_lat_lon(p, f"{here}.route[{k}]", frame, max_distance_m)
                                for k, p in enumerate(route))
        for key, value in entry.items():
            if key in ("id", "kind", "start", "route"):
                continue
            if key == "at_route_end":
                if not isinstance(value, str):
                    raise ActorSpecError(f"{here}.{key}: {value!r} must be one of {', '.join(ROUTE_ENDS)}")
            elif key in _FLAGS:
                if not isinstance(value, bool):
                    raise ActorSpecError(f"{here}.{key}: {value!r} must be true or false")
            elif key == "colour":
                if (not isinstance(value, list) or len(value) != 3
                        or any(isinstance(c, bool) or not isinstance(c, int) for c in value)):
                    raise ActorSpecError(f"{here}.{key}: {value!r} must be [red, green, blue], integers 0..255")
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ActorSpecError(f"{here}.{key}: {value!r} must be a number")
            values[key] = value
        try:
            spec = ActorSpec(**values)
        except ActorSpecError as err:
            # The spec's own check, addressed by the path in the file.
            raise ActorSpecError(f"{here}.{err.field_name}: {err.problem}", err.field_name, err.problem) from None
        if spec.id in seen:
            raise ActorSpecError(f"{here}.id: {spec.id!r} repeats {where}[{seen[spec.id]}].id")
        seen[spec.id] = i
        specs.append(spec)
    return specs


def _lat_lon(value, here, frame: LocalFrame, max_distance_m: float) -> tuple[float, float]:
    if not isinstance(value, dict):
        raise ActorSpecError(f"{here}: expected {{latitude: ..., longitude: ...}}, got {value!r}")
    unknown = sorted(set(value) - {"latitude", "longitude"})
    if unknown:
        raise ActorSpecError(f"{here}.{unknown[0]}: unknown key (known: latitude, longitude)")
    out = []
    for key, limit in (("latitude", 90.0), ("longitude", 180.0)):
        if key not in value:
            raise ActorSpecError(f"{here}: missing '{key}'")
        v = value[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ActorSpecError(f"{here}.{key}: {v!r} must be a number")
        if not math.isfinite(v):
            raise ActorSpecError(f"{here}.{key}: {v!r} is not a finite number")
        if not -limit <= v <= limit:
            raise ActorSpecError(f"{here}.{key}: {v:g} is out of range {-limit:g}..{limit:g}")
        out.append(float(v))
    east, north, _ = frame.to_enu(out[0], out[1])
    distance = math.hypot(float(east), float(north))
    if distance > max_distance_m:
        raise ActorSpecError(f"{here}: {out[0]}, {out[1]} is {distance / 1000:.1f} km from the map origin "
                             f"(at most {max_distance_m / 1000:g} km)")
    return out[0], out[1]


def parse_background(raw, where: str = "background_traffic") -> BackgroundTraffic:
    """The `background_traffic:` section of a scenario: counts of cars and pedestrians and a seed."""
    if raw is None:
        return BackgroundTraffic()
    if not isinstance(raw, dict):
        raise ActorSpecError(f"{where}: expected a mapping with cars, pedestrians, seed")
    values = {}
    for key, value in raw.items():
        if key not in _BACKGROUND_LIMITS:
            raise ActorSpecError(f"{where}.{key}: unknown key (known: {', '.join(_BACKGROUND_LIMITS)})")
        if isinstance(value, bool) or not isinstance(value, int):
            raise ActorSpecError(f"{where}.{key}: {value!r} must be a whole number")
        lo, hi = _BACKGROUND_LIMITS[key]
        if not lo <= value <= hi:
            raise ActorSpecError(f"{where}.{key}: {value} is out of range {lo}..{hi}")
        values[key] = value
    return BackgroundTraffic(**values)


# ------------------------------------------------------------ traffic lights
@dataclass(frozen=True)
class TrafficLightConfig:
    """Fixed-time signals: each junction gives its streets green in turn, then amber, then all red."""

    cycle_s: float = 60.0
    amber_s: float = 3.0
    all_red_s: float = 2.0
    offset_step_s: float = 7.0        # each junction's cycle starts this much after the previous junction's
    stop_line_margin_m: float = 2.0   # stop line this far back from the kerb line of the widest crossing road


class TrafficLights:
    """The light each approach to each signalised junction shows at a given time."""

    def __init__(self, street_map: StreetMap, config: TrafficLightConfig | None = None):
        self.config = config or TrafficLightConfig()
        self.street_map = street_map
        n = street_map.node_count
        self.group_counts = np.array([len(street_map.signal_groups(k)) for k in range(n)], dtype=int)
        self.offsets_s = (np.arange(n) * self.config.offset_step_s) % self.config.cycle_s
        self.stop_setback_m = np.array([street_map.junction_half_width_m(k) + self.config.stop_line_margin_m
                                        for k in range(n)])
        most = max(int(self.group_counts.max(initial=0)), 1)
        if self.config.cycle_s / most <= self.config.amber_s + self.config.all_red_s:
            raise ValueError(f"a {self.config.cycle_s:g} s cycle leaves no green for the {most} streets of the "
                             "busiest junction")

    def states(self, nodes, groups, now_s: float) -> np.ndarray:
        """GREEN, AMBER or RED for arrival along signal group `groups` at `nodes`; GREEN where unsignalised."""
        cfg = self.config
        nodes = np.asarray(nodes, dtype=int)
        groups = np.asarray(groups, dtype=int)
        count = self.group_counts[nodes]
        phase_s = cfg.cycle_s / np.maximum(count, 1)
        t = (now_s + self.offsets_s[nodes]) % cfg.cycle_s
        active = np.floor(t / phase_s)
        into = t - active * phase_s
        own = np.where(into < phase_s - cfg.amber_s - cfg.all_red_s, GREEN,
                       np.where(into < phase_s - cfg.all_red_s, AMBER, RED))
        state = np.where(active == groups, own, RED)
        return np.where((count == 0) | (groups < 0), GREEN, state)

    def state(self, node: int, group: int, now_s: float) -> str:
        return LIGHT_NAMES[int(self.states([node], [group], now_s)[0])]


# ---------------------------------------------------------------- the actors
@dataclass(frozen=True)
class GroundActorsConfig:
    lights: TrafficLightConfig = field(default_factory=TrafficLightConfig)
    lane_offset_fraction: float = 0.25     # lane centre, as a fraction of the carriageway, left of the centreline
    speeding_tolerance_m_s: float = 0.5    # over the limit by more than this counts as speeding
    max_start_distance_m: float = 200.0    # a start or waypoint farther than this from every road is refused
    lookahead_m: float = 120.0             # the path is planned at least this far ahead
    following_gap_m: float = 2.0           # bumper to bumper, standing behind another vehicle
    following_headway_s: float = 1.0       # and this much time behind it when moving
    junction_clear_m: float = 15.0         # a vehicle this far past a junction still holds up those behind
    violation_memory: int = 50             # recent violations kept per actor
    passage_memory: int = 10_000           # signal passages kept until taken
    background_car_speed_m_s: tuple[float, float] = (8.0, 13.0)
    background_pedestrian_speed_m_s: tuple[float, float] = (1.2, 1.6)
    car_colours: tuple[tuple[int, int, int], ...] = (
        (235, 235, 235), (20, 20, 22), (150, 152, 158), (40, 70, 140), (150, 30, 30), (60, 90, 60),
        (200, 180, 60), (90, 60, 40))
    pedestrian_colours: tuple[tuple[int, int, int], ...] = (
        (30, 30, 35), (60, 60, 110), (190, 70, 50), (220, 220, 210), (80, 110, 70), (150, 120, 90))


@dataclass(frozen=True)
class Violation:
    time_s: float
    rule: str                          # one of RULES
    position: tuple[float, float]      # ENU metres
    node: int = -1                     # the junction, for a red light


@dataclass(frozen=True)
class SignalPassage:
    """An actor crossed a stop line; `light` is what it showed to that actor then."""

    time_s: float
    actor_id: str
    node: int
    light: str


@dataclass(frozen=True)
class ActorState:
    id: str
    kind: str
    position: tuple[float, float, float]    # ENU metres, on the ground
    velocity: tuple[float, float, float]    # ENU m/s
    heading: float                          # radians from east, counter-clockwise
    length_m: float
    width_m: float
    height_m: float
    colour: tuple[int, int, int]
    road: str                               # the street it is on
    ran_red_light_count: int
    speeding: bool
    on_pavement: bool
    waiting_at_signal: bool
    violations: tuple[Violation, ...]       # the most recent ones

    @property
    def speed_m_s(self) -> float:
        return math.hypot(self.velocity[0], self.velocity[1])


class _Track:
    """One actor's planned path: segments not yet driven, stop lines ahead, and what comes after."""

    __slots__ = ("segments", "stops", "plan", "path_end_s", "last_edge", "last_node", "wander", "rng",
                 "exhausted", "violations", "counts", "current_road")

    def __init__(self, rng, wander: bool, violation_memory: int):
        self.segments: deque = deque()     # (x0, y0, x1, y1, length, road, s0, lane, progress0)
        self.stops: deque = deque()        # (s, node, group)
        self.plan: deque = deque()         # EdgeSteps still to add
        self.path_end_s = 0.0
        self.last_edge = -1
        self.last_node = -1
        self.wander = wander
        self.rng = rng
        self.exhausted = False
        self.violations: deque = deque(maxlen=violation_memory)
        self.counts = dict.fromkeys(RULES, 0)
        self.current_road = -1


class GroundActors:
    """All ground actors of a scenario, stepped together in sim time."""

    def __init__(self, street_map: StreetMap, specs, background: BackgroundTraffic | None = None, seed: int = 0,
                 config: GroundActorsConfig | None = None):
        self.street_map = street_map
        self.config = config or GroundActorsConfig()
        self.lights = TrafficLights(street_map, self.config.lights)
        self.specs: list[ActorSpec] = list(specs) + self._background_specs(background or BackgroundTraffic())
        ids = [spec.id for spec in self.specs]
        if len(set(ids)) != len(ids):
            repeated = sorted({i for i in ids if ids.count(i) > 1})
            raise ActorSpecError(f"actor ids repeat: {', '.join(repeated)}")
        self._passages: deque[SignalPassage] = deque(maxlen=self.config.passage_memory)
        n = len(self.specs)
        self._init_arrays(n)
        self._tracks: list[_Track] = []
        self._road_limit = np.array([road.speed_limit_m_s for road in street_map.roads])
        self._road_width = np.array([road.width_m for road in street_map.roads])
        for i, spec in enumerate(self.specs):
            rng = np.random.default_rng([seed, i])
            self._tracks.append(self._plan(spec, rng))
            self._weave_phase[i] = rng.uniform(0.0, 2 * math.pi)
            self._pavement_phase[i] = rng.uniform(0.0, spec.pavement_interval_s)
            self._side[i] = 1.0 if rng.random() < 0.5 else -1.0
            self._enter_next_segment(i)
        self._order = np.argsort([spec.start_time_s for spec in self.specs], kind="stable")
        self._next_to_start = 0
        self.time_s = -math.inf

    # --------------------------------------------------------------- set-up
    def _init_arrays(self, n: int) -> None:
        specs = self.specs

        def column(name, dtype=float):
            return np.array([getattr(spec, name) for spec in specs], dtype=dtype)

        self._cruise = column("cruise_speed_m_s")
        self._accel = column("max_accel_m_s2")
        self._comfortable = column("comfortable_decel_m_s2")
        self._brake = column("max_decel_m_s2")
        self._obeys_lights = ~column("runs_red_lights", bool)
        self._obeys_limit = column("obeys_speed_limit", bool)
        self._weave_amplitude = column("weave_amplitude_m")
        self._weave_omega = 2 * math.pi / column("weave_period_s")
        self._mounts = column("mounts_pavement", bool)
        self._pavement_interval = column("pavement_interval_s")
        self._pavement_duration = column("pavement_duration_s")
        self._pavement_offset = column("pavement_offset_m")
        self._lateral_speed = column("lateral_speed_m_s")
        self._start_time = column("start_time_s")
        self._half_body = column("width_m") / 2
        self._is_pedestrian = np.array([spec.kind == "pedestrian" for spec in specs], dtype=bool)
        self._is_vehicle = ~self._is_pedestrian
        self._weave_phase = np.zeros(n)
        self._pavement_phase = np.zeros(n)
        self._side = np.ones(n)
        self._present = np.zeros(n, dtype=bool)
        self._fresh = np.zeros(n, dtype=bool)
        self._final = np.zeros(n, dtype=bool)
        self._s = np.zeros(n)
        self._v = np.zeros(n)
        self._lateral = np.zeros(n)
        self._heading = np.zeros(n)
        self._position = np.zeros((n, 2))
        self._velocity = np.zeros((n, 2))
        self._decision = np.zeros(n, dtype=int)   # at the next stop line: 0 undecided, 1 stopping, 2 going
        self._waiting = np.zeros(n, dtype=bool)
        self._speeding = np.zeros(n, dtype=bool)
        self._on_pavement = np.zeros(n, dtype=bool)
        self._riding_on_pavement = np.zeros(n, dtype=bool)
        self._lateral_rate = np.zeros(n)
        self._along_rate = np.zeros(n)
        self._red_count = np.zeros(n, dtype=int)
        # The segment each actor is on, and what lies at its ends.
        self._p0 = np.zeros((n, 2))
        self._dir = np.tile([1.0, 0.0], (n, 1))
        self._seg_len = np.ones(n)
        self._seg_s0 = np.zeros(n)
        self._n0 = np.zeros((n, 2))
        self._n1 = np.zeros((n, 2))
        self._width = np.zeros(n)
        self._limit = np.zeros(n)
        self._next_limit = np.zeros(n)
        self._next_limit_s = np.full(n, np.inf)
        self._path_end = np.full(n, np.inf)
        self._stop_s = np.full(n, np.inf)
        self._lane = np.full(n, -1, dtype=int)
        self._lane_progress0 = np.zeros(n)
        self._previous_lane = np.full(n, -1, dtype=int)
        self._previous_lane_length = np.zeros(n)
        self._half_length = column("length_m") / 2
        self._follows = column("follows_traffic", bool)
        self._stop_node = np.zeros(n, dtype=int)
        self._stop_group = np.full(n, -1, dtype=int)

    def _background_specs(self, background: BackgroundTraffic) -> list[ActorSpec]:
        if background.cars == 0 and background.pedestrians == 0:
            return []
        cfg = self.config
        rng = np.random.default_rng(background.seed)
        street_map = self.street_map
        lengths = np.array([edge.length_m for edge in street_map.edges])
        specs = []
        for kind, count, speeds, colours in (
                ("car", background.cars, cfg.background_car_speed_m_s, cfg.car_colours),
                ("pedestrian", background.pedestrians, cfg.background_pedestrian_speed_m_s, cfg.pedestrian_colours)):
            if count == 0:
                continue
            edges = rng.choice(len(lengths), size=count, p=lengths / lengths.sum())
            fraction = rng.uniform(0.05, 0.95, size=count)
            points = np.array([street_map.location_on_edge(e, f * lengths[e]).point for e, f in zip(edges, fraction)])
            lat, lon, _ = street_map.frame.to_geodetic(points[:, 0], points[:, 1], 0.0)
            speed = rng.uniform(*speeds, size=count)
            colour = rng.integers(0, len(colours), size=count)
            for k in range(count):
                specs.append(ActorSpec(id=f"background_{kind}_{k:03d}", kind=kind,
                                       start=(float(lat[k]), float(lon[k])),
                                       cruise_speed_m_s=float(speed[k]), colour=colours[colour[k]]))
        return specs

    def _plan(self, spec: ActorSpec, rng) -> _Track:
        street_map = self.street_map
        frame = street_map.frame
        track = _Track(rng, wander=not spec.route or spec.at_route_end == "wander",
                       violation_memory=self.config.violation_memory)
        places = [spec.start] + list(spec.route)
        locations = []
        for k, (lat, lon) in enumerate(places):
            east, north, _ = frame.to_enu(lat, lon)
            location = street_map.locate((float(east), float(north)))
            if location.distance_m > self.config.max_start_distance_m:
                name = "start" if k == 0 else f"route[{k - 1}]"
                raise ActorSpecError(f"actor {spec.id!r}.{name}: {lat}, {lon} is {location.distance_m:.0f} m from "
                                     f"the nearest road (at most {self.config.max_start_distance_m:g} m)")
            locations.append(location)
        start = locations[0]
        track.last_edge = start.edge
        if len(locations) == 1:
            edge = street_map.edges[start.edge]
            heading_to_v = rng.random() < 0.5
            track.plan.append(EdgeStep(start.edge, start.along_m, edge.length_m if heading_to_v else 0.0))
            return track
        for k, (a, b) in enumerate(zip(locations[:-1], locations[1:])):
            try:
                track.plan.extend(street_map.route_between(a, b))
            except NoRouteError:
                what = "start" if k == 0 else f"route[{k - 1}]"
                raise ActorSpecError(f"actor {spec.id!r}.route[{k}]: no road leads there from {what} "
                                     "(separate parts of the street network)") from None
        if track.wander:
            # Carry on the way it was going, to the end of the last waypoint's edge, then wander.
            last = locations[-1]
            edge = street_map.edges[last.edge]
            heading_to_v = track.plan[-1].forward if track.plan and track.plan[-1].edge == last.edge else True
            track.plan.append(EdgeStep(last.edge, last.along_m, edge.length_m if heading_to_v else 0.0))
        return track

    # ------------------------------------------------------- path bookkeeping
    def _append_step(self, i: int, step: EdgeStep) -> None:
        track = self._tracks[i]
        street_map = self.street_map
        edge = street_map.edges[step.edge]
        track.last_edge = step.edge
        if step.length_m <= 0:
            if step.end_m in (0.0, edge.length_m):
                track.last_node = edge.u if step.end_m == 0.0 else edge.v
            return
        step_start_s = track.path_end_s
        points = street_map.step_points(step)
        # One lane per edge and direction; progress along it is what orders the vehicles in it.
        lane = 2 * step.edge + (1 if step.forward else 0)
        progress = step.start_m if step.forward else edge.length_m - step.start_m
        for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
            length = math.hypot(x1 - x0, y1 - y0)
            if length > 1e-6:
                track.segments.append((x0, y0, x1, y1, length, edge.road, track.path_end_s, lane, progress))
                track.path_end_s += length
                progress += length
        if step.end_m == 0.0 or step.end_m == edge.length_m:
            node = edge.u if step.end_m == 0.0 else edge.v
            track.last_node = node
            group = street_map.approach_group(node, step.edge)
            if group >= 0:
                stop_s = max(step_start_s, track.path_end_s - self.lights.stop_setback_m[node])
                track.stops.append((stop_s, node, group))
                if len(track.stops) == 1:
                    self._show_next_stop(i)
        else:
            track.last_node = -1

    def _plan_more(self, i: int) -> bool:
        """Add the next step of the route, or a random next street when wandering; False at the route's end."""
        track = self._tracks[i]
        if track.plan:
            self._append_step(i, track.plan.popleft())
            return True
        if not track.wander or track.last_node < 0:
            track.exhausted = True
            return False
        street_map = self.street_map
        node = track.last_node
        choices = [k for k in street_map.incident_edges(node) if k != track.last_edge]
        if not choices:
            choices = [track.last_edge]     # a dead end: turn round
        k = choices[int(track.rng.integers(len(choices)))]
        edge = street_map.edges[k]
        if edge.u == node:
            self._append_step(i, EdgeStep(k, 0.0, edge.length_m))
        else:
            self._append_step(i, EdgeStep(k, edge.length_m, 0.0))
        return True

    def _show_next_stop(self, i: int) -> None:
        stops = self._tracks[i].stops
        if stops:
            self._stop_s[i], self._stop_node[i], self._stop_group[i] = stops[0]
        else:
            self._stop_s[i], self._stop_node[i], self._stop_group[i] = math.inf, 0, -1
        self._decision[i] = 0

    def _enter_next_segment(self, i: int) -> bool:
        """Move actor i onto its next segment; False when its path has ended."""
        track = self._tracks[i]
        while (len(track.segments) < 2 or track.path_end_s - self._s[i] < self.config.lookahead_m) \
                and not track.exhausted:
            self._plan_more(i)
        if track.exhausted:
            # The route ends within sight: slow down to stop at its end.
            self._final[i] = True
            self._path_end[i] = track.path_end_s
        if not track.segments:
            return False
        x0, y0, x1, y1, length, road, s0, lane, progress = track.segments.popleft()
        direction = np.array([(x1 - x0) / length, (y1 - y0) / length])
        previous = self._dir[i].copy() if track.current_road >= 0 else direction
        self._n0[i] = _corner_normal(previous, direction)
        if track.segments:
            nx0, ny0, nx1, ny1, nlength = track.segments[0][:5]
            self._n1[i] = _corner_normal(direction, np.array([(nx1 - nx0) / nlength, (ny1 - ny0) / nlength]))
        else:
            self._n1[i] = (-direction[1], direction[0])
        self._p0[i] = x0, y0
        self._dir[i] = direction
        self._seg_len[i] = length
        self._seg_s0[i] = s0
        self._width[i] = self._road_width[road]
        self._limit[i] = self._road_limit[road]
        if lane != self._lane[i]:
            if self._lane[i] >= 0:
                self._previous_lane[i] = self._lane[i]
                self._previous_lane_length[i] = self.street_map.edges[self._lane[i] // 2].length_m
            self._lane[i] = lane
        self._lane_progress0[i] = progress
        track.current_road = road
        # The next change of speed limit within reach, so that a car slows before it rather than after.
        self._next_limit[i], self._next_limit_s[i] = self._limit[i], math.inf
        for segment in track.segments:
            if self._road_limit[segment[5]] != self._limit[i]:
                self._next_limit[i], self._next_limit_s[i] = self._road_limit[segment[5]], segment[6]
                break
        return True

    # ------------------------------------------------------------------ step
    def step(self, now_s: float, dt_s: float) -> None:
        """Advance every actor to `now_s`, `dt_s` after the previous step."""
        if dt_s <= 0:
            return
        self.time_s = now_s
        self._start_due(now_s)
        present = self._present
        moving = present & ~self._fresh
        dt = np.where(moving, dt_s, 0.0)
        s, v = self._s, self._v

        target = self._cruise.copy()
        limited = self._obeys_limit
        target[limited] = np.minimum(target[limited], self._limit[limited])
        ahead = np.maximum(self._next_limit_s - s, 0.0)
        slow_for = np.sqrt(self._next_limit ** 2 + 2 * self._comfortable * ahead)
        target = np.where(limited, np.minimum(target, slow_for), target)

        target = np.minimum(target, self._following_speed(present))

        # Signals: decide once per stop line, on amber or red, whether to stop or go on.
        has_stop = self._stop_group >= 0
        light = self.lights.states(self._stop_node, self._stop_group, now_s)
        distance = self._stop_s - s
        obeys = self._obeys_lights & has_stop
        not_green = obeys & (light != GREEN)
        self._decision[obeys & (light == GREEN)] = 0
        undecided = not_green & (self._decision == 0)
        can_stop = v * v <= 2 * self._comfortable * np.maximum(distance, 0.0) + 1e-6
        self._decision[undecided & can_stop] = 1
        self._decision[undecided & ~can_stop] = 2
        # Going on through amber, but red came first and there is still room to brake: stop after all.
        rethink = not_green & (light == RED) & (self._decision == 2) & (distance > 0) & (
            v * v <= 2 * self._brake * distance)
        self._decision[rethink] = 1
        stopping = not_green & (self._decision == 1)
        stop_speed = np.sqrt(2 * self._comfortable * np.maximum(distance, 0.0))
        self._waiting = stopping & present & (stop_speed < target)
        target = np.where(stopping, np.minimum(target, stop_speed), target)
        final = self._final
        to_end = np.maximum(self._path_end - s, 0.0)
        target = np.where(final, np.minimum(target, np.sqrt(2 * self._comfortable * to_end)), target)

        dv = np.clip(target - v, -self._brake * dt, self._accel * dt)
        v_new = np.maximum(v + dv, 0.0)
        # Moving across the road takes a share of the speed rather than adding to it.
        lateral_target = self._lateral_target(now_s)
        lateral_rate = np.clip((lateral_target - self._lateral) / dt_s, -self._lateral_speed, self._lateral_speed)
        total = np.hypot(v_new, lateral_rate)
        share = np.where(moving & (total > 1e-9), v_new / np.maximum(total, 1e-9), 0.0)
        along_rate = v_new * share
        self._lateral_rate = lateral_rate * share
        self._lateral = np.where(self._fresh, lateral_target, self._lateral + self._lateral_rate * dt_s)
        s_new = s + along_rate * dt
        s_new = np.where(stopping, np.minimum(s_new, np.maximum(self._stop_s, s)), s_new)
        s_new = np.where(final, np.minimum(s_new, self._path_end), s_new)
        ended = final & (s_new >= self._path_end)
        v_new = np.where(ended, 0.0, v_new)
        self._along_rate = np.where(ended, 0.0, along_rate)
        self._v = v_new
        self._s = s_new

        for i in np.flatnonzero(moving & has_stop & (s_new > self._stop_s)).tolist():
            self._pass_stop_lines(i, now_s, int(light[i]))
        for i in np.flatnonzero(moving & ~ended & (s_new >= self._seg_s0 + self._seg_len)).tolist():
            while self._s[i] >= self._seg_s0[i] + self._seg_len[i] and self._enter_next_segment(i):
                pass

        self._on_pavement = present & (np.abs(self._lateral) > self._width / 2)
        self._place()
        self._record_rules(now_s, present)
        self._fresh[:] = False

    def _following_speed(self, present: np.ndarray) -> np.ndarray:
        """The fastest each follower may go and still stop behind the vehicle ahead of it in its lane.

        A vehicle that has just crossed a junction still counts as ahead in the lane it left,
        so that the next one waits for it to clear the junction.
        """
        allowed = np.full(len(self._v), np.inf)
        parked = self._final & (self._s >= self._path_end)       # pulled in at the end of its route
        idx = np.flatnonzero(present & self._follows & ~self._fresh & ~parked)
        if len(idx) < 2:
            return allowed
        progress = self._lane_progress0[idx] + (self._s[idx] - self._seg_s0[idx])
        crossing = (progress < self.config.junction_clear_m) & (self._previous_lane[idx] >= 0)
        actor = np.concatenate([idx, idx[crossing]])
        lane = np.concatenate([self._lane[idx], self._previous_lane[idx[crossing]]])
        progress = np.concatenate([progress, progress[crossing] + self._previous_lane_length[idx[crossing]]])
        real = np.arange(len(actor)) < len(idx)
        order = np.lexsort((progress, lane))
        pairs = (lane[order][1:] == lane[order][:-1]) & real[order][:-1]
        behind, ahead = actor[order][:-1][pairs], actor[order][1:][pairs]
        gap = (np.diff(progress[order])[pairs] - self._half_length[behind] - self._half_length[ahead]
               - self.config.following_gap_m - self.config.following_headway_s * self._v[behind])
        speed = np.sqrt(np.maximum(self._v[ahead] ** 2 + 2 * self._comfortable[behind] * gap, 0.0))
        np.minimum.at(allowed, behind, speed)
        return allowed

    def _start_due(self, now_s: float) -> None:
        order = self._order
        while self._next_to_start < len(order) and self._start_time[order[self._next_to_start]] <= now_s:
            i = order[self._next_to_start]
            self._present[i] = True
            self._fresh[i] = True
            self._next_to_start += 1

    def _pass_stop_lines(self, i: int, now_s: float, light_now: int) -> None:
        track = self._tracks[i]
        spec = self.specs[i]
        first = True
        while track.stops and self._s[i] > track.stops[0][0]:
            _, node, group = track.stops.popleft()
            light = light_now if first else int(self.lights.states([node], [group], now_s)[0])
            first = False
            self._passages.append(SignalPassage(now_s, spec.id, node, LIGHT_NAMES[light]))
            if light == RED and spec.is_vehicle:
                self._red_count[i] += 1
                self._violate(i, now_s, "red_light", node)
        self._show_next_stop(i)

    def _violate(self, i: int, now_s: float, rule: str, node: int = -1) -> None:
        track = self._tracks[i]
        track.counts[rule] += 1
        track.violations.append(Violation(now_s, rule, (float(self._position[i, 0]), float(self._position[i, 1])),
                                          node))

    def _lateral_target(self, now_s: float) -> np.ndarray:
        """Where across the road each actor makes for: its lane (weaving or not), or the pavement."""
        half_road = self._width / 2
        lane = self.config.lane_offset_fraction * self._width
        weave = self._weave_amplitude * np.sin(self._weave_omega * now_s + self._weave_phase)
        kerb_room = np.maximum(half_road - self._half_body, 0.0)
        in_lane = np.clip(lane + weave, -kerb_room, kerb_room)
        since = now_s - self._start_time + self._pavement_phase
        episode = self._mounts & (self._pavement_duration > 0) & (
            np.mod(since, self._pavement_interval) < self._pavement_duration)
        pavement = half_road + self._pavement_offset
        return np.where(self._is_pedestrian, self._side * pavement, np.where(episode, pavement, in_lane))

    def _place(self) -> None:
        along = np.clip(self._s - self._seg_s0, 0.0, self._seg_len)
        t = (along / self._seg_len)[:, None]
        normal = self._n0 + (self._n1 - self._n0) * t
        self._position = self._p0 + self._dir * along[:, None] + self._lateral[:, None] * normal
        left = np.column_stack([-self._dir[:, 1], self._dir[:, 0]])
        self._velocity = self._dir * self._along_rate[:, None] + left * self._lateral_rate[:, None]
        speed = np.hypot(self._velocity[:, 0], self._velocity[:, 1])
        heading_now = np.arctan2(self._velocity[:, 1], self._velocity[:, 0])
        road_heading = np.arctan2(self._dir[:, 1], self._dir[:, 0])
        self._heading = np.where(speed > 0.05, heading_now, np.where(self._fresh, road_heading, self._heading))

    def _record_rules(self, now_s: float, present: np.ndarray) -> None:
        vehicle = present & self._is_vehicle
        speeding = vehicle & (self._v > self._limit + self.config.speeding_tolerance_m_s)
        for i in np.flatnonzero(speeding & ~self._speeding).tolist():
            self._violate(i, now_s, "speeding")
        self._speeding = speeding
        riding_on_pavement = vehicle & self._on_pavement
        for i in np.flatnonzero(riding_on_pavement & ~self._riding_on_pavement).tolist():
            self._violate(i, now_s, "pavement")
        self._riding_on_pavement = riding_on_pavement

    # --------------------------------------------------------------- queries
    @property
    def actor_ids(self) -> list[str]:
        return [spec.id for spec in self.specs]

    def states(self) -> list[ActorState]:
        """Every actor that has started, in spec order."""
        out = []
        roads = self.street_map.roads
        for i in np.flatnonzero(self._present).tolist():
            spec = self.specs[i]
            track = self._tracks[i]
            out.append(ActorState(
                id=spec.id, kind=spec.kind,
                position=(float(self._position[i, 0]), float(self._position[i, 1]), 0.0),
                velocity=(float(self._velocity[i, 0]), float(self._velocity[i, 1]), 0.0),
                heading=float(self._heading[i]),
                length_m=spec.length_m, width_m=spec.width_m, height_m=spec.height_m, colour=spec.colour,
                road=roads[track.current_road].name if track.current_road >= 0 else "",
                ran_red_light_count=int(self._red_count[i]),
                speeding=bool(self._speeding[i]),
                on_pavement=bool(self._on_pavement[i]),
                waiting_at_signal=bool(self._waiting[i]),
                violations=tuple(track.violations)))
        return out

    def violation_counts(self, actor_id: str) -> dict[str, int]:
        """How often an actor has broken each rule since the start."""
        return dict(self._tracks[self.actor_ids.index(actor_id)].counts)

    def take_signal_passages(self) -> list[SignalPassage]:
        """The stop lines crossed since the last call (the oldest are dropped beyond passage_memory)."""
        out = list(self._passages)
        self._passages.clear()
        return out


def _corner_normal(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """The unit vector to offset along at a bend: the bisector of the two left normals.

    At a U-turn the bisector vanishes; the offset then swings round the end of the road.
    """
    bisector = np.array([-before[1] - after[1], before[0] + after[0]])
    norm = math.hypot(bisector[0], bisector[1])
    if norm < 1e-3:
        return before.copy()
    return bisector / norm

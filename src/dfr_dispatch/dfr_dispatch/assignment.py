"""Joint assignment of drones to open incidents: the planner that replaces nearest-idle.

Every decision round takes the whole picture at once: the open incidents (new calls and
relief requests) and the drones that could answer them, and solves one assignment
problem with scipy's ``linear_sum_assignment`` instead of matching incidents one at a
time.

The cost of sending drone d to incident j is its grade-weighted estimated time to scene

    weight(grade) * ETA(d, j)          ETA = take-off + climb + travel (airborne drones: travel only)

plus, where it applies, a coverage penalty (taking the last available drone of a base)
and a pre-emption margin (taking a drone off a lower-grade mission). Pairs the battery
cannot carry (out, time on scene, back, above the reserve) are infeasible. Every incident
also has a "leave it queued" option priced by its grade and how long it has waited, so a
low-grade call may wait rather than empty a base, while an I-grade call is sent whenever
any drone can fly it. Incidents left queued get a specific reason.

Rows of the matrix are incidents; columns are the candidate drones followed by one
"queued" column per incident (its own queue cost on the diagonal, forbidden elsewhere),
so the rectangular problem always has a solution and its optimum is the minimum over
every way of matching incidents to distinct drones or leaving them queued.

Positions are (latitude, longitude) in degrees, or (east, north) in metres of one local
ENU frame when ``AssignmentConfig.frame == "enu"``; drones and incidents use the same.
Callers that know the airspace pass ``travel_time_s`` (route length over cruise speed);
the default is the straight line. Nothing here reads a clock: ``now_s`` is given.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from dfr_common.geodesy import ground_distance_m
from dfr_common.grading import GRADES, urgency

NAN = float("nan")


@dataclass(frozen=True)
class DroneState:
    """One drone as the planner needs it."""

    vehicle_id: str
    base_id: str
    position: tuple[float, float]                   # now: (lat, lon) deg, or (east, north) m in the ENU frame
    available: bool = False                         # on its base, idle and fit for a new mission
    battery_fraction: float = NAN                   # 0..1; NaN when unknown
    flight_time_remaining_s: float = NAN            # down to the reserve; NaN when unknown
    busy_with: str | None = None                    # the incident it is flying for, if any
    busy_grade: str | None = None                   # that incident's grade
    relief_needed: bool = False                     # leaving its incident on its reserve
    home: tuple[float, float] | None = None         # where it lands after a mission; None: its position
    in_flight: bool = False                         # flying home from a finished scene: no take-off needed

    @property
    def airborne(self) -> bool:
        return self.busy_with is not None or self.in_flight


@dataclass(frozen=True)
class OpenIncident:
    """An open, drone-eligible incident (or a relief request) waiting for a drone."""

    incident_id: str
    grade: str                                      # dfr_common.grading.GRADES
    position: tuple[float, float]                   # same convention as DroneState.position
    waiting_since_s: float = 0.0
    needs_relief_for: str | None = None             # the drone on scene that must leave; it is not a candidate


def _default_weights() -> dict[str, float]:
    return {"I": 100.0, "S": 10.0, "E": 1.0, "R": 0.3}


def _default_queue_costs() -> dict[str, float]:
    return {"I": 3600.0, "S": 1800.0, "E": 600.0, "R": 300.0}


@dataclass(frozen=True)
class AssignmentConfig:
    cruise_speed_m_s: float = 15.0
    climb_rate_m_s: float = 5.0
    descent_rate_m_s: float = 2.0
    takeoff_overhead_s: float = 10.0                # dock opening, arming, lift-off
    cruise_altitude_m: float = 60.0
    on_scene_time_s: float = 120.0
    battery_reserve_fraction: float = 0.2           # used only when flight_time_remaining_s is unknown
    nominal_endurance_s: float = 54.0 * 60.0        # full battery to empty
    grade_weights: Mapping[str, float] = field(default_factory=_default_weights)   # I >> S >> E > R
    # The price of leaving an incident queued this round, in seconds of its grade-weighted ETA,
    # on top of the time it has already waited.
    queue_cost_s: Mapping[str, float] = field(default_factory=_default_queue_costs)
    coverage_tolerance_s: float = 60.0              # "nearly as fast"
    coverage_cost: float = 300.0                    # weighted seconds: the price of emptying a base
    preempting_grades: frozenset[str] = frozenset({"I"})
    preemptible_grades: frozenset[str] = frozenset({"E", "R"})
    preemption_margin_s: float = 120.0              # a busy drone must be this much faster than the best idle one
    relief_priority_factor: float = 1.5             # relief goes first within its grade, not above the next
    frame: str = "latlon"                           # "latlon" or "enu"

    def __post_init__(self):
        for name in ("cruise_speed_m_s", "climb_rate_m_s", "descent_rate_m_s", "nominal_endurance_s"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"AssignmentConfig.{name} must be positive, not {getattr(self, name)}")
        for name in ("takeoff_overhead_s", "cruise_altitude_m", "on_scene_time_s", "coverage_tolerance_s",
                     "coverage_cost", "preemption_margin_s"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"AssignmentConfig.{name} must be zero or more, not {getattr(self, name)}")
        if not 0.0 <= self.battery_reserve_fraction < 1.0:
            raise ValueError(f"AssignmentConfig.battery_reserve_fraction must be in [0, 1), "
                             f"not {self.battery_reserve_fraction}")
        if self.frame not in ("latlon", "enu"):
            raise ValueError(f"AssignmentConfig.frame must be 'latlon' or 'enu', not {self.frame!r}")
        for table in ("grade_weights", "queue_cost_s"):
            missing = [g for g in GRADES if g not in getattr(self, table)]
            if missing:
                raise ValueError(f"AssignmentConfig.{table} has no entry for grade(s) {', '.join(missing)}")
        if not self.relief_priority_factor >= 1.0:
            raise ValueError("AssignmentConfig.relief_priority_factor must be 1 or more")

    @property
    def launch_s(self) -> float:
        """Take-off and climb to the cruise altitude."""
        return self.takeoff_overhead_s + self.cruise_altitude_m / self.climb_rate_m_s

    @property
    def landing_s(self) -> float:
        return self.cruise_altitude_m / self.descent_rate_m_s

    def weight(self, grade: str) -> float:
        return float(self.grade_weights.get(grade, min(self.grade_weights.values())))

    def queue_cost(self, grade: str) -> float:
        return float(self.queue_cost_s.get(grade, min(self.queue_cost_s.values())))


TravelTime = Callable[[DroneState, OpenIncident], float]
ReturnTime = Callable[[DroneState, OpenIncident], float]


@dataclass(frozen=True)
class Alternative:
    """A drone weighed for an incident and not sent, for the record."""

    vehicle_id: str
    eta_s: float | None          # None: it could not fly the mission
    reason: str


@dataclass
class Decisions:
    """One round's decisions, and what they were made from (for the record)."""

    assign: list[tuple[str, str, float]] = field(default_factory=list)     # (vehicle, incident, ETA s)
    preempt: list[tuple[str, str, str]] = field(default_factory=list)      # (vehicle, from incident, to incident)
    queued: dict[str, str] = field(default_factory=dict)                   # incident -> why it waits
    record: list[str] = field(default_factory=list)                        # one line per decision
    why: dict[str, str] = field(default_factory=dict)                      # incident -> why its drone
    # incident -> every other drone weighed for it, with its ETA (None where it could not) and why not
    alternatives: dict[str, list[Alternative]] = field(default_factory=dict)
    incident_ids: list[str] = field(default_factory=list)                  # rows of cost_matrix
    vehicle_ids: list[str] = field(default_factory=list)                   # columns of cost_matrix
    cost_matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))   # inf: infeasible
    queue_costs: np.ndarray = field(default_factory=lambda: np.zeros(0))   # the "leave queued" cost per row
    eta_matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    total_cost: float = 0.0


def flight_time_available_s(drone: DroneState, config: AssignmentConfig) -> float:
    """Flight time above the reserve: the drone's own estimate, else endurance × (battery − reserve)."""
    if math.isfinite(drone.flight_time_remaining_s):
        return max(0.0, float(drone.flight_time_remaining_s))
    if math.isfinite(drone.battery_fraction):
        return max(0.0, config.nominal_endurance_s * (drone.battery_fraction - config.battery_reserve_fraction))
    return NAN


def straight_distance_m(a: tuple[float, float], b: tuple[float, float], frame: str = "latlon") -> float:
    if frame == "enu":
        return math.hypot(b[0] - a[0], b[1] - a[1])
    return float(ground_distance_m(a[0], a[1], b[0], b[1]))


def _distances(froms: np.ndarray, tos: np.ndarray, frame: str) -> np.ndarray:
    """Straight-line distances, len(froms) × len(tos); NaN where a position is unknown."""
    if len(froms) == 0 or len(tos) == 0:
        return np.zeros((len(froms), len(tos)))
    if frame == "enu":
        return np.hypot(tos[None, :, 0] - froms[:, None, 0], tos[None, :, 1] - froms[:, None, 1])
    with np.errstate(invalid="ignore"):
        return np.asarray(ground_distance_m(froms[:, None, 0], froms[:, None, 1], tos[None, :, 0], tos[None, :, 1]),
                          dtype=float)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60.0:.0f} min" if seconds >= 120.0 else f"{seconds:.0f} s"


def _finite_position(p) -> bool:
    return p is not None and len(p) >= 2 and math.isfinite(p[0]) and math.isfinite(p[1])


def plan_assignments(drones: Sequence[DroneState], incidents: Sequence[OpenIncident], config: AssignmentConfig,
                     now_s: float, travel_time_s: TravelTime | None = None,
                     return_time_s: ReturnTime | None = None,
                     excluded: Mapping[str, Collection[str]] | None = None) -> Decisions:
    """Match drones to open incidents jointly; see the module's description.

    ``travel_time_s(drone, incident)``: flight time from the drone's position to the scene at
    cruise (no take-off or climb); default the straight line over the cruise speed.
    ``return_time_s(drone, incident)``: from the scene back to the drone's home; default the
    out time for a drone on its base when ``travel_time_s`` is given, else the straight line.
    Relief requests are incidents with ``needs_relief_for``. A drone in ``preempt`` also
    appears in ``assign``; its former incident is for the caller to queue again.
    ``excluded`` maps an incident to the drones that must not be sent to it (their bridge refused it).
    """
    decisions = Decisions()
    n_inc = len(incidents)
    if n_inc == 0:
        return decisions
    if len({i.incident_id for i in incidents}) != n_inc:
        raise ValueError("plan_assignments: duplicate incident ids")
    if len({d.vehicle_id for d in drones}) != len(drones):
        raise ValueError("plan_assignments: duplicate vehicle ids")

    # ---- candidates: idle drones, and busy drones a more urgent call may take
    idle = [d for d in drones if d.available and d.busy_with is None and not d.relief_needed]
    busy = [d for d in drones if d.busy_with is not None and not d.relief_needed
            and (d.busy_grade or "R") in config.preemptible_grades]
    cands = idle + busy
    n_idle, n_c = len(idle), len(cands)
    decisions.incident_ids = [i.incident_id for i in incidents]
    decisions.vehicle_ids = [d.vehicle_id for d in cands]

    inc_pos = np.array([i.position if _finite_position(i.position) else (NAN, NAN) for i in incidents], dtype=float)
    drone_pos = np.array([d.position if _finite_position(d.position) else (NAN, NAN) for d in cands],
                         dtype=float).reshape(-1, 2)
    home_pos = np.array([(d.home if d.home is not None else d.position) for d in cands], dtype=float).reshape(-1, 2)

    # ---- times: out (cruise), back, and flight time above the reserve
    if travel_time_s is None:
        out = _distances(drone_pos, inc_pos, config.frame) / config.cruise_speed_m_s
    else:
        out = np.array([[float(travel_time_s(d, i)) for i in incidents] for d in cands], dtype=float).reshape(n_c,
                                                                                                        n_inc)
    if return_time_s is not None:
        back = np.array([[float(return_time_s(d, i)) for i in incidents] for d in cands], dtype=float).reshape(
            n_c, n_inc)
    else:
        back = (_distances(home_pos, inc_pos, config.frame) / config.cruise_speed_m_s).T.reshape(n_c, n_inc)
        if travel_time_s is not None:    # a drone on its base flies the same route back
            at_home = np.array([not d.airborne and d.home is None for d in cands], dtype=bool)
            back[at_home] = out[at_home]
    airborne = np.array([d.airborne for d in cands], dtype=bool)
    launch = np.where(airborne, 0.0, config.launch_s)[:, None]
    eta = launch + out
    needed = eta + config.on_scene_time_s + back + config.landing_s
    available_s = np.array([flight_time_available_s(d, config) for d in cands], dtype=float)
    with np.errstate(invalid="ignore"):
        feasible = np.isfinite(needed) & (needed <= available_s[:, None])
    incident_ok = np.isfinite(inc_pos).all(axis=1)
    feasible &= incident_ok[None, :]

    # relief: never the relieved drone; pre-emption: busy drones only for pre-empting grades
    col = {d.vehicle_id: k for k, d in enumerate(cands)}
    for j, inc in enumerate(incidents):
        if inc.needs_relief_for in col:
            feasible[col[inc.needs_relief_for], j] = False
        for vehicle_id in (excluded or {}).get(inc.incident_id, ()):
            if vehicle_id in col:
                feasible[col[vehicle_id], j] = False
        if inc.grade not in config.preempting_grades:
            feasible[n_idle:, j] = False
        else:
            for k in range(n_idle, n_c):
                if urgency(cands[k].busy_grade or "R") <= urgency(inc.grade):
                    feasible[k, j] = False

    weights = np.array([config.weight(i.grade) * (config.relief_priority_factor if i.needs_relief_for else 1.0)
                        for i in incidents], dtype=float)
    waiting = np.array([max(0.0, now_s - i.waiting_since_s) for i in incidents], dtype=float)
    queue_costs = weights * (np.array([config.queue_cost(i.grade) for i in incidents]) + waiting)

    cost = np.where(feasible, weights[None, :] * np.where(feasible, eta, 0.0), np.inf)   # drones × incidents

    # ---- coverage: taking the last available drone of a base
    idle_at_base: dict[str, int] = {}
    for d in idle:
        idle_at_base[d.base_id] = idle_at_base.get(d.base_id, 0) + 1
    last = np.array([k < n_idle and idle_at_base[cands[k].base_id] == 1 for k in range(n_c)], dtype=bool)
    coverage = np.zeros((n_c, n_inc))
    if n_idle and last.any():
        idle_eta = np.where(feasible[:n_idle], eta[:n_idle], np.inf)
        if n_idle >= 2:
            two = np.partition(idle_eta, 1, axis=0)[:2]
            best, second = two[0], two[1]
        else:
            best, second = idle_eta[0], np.full(n_inc, np.inf)
        # the fastest other idle drone for each pair
        other = np.where(idle_eta <= best[None, :], second[None, :], best[None, :])
        alternative = other <= idle_eta + config.coverage_tolerance_s
        cov = np.where(last[:n_idle, None], config.coverage_cost
                       + np.where(alternative, weights[None, :] * config.coverage_tolerance_s, 0.0), 0.0)
        coverage[:n_idle] = np.where(feasible[:n_idle], cov, 0.0)
        cost[:n_idle] += coverage[:n_idle]

    # ---- pre-emption margin: only when a busy drone is much faster than the best idle one
    if n_c > n_idle:
        cost[n_idle:] += weights[None, :] * config.preemption_margin_s

    # ---- solve: rows incidents, columns drones then one "queued" column per incident
    matrix = np.full((n_inc, n_c + n_inc), np.inf)
    matrix[:, :n_c] = cost.T
    matrix[np.arange(n_inc), n_c + np.arange(n_inc)] = queue_costs
    rows, cols = linear_sum_assignment(matrix)
    decisions.cost_matrix = cost.T.copy()
    decisions.queue_costs = queue_costs
    decisions.eta_matrix = np.where(feasible, eta, np.inf).T.copy()
    decisions.total_cost = float(matrix[rows, cols].sum())

    chosen: dict[int, int] = {}                     # incident row -> candidate column
    for r, c in zip(rows, cols):
        if c < n_c:
            chosen[int(r)] = int(c)
    taken_by = {c: incidents[r].incident_id for r, c in chosen.items()}

    order = sorted(range(n_inc), key=lambda j: (urgency(incidents[j].grade), incidents[j].needs_relief_for is None,
                                                incidents[j].waiting_since_s))
    for j in order:
        inc = incidents[j]
        if j in chosen:
            k = chosen[j]
            d = cands[k]
            e = float(eta[k, j])
            decisions.assign.append((d.vehicle_id, inc.incident_id, e))
            parts = [f"{inc.incident_id} (grade {inc.grade}"
                     + (f", relief for {inc.needs_relief_for}" if inc.needs_relief_for else "") + f"): {d.vehicle_id}",
                     f"ETA {e:.0f} s" + (f" (launch {config.launch_s:.0f} s + travel {out[k, j]:.0f} s)"
                                         if not d.airborne else " (airborne)"),
                     f"needs {_minutes(float(needed[k, j]))} of {_minutes(float(available_s[k]))}",
                     f"cost {cost[k, j]:.0f} vs queued {queue_costs[j]:.0f}"]
            if coverage[k, j] > 0:
                parts.append(f"empties base {d.base_id} (coverage +{coverage[k, j]:.0f})")
            if k >= n_idle:
                decisions.preempt.append((d.vehicle_id, d.busy_with, inc.incident_id))
                parts.append(f"pre-empts {d.busy_with} (grade {d.busy_grade})")
            if inc.needs_relief_for:
                relieved = next((x for x in drones if x.vehicle_id == inc.needs_relief_for), None)
                if relieved is not None and math.isfinite(flight_time_available_s(relieved, config)):
                    leave_in = flight_time_available_s(relieved, config) - _back_estimate(relieved, inc, config)
                    if e > leave_in:
                        parts.append(f"arrives {e - leave_in:.0f} s after {relieved.vehicle_id} must leave")
            decisions.record.append("; ".join(parts))
            decisions.why[inc.incident_id] = decisions.record[-1]
            decisions.alternatives[inc.incident_id] = [
                _alternative(c, j, k, cands, n_idle, feasible, eta, needed, available_s, cost, taken_by, incidents)
                for c in range(n_c) if c != k]
        else:
            reason = _queue_reason(j, inc, drones, cands, n_idle, feasible, needed, available_s, cost,
                                   queue_costs, taken_by, config, incident_ok[j])
            decisions.queued[inc.incident_id] = reason
            decisions.record.append(f"{inc.incident_id} (grade {inc.grade}) queued: {reason}")
    return decisions


def _alternative(c, j, k, cands, n_idle, feasible, eta, needed, available_s, cost, taken_by,
                 incidents) -> Alternative:
    """Why candidate c was not sent to incident j, which went to candidate k."""
    drone, incident = cands[c], incidents[j]
    if feasible[c, j]:
        reason = (f"sent to {taken_by[c]}" if c in taken_by else
                  f"ETA {eta[c, j]:.0f} s, cost {cost[c, j]:.0f} against {cost[k, j]:.0f}")
        if c >= n_idle:
            reason += f"; busy with {drone.busy_with}"
        return Alternative(drone.vehicle_id, float(eta[c, j]), reason)
    if incident.needs_relief_for == drone.vehicle_id:
        reason = "the drone to be relieved"
    elif c >= n_idle:
        reason = (f"busy with {drone.busy_with} (grade {drone.busy_grade}), which grade {incident.grade} "
                  "does not pre-empt")
    elif math.isfinite(needed[c, j]) and needed[c, j] > available_s[c]:
        reason = f"needs {_minutes(float(needed[c, j]))} of flight, has {_minutes(float(available_s[c]))}"
    else:
        reason = "refused this incident before, or cannot reach it"
    return Alternative(drone.vehicle_id, None, reason)


def _back_estimate(drone: DroneState, incident: OpenIncident, config: AssignmentConfig) -> float:
    """Straight-line time from the scene home for the relieved drone, and its landing."""
    home = drone.home if drone.home is not None else incident.position
    if not (_finite_position(home) and _finite_position(incident.position)):
        return 0.0
    return straight_distance_m(incident.position, home, config.frame) / config.cruise_speed_m_s + config.landing_s


def _queue_reason(j, inc, drones, cands, n_idle, feasible, needed, available_s, cost, queue_costs, taken_by,
                  config, location_ok) -> str:
    if not location_ok:
        return "the incident has no usable location"
    if not drones:
        return "no drones"
    others = [d for d in drones if d.vehicle_id != inc.needs_relief_for]
    if not others:
        return f"no drone other than {inc.needs_relief_for}, which it relieves"
    column = [k for k in range(len(cands)) if cands[k].vehicle_id != inc.needs_relief_for]
    idle_cols = [k for k in column if k < n_idle]
    ok = [k for k in column if feasible[k, j]]
    if ok:
        taken = [k for k in ok if k in taken_by]
        if len(taken) == len(ok):
            names = ", ".join(f"{cands[k].vehicle_id} → {taken_by[k]}" for k in taken[:3])
            return f"the drones that can reach it went to more urgent incidents ({names})"
        free = [k for k in ok if k not in taken_by]
        k = min(free, key=lambda k: cost[k, j])
        return (f"kept queued to keep coverage: sending {cands[k].vehicle_id} would empty base {cands[k].base_id} "
                f"(cost {cost[k, j]:.0f} against {queue_costs[j]:.0f} for waiting)")
    if idle_cols:
        # idle drones exist but none can fly it: say how short the best one is
        k = max(idle_cols, key=lambda k: (np.nan_to_num(available_s[k] - needed[k, j], nan=-np.inf)))
        if not math.isfinite(available_s[k]):
            return f"no drone can be shown to reach it: battery of {cands[k].vehicle_id} unknown"
        if not math.isfinite(needed[k, j]):
            return f"no drone can reach it: no route or position known for {cands[k].vehicle_id}"
        return (f"no drone can reach it and return with the reserve: best needs {_minutes(float(needed[k, j]))}, "
                f"{cands[k].vehicle_id} has {_minutes(float(available_s[k]))}")
    busy = [d for d in others if d.busy_with is not None]
    if len(busy) == len(others):
        higher = [d for d in busy if urgency(d.busy_grade or "R") <= urgency(inc.grade)]
        if len(higher) == len(busy):
            if all(urgency(d.busy_grade or "R") < urgency(inc.grade) for d in busy):
                return f"all {len(busy)} drones busy with higher-grade incidents"
            return f"all {len(busy)} drones busy with incidents of the same or a higher grade"
        lower = len(busy) - len(higher)
        preemptible = [d for d in busy if inc.grade in config.preempting_grades and not d.relief_needed
                       and (d.busy_grade or "R") in config.preemptible_grades
                       and urgency(d.busy_grade or "R") > urgency(inc.grade)]
        if preemptible:
            return (f"all {len(busy)} drones busy; the {len(preemptible)} on missions it may pre-empt cannot reach "
                    "it and return with the reserve")
        return (f"all {len(busy)} drones busy; {lower} with lower-grade incidents that a grade {inc.grade} call "
                "may not pre-empt")
    down = len(others) - len(busy)
    return f"no drone available: {len(busy)} busy, {down} charging, offline or returning"

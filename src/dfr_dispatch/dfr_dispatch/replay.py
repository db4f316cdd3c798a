"""A city scenario replayed through dispatch's decisions, fast: the bench that compares policies.

The full graph (`make demo`) flies every drone through PX4's rules at ten times real time;
an evening of calls would take half an hour of wall time per policy. This replay keeps
what decides response times and drops the rest: the same decision code as the node
(`policies.decide`, the same airspace routes), drones that launch, climb, cruise the
route, stay on scene, fly home, land and recharge in their dock, batteries that drain in
flight, and the bridge's reserve rule (a drone that would eat into its reserve turns home
and its incident goes back in the queue for a relief drone). Flights are timed by the
same model the planner uses for its ETAs, so absolute times are a model's; what the
bench reports is the difference between two policies on the same evening.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from dfr_dispatch.assignment import AssignmentConfig, DroneState, OpenIncident
from dfr_dispatch.policies import decide


@dataclass(frozen=True)
class ReplayIncident:
    incident_id: str
    opened_s: float                     # the first call's time
    grade: str
    category: str
    position: tuple[float, float]       # (latitude, longitude)


@dataclass(frozen=True)
class ReplayDrone:
    vehicle_id: str
    base_id: str
    home: tuple[float, float]
    battery_fraction: float = 1.0


@dataclass(frozen=True)
class ReplayConfig:
    on_scene_s: float = 600.0               # the mission's time on scene (dispatch's on_scene_duration_s)
    endurance_s: float = 2400.0             # full battery to empty, in flight
    battery_reserve: float = 0.2            # the bridge turns home rather than eat into it
    return_margin_s: float = 60.0           # ... with this much in hand (SequencerConfig.return_margin_s)
    min_launch_battery: float = 0.5         # the bridge's condition for "available"
    charge_per_s: float = 0.7 / 1920.0      # a dock's charge rate: 20 % to 90 % in 32 min
    relief_lead_s: float = 180.0            # relief is asked for this long before a drone must leave
    decision_period_s: float = 1.0
    response_target_s: float = 120.0       # "within 2 minutes"


@dataclass
class _Flight:
    """One mission of one drone: where it is when, as straight legs between keyframes."""

    incident_id: str
    grade: str
    start_s: float                          # the mission's start (a launch, or a retask in the air)
    on_scene_s: float                       # arrival (inf: turned back before it)
    leave_s: float                          # leaves the scene (or turns back)
    landed_s: float
    keyframes: list[tuple[float, tuple[float, float]]]
    relief_needed: bool                     # leaves before its time is up, for its reserve
    relief_requested: bool = False

    def position(self, t: float) -> tuple[float, float]:
        times = [k[0] for k in self.keyframes]
        lat = float(np.interp(t, times, [k[1][0] for k in self.keyframes]))
        lon = float(np.interp(t, times, [k[1][1] for k in self.keyframes]))
        return lat, lon


@dataclass
class _Drone:
    spec: ReplayDrone
    battery: float
    flight: _Flight | None = None
    battery_at_start: float = 1.0


@dataclass
class ReplayResult:
    policy: str
    response_s: dict[str, float] = field(default_factory=dict)        # incident -> first arrival - call
    grades: dict[str, str] = field(default_factory=dict)
    unattended: list[str] = field(default_factory=list)
    queued: set[str] = field(default_factory=set)                     # waited at least one round with no drone
    flights: int = 0                                                  # launches
    missions: int = 0                                                 # launches and retasks in the air
    retasked_in_flight: int = 0
    preempted: int = 0
    relief_flights: int = 0
    flight_hours: float = 0.0
    decision_ms: list[float] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)

    def summary(self, target_s: float = 120.0) -> dict:
        times = list(self.response_s.values())
        grade_i = [v for k, v in self.response_s.items() if self.grades.get(k) == "I"]
        grade_i_all = [k for k, g in self.grades.items() if g == "I"]
        return {
            "policy": self.policy,
            "incidents": len(self.grades),
            "attended": len(times),
            "unattended": len(self.unattended),
            "response_time_s": {"p50": _percentile(times, 50), "p90": _percentile(times, 90),
                                "max": max(times, default=math.nan)},
            "grade_i_within_target_share": (sum(1 for v in grade_i if v <= target_s) / len(grade_i_all)
                                            if grade_i_all else math.nan),
            "grade_i_response_time_s": {"p50": _percentile(grade_i, 50), "p90": _percentile(grade_i, 90)},
            "calls_queued": len(self.queued),
            "flights": self.flights,
            "missions": self.missions,
            "retasked_in_flight": self.retasked_in_flight,
            "preempted": self.preempted,
            "relief_missions": self.relief_flights,
            "flight_hours": round(self.flight_hours, 3),
            "decision_ms": {"p50": _percentile(self.decision_ms, 50), "p99": _percentile(self.decision_ms, 99)},
        }


def _percentile(values, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else math.nan


def replay(policy: str, incidents: Sequence[ReplayIncident], drones: Sequence[ReplayDrone],
           assignment: AssignmentConfig, config: ReplayConfig, travel_time_s: Callable[[tuple, tuple], float],
           end_s: float | None = None, clock: Callable[[], float] | None = None) -> ReplayResult:
    """Run the incidents against the fleet with one policy.

    travel_time_s(from, to): cruise time between two (lat, lon) points by the airspace's
    route. clock: a wall clock (e.g. time.perf_counter) to time the decisions with, or None.
    """
    result = ReplayResult(policy)
    fleet = {d.vehicle_id: _Drone(d, d.battery_fraction) for d in drones}
    pending = sorted(incidents, key=lambda i: i.opened_s)
    for inc in pending:
        result.grades[inc.incident_id] = inc.grade
    by_id = {i.incident_id: i for i in pending}
    waiting: dict[str, OpenIncident] = {}
    drain = 1.0 / config.endurance_s
    last = pending[-1].opened_s if pending else 0.0
    stop = end_s if end_s is not None else last + 4 * 3600.0
    t, k = 0.0, 0
    dt = config.decision_period_s
    while t <= stop:
        while k < len(pending) and pending[k].opened_s <= t:
            inc = pending[k]
            waiting[inc.incident_id] = OpenIncident(inc.incident_id, inc.grade, inc.position, inc.opened_s)
            k += 1
        for drone in fleet.values():
            _advance(drone, t, dt, config, drain, waiting, by_id, result)
        if waiting:
            candidates = _candidates(fleet, t, config, drain)
            started = clock() if clock else 0.0
            decisions = decide(policy, candidates, list(waiting.values()), assignment, t,
                               travel_time_s=lambda d, i: travel_time_s(d.position, i.position))
            if clock:
                result.decision_ms.append((clock() - started) * 1e3)
            for _vehicle, old_incident, _new in decisions.preempt:
                result.preempted += 1
                old = by_id[old_incident]
                waiting[old_incident] = OpenIncident(old.incident_id, old.grade, old.position, t)
            in_air = {d.vehicle_id: d.position for d in candidates if d.airborne}
            for vehicle_id, incident_id, _eta in decisions.assign:
                _start_mission(fleet[vehicle_id], waiting.pop(incident_id), by_id[incident_id], t, assignment,
                               config, drain, travel_time_s, result, in_air.get(vehicle_id))
            result.queued.update(waiting)
            result.decisions.extend(f"{t:8.0f} s {line}" for line in decisions.record)
        if k >= len(pending) and not waiting and all(d.flight is None for d in fleet.values()):
            break
        t += dt
    result.unattended = sorted(i for i in result.grades if i not in result.response_s)
    return result


def _candidates(fleet: dict, t: float, config: ReplayConfig, drain: float) -> list[DroneState]:
    """Docked drones fit to launch, drones flying home from a finished scene, and drones on a mission."""
    out = []
    for d in fleet.values():
        remaining = max(0.0, d.battery - config.battery_reserve) / drain
        common = dict(battery_fraction=d.battery, flight_time_remaining_s=remaining, home=d.spec.home)
        f = d.flight
        if f is None:
            if d.battery >= config.min_launch_battery:
                out.append(DroneState(d.spec.vehicle_id, d.spec.base_id, d.spec.home, available=True, **common))
        elif f.relief_needed or f.relief_requested:
            continue                                   # on its reserve: it must come home
        elif f.leave_s <= t < f.keyframes[-2][0]:
            out.append(DroneState(d.spec.vehicle_id, d.spec.base_id, f.position(t), available=True,
                                  in_flight=True, **common))
        elif t < f.leave_s:
            out.append(DroneState(d.spec.vehicle_id, d.spec.base_id, f.position(t), busy_with=f.incident_id,
                                  busy_grade=f.grade, **common))
    return out


def _start_mission(drone: _Drone, waiting: OpenIncident, incident: ReplayIncident, now: float,
                   a: AssignmentConfig, config: ReplayConfig, drain: float, travel_time_s, result: ReplayResult,
                   in_air_at: tuple[float, float] | None) -> None:
    home = drone.spec.home
    origin = home if in_air_at is None else in_air_at
    out = travel_time_s(origin, incident.position)
    back_cruise = travel_time_s(incident.position, home)
    launch = a.launch_s if in_air_at is None else 0.0
    arrive = now + launch + out
    # The bridge's reserve rule: it turns home when the flight time above the reserve no longer
    # covers the way home plus its margin.
    usable_s = max(0.0, drone.battery - config.battery_reserve) / drain
    turn_home_s = now + usable_s - back_cruise - a.landing_s - config.return_margin_s
    if turn_home_s < arrive:
        turned = max(now, turn_home_s)
        frac = min(1.0, max(0.0, (turned - now - launch) / out)) if out > 0 else 1.0
        at_turn = (origin[0] + frac * (incident.position[0] - origin[0]),
                   origin[1] + frac * (incident.position[1] - origin[1]))
        home_at = turned + travel_time_s(at_turn, home)
        keyframes = [(now, origin), (now + launch, origin), (max(turned, now + launch) + 1e-6, at_turn),
                     (home_at + 2e-6, home), (home_at + a.landing_s + 3e-6, home)]
        flight = _Flight(incident.incident_id, incident.grade, now, math.inf, turned, keyframes[-1][0], keyframes,
                         relief_needed=True)
    else:
        leave = min(arrive + config.on_scene_s, turn_home_s)
        keyframes = [(now, origin), (now + launch, origin), (arrive + 1e-6, incident.position),
                     (leave + 2e-6, incident.position), (leave + back_cruise + 3e-6, home),
                     (leave + back_cruise + a.landing_s + 4e-6, home)]
        flight = _Flight(incident.incident_id, incident.grade, now, arrive, leave, keyframes[-1][0], keyframes,
                         relief_needed=leave < arrive + config.on_scene_s)
    if drone.flight is not None:                # retasked in the air: the flight goes on
        result.flight_hours += (now - drone.flight.start_s) / 3600.0
        result.retasked_in_flight += 1
    else:
        result.flights += 1
    drone.flight, drone.battery_at_start = flight, drone.battery
    result.missions += 1
    if waiting.needs_relief_for:
        result.relief_flights += 1


def _advance(drone: _Drone, t: float, dt: float, config: ReplayConfig, drain: float, waiting: dict,
             by_id: dict, result: ReplayResult) -> None:
    f = drone.flight
    if f is None:
        drone.battery = min(1.0, drone.battery + config.charge_per_s * dt)
        return
    drone.battery = drone.battery_at_start - (min(t, f.landed_s) - f.start_s) * drain
    if f.on_scene_s <= t and f.incident_id not in result.response_s:
        result.response_s[f.incident_id] = f.on_scene_s - by_id[f.incident_id].opened_s
    if f.relief_needed and not f.relief_requested and t >= f.leave_s - config.relief_lead_s:
        f.relief_requested = True
        inc = by_id[f.incident_id]
        if f.incident_id not in waiting:
            waiting[f.incident_id] = OpenIncident(inc.incident_id, inc.grade, inc.position, t,
                                                  needs_relief_for=drone.spec.vehicle_id)
    if t >= f.landed_s:
        result.flight_hours += (f.landed_s - f.start_s) / 3600.0
        drone.flight = None

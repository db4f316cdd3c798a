"""The soak's plan and its verdict: which fault strikes when and where, and what an hour under faults lost.

`dfr_bringup.soak` runs the graph, watches it and injects; this module decides and scores,
without ROS, so that both are tested directly. Each fault is one the reliability suite
proves alone (tests/test_graph_faults.py, test_end_to_end.py); the soak strikes them in
turn, on whatever the fleet is doing at the time, for an hour of sim time.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from dfr_common.mission import Outcome, Phase

# Processes killed (SIGKILL, as a crash) and started again at once, as a supervisor would.
KILL_INTAKE, KILL_DISPATCH, KILL_BRIDGE = "kill_intake", "kill_dispatch", "kill_bridge"
# Simulator faults (dfr_sim.faults), switched on for a while on a drone chosen when the fault is due.
LINK_LOSS, REFUSE_OFFBOARD, GPS_LOSS, BATTERY_DRAIN = "link_loss", "refuse_offboard", "gps_loss", "battery_drain"
# The order the faults come round in; the first comes while the scenario's first drone is on scene.
FAULT_KINDS = (BATTERY_DRAIN, KILL_DISPATCH, LINK_LOSS, KILL_BRIDGE, GPS_LOSS, KILL_INTAKE, REFUSE_OFFBOARD)

PROCESS_OF = {KILL_INTAKE: "/dfr/intake", KILL_DISPATCH: "/dfr/dispatch"}

FLYING = (Phase.TRANSIT.value, Phase.ON_SCENE.value, Phase.FOLLOW.value)
# Which drones each fault prefers, best first: the fault waits for one of them.
WANTED_PHASES = {
    KILL_BRIDGE: ((Phase.TRANSIT.value,), FLYING),
    LINK_LOSS: ((Phase.TRANSIT.value,), FLYING),
    GPS_LOSS: ((Phase.TRANSIT.value,), FLYING),
    BATTERY_DRAIN: ((Phase.FOLLOW.value,), (Phase.ON_SCENE.value,)),   # mid-chase, or on scene: a relief takes over
    REFUSE_OFFBOARD: ((Phase.IDLE.value,),),        # the next mission it is sent is refused
}


@dataclass(frozen=True)
class FaultTiming:
    """How long each simulator fault lasts (sim s); a drained battery lasts until its drone has landed."""
    link_loss_s: float = 20.0          # past MAVROS's 10 s timeout and PX4's data-link failsafe
    gps_loss_s: float = 30.0
    refuse_offboard_s: float = 120.0
    battery_drain_multiplier: float = 25.0


@dataclass(frozen=True)
class PlannedFault:
    at_s: float           # sim seconds after the scenario's start
    kind: str
    give_up_s: float      # no drone fit for it by then: skipped, and said so


@dataclass(frozen=True)
class DroneSeen:
    """A drone as its bridge's last status shows it."""
    vehicle_id: str
    phase: int
    armed: bool
    incident_id: str = ""
    mission_id: str = ""
    mode: str = ""                  # the autopilot's mode; empty while the bridge hears no autopilot


def fault_plan(calls_end_s: float, period_s: float, first_s: float, seed: int,
               kinds: tuple[str, ...] = FAULT_KINDS) -> list[PlannedFault]:
    """One fault every period_s (jittered by up to a quarter of it, seeded), kinds in turn, from first_s
    until the last call; each waits up to half a period for a drone fit for it, a battery drain until the
    last call (it is about a relief taking over a scene, so it waits for a drone on one)."""
    if period_s <= 0 or not kinds:
        raise ValueError("the fault period must be positive and at least one kind given")
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(FAULT_KINDS)}")
    rng = np.random.default_rng(seed)
    plan, n = [], 0
    while True:
        at = first_s + n * period_s + (0.0 if n == 0 else float(rng.uniform(-0.25, 0.25)) * period_s)
        if at > calls_end_s:
            return plan
        kind = kinds[n % len(kinds)]
        give_up = calls_end_s if kind == BATTERY_DRAIN else at + period_s / 2.0
        plan.append(PlannedFault(round(at, 1), kind, round(max(give_up, at), 1)))
        n += 1


def choose_drone(kind: str, drones: list[DroneSeen], exclude: frozenset[str] = frozenset()) -> str | None:
    """The drone the fault strikes: the first in fleet order in the most wanted phase; None if none yet."""
    for phases in WANTED_PHASES.get(kind, ()):
        for drone in drones:
            if drone.vehicle_id in exclude:
                continue
            docked = drone.phase == Phase.IDLE.value and not drone.armed
            if (docked if phases == (Phase.IDLE.value,) else drone.armed and drone.phase in phases):
                return drone.vehicle_id
    return None


# --------------------------------------------------------------------------------------------- the verdict
@dataclass(frozen=True)
class JournalIncident:
    incident_id: str
    cad_refs: tuple[str, ...]
    drone_eligible: bool
    open: bool


def memory_growth(samples: list[tuple[float, float, int]], warm_up_s: float) -> dict:
    """samples: (sim s, RSS MiB, pid) of one node. Growth over its last process's life, from warm_up_s
    after that process was first seen, and per sim hour: a leak shows as steady growth; a process
    started again grows as it starts, which is not counted."""
    if not samples:
        return {"samples": 0}
    last_pid = samples[-1][2]
    life = [s for s in samples if s[2] == last_pid]
    settled = [s for s in life if s[0] >= life[0][0] + warm_up_s] or life[-1:]
    first, last = settled[0], settled[-1]
    span_h = (last[0] - first[0]) / 3600.0
    growth = last[1] - first[1]
    return {"samples": len(samples), "processes": len({s[2] for s in samples}), "rss_start_mib": round(first[1], 1),
            "rss_end_mib": round(last[1], 1), "rss_peak_mib": round(max(s[1] for s in samples), 1),
            "growth_mib": round(growth, 1), "measured_over_sim_s": round(last[0] - first[0], 1),
            "growth_mib_per_sim_hour": round(growth / span_h, 1) if span_h > 0.05 else None}


def flights_without_an_end(audit: list[dict]) -> list[str]:
    """Launches (by mission id) whose flight has no end on the record: a flight runs from its launch to its
    drone's next mission_result that is not retasked (the drone flew on), as the transparency report counts."""
    flying: dict[str, str] = {}
    unended = []
    for entry in audit:
        if entry["kind"] == "launch":
            if entry["vehicle_id"] in flying:
                unended.append(flying[entry["vehicle_id"]])
            flying[entry["vehicle_id"]] = entry["mission_id"]
        elif entry["kind"] == "mission_result" and entry["detail"].get("outcome") != Outcome.RETASKED.name.lower():
            flying.pop(entry["vehicle_id"], None)
    return unended + list(flying.values())


def soak_report(scenario_calls: list[str], journal: list[JournalIncident], metrics: dict, audit: list[dict],
                faults: list[dict], memory: dict[str, list[tuple[float, float, int]]], warm_up_s: float) -> dict:
    """What the soak lost and why; `passed` only when no call and no incident was lost and nothing flew
    without an incident.

    scenario_calls: the CAD references the scenario made; journal: intake's journal read back;
    metrics: the run recorder's metrics.json; audit: the audit log's entries as dicts (kind, vehicle_id,
    mission_id, incident_id, detail); faults: what soak.py injected; memory: RSS samples per node."""
    in_journal = {ref for incident in journal for ref in incident.cad_refs}
    calls_lost = sorted(set(scenario_calls) - in_journal)
    recorded = {i["incident_id"]: i for i in metrics.get("per_incident", [])}
    incidents_lost = []
    for incident in journal:
        entry = recorded.get(incident.incident_id)
        if entry is None:
            incidents_lost.append({"incident_id": incident.incident_id, "why": "journaled, never published"})
        elif incident.drone_eligible and entry.get("response_time_s") is None and incident.open:
            incidents_lost.append({"incident_id": incident.incident_id, "why": "eligible and open, never attended"})

    results = {e["mission_id"]: e for e in audit if e["kind"] == "mission_result"}
    launches = [e for e in audit if e["kind"] == "launch"]
    aborted = [e for e in results.values()
               if e["detail"].get("outcome") not in (Outcome.COMPLETED.name.lower(), Outcome.RETASKED.name.lower())]
    why = Counter(e["detail"].get("outcome", "?") for e in aborted)
    unended = flights_without_an_end(audit)
    nodes = {name: memory_growth(samples, warm_up_s) for name, samples in sorted(memory.items())}
    growing = [n for n, m in nodes.items() if (m.get("growth_mib_per_sim_hour") or 0.0) > 50.0]
    report = {
        "passed": not calls_lost and not incidents_lost and metrics.get("flights_without_incident", 0) == 0
        and bool(metrics.get("complete")),
        "complete": bool(metrics.get("complete")),
        "sim_duration_s": metrics.get("sim_duration_s"), "wall_duration_s": metrics.get("wall_duration_s"),
        "sim_real_time_factor": metrics.get("sim_real_time_factor"),
        "calls_made": len(scenario_calls), "calls_lost": calls_lost,
        "incidents": len(journal), "incidents_eligible": sum(i.drone_eligible for i in journal),
        "incidents_attended": metrics.get("incidents_attended"), "incidents_lost": incidents_lost,
        "flights": len(launches), "flights_without_incident": metrics.get("flights_without_incident"),
        "missions_aborted": len(aborted), "missions_aborted_by_outcome": dict(sorted(why.items())),
        "missions_aborted_detail": [{"mission_id": e["mission_id"], "outcome": e["detail"].get("outcome"),
                                     "reason": e["detail"].get("reason", "")} for e in aborted],
        "flights_without_a_recorded_end": unended,
        "faults": faults,
        "faults_by_kind": dict(sorted(Counter(f"{f['kind']}: {f['result']}" for f in faults).items())),
        "memory": nodes, "memory_growing_nodes": growing,
        "response_time_s": metrics.get("response_time_s"),
    }
    return report


def summary_lines(report: dict) -> list[str]:
    """The verdict in a few lines for the terminal."""
    def seconds(value):
        return "-" if value is None or not math.isfinite(value) else f"{value:.0f} s"
    rt = report.get("response_time_s") or {}
    lines = [f"soak {'PASSED' if report['passed'] else 'FAILED'}: {seconds(report['sim_duration_s'])} of sim time "
             f"in {seconds(report['wall_duration_s'])} ({(report['sim_real_time_factor'] or 0):.1f} x)",
             f"calls {report['calls_made']}, lost {len(report['calls_lost'])}; incidents {report['incidents']} "
             f"({report['incidents_eligible']} eligible, {report['incidents_attended']} attended), "
             f"lost {len(report['incidents_lost'])}; response p50 {seconds(rt.get('p50'))}, "
             f"max {seconds(rt.get('max'))}",
             f"flights {report['flights']}, without an incident {report['flights_without_incident']}, "
             f"without a recorded end {len(report['flights_without_a_recorded_end'])}; missions aborted "
             f"{report['missions_aborted']} {report['missions_aborted_by_outcome']}",
             "faults: " + "; ".join(f"{k} x{n}" for k, n in report["faults_by_kind"].items()),
             f"drones sent home by the stand-in pilot: {len(report.get('pilot_orders', []))}"]
    for name, m in report["memory"].items():
        if m.get("samples"):
            lines.append(f"  {name}: RSS {m['rss_start_mib']} -> {m['rss_end_mib']} MiB "
                         f"({m['growth_mib']:+.1f} MiB over {m['measured_over_sim_s']:.0f} sim s"
                         + (f", {m['processes']} processes" if m["processes"] > 1 else "") + ")")
    return lines

"""What the audit node writes: entries from what the graph publishes, one per decision.

Plain Python: the node hands over plain values from its messages. Each method is
idempotent for a message seen twice (latched topics repeat their last value), so the
record has one entry per decision, not per message.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from dfr_audit.audit_log import AuditLog, EntryKind
from dfr_common.mission import Outcome, Phase

# The bridge's VehicleStatus.detail when a mission ends: "mission <id> ended: <outcome>: <reason>".
_ENDED = re.compile(r"^mission (?P<mission>\S+) ended: (?P<outcome>[a-z_]+): ?(?P<reason>.*)$", re.S)
# A bridge retasked in flight says so in the new mission's status; the old mission's own end goes only to
# dispatch, in the action's result.
_TOOK_OVER = re.compile(r"^mission (?P<mission>\S+) for incident \S+ took over from (?P<previous>\S+) in flight$")
_OUTCOMES = {o.name.lower() for o in Outcome}


@dataclass(frozen=True)
class CallSeen:
    cad_ref: str
    grade: str
    category: str
    call_time_s: float


@dataclass(frozen=True)
class IncidentSeen:
    incident_id: str
    revision: int
    open: bool
    grade: str
    category: str
    drone_eligible: bool
    policy_reason: str
    calls: tuple[CallSeen, ...]
    close_reason: str = ""


@dataclass(frozen=True)
class StatusSeen:
    vehicle_id: str
    mission_id: str
    incident_id: str
    phase: int                      # dfr_common.mission.Phase value
    detail: str
    flight_kind: str = "incident"   # the mission's; empty is an incident flight
    armed: bool = True
    connected: bool = True          # the bridge hears the autopilot: armed means what it says


@dataclass(frozen=True)
class RuleDecisionSeen:
    """A flight rule's decision as dispatch or a bridge published it (FlightRuleDecision)."""

    decided_by: str
    vehicle_id: str
    mission_id: str
    incident_id: str
    flight_kind: str
    allowed: bool
    rule: str
    reason: str
    stamp_s: float


@dataclass(frozen=True)
class AlternativeSeen:
    vehicle_id: str
    eta_s: float | None          # None: it could not fly the mission
    reason: str


@dataclass(frozen=True)
class AssignmentSeen:
    """Dispatch's choice of a drone for an incident (AssignmentDecision)."""

    incident_id: str
    vehicle_id: str
    mission_id: str
    policy: str
    reason: str
    eta_s: float
    from_the_air: bool
    alternatives: tuple[AlternativeSeen, ...]


@dataclass
class _Vehicle:
    mission_id: str = ""
    incident_id: str = ""
    phase: int = Phase.IDLE.value
    reached_scene: bool = False
    launched: bool = False          # the flight the current mission flies took off (under it, or one retasked)
    ended: set[str] = field(default_factory=set)
    previous: tuple[str, str, bool] = ("", "", False)   # the mission before: (mission, incident, reached scene)


class AuditRecorder:
    def __init__(self, log: AuditLog):
        self.log = log
        self._calls: dict[str, set[str]] = {}          # incident -> cad refs recorded
        self._open: dict[str, bool] = {}               # incident -> open, as last recorded
        self._eligible: dict[str, bool] = {}
        self._vehicles: dict[str, _Vehicle] = {}
        self._targets: dict[tuple[str, str], tuple[int, str]] = {}   # (vehicle, mission) -> (track, chosen by)
        self._decisions: set[RuleDecisionSeen] = set()
        self._authorised: dict[str, str] = {}          # maintenance or test mission -> the rules' reason
        self._assigned: set[str] = set()                # missions whose assignment is recorded

    # ---------------------------------------------------------------- incidents
    def on_incident(self, now_s: float, incident: IncidentSeen) -> None:
        iid = incident.incident_id
        known = self._calls.setdefault(iid, set())
        for call in incident.calls:
            if call.cad_ref not in known:
                known.add(call.cad_ref)
                self.log.append(EntryKind.CALL_RECEIVED, ros_time_s=now_s, incident_id=iid, detail={
                    "cad_ref": call.cad_ref, "grade": call.grade, "category": call.category,
                    "call_time_s": float(call.call_time_s)})
        if iid not in self._open:
            self.log.append(EntryKind.INCIDENT_OPENED, ros_time_s=now_s, incident_id=iid,
                            detail={"grade": incident.grade, "category": incident.category})
            self._open[iid] = True
        if self._eligible.get(iid) != incident.drone_eligible:
            self._eligible[iid] = incident.drone_eligible
            self.log.append(EntryKind.POLICY_DECISION, ros_time_s=now_s, incident_id=iid, detail={
                "accepted": bool(incident.drone_eligible), "reason": incident.policy_reason or "(no reason given)",
                "grade": incident.grade, "category": incident.category})
        if not incident.open and self._open.get(iid):
            self._open[iid] = False
            self.log.append(EntryKind.INCIDENT_CLOSED, ros_time_s=now_s, incident_id=iid,
                            detail={"reason": incident.close_reason or "closed by intake"})

    # ----------------------------------------------------------------- vehicles
    def on_status(self, now_s: float, status: StatusSeen) -> None:
        v = self._vehicles.setdefault(status.vehicle_id, _Vehicle())
        if status.mission_id and status.mission_id != v.mission_id:
            v.previous = (v.mission_id, v.incident_id, v.reached_scene)
            v.mission_id, v.incident_id = status.mission_id, status.incident_id
            # Retasked in the air, the new mission flies on the flight the old one launched: should its bridge
            # stop mid-flight, that flight still ends on the record when the drone is down (below).
            v.reached_scene, v.launched = False, v.launched and status.armed
            v.phase = Phase.IDLE.value
        if status.mission_id and status.phase != v.phase:
            phase = Phase(status.phase)
            if phase == Phase.TAKEOFF and not v.launched:
                v.launched = True
                self._launch(now_s, status)
            if phase in (Phase.ON_SCENE, Phase.FOLLOW):
                v.reached_scene = True
            if phase != Phase.IDLE:
                self.log.append(EntryKind.PHASE_CHANGE, ros_time_s=now_s, incident_id=status.incident_id,
                                vehicle_id=status.vehicle_id, mission_id=status.mission_id,
                                detail={"phase": phase.name.lower()})
            v.phase = status.phase
        took_over = _TOOK_OVER.match(status.detail or "")
        if (took_over and took_over["mission"] == v.mission_id and took_over["previous"] == v.previous[0]
                and v.previous[0] not in v.ended):
            self._mission_ended(now_s, status.vehicle_id, v, *v.previous, "retasked",
                                f"retasked in flight to mission {v.mission_id}")
        ended = _ENDED.match(status.detail or "")
        if ended and ended["mission"] not in v.ended:
            # A retasked mission's end can come with the status of the mission it was retasked to.
            if ended["mission"] == v.mission_id:
                self._mission_ended(now_s, status.vehicle_id, v, v.mission_id, v.incident_id, v.reached_scene,
                                    ended["outcome"], ended["reason"])
            elif ended["mission"] == v.previous[0]:
                self._mission_ended(now_s, status.vehicle_id, v, *v.previous, ended["outcome"], ended["reason"])
        if (status.connected and not status.armed and not status.mission_id and v.launched
                and v.mission_id and v.mission_id not in v.ended):
            # Down and disarmed under a bridge that knows no mission: the one that flew it stopped mid-flight
            # (it was restarted), and the autopilot's own failsafe brought the drone down. The flight ends here.
            self._mission_ended(now_s, status.vehicle_id, v, v.mission_id, v.incident_id, v.reached_scene,
                                "autopilot_failsafe", "its bridge stopped mid-flight; the drone landed under the "
                                "autopilot's own failsafe, with no mission")

    def _mission_ended(self, now_s: float, vehicle_id: str, v: _Vehicle, mission_id: str, incident_id: str,
                       reached_scene: bool, outcome: str, reason: str) -> None:
        v.ended.add(mission_id)
        outcome = outcome if outcome in _OUTCOMES else "failed"
        if outcome == "pilot_takeover":
            self.log.append(EntryKind.PILOT_TAKEOVER, ros_time_s=now_s, vehicle_id=vehicle_id, mission_id=mission_id,
                            incident_id=incident_id, detail={"reason": reason or outcome})
        if outcome == "autopilot_failsafe":
            self.log.append(EntryKind.FAILSAFE, ros_time_s=now_s, vehicle_id=vehicle_id, mission_id=mission_id,
                            incident_id=incident_id, detail={"reason": reason or outcome})
        self.log.append(EntryKind.MISSION_RESULT, ros_time_s=now_s, vehicle_id=vehicle_id, mission_id=mission_id,
                        incident_id=incident_id,
                        detail={"outcome": outcome, "reason": reason, "reached_scene": reached_scene})

    def _launch(self, now_s: float, status: StatusSeen) -> None:
        kind = status.flight_kind or "incident"
        if kind != "incident":
            authorization = self._authorised.get(status.mission_id, f"no {kind} flight authorisation on the record")
        elif self._eligible.get(status.incident_id) and self._open.get(status.incident_id):
            authorization = f"incident {status.incident_id} open and eligible"
        else:
            authorization = f"incident {status.incident_id} not known open and eligible to the record"
        self.log.append(EntryKind.LAUNCH, ros_time_s=now_s, incident_id=status.incident_id,
                        vehicle_id=status.vehicle_id, mission_id=status.mission_id,
                        detail={"flight_kind": kind, "authorization": authorization})

    # ------------------------------------------------------------ flight rules
    def on_rule_decision(self, now_s: float, decision: RuleDecisionSeen) -> None:
        """A refusal (or a drone sent home) as rule_violation_refused; a maintenance or test flight allowed as
        maintenance_flight, before its launch. Incident flights allowed are recorded by their launch."""
        if decision in self._decisions:
            return
        self._decisions.add(decision)
        ids = dict(incident_id=decision.incident_id, vehicle_id=decision.vehicle_id,
                   mission_id=decision.mission_id, actor=decision.decided_by)
        kind = decision.flight_kind or "incident"
        if not decision.allowed:
            self.log.append(EntryKind.RULE_VIOLATION_REFUSED, ros_time_s=now_s, **ids, detail={
                "rule": decision.rule, "reason": decision.reason or decision.rule, "flight_kind": kind})
        elif kind != "incident" and decision.mission_id not in self._authorised:
            self._authorised[decision.mission_id] = decision.reason or f"{kind} flight allowed by the rules"
            self.log.append(EntryKind.MAINTENANCE_FLIGHT, ros_time_s=now_s, **ids, detail={
                "flight_kind": kind, "reason": self._authorised[decision.mission_id]})

    # -------------------------------------------------------------- assignments
    def on_assignment(self, now_s: float, assignment: AssignmentSeen) -> None:
        """One entry per mission: the drone chosen, why, and every other drone weighed and why not."""
        if assignment.mission_id in self._assigned:
            return
        self._assigned.add(assignment.mission_id)
        self.log.append(EntryKind.ASSIGNMENT, ros_time_s=now_s, incident_id=assignment.incident_id,
                        vehicle_id=assignment.vehicle_id, mission_id=assignment.mission_id, actor=assignment.policy,
                        detail={"reason": assignment.reason or f"chosen by {assignment.policy}",
                                "eta_s": assignment.eta_s, "from_the_air": assignment.from_the_air,
                                "alternatives": [{"vehicle_id": a.vehicle_id, "eta_s": a.eta_s,
                                                  "reason": a.reason or "not chosen"}
                                                 for a in assignment.alternatives]})

    # ------------------------------------------------------------------ targets
    def on_target(self, now_s: float, vehicle_id: str, mission_id: str, incident_id: str, track_id: int,
                  selected_by: str, reason: str) -> None:
        if not (mission_id and incident_id and track_id and selected_by):
            return
        key = (vehicle_id, mission_id)
        if self._targets.get(key) == (track_id, selected_by):
            return
        self._targets[key] = (track_id, selected_by)
        self.log.append(EntryKind.TARGET_SELECTED, ros_time_s=now_s, incident_id=incident_id,
                        vehicle_id=vehicle_id, mission_id=mission_id, actor=selected_by,
                        detail={"target_id": str(track_id), "reason": reason or selected_by})

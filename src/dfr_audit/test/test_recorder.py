"""The audit recorder: one entry per decision from what the graph publishes, repeats ignored."""
from __future__ import annotations

from dfr_audit.audit_log import AuditLog, EntryKind
from dfr_audit.recorder import AuditRecorder, CallSeen, IncidentSeen, RuleDecisionSeen, StatusSeen
from dfr_audit.transparency_report import weekly_statistics
from dfr_audit.verify import verify
from dfr_common.mission import Phase


def incident(revision=1, open_=True, calls=("CAD-1",), eligible=True):
    return IncidentSeen("INC-1", revision, open_, "I", "dangerous_driving", eligible,
                        "grade I dangerous_driving: eligible for a drone",
                        tuple(CallSeen(ref, "I", "dangerous_driving", 10.0 + k) for k, ref in enumerate(calls)),
                        "" if open_ else "suspect detained")


def status(phase, mission="M1", detail=""):
    return StatusSeen("uav1", mission, "INC-1" if mission else "", phase.value, detail)


def test_a_mission_is_recorded_once_from_call_to_result_and_verifies(tmp_path):
    path = tmp_path / "audit.sqlite"
    log = AuditLog(path)
    rec = AuditRecorder(log)
    rec.on_incident(10.0, incident())
    rec.on_incident(10.5, incident())                                   # the latched repeat: nothing new
    rec.on_incident(40.0, incident(revision=2, calls=("CAD-1", "CAD-2")))
    for t, phase in enumerate((Phase.PREFLIGHT, Phase.TAKEOFF, Phase.TRANSIT, Phase.ON_SCENE, Phase.FOLLOW,
                               Phase.RETURN, Phase.LAND)):
        rec.on_status(20.0 + t, status(phase))
        rec.on_status(20.2 + t, status(phase))                          # twice a second: one entry
    rec.on_target(24.0, "uav1", "M1", "INC-1", 7, "incident", "the fastest two-wheeler")
    rec.on_target(24.2, "uav1", "M1", "INC-1", 7, "incident", "the fastest two-wheeler")
    rec.on_status(30.0, status(Phase.IDLE, mission="", detail="mission M1 ended: completed: landed on its dock"))
    rec.on_status(30.5, status(Phase.IDLE, mission="", detail="mission M1 ended: completed: landed on its dock"))
    rec.on_incident(60.0, incident(revision=3, open_=False, calls=("CAD-1", "CAD-2")))
    kinds = [e.kind for e in log.entries()]
    assert kinds == [EntryKind.CALL_RECEIVED, EntryKind.INCIDENT_OPENED, EntryKind.POLICY_DECISION,
                     EntryKind.CALL_RECEIVED,
                     EntryKind.PHASE_CHANGE, EntryKind.LAUNCH, EntryKind.PHASE_CHANGE, EntryKind.PHASE_CHANGE,
                     EntryKind.PHASE_CHANGE, EntryKind.PHASE_CHANGE, EntryKind.PHASE_CHANGE, EntryKind.PHASE_CHANGE,
                     EntryKind.TARGET_SELECTED, EntryKind.MISSION_RESULT, EntryKind.INCIDENT_CLOSED]
    result = log.entries(kind=EntryKind.MISSION_RESULT)[0]
    assert result.detail == {"outcome": "completed", "reason": "landed on its dock", "reached_scene": True}
    launch = log.entries(kind=EntryKind.LAUNCH)[0]
    assert launch.detail["authorization"] == "incident INC-1 open and eligible"
    log.close()
    assert verify(path).ok
    stats = weekly_statistics(path)
    assert stats["flights"]["total"] == 1 and stats["flights"]["outside_incident"] == 0
    assert stats["flights"]["unfinished"] == 0


def test_a_launch_for_an_incident_the_record_does_not_hold_open_is_marked(tmp_path):
    log = AuditLog(tmp_path / "audit.sqlite")
    rec = AuditRecorder(log)
    rec.on_status(1.0, status(Phase.PREFLIGHT))
    rec.on_status(2.0, status(Phase.TAKEOFF))
    launch = log.entries(kind=EntryKind.LAUNCH)[0]
    assert "not known open and eligible" in launch.detail["authorization"]
    log.close()
    assert weekly_statistics(tmp_path / "audit.sqlite")["flights"]["outside_incident"] == 1


def test_a_pilot_takeover_and_a_failsafe_are_recorded_with_their_reason(tmp_path):
    log = AuditLog(tmp_path / "audit.sqlite")
    rec = AuditRecorder(log)
    rec.on_status(1.0, status(Phase.TRANSIT))
    rec.on_status(2.0, status(Phase.IDLE, mission="", detail="mission M1 ended: pilot_takeover: the autopilot "
                                                             "switched to POSCTL"))
    rec.on_status(3.0, status(Phase.TRANSIT, mission="M2"))
    rec.on_status(4.0, StatusSeen("uav1", "", "", Phase.IDLE.value,
                                  "mission M2 ended: autopilot_failsafe: battery failsafe"))
    kinds = [e.kind for e in log.entries()]
    assert EntryKind.PILOT_TAKEOVER in kinds and EntryKind.FAILSAFE in kinds
    outcomes = [e.detail["outcome"] for e in log.entries(kind=EntryKind.MISSION_RESULT)]
    assert outcomes == ["pilot_takeover", "autopilot_failsafe"]


def decision(allowed=False, rule="incident_closed", mission="M9", incident_id="INC-1", kind="incident", stamp=5.0):
    return RuleDecisionSeen("/uav1/bridge", "uav1", mission, incident_id, kind, allowed, rule,
                            f"{rule}: as the bridge knows it", stamp)


def test_a_rule_refusal_is_recorded_once_with_its_rule_reason_and_who_refused(tmp_path):
    log = AuditLog(tmp_path / "audit.sqlite")
    rec = AuditRecorder(log)
    rec.on_rule_decision(5.0, decision())
    rec.on_rule_decision(6.0, decision())                 # the latched repeat, after an audit restart say
    rec.on_rule_decision(7.0, decision(rule="unknown_incident", stamp=7.0))
    refused = log.entries(kind=EntryKind.RULE_VIOLATION_REFUSED)
    assert [e.detail["rule"] for e in refused] == ["incident_closed", "unknown_incident"]
    assert refused[0].actor == "/uav1/bridge" and refused[0].vehicle_id == "uav1"
    assert refused[0].mission_id == "M9" and refused[0].incident_id == "INC-1"
    assert refused[0].detail["reason"] == "incident_closed: as the bridge knows it"
    assert refused[0].detail["flight_kind"] == "incident"
    assert not log.entries(kind=EntryKind.LAUNCH)


def test_an_allowed_maintenance_flight_is_authorised_before_its_launch_and_not_counted_outside(tmp_path):
    path = tmp_path / "audit.sqlite"
    log = AuditLog(path)
    rec = AuditRecorder(log)
    rec.on_rule_decision(1.0, decision(True, "allowed", "MT-1", "", "maintenance"))
    for t, phase in enumerate((Phase.PREFLIGHT, Phase.TAKEOFF, Phase.TRANSIT, Phase.RETURN, Phase.LAND)):
        rec.on_status(2.0 + t, StatusSeen("uav1", "MT-1", "", phase.value, "", "maintenance"))
    rec.on_status(9.0, StatusSeen("uav1", "", "", Phase.IDLE.value, "mission MT-1 ended: completed: landed", ""))
    authorised, = log.entries(kind=EntryKind.MAINTENANCE_FLIGHT)
    launch, = log.entries(kind=EntryKind.LAUNCH)
    assert authorised.seq < launch.seq and authorised.actor == "/uav1/bridge"
    assert launch.detail == {"flight_kind": "maintenance", "authorization": "allowed: as the bridge knows it"}
    log.close()
    flights = weekly_statistics(path)["flights"]
    assert flights["maintenance"] == 1 and flights["outside_incident"] == 0


def test_a_maintenance_launch_with_no_authorisation_on_the_record_is_counted_outside(tmp_path):
    path = tmp_path / "audit.sqlite"
    log = AuditLog(path)
    rec = AuditRecorder(log)
    rec.on_status(1.0, StatusSeen("uav1", "MT-2", "", Phase.TAKEOFF.value, "", "maintenance"))
    assert "no maintenance flight authorisation" in log.entries(kind=EntryKind.LAUNCH)[0].detail["authorization"]
    log.close()
    assert weekly_statistics(path)["flights"]["outside_incident"] == 1


def test_an_assignment_is_recorded_once_with_the_drones_not_chosen_and_why(tmp_path):
    from dfr_audit.recorder import AlternativeSeen, AssignmentSeen
    log = AuditLog(tmp_path / "audit.sqlite")
    recorder = AuditRecorder(log)
    seen = AssignmentSeen("INC-1", "uav2", "M1", "planner", "INC-1 (grade I): uav2; ETA 74 s", 74.0, False,
                          (AlternativeSeen("uav1", 118.0, "ETA 118 s, cost 118 against 74"),
                           AlternativeSeen("uav3", None, "needs 31 min of flight, has 12 min")))
    recorder.on_assignment(10.0, seen)
    recorder.on_assignment(10.5, seen)          # the latched topic repeats it: one entry
    (entry,) = log.entries(kind=EntryKind.ASSIGNMENT)
    assert (entry.incident_id, entry.vehicle_id, entry.mission_id, entry.actor) == ("INC-1", "uav2", "M1", "planner")
    assert entry.detail["eta_s"] == 74.0 and "uav2" in entry.detail["reason"]
    assert entry.detail["alternatives"] == [
        {"vehicle_id": "uav1", "eta_s": 118.0, "reason": "ETA 118 s, cost 118 against 74"},
        {"vehicle_id": "uav3", "eta_s": None, "reason": "needs 31 min of flight, has 12 min"}]
    log.close()
    assert verify(tmp_path / "audit.sqlite").ok


def test_a_retasked_missions_end_that_comes_with_the_next_missions_status_is_recorded(tmp_path):
    log = AuditLog(tmp_path / "audit.sqlite")
    rec = AuditRecorder(log)
    rec.on_incident(1.0, incident())
    for t, phase in enumerate((Phase.TAKEOFF, Phase.TRANSIT, Phase.ON_SCENE, Phase.RETURN)):
        rec.on_status(2.0 + t, status(phase))
    rec.on_status(10.0, status(Phase.TRANSIT, mission="M2",
                               detail="mission M1 ended: retasked: retasked after leaving the scene to mission M2"))
    rec.on_status(20.0, StatusSeen("uav1", "", "", Phase.IDLE.value, "mission M2 ended: completed: landed", "",
                                   False))
    results = [(e.mission_id, e.detail["outcome"], e.detail["reached_scene"])
               for e in log.entries(kind=EntryKind.MISSION_RESULT)]
    assert results == [("M1", "retasked", True), ("M2", "completed", False)]
    log.close()
    assert weekly_statistics(tmp_path / "audit.sqlite")["flights"]["unfinished"] == 0


def test_a_flight_retasked_in_the_air_whose_bridge_was_restarted_still_ends_on_the_record(tmp_path):
    """Seen in the soak: M1 took off, was retasked in flight to M2, and M2's bridge was killed; the flight
    had no end on the record."""
    log = AuditLog(tmp_path / "audit.sqlite")
    rec = AuditRecorder(log)
    rec.on_incident(1.0, incident())
    for t, phase in enumerate((Phase.TAKEOFF, Phase.TRANSIT, Phase.ON_SCENE, Phase.RETURN)):
        rec.on_status(2.0 + t, status(phase))
    # As the bridge says it: the new mission's status, and M1's end only in its action result.
    rec.on_status(10.0, status(Phase.TRANSIT, mission="M2", detail="mission M2 for incident INC-1 took over from "
                                                                  "M1 in flight"))
    rec.on_status(10.5, status(Phase.TRANSIT, mission="M2", detail="mission M2 for incident INC-1 took over from "
                                                                  "M1 in flight"))
    rec.on_status(40.0, StatusSeen("uav1", "", "", Phase.IDLE.value, "", "", True))        # a new bridge, flying
    rec.on_status(90.0, StatusSeen("uav1", "", "", Phase.IDLE.value, "", "", False))       # down, disarmed
    results = [(e.mission_id, e.detail["outcome"], e.detail["reason"])
               for e in log.entries(kind=EntryKind.MISSION_RESULT)]
    assert results[0] == ("M1", "retasked", "retasked in flight to mission M2")
    assert results[1][:2] == ("M2", "autopilot_failsafe") and len(results) == 2
    log.close()
    assert weekly_statistics(tmp_path / "audit.sqlite")["flights"]["unfinished"] == 0


def test_a_mission_that_starts_on_the_dock_after_a_flight_is_a_new_flight(tmp_path):
    log = AuditLog(tmp_path / "audit.sqlite")
    rec = AuditRecorder(log)
    rec.on_incident(1.0, incident())
    rec.on_status(2.0, status(Phase.TAKEOFF))
    rec.on_status(30.0, StatusSeen("uav1", "", "", Phase.IDLE.value, "mission M1 ended: completed: landed", "",
                                   False))
    rec.on_status(40.0, StatusSeen("uav1", "M2", "INC-1", Phase.PREFLIGHT.value, "", "incident", False))
    rec.on_status(41.0, StatusSeen("uav1", "M2", "INC-1", Phase.TAKEOFF.value, "", "incident", True))
    assert [e.mission_id for e in log.entries(kind=EntryKind.LAUNCH)] == ["M1", "M2"]
    log.close()


def test_a_flight_whose_bridge_was_restarted_ends_on_the_record_when_the_drone_is_down(tmp_path):
    """The new bridge knows no mission; the drone lands under PX4's own failsafe. Without this the flight
    would stay open on the record for ever."""
    log = AuditLog(tmp_path / "audit.sqlite")
    rec = AuditRecorder(log)
    rec.on_incident(1.0, incident())
    rec.on_status(2.0, status(Phase.TAKEOFF))
    rec.on_status(3.0, status(Phase.TRANSIT))
    rec.on_status(40.0, StatusSeen("uav1", "", "", Phase.IDLE.value, "", "", False, connected=False))   # just up
    rec.on_status(41.0, StatusSeen("uav1", "", "", Phase.IDLE.value, "", "", True))        # still flying
    assert not log.entries(kind=EntryKind.MISSION_RESULT)
    rec.on_status(90.0, StatusSeen("uav1", "", "", Phase.IDLE.value, "", "", False))       # down, disarmed
    rec.on_status(91.0, StatusSeen("uav1", "", "", Phase.IDLE.value, "", "", False))
    result, = log.entries(kind=EntryKind.MISSION_RESULT)
    assert result.mission_id == "M1" and result.detail["outcome"] == "autopilot_failsafe"
    assert "bridge stopped mid-flight" in result.detail["reason"]
    assert [e.kind for e in log.entries(kind=EntryKind.FAILSAFE)] == [EntryKind.FAILSAFE]
    log.close()
    assert weekly_statistics(tmp_path / "audit.sqlite")["flights"]["unfinished"] == 0

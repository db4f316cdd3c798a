"""Unit tests of dfr_audit.transparency_report: a synthetic week whose every number is known, written as the nodes
would write it, and the report's numbers, files and refusal of a log that does not verify."""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from dfr_audit.audit_log import OUTCOMES, AuditLog
from dfr_audit.transparency_report import ReportError, ReportOptions, main, weekly_statistics, write_report

WEEK_START = datetime(2025, 3, 3, tzinfo=timezone.utc)     # a Monday
W = WEEK_START.timestamp()                                 # ROS time is wall time on real airframes
DAY = 86400.0
SHA = "0" * 64


class Shift:
    """Writes the entries intake, dispatch, the bridge and retention would write."""

    def __init__(self, log: AuditLog):
        self.log = log

    def call(self, t: float, incident: str, cad_ref: str, grade: str, category: str, call_time: float):
        self.log.append("call_received", ros_time_s=t, incident_id=incident, actor="intake",
                        detail={"cad_ref": cad_ref, "grade": grade, "category": category, "call_time_s": call_time})

    def incident(self, t: float, incident: str, grade: str, category: str, accepted: bool):
        self.call(t, incident, f"CAD-{incident}", grade, category, call_time=t - 1.0)
        self.log.append("incident_opened", ros_time_s=t, incident_id=incident, detail={"grade": grade,
                                                                                       "category": category})
        self.log.append("policy_decision", ros_time_s=t, incident_id=incident,
                        detail={"accepted": accepted, "reason": "policy", "grade": grade, "category": category})

    def flight(self, incident: str, mission: str, vehicle: str, launch: float, on_scene: float | None = None,
               end: float | None = None, kind: str = "incident", outcome: str = "completed"):
        if kind == "incident" and incident:
            self.log.append("assignment", ros_time_s=launch - 2, incident_id=incident, vehicle_id=vehicle,
                            mission_id=mission, detail={"reason": "earliest", "eta_s": 60.0, "alternatives": []})
        self.log.append("launch", ros_time_s=launch, incident_id=incident, vehicle_id=vehicle, mission_id=mission,
                        detail={"flight_kind": kind, "authorization": "allowed"})
        self.phase(launch + 5, vehicle, mission, "transit")
        if on_scene is not None:
            self.phase(on_scene, vehicle, mission, "on_scene")
        if end is not None:
            self.phase(end - 30, vehicle, mission, "land")
            self.log.append("mission_result", ros_time_s=end, incident_id=incident, vehicle_id=vehicle,
                            mission_id=mission, detail={"outcome": outcome, "reason": "", "reached_scene": True})

    def phase(self, t: float, vehicle: str, mission: str, phase: str):
        self.log.append("phase_change", ros_time_s=t, vehicle_id=vehicle, mission_id=mission,
                        detail={"phase": phase})

    def close(self, t: float, incident: str):
        self.log.append("incident_closed", ros_time_s=t, incident_id=incident, detail={"reason": "resolved"})

    def footage(self, t: float, incident: str, mission: str):
        self.log.append("footage_recorded", ros_time_s=t, incident_id=incident, vehicle_id="d1", mission_id=mission,
                        detail={"artifact": f"{mission}/cam.mp4", "artifact_kind": "footage",
                                "recorded_at": "2025-03-03T10:00:00Z", "sha256": SHA, "bytes": 1, "evidence": False})


def write_week(path) -> None:
    with AuditLog(path) as log:
        s = Shift(log)
        # Before the week: INC-0 and its flight are not counted, though its drone arrives and lands in the week.
        s.incident(W - 3600, "INC-0", "I", "robbery", True)
        s.flight("INC-0", "M-0", "d3", W - 3500, on_scene=W + 60, end=W + 600)
        s.close(W + 700, "INC-0")
        # Monday: a robbery with two calls; drone on scene 90 s after the first call; flight of half an hour.
        s.incident(W + 101, "INC-1", "I", "robbery", True)
        s.call(W + 151, "INC-1", "CAD-INC-1b", "S", "robbery", call_time=W + 150)
        s.flight("INC-1", "M-1", "d1", W + 110, on_scene=W + 190, end=W + 110 + 1800)
        log.append("target_selected", ros_time_s=W + 200, incident_id="INC-1", vehicle_id="d1", mission_id="M-1",
                   actor="operator 7", detail={"target_id": "t1", "reason": "matches the description"})
        s.footage(W + 2000, "INC-1", "M-1")
        s.close(W + 2500, "INC-1")
        # Tuesday: an assault, 150 s; a relief drone still flying at the end of the log; a failsafe.
        d = W + DAY
        s.incident(d + 1, "INC-2", "S", "assault", True)
        s.flight("INC-2", "M-2", "d2", d + 10, on_scene=d + 150, end=d + 10 + 900)
        s.flight("INC-2", "M-2b", "d3", d + 20, on_scene=d + 400)
        log.append("failsafe", ros_time_s=d + 500, vehicle_id="d2", mission_id="M-2", detail={"reason": "battery"})
        s.footage(d + 2000, "INC-2", "M-2")
        # Wednesday: a burglary, 300 s; the pilot takes over; an hour's flight; its footage kept as evidence.
        e = W + 2 * DAY
        s.incident(e + 1, "INC-3", "I", "burglary", True)
        log.append("pilot_takeover", ros_time_s=e + 400, vehicle_id="d1", mission_id="M-3",
                   detail={"reason": "pilot took control"})
        s.flight("INC-3", "M-3", "d1", e + 5, on_scene=e + 300, end=e + 5 + 3600, outcome="pilot_takeover")
        s.footage(e + 4000, "INC-3", "M-3")
        log.append("footage_kept_as_evidence", ros_time_s=e + 5000, incident_id="INC-3", actor="DS Smith",
                   detail={"reason": "charged"})
        # Thursday: a protest and a noise call, both refused by the policy; a mission refused; a rule refusal.
        t = W + 3 * DAY
        s.incident(t + 1, "INC-4", "I", "protest", False)
        s.incident(t + 2, "INC-5", "E", "noise", False)
        log.append("mission_refused", ros_time_s=t + 3, incident_id="INC-4", detail={"reason": "excluded"})
        log.append("rule_violation_refused", ros_time_s=t + 4, incident_id="INC-4",
                   detail={"rule": "excluded_category", "reason": "category 'protest' is never attended"})
        # Friday: a fire closed before its drone launched: a flight outside an incident.
        f = W + 4 * DAY
        s.incident(f + 1, "INC-6", "S", "fire", True)
        s.close(f + 50, "INC-6")
        log.append("rule_violation_refused", ros_time_s=f + 55, incident_id="INC-6",
                   detail={"rule": "incident_closed", "reason": "the incident is closed"})
        s.flight("INC-6", "M-6", "d2", f + 60, end=f + 60 + 360)
        # Saturday: an authorised maintenance flight (counted apart) and an unauthorised test flight (outside).
        g = W + 5 * DAY
        log.append("maintenance_flight", ros_time_s=g, vehicle_id="d3", mission_id="M-MT", actor="engineer",
                   detail={"flight_kind": "maintenance", "reason": "motor replaced"})
        s.flight("", "M-MT", "d3", g + 10, end=g + 10 + 720, kind="maintenance")
        s.flight("", "M-T", "d1", g + 1000, end=g + 1000 + 180, kind="test")
        log.append("footage_deleted", ros_time_s=g + 2000, mission_id="M-old", actor="retention",
                   detail={"artifact": "M-old/cam.mp4", "artifact_kind": "footage", "reason": "retention",
                           "recorded_at": "2025-02-01T10:00:00Z", "age_days": 30.6})
        # The next Monday: not counted.
        n = W + 7 * DAY
        s.incident(n + 10, "INC-9", "I", "robbery", True)
        s.flight("INC-9", "M-9", "d1", n + 20, on_scene=n + 100, end=n + 1000)


@pytest.fixture(scope="module")
def week_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("week") / "audit.db"
    write_week(path)
    return path


@pytest.fixture(scope="module")
def stats(week_log):
    return weekly_statistics(week_log, WEEK_START)


def test_window_and_log(stats, week_log):
    assert stats["window"] == {"from_ros_time_s": W, "to_ros_time_s": W + 7 * DAY,
                               "from_utc": "2025-03-03T00:00:00.000000Z", "to_utc": "2025-03-10T00:00:00.000000Z"}
    assert stats["log"]["verified"] and stats["log"]["path"] == str(week_log)
    assert stats["log"]["head"].startswith(f"{stats['log']['entries']}:")


def test_calls_and_incidents(stats):
    assert stats["calls_received"] == 7
    assert stats["incidents"] == {
        "opened": 6,
        "by_category": {"assault": 1, "burglary": 1, "fire": 1, "noise": 1, "protest": 1, "robbery": 1},
        "by_grade": {"E": 1, "I": 3, "S": 2},
        "by_category_grade": {"assault": {"S": 1}, "burglary": {"I": 1}, "fire": {"S": 1}, "noise": {"E": 1},
                              "protest": {"I": 1}, "robbery": {"I": 1}},
    }


def test_policy(stats):
    assert stats["policy"] == {"decisions_accepted": 4, "decisions_refused": 2, "refused": 2, "undecided": 0,
                               "refused_share": 2 / 6}


def test_response_times_from_the_first_call_to_the_first_drone_on_scene(stats):
    assert stats["response_time_s"] == {"count": 3, "p50": 150.0, "p90": pytest.approx(270.0), "max": 300.0,
                                        "values": [90.0, 150.0, 300.0]}


def test_flights_hours_and_flights_outside_an_incident(stats):
    flights = stats["flights"]
    assert flights["total"] == 7
    assert flights["by_kind"] == {"incident": 5, "maintenance": 1, "test": 1}
    assert flights["hours"] == pytest.approx(0.5 + 0.25 + 1.0 + 0.1 + 0.2 + 0.05)
    assert flights["hours_by_kind"] == pytest.approx({"incident": 1.85, "maintenance": 0.2, "test": 0.05})
    assert flights["unfinished"] == 1
    assert flights["maintenance"] == 1
    assert flights["outside_incident"] == 2
    outside = {f["mission_id"]: f for f in flights["outside_incident_list"]}
    assert set(outside) == {"M-6", "M-T"}
    assert outside["M-6"]["why"] == "incident INC-6 was closed"
    assert outside["M-T"]["why"] == "a test flight with no maintenance_flight authorisation before its launch"


def test_missions_footage_and_refusals(stats):
    assert stats["missions"] == {"assignments": 5, "refused": 1, "outcomes": {"completed": 6, "pilot_takeover": 1},
                                 "pilot_takeovers": 1, "failsafes": 1, "targets_selected": 1}
    assert stats["footage"] == {"recorded": 3, "kept_as_evidence": 1, "deleted": 1}
    assert stats["rule_violations_refused"] == {"total": 2, "by_rule": {"excluded_category": 1,
                                                                        "incident_closed": 1}}


def test_a_flight_for_an_incident_never_opened_or_not_eligible_is_outside(tmp_path):
    path = tmp_path / "audit.db"
    with AuditLog(path) as log:
        s = Shift(log)
        s.incident(10.0, "INC-1", "E", "noise", False)
        s.flight("INC-1", "M-1", "d1", 20.0, end=100.0)
        s.flight("INC-404", "M-2", "d2", 30.0, end=100.0)
        s.flight("", "M-3", "d3", 40.0, end=100.0)
    stats = weekly_statistics(path, ros_time_range=(0.0, 1000.0))
    assert [f["why"] for f in stats["flights"]["outside_incident_list"]] == [
        "incident INC-1 was not eligible for a drone", "incident INC-404 had not been opened",
        "an incident flight naming no incident"]
    assert stats["window"]["from_utc"] is None


@pytest.mark.skipif("retasked" not in OUTCOMES, reason="no retasked outcome in dfr_common.mission")
def test_a_flight_retasked_in_the_air_is_one_flight_and_its_new_incident_is_checked(tmp_path):
    path = tmp_path / "audit.db"
    with AuditLog(path) as log:
        s = Shift(log)
        s.incident(10.0, "INC-1", "S", "theft", True)
        s.incident(20.0, "INC-2", "I", "robbery", True)
        s.incident(30.0, "INC-3", "I", "robbery", True)
        s.close(40.0, "INC-3")
        s.flight("INC-1", "M-1", "d1", 50.0, end=200.0, outcome="retasked")
        s.flight("INC-2", "M-2", "d2", 60.0, end=100.0, outcome="retasked")
        log.append("assignment", ros_time_s=201.0, incident_id="INC-2", vehicle_id="d1", mission_id="M-3",
                   detail={"reason": "nearest, in the air", "eta_s": 30.0, "alternatives": []})
        s.phase(221.0, "d1", "M-3", "on_scene")
        log.append("assignment", ros_time_s=101.0, incident_id="INC-3", vehicle_id="d2", mission_id="M-4",
                   detail={"reason": "nearest, in the air", "eta_s": 30.0, "alternatives": []})
        log.append("mission_result", ros_time_s=410.0, vehicle_id="d1", mission_id="M-3",
                   detail={"outcome": "completed", "reason": "", "reached_scene": True})
        log.append("mission_result", ros_time_s=420.0, vehicle_id="d2", mission_id="M-4",
                   detail={"outcome": "completed", "reason": "", "reached_scene": False})
    stats = weekly_statistics(path, ros_time_range=(0.0, 1000.0))
    assert stats["flights"]["total"] == 2 and stats["flights"]["unfinished"] == 0
    assert stats["flights"]["hours"] == pytest.approx((410.0 - 50.0 + 420.0 - 60.0) / 3600)
    assert stats["response_time_s"]["values"] == [221.0 - 19.0]
    assert [f["why"] for f in stats["flights"]["outside_incident_list"]] == [
        "retasked in flight: incident INC-3 was closed"]


def test_other_windows(week_log):
    monday = weekly_statistics(week_log, ros_time_range=(W, W + DAY))
    assert monday["incidents"]["opened"] == 1 and monday["flights"]["total"] == 1
    assert monday["response_time_s"]["values"] == [90.0]
    whole = weekly_statistics(week_log)
    assert whole["incidents"]["opened"] == 8 and whole["flights"]["total"] == 9
    assert whole["window"]["from_ros_time_s"] is None
    same = weekly_statistics(week_log, utc_range=(WEEK_START, WEEK_START + timedelta(days=7)))
    assert same["flights"] == weekly_statistics(week_log, WEEK_START)["flights"]
    with pytest.raises(ReportError, match="time-zone-aware"):
        weekly_statistics(week_log, datetime(2025, 3, 3))
    with pytest.raises(ReportError, match="give one of"):
        weekly_statistics(week_log, WEEK_START, ros_time_range=(0, 1))
    with pytest.raises(ReportError, match="empty"):
        weekly_statistics(week_log, ros_time_range=(5.0, 5.0))


def test_report_files(stats, tmp_path):
    markdown_path, png_path = write_report(stats, tmp_path / "out", ReportOptions(histogram_bin_s=60.0))
    assert markdown_path == tmp_path / "out" / "transparency_report.md"
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png_path.stat().st_size > 10_000
    text = markdown_path.read_text()
    assert "transparency report, 2025-03-03 00:00 to 2025-03-10 00:00 UTC" in text
    assert "| **flights outside an incident (must be 0)** | **2** |" in text
    assert "| incidents refused a drone by the launch policy | 2 (33.3 %) |" in text
    assert "| response time p50 / p90 (call to on scene) | 150 s / 270 s |" in text
    assert "| category | I | S | E | total |" in text, "grades most urgent first"
    assert "| robbery | 1 | 0 | 0 | 1 |" in text and "| noise | 0 | 0 | 1 | 1 |" in text
    assert "incident INC-6 was closed" in text
    assert f"--expect-head {stats['log']['head']}" in text
    assert json.loads((tmp_path / "out" / "transparency_report.json").read_text()) == json.loads(json.dumps(stats))


def test_an_empty_report_draws(tmp_path):
    AuditLog(tmp_path / "audit.db").close()
    stats = weekly_statistics(tmp_path / "audit.db", WEEK_START)
    assert stats["flights"]["total"] == 0 and stats["policy"]["refused_share"] is None
    markdown_path, png_path = write_report(stats, tmp_path / "out")
    assert png_path.exists() and "| flights | 0 |" in markdown_path.read_text()


def test_a_log_that_does_not_verify_gives_no_report(tmp_path, week_log, capsys):
    path = tmp_path / "tampered.db"
    path.write_bytes(week_log.read_bytes())
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER entries_no_delete")
    conn.execute("DELETE FROM entries WHERE kind = 'launch' AND mission_id = 'M-6'")
    conn.commit()
    conn.close()
    with pytest.raises(ReportError, match="does not verify.*removed"):
        weekly_statistics(path, WEEK_START)
    assert main([str(path), "--out", str(tmp_path / "out")]) == 1
    assert "does not verify" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli(week_log, tmp_path, capsys):
    out = tmp_path / "report"
    assert main([str(week_log), "--out", str(out), "--from", "2025-03-03T00:00:00Z", "--to",
                 "2025-03-10T00:00:00Z"]) == 0
    printed = capsys.readouterr()
    assert printed.out.split() == [str(out / "transparency_report.md"), str(out / "transparency_report.png")]
    assert "2 flights outside an incident" in printed.err
    assert json.loads((out / "transparency_report.json").read_text())["flights"]["outside_incident"] == 2
    assert main([str(week_log), "--out", str(out), "--ros-from", str(W), "--ros-to", str(W + DAY)]) == 0
    assert main([str(week_log), "--out", str(out), "--from", "2025-03-03T00:00:00Z"]) == 1
    assert "give both ends" in capsys.readouterr().err
    assert main([str(week_log), "--out", str(out), "--from", "2025-03-03", "--to", "2025-03-10"]) == 1
    assert "no time zone" in capsys.readouterr().err

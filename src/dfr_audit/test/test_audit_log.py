"""Unit tests of dfr_audit.audit_log: entries chain, survive a reopen, are serialised across threads, and are refused
when they are not what their kind needs.

Every test uses a real SQLite file in tmp_path; the chain is checked by recomputing hashes here and with verify().
"""
from __future__ import annotations

import re
import sqlite3
import threading
from datetime import datetime, timedelta, timezone

import pytest

from dfr_audit.audit_log import (
    REQUIREMENTS,
    AuditLog,
    AuditLogError,
    EntryKind,
    canonical_json,
    entry_hash,
    genesis_hash,
    read_entries,
)
from dfr_audit.verify import verify

T0 = datetime(2025, 3, 3, 8, 0, 0, tzinfo=timezone.utc)
SHA = "ab" * 32

# One valid entry of every kind: (ids, detail).
VALID = {
    EntryKind.CALL_RECEIVED: ({"incident_id": "INC-1"}, {"cad_ref": "CAD-1", "grade": "I", "category": "robbery",
                                                         "call_time_s": 12.5}),
    EntryKind.POLICY_DECISION: ({"incident_id": "INC-1"}, {"accepted": True, "reason": "grade I robbery: eligible",
                                                           "grade": "I", "category": "robbery"}),
    EntryKind.INCIDENT_OPENED: ({"incident_id": "INC-1"}, {"grade": "I", "category": "robbery"}),
    EntryKind.INCIDENT_CLOSED: ({"incident_id": "INC-1"}, {"reason": "officers on scene"}),
    EntryKind.ASSIGNMENT: ({"incident_id": "INC-1", "vehicle_id": "d1", "mission_id": "M-1"},
                           {"reason": "earliest arrival", "eta_s": 95.0,
                            "alternatives": [{"vehicle_id": "d2", "eta_s": 140.5, "reason": "later"},
                                             {"vehicle_id": "d3", "eta_s": None, "reason": "charging"}]}),
    EntryKind.MISSION_REFUSED: ({"incident_id": "INC-1"}, {"reason": "no drone available"}),
    EntryKind.LAUNCH: ({"incident_id": "INC-1", "vehicle_id": "d1", "mission_id": "M-1"},
                       {"flight_kind": "incident", "authorization": "open, eligible robbery incident"}),
    EntryKind.PHASE_CHANGE: ({"vehicle_id": "d1", "mission_id": "M-1"}, {"phase": "on_scene"}),
    EntryKind.PILOT_TAKEOVER: ({"vehicle_id": "d1", "mission_id": "M-1"}, {"reason": "pilot switched to POSCTL"}),
    EntryKind.FAILSAFE: ({"vehicle_id": "d1"}, {"reason": "battery low"}),
    EntryKind.MISSION_RESULT: ({"vehicle_id": "d1", "mission_id": "M-1"},
                               {"outcome": "completed", "reason": "", "reached_scene": True}),
    EntryKind.TARGET_SELECTED: ({"incident_id": "INC-1", "vehicle_id": "d1", "mission_id": "M-1", "actor": "op7"},
                                {"target_id": "track-3", "reason": "matches the suspect description"}),
    EntryKind.FOOTAGE_RECORDED: ({"incident_id": "INC-1", "vehicle_id": "d1", "mission_id": "M-1"},
                                 {"artifact": "M-1/video.mp4", "artifact_kind": "footage",
                                  "recorded_at": "2025-03-03T08:00:00Z", "sha256": SHA, "bytes": 10,
                                  "evidence": False}),
    EntryKind.FOOTAGE_KEPT_AS_EVIDENCE: ({"incident_id": "INC-1", "actor": "DS Smith"}, {"reason": "charged"}),
    EntryKind.FOOTAGE_DELETED: ({"mission_id": "M-1"}, {"artifact": "M-1/video.mp4", "artifact_kind": "footage",
                                                        "reason": "retention", "recorded_at": "2025-03-03T08:00:00Z",
                                                        "age_days": 29.0}),
    EntryKind.MAINTENANCE_FLIGHT: ({"vehicle_id": "d1", "mission_id": "MT-1", "actor": "engineer"},
                                   {"flight_kind": "maintenance", "reason": "motor replaced"}),
    EntryKind.RULE_VIOLATION_REFUSED: ({"vehicle_id": "d1"}, {"rule": "incident_closed",
                                                              "reason": "the incident is closed"}),
}


def clock(start: datetime = T0):
    """A wall clock that ticks one second per entry, so that tests never read the real one."""
    ticks = iter(range(10**9))
    return lambda: start + timedelta(seconds=next(ticks))


def new_log(tmp_path, **kwargs) -> AuditLog:
    return AuditLog(tmp_path / "audit.db", wall_clock=clock(), **kwargs)


def append_valid(log: AuditLog, kind: EntryKind, ros_time_s: float = 1.0):
    ids, detail = VALID[kind]
    return log.append(kind, ros_time_s=ros_time_s, detail=detail, **ids)


def test_every_kind_has_a_valid_example_and_a_requirement():
    assert set(VALID) == set(EntryKind) == set(REQUIREMENTS)


def test_entries_chain_from_the_genesis_of_their_log(tmp_path):
    log = new_log(tmp_path, log_id="met-dfr-north")
    first = append_valid(log, EntryKind.CALL_RECEIVED, 12.5)
    second = append_valid(log, EntryKind.INCIDENT_OPENED, 12.75)
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == genesis_hash("met-dfr-north", None)
    assert second.prev_hash == first.hash
    assert first.wall_time == "2025-03-03T08:00:00.000000Z" and second.wall_time == "2025-03-03T08:00:01.000000Z"
    assert first.ros_time_s == 12.5 and isinstance(first.ros_time_s, float)
    for entry in (first, second):
        assert entry.hash == entry_hash(None, **entry.hashed_fields())
        assert re.fullmatch(r"[0-9a-f]{64}", entry.hash)
    assert genesis_hash("another-log", None) != first.prev_hash
    assert log.entries() == [first, second]
    log.close()
    assert verify(tmp_path / "audit.db").ok


def test_every_kind_is_accepted_with_its_required_fields(tmp_path):
    with new_log(tmp_path) as log:
        for i, kind in enumerate(EntryKind):
            entry = append_valid(log, kind, float(i))
            assert entry.kind is kind and entry.detail == VALID[kind][1]
        assert [e.kind for e in log.entries()] == list(EntryKind)
    assert verify(tmp_path / "audit.db").entries_checked == len(EntryKind)


def test_the_docstring_documents_every_required_field_of_every_kind():
    doc = EntryKind.__doc__
    names = [k.value for k in EntryKind]
    for kind, requirement in REQUIREMENTS.items():
        start = re.search(rf"^\s+{kind.value}\s", doc, re.M)
        assert start, kind
        following = [m.start() for n in names if n != kind.value for m in re.finditer(rf"^\s+{n}\s", doc, re.M)
                     if m.start() > start.start()]
        section = doc[start.start():min(following, default=len(doc))]
        for name in (*requirement.ids, *requirement.detail):
            assert name in section, f"{kind.value}: {name} is not documented"


def test_reopening_continues_the_chain(tmp_path):
    with new_log(tmp_path) as log:
        log_id = log.log_id
        for i in range(3):
            append_valid(log, EntryKind.PHASE_CHANGE, float(i))
        last = log.entries()[-1]
    with AuditLog(tmp_path / "audit.db", wall_clock=clock()) as log:
        assert log.log_id == log_id and len(log) == 3
        fourth = append_valid(log, EntryKind.MISSION_RESULT, 4.0)
    assert fourth.seq == 4 and fourth.prev_hash == last.hash
    assert [e.seq for e in read_entries(tmp_path / "audit.db")] == [1, 2, 3, 4]
    assert verify(tmp_path / "audit.db").ok


def test_reopening_with_another_log_id_is_refused(tmp_path):
    new_log(tmp_path, log_id="force-a").close()
    with pytest.raises(AuditLogError, match="has log id 'force-a', not 'force-b'"):
        AuditLog(tmp_path / "audit.db", log_id="force-b")


def test_appends_from_threads_are_serialised_into_one_chain(tmp_path):
    log = new_log(tmp_path)
    errors = []

    def writer(vehicle: str):
        try:
            for i in range(10):
                log.append("phase_change", ros_time_s=float(i), vehicle_id=vehicle, mission_id=f"M-{vehicle}",
                           detail={"phase": "transit"})
        except Exception as err:   # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(f"d{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    entries = log.entries()
    assert [e.seq for e in entries] == list(range(1, 61))
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:]))
    assert sorted(e.vehicle_id for e in entries) == sorted(f"d{n}" for n in range(6) for _ in range(10))
    log.close()
    assert verify(tmp_path / "audit.db").ok


def test_two_writers_on_one_file_chain_onto_each_other(tmp_path):
    """Two handles (as two processes would have) never fork the chain: each reads the tail under the write lock."""
    a = new_log(tmp_path)
    b = AuditLog(tmp_path / "audit.db", wall_clock=clock())
    for i in range(4):
        append_valid(a if i % 2 else b, EntryKind.FAILSAFE, float(i))
    a.close()
    b.close()
    result = verify(tmp_path / "audit.db")
    assert result.ok and result.entries_checked == 4


@pytest.mark.parametrize("statement", [
    "UPDATE entries SET detail = '{}' WHERE seq = 1",
    "UPDATE entries SET ros_time_s = 99.0",
    "DELETE FROM entries WHERE seq = 2",
    "DELETE FROM entries",
    "UPDATE meta SET value = 'other' WHERE key = 'log_id'",
    "DELETE FROM meta",
])
def test_sqlite_triggers_refuse_updates_and_deletes(tmp_path, statement):
    with new_log(tmp_path) as log:
        append_valid(log, EntryKind.INCIDENT_OPENED)
        append_valid(log, EntryKind.INCIDENT_CLOSED)
    conn = sqlite3.connect(tmp_path / "audit.db")
    with pytest.raises(sqlite3.IntegrityError, match="append-only|header is fixed"):
        conn.execute(statement)
    conn.close()
    assert verify(tmp_path / "audit.db").ok


@pytest.mark.parametrize("kind", ["surveillance", "", "CALL_RECEIVED", None, 3])
def test_unknown_kinds_are_refused(tmp_path, kind):
    with new_log(tmp_path) as log:
        with pytest.raises(ValueError, match="unknown audit entry kind"):
            log.append(kind, ros_time_s=1.0, incident_id="INC-1", detail={"reason": "x"})
        assert len(log) == 0


class Opaque:
    pass


@pytest.mark.parametrize("detail, message", [
    ({"grade": "I", "category": "robbery", "x": float("nan")}, r"detail\['x'\] is nan"),
    ({"grade": "I", "category": "robbery", "x": float("inf")}, r"detail\['x'\] is inf"),
    ({"grade": "I", "category": "robbery", "x": {1, 2}}, r"detail\['x'\] is a set"),
    ({"grade": "I", "category": "robbery", "x": Opaque()}, r"detail\['x'\] is a Opaque"),
    ({"grade": "I", "category": "robbery", "x": {1: "a"}}, r"detail\['x'\] has the key 1"),
    ({"grade": "I", "category": "robbery", "x": [1, b"bytes"]}, r"detail\['x'\]\[1\] is a bytes"),
    ({"grade": "I", "category": "robbery", "when": T0}, r"detail\['when'\] is a datetime"),
    ({"category": "robbery"}, r"needs detail\['grade'\]"),
    ({"grade": "", "category": "robbery"}, r"detail\['grade'\] is '', not a non-empty string"),
    ({"grade": 1, "category": "robbery"}, r"detail\['grade'\] is 1, not a non-empty string"),
])
def test_details_that_are_not_json_or_lack_fields_are_refused(tmp_path, detail, message):
    with new_log(tmp_path) as log:
        with pytest.raises(ValueError, match=message):
            log.append("incident_opened", ros_time_s=1.0, incident_id="INC-1", detail=detail)
        assert len(log) == 0


@pytest.mark.parametrize("kind, ids, detail, message", [
    ("incident_opened", {}, {"grade": "I", "category": "robbery"}, "needs a non-empty incident_id"),
    ("launch", {"vehicle_id": "d1"}, {"flight_kind": "incident", "authorization": "ok"},
     "needs a non-empty mission_id"),
    ("launch", {"vehicle_id": "d1", "mission_id": "M"}, {"flight_kind": "surveillance", "authorization": "ok"},
     "not one of incident, maintenance, test"),
    ("phase_change", {"vehicle_id": "d1", "mission_id": "M"}, {"phase": "loiter"}, "not one of idle, preflight"),
    ("policy_decision", {"incident_id": "INC-1"}, {"accepted": "yes", "reason": "r", "grade": "I", "category": "c"},
     "not true or false"),
    ("call_received", {"incident_id": "INC-1"},
     {"cad_ref": "C", "grade": "I", "category": "c", "call_time_s": True}, "not a finite number"),
    ("assignment", {"incident_id": "I", "vehicle_id": "d1", "mission_id": "M"},
     {"reason": "r", "eta_s": 1.0, "alternatives": [{"vehicle_id": "d2", "reason": "later"}]},
     r"alternatives\[0\] has no eta_s"),
    ("assignment", {"incident_id": "I", "vehicle_id": "d1", "mission_id": "M"},
     {"reason": "r", "eta_s": 1.0, "alternatives": "d2"}, "alternatives is not a list"),
    ("footage_recorded", {"vehicle_id": "d1", "mission_id": "M"},
     {**VALID[EntryKind.FOOTAGE_RECORDED][1], "recorded_at": "2025-03-03T08:00:00"}, "a UTC ISO 8601 time"),
    ("footage_kept_as_evidence", {"incident_id": "INC-1"}, {"reason": "charged"}, "needs a non-empty actor"),
    ("maintenance_flight", {"vehicle_id": "d1", "mission_id": "M", "actor": "eng"},
     {"flight_kind": "incident", "reason": "r"}, "not one of maintenance, test"),
])
def test_entries_lacking_what_their_kind_needs_are_refused(tmp_path, kind, ids, detail, message):
    with new_log(tmp_path) as log:
        with pytest.raises(ValueError, match=message):
            log.append(kind, ros_time_s=1.0, detail=detail, **ids)
        assert len(log) == 0


@pytest.mark.parametrize("ros_time_s", [float("nan"), float("inf"), "12", None, True])
def test_a_bad_ros_time_is_refused(tmp_path, ros_time_s):
    with new_log(tmp_path) as log:
        with pytest.raises(ValueError, match="ros_time_s"):
            log.append("incident_closed", ros_time_s=ros_time_s, incident_id="INC-1", detail={"reason": "r"})


def test_bad_ids_and_details_are_refused(tmp_path):
    with new_log(tmp_path) as log:
        with pytest.raises(ValueError, match="incident_id is 7, not a string"):
            log.append("incident_closed", ros_time_s=1.0, incident_id=7, detail={"reason": "r"})
        with pytest.raises(ValueError, match="detail is a list, not a dict"):
            log.append("incident_closed", ros_time_s=1.0, incident_id="INC-1", detail=[])


def test_canonical_encoding_is_independent_of_key_order_and_keeps_floats_exact(tmp_path):
    a = {"b": [1, 2.5, {"z": None, "a": True}], "a": 0.1 + 0.2, "c": -0.0, "d": 1e-300, "e": "caf\u00e9 \u2713"}
    b = dict(reversed(list(a.items())))
    assert canonical_json(a) == canonical_json(b)
    assert " " not in canonical_json({"a": [1, 2]})
    with new_log(tmp_path) as log:
        entry = log.append("rule_violation_refused", ros_time_s=0.1 + 0.2, detail={"rule": "r", "reason": "x", **a})
        assert entry.detail["b"] == [1, 2.5, {"z": None, "a": True}]
    stored = sqlite3.connect(tmp_path / "audit.db").execute("SELECT detail, ros_time_s FROM entries").fetchone()
    assert stored[0] == canonical_json(entry.detail)
    assert stored[1] == 0.1 + 0.2
    read = next(read_entries(tmp_path / "audit.db"))
    assert read.detail["a"] == 0.1 + 0.2 and read.detail["d"] == 1e-300 and read == entry
    assert entry_hash(None, **read.hashed_fields()) == entry.hash


def test_tuples_become_lists(tmp_path):
    with new_log(tmp_path) as log:
        entry = log.append("rule_violation_refused", ros_time_s=1, detail={"rule": "r", "reason": "x", "t": (1, 2)})
    assert entry.detail["t"] == [1, 2] and entry.ros_time_s == 1.0
    assert verify(tmp_path / "audit.db").ok


def test_a_keyed_log_needs_its_key(tmp_path):
    with new_log(tmp_path, key=b"force secret") as log:
        entry = append_valid(log, EntryKind.INCIDENT_OPENED)
        assert entry.hash == entry_hash(b"force secret", **entry.hashed_fields())
        assert entry.hash != entry_hash(None, **entry.hashed_fields())
        assert entry.prev_hash == genesis_hash(log.log_id, b"force secret")
    with pytest.raises(AuditLogError, match="is keyed"):
        AuditLog(tmp_path / "audit.db")
    with pytest.raises(AuditLogError, match="not this log's key"):
        AuditLog(tmp_path / "audit.db", key=b"guess")
    with AuditLog(tmp_path / "audit.db", key=b"force secret") as log:
        append_valid(log, EntryKind.INCIDENT_CLOSED)
    assert verify(tmp_path / "audit.db", key=b"force secret").ok
    with pytest.raises(ValueError, match="non-empty bytes"):
        AuditLog(tmp_path / "other.db", key="text")


def test_an_unkeyed_log_refuses_a_key(tmp_path):
    new_log(tmp_path).close()
    with pytest.raises(AuditLogError, match="not keyed"):
        AuditLog(tmp_path / "audit.db", key=b"k")


def test_entries_filter_by_seq_kind_and_incident(tmp_path):
    with new_log(tmp_path) as log:
        for incident in ("INC-1", "INC-2", "INC-1"):
            log.append("incident_closed", ros_time_s=1.0, incident_id=incident, detail={"reason": "r"})
            log.append("failsafe", ros_time_s=1.0, vehicle_id="d1", detail={"reason": "r"})
        assert [e.seq for e in log.entries(since_seq=4)] == [5, 6]
        assert [e.seq for e in log.entries(kind=EntryKind.FAILSAFE)] == [2, 4, 6]
        assert [e.seq for e in log.entries(kind="incident_closed", incident_id="INC-1")] == [1, 5]
        with pytest.raises(ValueError, match="unknown audit entry kind"):
            log.entries(kind="nope")
    assert [e.seq for e in read_entries(tmp_path / "audit.db", kind="failsafe", since_seq=2)] == [4, 6]


def test_files_that_are_not_audit_logs_are_refused(tmp_path):
    (tmp_path / "text.db").write_text("hello")
    with pytest.raises(AuditLogError, match="not an SQLite database"):
        AuditLog(tmp_path / "text.db")
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(AuditLogError, match="empty"):
        AuditLog(tmp_path / "empty.db")
    conn = sqlite3.connect(tmp_path / "other.db")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(AuditLogError, match="not an audit log"):
        AuditLog(tmp_path / "other.db")
    with pytest.raises(AuditLogError, match="does not exist"):
        AuditLog(tmp_path / "missing" / "audit.db")


def test_a_log_whose_last_entry_was_edited_is_not_appended_to(tmp_path):
    with new_log(tmp_path) as log:
        append_valid(log, EntryKind.INCIDENT_CLOSED)
    conn = sqlite3.connect(tmp_path / "audit.db")
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute("UPDATE entries SET detail = '{\"reason\":\"edited\"}'")
    conn.commit()
    conn.close()
    with pytest.raises(AuditLogError, match="last entry .1. does not match its hash"):
        AuditLog(tmp_path / "audit.db")


def test_a_closed_log_refuses_appends(tmp_path):
    log = new_log(tmp_path)
    log.close()
    log.close()
    with pytest.raises(AuditLogError, match="is closed"):
        append_valid(log, EntryKind.FAILSAFE)

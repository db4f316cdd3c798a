"""Unit tests of dfr_intake.journal: accepted incidents survive a restart, a crash, and are never duplicated.

Every test uses a real SQLite file in tmp_path. The journal is replayed into an
IncidentBook that must equal the one that wrote it; files it cannot read are errors
that name the file, never an empty start.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import signal
import sqlite3
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dfr_common.geodesy import GeoPoint, LocalFrame
from dfr_intake.calls import Call
from dfr_intake.incident_book import ClosedIncidentError, ConflictingCallError, IncidentBook, MergeRules
from dfr_intake.journal import SCHEMA_VERSION, Journal, JournalError, call_from_json, call_to_json
from dfr_intake.launch_policy import LaunchPolicy

SRC = Path(__file__).resolve().parents[2]
ORIGIN = LocalFrame(GeoPoint(51.5412, -0.1027, 0.0))
T0 = 1_790_000_000.0
CATEGORIES = ("dangerous_driving", "vehicle_pursuit", "traffic_collision", "robbery", "theft", "burglary",
              "assault", "protest", "fire")
POLICY = LaunchPolicy(frozenset({"I", "S"}), frozenset({"dangerous_driving", "vehicle_pursuit", "traffic_collision",
                                                        "robbery", "burglary", "assault", "fire"}),
                      frozenset({"protest"}))
RULES = MergeRules.from_parameters(150.0, 1200.0, ["dangerous_driving,vehicle_pursuit,traffic_collision",
                                                   "robbery,theft,burglary"], CATEGORIES, POLICY.excluded_categories)


def call(cad_ref: str, east: float = 0.0, north: float = 0.0, dt: float = 0.0, grade: str = "I",
         category: str = "robbery", uncertainty: float = 25.0, **more) -> Call:
    latitude, longitude, _ = ORIGIN.to_geodetic(east, north)
    return Call(cad_ref=cad_ref, call_time_s=T0 + dt, grade=grade, category=category, latitude=latitude,
                longitude=longitude, location_uncertainty_m=uncertainty, **more)


def random_call(rng: random.Random, n: int) -> Call:
    """Calls of a busy shift: clustered places, so that some merge and most do not."""
    return call(f"CAD-{n:05d}", east=rng.choice([0.0, 3000.0, -2500.0]) + rng.uniform(-3000, 3000),
                north=rng.uniform(-3000, 3000), dt=n * 7.0 + rng.uniform(0, 5), grade=rng.choice("ISER"),
                category=rng.choice(CATEGORIES), uncertainty=rng.choice([0.0, 10.0, 45.5, 300.0]),
                description=rng.choice(["", "e-bike, rider in a \"hoodie\"", "café – ünïcödé ✓", "line\nbreak\x00nul"]))


def same_book(a: IncidentBook, b: IncidentBook) -> None:
    assert a.incidents == b.incidents
    assert list(a.incidents) == list(b.incidents)
    assert a._counter == b._counter and a.next_incident_id == b.next_incident_id
    assert a._by_cad_ref == b._by_cad_ref
    assert [r.incident_id for r in a.open_incidents()] == [r.incident_id for r in b.open_incidents()]


def bits(x: float) -> bytes:
    return struct.pack("<d", x)


def run_shift(book: IncidentBook, rng: random.Random, calls: int, start: int = 0) -> None:
    """Calls in, with an occasional close and a policy change, as a shift would go."""
    for n in range(start, start + calls):
        book.accept_call(random_call(rng, n), POLICY)
        if rng.random() < 0.15 and book.open_incidents():
            record = rng.choice(book.open_incidents())
            book.close(record.incident_id, rng.choice(["resolved", "stood down: officers on scene"]),
                       T0 + n * 7.0 + rng.random())
        if rng.random() < 0.03 and book.open_incidents():
            wider = dataclasses.replace(POLICY, eligible_grades=frozenset("ISE"))
            book.reassess(rng.choice(book.open_incidents()).incident_id, rng.choice([POLICY, wider]))


# --- the file ---------------------------------------------------------------------------------------------------


def test_a_new_journal_is_a_versioned_sqlite_file_in_wal_mode(tmp_path):
    path = tmp_path / "intake.journal"
    with Journal(path) as journal:
        assert journal.event_count() == 0
        assert journal._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert journal._conn.execute("PRAGMA synchronous").fetchone()[0] == 2         # FULL
        book = journal.replay()
        assert book.incidents == {} and book.next_incident_id == "INC-000001"
    conn = sqlite3.connect(path)
    assert dict(conn.execute("SELECT key, value FROM meta")) == {"schema_version": str(SCHEMA_VERSION),
                                                                  "application": "dfr_intake journal"}
    conn.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["intake.journal"]        # no .new left, WAL folded in


def test_events_are_append_only(tmp_path):
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        journal.replay().open_incident(call("A"), True, "ok")
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE events SET policy_reason = 'changed'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM events")
    conn.close()


def test_calls_round_trip_field_by_field_bit_for_bit():
    tricky = Call(cad_ref="CAD-\u00e9-\"quoted\"\\", call_time_s=1_790_000_123.456789012, grade="S",
                  category="theft", latitude=0.1 + 0.2, longitude=-1e-300, location_uncertainty_m=5e-324,
                  address="Upper St\n\tN1", description="\x00\x01\u2603\U0001f6a8", suspect_description="")
    again = call_from_json(call_to_json(tricky))
    assert again == tricky
    for name in ("call_time_s", "latitude", "longitude", "location_uncertainty_m"):
        assert bits(getattr(again, name)) == bits(getattr(tricky, name))
    assert call_to_json(tricky).isascii()
    assert call_from_json(call_to_json(dataclasses.replace(tricky, call_time_s=100))).call_time_s == 100.0


@pytest.mark.parametrize("text,message", [
    ("{", "not valid JSON"),
    ("[1]", "not a JSON object"),
    ('{"cad_ref": "A"}', "missing: call_time_s"),
    ("BAD", "not valid JSON"),
])
def test_a_call_that_is_not_a_call_is_refused(text, message):
    with pytest.raises(ValueError, match=message):
        call_from_json(text)


def test_call_fields_of_the_wrong_type_or_name_are_refused():
    good = json.loads(call_to_json(call("A")))
    with pytest.raises(ValueError, match="unknown: extra"):
        call_from_json(json.dumps({**good, "extra": 1}))
    with pytest.raises(ValueError, match="latitude is '51.5', not a number"):
        call_from_json(json.dumps({**good, "latitude": "51.5"}))
    with pytest.raises(ValueError, match="location_uncertainty_m is True, not a number"):
        call_from_json(json.dumps({**good, "location_uncertainty_m": True}))
    with pytest.raises(ValueError, match="grade is 1, not a str"):
        call_from_json(json.dumps({**good, "grade": 1}))


# --- round trip and restart -------------------------------------------------------------------------------------


def test_replay_rebuilds_the_book_exactly(tmp_path):
    path = tmp_path / "j.db"
    journal = Journal(path)
    book = journal.replay(RULES)
    run_shift(book, random.Random(42), 1500)
    merged = [r for r in book.incidents.values() if len(r.calls) > 1]
    closed = [r for r in book.incidents.values() if not r.open]
    assert len(merged) > 50 and len(closed) > 50                      # the shift exercised every kind of event
    assert any(r.revision > len(r.calls) + (0 if r.open else 1) for r in book.incidents.values())   # reassessed
    assert any(r.drone_eligible for r in merged) and any(not r.drone_eligible for r in merged)
    journal.close()
    with Journal(path) as again:
        replayed = again.replay(RULES)
    same_book(book, replayed)
    for record in book.incidents.values():
        twin = replayed.incidents[record.incident_id]
        for mine, theirs in zip(record.calls, twin.calls):
            assert [bits(getattr(mine, f)) for f in ("call_time_s", "latitude", "longitude")] == \
                   [bits(getattr(theirs, f)) for f in ("call_time_s", "latitude", "longitude")]


def test_after_a_restart_ids_continue_and_a_repeated_call_is_a_repeat(tmp_path):
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        book = journal.replay(RULES)
        a = book.accept_call(call("A"), POLICY).record
        book.accept_call(call("A2", north=30.0, dt=60), POLICY)            # merged into A
        b = book.accept_call(call("B", east=4000.0, category="fire"), POLICY).record
        c = book.accept_call(call("C", east=-4000.0, category="assault"), POLICY).record
        book.close(b.incident_id, "resolved", T0 + 300.0)
    with Journal(path) as journal:
        book = journal.replay(RULES)
        assert book.next_incident_id == "INC-000004"
        repeat = book.accept_call(call("A2", north=30.0, dt=60), POLICY)
        assert repeat.action == "repeat" and repeat.merged and repeat.record.incident_id == a.incident_id
        assert book.accept_call(call("B", east=4000.0, category="fire"), POLICY).action == "repeat"
        with pytest.raises(ConflictingCallError, match="'C' was already reported for INC-000003"):
            book.accept_call(call("C", east=-4000.0, category="assault", grade="S"), POLICY)
        assert book.accept_call(call("A3", north=-30.0, dt=120), POLICY).record.incident_id == a.incident_id
        assert book.accept_call(call("B2", east=4000.0, dt=400, category="fire"), POLICY).record.incident_id == \
            "INC-000004"                                                # B is closed: a new incident
        with pytest.raises(ClosedIncidentError):
            book.close(b.incident_id, "again", T0 + 500.0)
        book.close(c.incident_id, "stood down", T0 + 600.0)
    with Journal(path) as journal:
        book = journal.replay(RULES)
        assert [r.incident_id for r in book.open_incidents()] == ["INC-000001", "INC-000004"]
        assert book.incidents["INC-000001"].cad_refs == ["A", "A2", "A3"]
        assert book.incidents["INC-000001"].revision == 3
        assert book.incidents["INC-000003"].revision == 2 and book.incidents["INC-000003"].close_reason == \
            "stood down"
        assert book.next_incident_id == "INC-000005"
        assert journal.event_count() == 8


def test_ids_continue_past_a_high_counter_and_with_another_prefix(tmp_path):
    with Journal(tmp_path / "j.db") as journal:
        book = IncidentBook(id_prefix="MET", _counter=999_999, journal=journal)
        assert book.open_incident(call("A"), True, "ok").incident_id == "MET-1000000"
        assert journal.replay(id_prefix="MET").next_incident_id == "MET-1000001"


def test_a_crash_between_write_and_ack_loses_nothing_acknowledged(tmp_path):
    # The writer is never closed: the journal is reopened beside it, as after a crash of the process.
    path = tmp_path / "j.db"
    writer = Journal(path)
    book = writer.replay(RULES)
    acknowledged = [book.accept_call(call(f"C{i}", east=500.0 * (i % 7), dt=10.0 * i), POLICY) for i in range(40)]
    restarted = Journal(path)
    replayed = restarted.replay(RULES)
    same_book(book, replayed)
    for outcome in acknowledged:
        assert replayed.incidents[outcome.record.incident_id].cad_refs == outcome.record.cad_refs
    # The old writer may not append behind the new one's back, and its book stays as it was.
    replayed.accept_call(call("NEW", east=-9000.0), POLICY)
    with pytest.raises(JournalError, match=f"intake journal {path}: another writer appended"):
        book.accept_call(call("OLD", east=9000.0), POLICY)
    assert book.find_by_cad_ref("OLD") is None and book.next_incident_id == "INC-000008"
    restarted.close()
    writer.close()
    with Journal(path) as journal:
        final = journal.replay(RULES)
    assert final.find_by_cad_ref("NEW") is not None and final.find_by_cad_ref("OLD") is None


CHILD = textwrap.dedent("""
    import sys
    from dfr_intake.calls import Call
    from dfr_intake.journal import Journal
    from dfr_intake.launch_policy import LaunchPolicy
    policy = LaunchPolicy(frozenset({"I"}), frozenset({"robbery"}), frozenset())
    book = Journal(sys.argv[1]).replay()
    for i in range(100000):
        call = Call(f"K{i}", 1.79e9 + i, "I", "robbery", 51.5 + i * 1e-3, -0.1, 10.0)
        record = book.accept_call(call, policy).record
        print(record.incident_id, call.cad_ref, flush=True)          # the acknowledgement
""")


def test_a_killed_process_loses_no_acknowledged_incident(tmp_path):
    path = tmp_path / "j.db"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC / "dfr_intake"), str(SRC / "dfr_common"),
                                         env.get("PYTHONPATH", "")])
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    acknowledged = {}
    try:
        while len(acknowledged) < 300:
            line = child.stdout.readline()
            assert line, child.stderr.read()
            incident_id, cad_ref = line.split()
            acknowledged[cad_ref] = incident_id
    finally:
        child.send_signal(signal.SIGKILL)              # in the middle of a write, most likely
        child.wait()
    with Journal(path) as journal:
        book = journal.replay()
    for cad_ref, incident_id in acknowledged.items():
        assert book.find_by_cad_ref(cad_ref).incident_id == incident_id
    ids = list(book.incidents)
    assert ids == [f"INC-{n:06d}" for n in range(1, len(ids) + 1)]       # nothing missing, nothing twice
    assert len(ids) >= len(acknowledged)
    # A call written but not yet acknowledged when the process died is a repeat when the CAD retries it.
    for record in book.incidents.values():
        assert book.repeat_of(record.first_call) is record


# --- write failures ---------------------------------------------------------------------------------------------


def test_a_failed_write_changes_nothing_in_the_book(tmp_path):
    journal = Journal(tmp_path / "j.db")
    book = journal.replay(RULES)
    record = book.accept_call(call("A"), POLICY).record
    journal.close()
    with pytest.raises(JournalError, match="is closed; cannot write the opened event of INC-000002"):
        book.accept_call(call("B", east=5000.0), POLICY)
    with pytest.raises(JournalError, match="cannot write the merged event of INC-000001"):
        book.accept_call(call("A2", dt=5), POLICY)
    with pytest.raises(JournalError, match="cannot write the closed event"):
        book.close(record.incident_id, "done", T0 + 10)
    assert record.revision == 1 and record.open and record.cad_refs == ["A"]
    assert book.next_incident_id == "INC-000002" and book.find_by_cad_ref("B") is None


class CommitFails:
    """A connection whose next COMMIT fails, as on an I/O error: whether the event is on disk is unknown."""

    def __init__(self, conn):
        self.conn = conn
        self.failed = False

    def execute(self, sql, *args):
        if sql == "COMMIT" and not self.failed:
            self.failed = True
            raise sqlite3.OperationalError("disk I/O error")
        return self.conn.execute(sql, *args)

    def close(self):
        self.conn.close()


def test_after_a_failed_commit_the_journal_writes_nothing_more(tmp_path):
    path = tmp_path / "j.db"
    journal = Journal(path)
    book = journal.replay(RULES)
    record = book.accept_call(call("A"), POLICY).record
    journal._conn = CommitFails(journal._conn)
    with pytest.raises(JournalError, match="could not commit the merged event of INC-000001.*disk I/O error"):
        book.accept_call(call("A2", dt=5), POLICY)
    with pytest.raises(JournalError, match=r"stopped after a write failed \(disk I/O error\); restart intake"):
        book.accept_call(call("B", east=9000.0), POLICY)
    assert record.cad_refs == ["A"] and book.next_incident_id == "INC-000002"
    journal.close()
    with Journal(path) as again:
        same_book(book, again.replay(RULES))


def test_record_methods_refuse_records_that_do_not_fit(tmp_path):
    with Journal(tmp_path / "j.db") as journal:
        book = IncidentBook()
        record = book.open_incident(call("A"), True, "ok")
        book.add_call(record, call("B"), POLICY)
        with pytest.raises(ValueError, match="an opened incident has one call"):
            journal.record_opened(record)
        with pytest.raises(ValueError, match="must be the record's last call"):
            journal.record_merged(record, call("A"))
        assert journal.event_count() == 0


# --- files that are not journals --------------------------------------------------------------------------------


def test_a_file_that_is_not_sqlite_is_a_clear_error(tmp_path):
    path = tmp_path / "j.db"
    path.write_bytes(b"this is not a database\n" * 100)
    with pytest.raises(JournalError, match=f"intake journal {path}: is not an SQLite database"):
        Journal(path)
    assert path.read_bytes() == b"this is not a database\n" * 100           # left as it was


def test_an_empty_file_is_not_a_new_journal(tmp_path):
    path = tmp_path / "j.db"
    path.touch()
    with pytest.raises(JournalError, match=f"intake journal {path}: the file is empty"):
        Journal(path)


def make_journal(path: Path, incidents: int = 400) -> IncidentBook:
    with Journal(path) as journal:
        book = journal.replay()
        for i in range(incidents):
            book.open_incident(call(f"C{i}", description="x" * 200), True, "ok")
    return book


def test_a_damaged_journal_is_a_clear_error(tmp_path):
    path = tmp_path / "j.db"
    make_journal(path)
    data = bytearray(path.read_bytes())
    assert len(data) > 20 * 4096
    rng = random.Random(3)
    for offset in range(4096 * 3, len(data) - 4096, 4096 * 4):      # scribble over every fourth page
        data[offset:offset + 512] = rng.randbytes(512)
    path.write_bytes(bytes(data))
    with pytest.raises(JournalError, match=f"intake journal {path}: (is corrupt|cannot be read)"):
        Journal(path).replay()


def test_a_truncated_journal_is_a_clear_error(tmp_path):
    path = tmp_path / "j.db"
    make_journal(path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(JournalError, match=f"intake journal {path}"):
        Journal(path).replay()


def test_a_damaged_header_is_a_clear_error(tmp_path):
    path = tmp_path / "j.db"
    make_journal(path, 5)
    data = bytearray(path.read_bytes())
    data[16:100] = bytes(84)
    path.write_bytes(bytes(data))
    with pytest.raises(JournalError, match=f"intake journal {path}"):
        Journal(path).replay()


def test_another_sqlite_database_is_not_a_journal(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="is an SQLite database but not an intake journal"):
        Journal(path)


@pytest.mark.parametrize("version", ["2", "0", "one"])
def test_an_unknown_schema_version_is_refused(tmp_path, version):
    path = tmp_path / "j.db"
    make_journal(path, 3)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,))
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match=rf"intake journal {path}: has schema version '{version}'; this intake "
                                           rf"reads version 1 only"):
        Journal(path)


def test_a_missing_schema_version_is_refused(tmp_path):
    path = tmp_path / "j.db"
    make_journal(path, 1)
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM meta")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="has no schema version"):
        Journal(path)


def test_a_journal_in_a_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(JournalError, match=f"intake journal {tmp_path}/nowhere/j.db: directory .* does not exist"):
        Journal(tmp_path / "nowhere" / "j.db")


def insert_event(path: Path, **columns) -> None:
    conn = sqlite3.connect(path)
    names = ", ".join(columns)
    conn.execute(f"INSERT INTO events ({names}) VALUES ({', '.join('?' * len(columns))})", tuple(columns.values()))
    conn.commit()
    conn.close()


@pytest.mark.parametrize("event,message", [
    (dict(kind="merged", incident_id="INC-000009", revision=2, call=call_to_json(call("X")), drone_eligible=1,
          policy_reason="ok"), r"\(merged INC-000009\) names an incident that was never opened"),
    (dict(kind="merged", incident_id="INC-000001", revision=3, call=call_to_json(call("X")), drone_eligible=1,
          policy_reason="ok"), r"\(merged INC-000001\) has revision 3, not 2"),
    (dict(kind="merged", incident_id="INC-000001", revision=2, call=call_to_json(call("B")), drone_eligible=1,
          policy_reason="ok"), r"repeats cad_ref 'B' of INC-000002"),
    (dict(kind="merged", incident_id="INC-000001", revision=2, call='{"cad_ref": "X"}', drone_eligible=1,
          policy_reason="ok"), r"the call's fields do not match Call"),
    (dict(kind="opened", incident_id="INC-000002", revision=1, call=call_to_json(call("X")), drone_eligible=1,
          policy_reason="ok"), r"opens an incident that was opened before"),
    (dict(kind="opened", incident_id="INC-X", revision=1, call=call_to_json(call("X")), drone_eligible=1,
          policy_reason="ok"), r"does not end in -<number>"),
    (dict(kind="updated", incident_id="INC-000001", revision=2, drone_eligible=None, policy_reason=None),
     r"lacks the launch policy's decision"),
    (dict(kind="closed", incident_id="INC-000001", reason="done"), r"lacks the reason or time"),
])
def test_events_that_do_not_fit_the_book_are_refused_on_replay(tmp_path, event, message):
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        book = journal.replay()
        book.open_incident(call("A"), True, "ok")
        book.open_incident(call("B", east=9000.0), True, "ok")
    insert_event(path, **event)
    with Journal(path) as journal:
        with pytest.raises(JournalError, match=f"intake journal {path}: event 3 .*{message}"):
            journal.replay()


def test_a_change_to_a_closed_incident_is_refused_on_replay(tmp_path):
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        book = journal.replay()
        book.close(book.open_incident(call("A"), True, "ok").incident_id, "done", T0)
    insert_event(path, kind="closed", incident_id="INC-000001", reason="again", time_s=T0 + 1)
    with Journal(path) as journal, pytest.raises(JournalError, match=r"changes an incident closed by an earlier"):
        journal.replay()


# --- a burst ----------------------------------------------------------------------------------------------------


def test_a_burst_of_ten_thousand_calls(tmp_path):
    """Every call committed in its own transaction, as acknowledging it requires. Measured, not asserted."""
    path = tmp_path / "j.db"
    rng = random.Random(9)
    calls = [random_call(rng, n) for n in range(10_000)]
    with Journal(path) as journal:
        book = journal.replay(RULES)
        start = time.perf_counter()
        outcomes = [book.accept_call(c, POLICY) for c in calls]
        elapsed = time.perf_counter() - start
        events = journal.event_count()
    with Journal(path) as journal:
        start = time.perf_counter()
        replayed = journal.replay(RULES)
        replay_s = time.perf_counter() - start
    same_book(book, replayed)
    assert events == len(calls) == sum(o.action in ("opened", "merged") for o in outcomes)
    size_mb = (path.stat().st_size) / 1e6
    print(f"\njournal burst: {len(calls)} calls ({len(book.incidents)} incidents) in {elapsed:.2f} s = "
          f"{len(calls) / elapsed:.0f} calls/s, one transaction each; replay {replay_s:.2f} s; file {size_mb:.1f} MB")
    assert math.isfinite(elapsed)

"""The intake journal: every accepted incident, and every change to it, on disk before it is acknowledged.

One SQLite file (with its -wal and -shm companions while open: the -wal file is part of
the journal until the last connection closes), in WAL mode with synchronous=FULL, so
a committed event survives a crash of the process and of the machine. Events are
append-only (triggers refuse UPDATE and DELETE):

    opened   incident_id, revision 1, the call, the policy's decision
    merged   incident_id, the revision after it, the call, the decision after it
    updated  incident_id, the revision after it, the decision after it
    closed   incident_id, the reason, the time (the revision goes up by one)

Each record_* call is one transaction, committed before it returns. replay() reads
them in order and rebuilds the IncidentBook exactly; an event that does not fit the
book (an unknown incident, a revision out of step, a call reference seen before) is
an error, never skipped. A file that is not a journal of a version this module reads
raises JournalError naming the path: intake never starts empty over a journal it
cannot read.

Use: journal = Journal(path); book = journal.replay(merge_rules); then change incidents
only through the book, which writes each change here before making it.
"""
from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
from dataclasses import fields
from pathlib import Path
from typing import get_type_hints

from dfr_common.durable_sqlite import DurableSqliteFile, connect, create_file, write_transaction
from dfr_intake.calls import Call
from dfr_intake.incident_book import IncidentBook, IncidentRecord, MergeRules

SCHEMA_VERSION = 1
_SQLITE_HEADER = b"SQLite format 3\x00"
_CALL_TYPES = get_type_hints(Call)
_CALL_FIELDS = tuple(f.name for f in fields(Call))

_SCHEMA = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('opened', 'merged', 'updated', 'closed')),
    incident_id TEXT NOT NULL,
    revision INTEGER,           -- the revision after the event; NULL for closed (one more than before)
    call TEXT,                  -- opened, merged: the call, a JSON object with every field of Call
    drone_eligible INTEGER,     -- opened, merged, updated: the launch policy's decision after the event
    policy_reason TEXT,
    reason TEXT,                -- closed: why
    time_s REAL                 -- closed: when (ROS time, seconds)
);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'the intake journal is append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'the intake journal is append-only'); END;
"""


class JournalError(RuntimeError):
    """The journal cannot be opened, read, replayed or written; the message names the file."""


def call_to_json(call: Call) -> str:
    """The call as a JSON object, field by field; floats written so that they read back bit for bit."""
    values = {}
    for name in _CALL_FIELDS:
        value = getattr(call, name)
        values[name] = float(value) if _CALL_TYPES[name] is float else value
    return json.dumps(values, ensure_ascii=True, allow_nan=True)


def call_from_json(text: str) -> Call:
    """The call call_to_json wrote; ValueError when the text is not such a call."""
    try:
        values = json.loads(text)
    except (TypeError, ValueError) as err:
        raise ValueError(f"the call is not valid JSON: {err}") from err
    if not isinstance(values, dict):
        raise ValueError("the call is not a JSON object")
    missing = [n for n in _CALL_FIELDS if n not in values]
    unknown = sorted(set(values) - set(_CALL_FIELDS))
    if missing or unknown:
        raise ValueError(f"the call's fields do not match Call (missing: {', '.join(missing) or 'none'}; "
                         f"unknown: {', '.join(unknown) or 'none'})")
    for name in _CALL_FIELDS:
        value, wanted = values[name], _CALL_TYPES[name]
        if wanted is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"the call's {name} is {value!r}, not a number")
            values[name] = float(value)
        elif not isinstance(value, wanted):
            raise ValueError(f"the call's {name} is {value!r}, not a {wanted.__name__}")
    return Call(**values)


class Journal(DurableSqliteFile):
    """An append-only event log of the incident book in one SQLite file (see the module's docstring).

    Journal(path) opens the journal at path, creating it when no file is there. Safe to use from
    several threads of one process; one process writes a journal at a time (a write after another
    writer appended raises JournalError).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._failed: str | None = None
        if not self.path.exists():
            self._create()
        self._conn = self._open()
        try:
            self._last_seq = self._conn.execute("SELECT max(seq) FROM events").fetchone()[0]
        except sqlite3.Error as err:
            self._conn.close()
            raise self._error("cannot be read as an intake journal", err) from err

    # --- opening ------------------------------------------------------------------------------------------------

    def _error(self, what: str, err: BaseException | None = None) -> JournalError:
        return JournalError(f"intake journal {self.path}: {what}" + (f" ({err})" if err is not None else ""))

    def _create(self) -> None:
        create_file(self.path, _SCHEMA, {"schema_version": str(SCHEMA_VERSION), "application": "dfr_intake journal"},
                    self._error)

    def _open(self) -> sqlite3.Connection:
        try:
            with open(self.path, "rb") as f:
                header = f.read(len(_SQLITE_HEADER))
        except OSError as err:
            raise self._error("cannot be read", err) from err
        if not header:
            raise self._error("the file is empty, which no journal is; move it away to start a new journal")
        if header != _SQLITE_HEADER:
            raise self._error("is not an SQLite database: the file is corrupt or is not a journal")
        try:
            conn = connect(self.path)
        except sqlite3.Error as err:
            raise self._error("cannot be opened", err) from err
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "meta" not in tables:
                raise self._error("is an SQLite database but not an intake journal (it has no meta table)")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                raise self._error("has no schema version in its meta table")
            if str(row[0]) != str(SCHEMA_VERSION):
                raise self._error(f"has schema version {row[0]!r}; this intake reads version {SCHEMA_VERSION} "
                                  f"only")
            if "events" not in tables:
                raise self._error("has no events table")
            problems = [r[0] for r in conn.execute("PRAGMA quick_check(5)")]
            if problems != ["ok"]:
                raise self._error("is corrupt: " + "; ".join(p.replace("\n", "; ") for p in problems))
            if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
                raise self._error("cannot be put in SQLite's WAL mode")
            conn.execute("PRAGMA synchronous=FULL")
        except JournalError:
            conn.close()
            raise
        except sqlite3.Error as err:
            conn.close()
            raise self._error("cannot be read as an intake journal", err) from err
        return conn

    # --- writing ------------------------------------------------------------------------------------------------

    def record_opened(self, record: IncidentRecord) -> None:
        """An incident opened with its first call; committed (and synced) when this returns."""
        if len(record.calls) != 1 or record.revision != 1 or not record.open:
            raise ValueError(f"{record.incident_id}: an opened incident has one call, revision 1 and is open")
        self._append("opened", record.incident_id, record.revision, call_to_json(record.calls[0]),
                     record.drone_eligible, record.policy_reason)

    def record_merged(self, record: IncidentRecord, call: Call) -> None:
        """A call merged into an incident: the record as it is after the merge (call last), and the call."""
        if not record.calls or record.calls[-1] != call:
            raise ValueError(f"{record.incident_id}: the merged call must be the record's last call")
        self._append("merged", record.incident_id, record.revision, call_to_json(call), record.drone_eligible,
                     record.policy_reason)

    def record_updated(self, record: IncidentRecord) -> None:
        """The launch policy's decision on an incident changed: the record as it is after the change."""
        self._append("updated", record.incident_id, record.revision, None, record.drone_eligible,
                     record.policy_reason)

    def record_closed(self, incident_id: str, reason: str, time_s: float) -> None:
        """An incident closed, why and when (ROS time); its revision goes up by one."""
        self._append("closed", incident_id, None, None, None, None, reason=reason, time_s=float(time_s))

    def _append(self, kind: str, incident_id: str, revision: int | None, call: str | None, eligible: bool | None,
                policy_reason: str | None, reason: str | None = None, time_s: float | None = None) -> None:
        what = f"the {kind} event of {incident_id}"
        with self._lock:
            if self._conn is None:
                raise self._error(f"is closed; cannot write {what}")
            if self._failed is not None:
                raise self._error(f"stopped after a write failed ({self._failed}); restart intake to replay it. "
                                  f"Not written: {what}")
            def write(conn):
                last = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
                if last != self._last_seq:
                    raise self._error(f"another writer appended to it (event {last}, expected {self._last_seq}); "
                                      f"not written: {what}")
                return conn.execute(
                    "INSERT INTO events (kind, incident_id, revision, call, drone_eligible, policy_reason, reason, "
                    "time_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (kind, incident_id, revision, call, None if eligible is None else int(bool(eligible)),
                     policy_reason, reason, time_s)).lastrowid

            # After a failed commit, write nothing more until a replay has read the journal back.
            seq = write_transaction(self._conn, write, what, self._error, self._note_failure)
            self._last_seq = seq

    # --- reading ------------------------------------------------------------------------------------------------

    def event_count(self) -> int:
        with self._lock:
            return self._read(lambda conn: conn.execute("SELECT count(*) FROM events").fetchone()[0])

    def _read(self, query):
        if self._conn is None:
            raise self._error("is closed")
        try:
            return query(self._conn)
        except sqlite3.Error as err:
            raise self._error("cannot be read", err) from err

    def replay(self, merge_rules: MergeRules | None = None, id_prefix: str = "INC") -> IncidentBook:
        """The IncidentBook the journal's events describe: every incident with its calls in order, revisions,
        decisions and reasons, open or closed, and the id counter; with merge_rules, and writing its changes
        to this journal. New incidents get ids id_prefix-N with N after the highest number used."""
        columns = "seq, kind, incident_id, revision, call, drone_eligible, policy_reason, reason, time_s"
        with self._lock:
            rows = self._read(lambda conn: conn.execute(f"SELECT {columns} FROM events ORDER BY seq").fetchall())
            self._last_seq = rows[-1][0] if rows else None
        incidents: dict[str, IncidentRecord] = {}
        by_cad_ref: dict[str, str] = {}
        counter = 0
        for seq, kind, incident_id, revision, call_text, eligible, policy_reason, reason, time_s in rows:
            def bad(why: str, seq=seq, kind=kind, incident_id=incident_id) -> JournalError:
                return self._error(f"event {seq} ({kind} {incident_id}) {why}")

            record = incidents.get(incident_id)
            if kind == "opened":
                if record is not None:
                    raise bad("opens an incident that was opened before")
                number = incident_id.rpartition("-")[2]
                if not number.isdigit():
                    raise bad("has an incident id that does not end in -<number>")
                if revision != 1:
                    raise bad(f"has revision {revision!r}, not 1")
            elif record is None:
                raise bad("names an incident that was never opened")
            elif not record.open:
                raise bad(f"changes an incident closed by an earlier event ({record.close_reason})")
            elif kind in ("merged", "updated") and revision != record.revision + 1:
                raise bad(f"has revision {revision!r}, not {record.revision + 1}")
            if kind in ("opened", "merged"):
                try:
                    call = call_from_json(call_text)
                except ValueError as err:
                    raise bad(str(err)) from err
                if call.cad_ref in by_cad_ref:
                    raise bad(f"repeats cad_ref {call.cad_ref!r} of {by_cad_ref[call.cad_ref]}")
                by_cad_ref[call.cad_ref] = incident_id
            if kind in ("opened", "merged", "updated"):
                if eligible not in (0, 1) or not isinstance(policy_reason, str):
                    raise bad("lacks the launch policy's decision")
            if kind == "opened":
                counter = max(counter, int(number))
                incidents[incident_id] = IncidentRecord(incident_id, [call], bool(eligible), policy_reason)
            elif kind == "merged":
                record.calls.append(call)
                record.drone_eligible, record.policy_reason, record.revision = bool(eligible), policy_reason, revision
            elif kind == "updated":
                record.drone_eligible, record.policy_reason, record.revision = bool(eligible), policy_reason, revision
            elif kind == "closed":
                if not isinstance(reason, str) or not isinstance(time_s, float) or not math.isfinite(time_s):
                    raise bad("lacks the reason or time of the close")
                record.open, record.close_reason, record.closed_at_s = False, reason, time_s
                record.revision += 1
            else:
                raise bad("is of an unknown kind")
        return IncidentBook(id_prefix=id_prefix, incidents=incidents, _by_cad_ref=by_cad_ref, _counter=counter,
                            merge_rules=merge_rules, journal=self)

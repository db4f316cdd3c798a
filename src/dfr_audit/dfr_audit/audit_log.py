"""The audit log: every decision about a flight, on an append-only, hash-chained record anyone can verify.

Critics of drones as first responders fear routine flying surveillance. The answer is a
record: every call, policy decision, assignment, launch, phase, takeover, failsafe,
recording and deletion is an entry here, and verify.py proves that no entry was edited,
removed, reordered or inserted since it was written.

One SQLite file (with its -wal and -shm companions while open), in WAL mode with
synchronous=FULL like the intake journal, so that an entry is on disk when append()
returns. Triggers refuse UPDATE and DELETE on the entries; that is defence in depth only,
since anyone with the file can drop them: the chain is what proves integrity.

The chain: entry n carries prev_hash, the hash of entry n-1 (for entry 1, the genesis
hash, which is derived from the log's id), and hash = SHA-256 over the canonical JSON of
every field of the entry including seq and prev_hash. With a key, HMAC-SHA-256 replaces
SHA-256 everywhere, so that whoever rewrites the whole chain cannot recompute it without
the key. Canonical JSON: keys sorted, no whitespace, ASCII only, integers as integers,
floats as the shortest decimal that reads back to the same double (Python's repr), NaN and
infinities refused. What each kind of entry must carry is EntryKind's docstring, checked on
append, because the transparency report is computed from the entries alone.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

from dfr_common.durable_sqlite import DurableSqliteFile, connect, create_file, write_transaction
from dfr_common.mission import Outcome, Phase

SCHEMA_VERSION = 1
APPLICATION = "dfr_audit log"
CHAIN_SHA256 = "sha256"
CHAIN_HMAC = "hmac-sha256"
_SQLITE_HEADER = b"SQLite format 3\x00"
_ID_FIELDS = ("incident_id", "vehicle_id", "mission_id", "actor")

_SCHEMA = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE entries (
    seq INTEGER PRIMARY KEY,        -- 1, 2, 3, ... without gaps
    ros_time_s REAL NOT NULL,       -- when the decision was taken (ROS time: sim time in simulation)
    wall_time TEXT NOT NULL,        -- when the entry was written (UTC, ISO 8601)
    kind TEXT NOT NULL,             -- an EntryKind value
    incident_id TEXT NOT NULL,
    vehicle_id TEXT NOT NULL,
    mission_id TEXT NOT NULL,
    actor TEXT NOT NULL,            -- who or what took the decision
    detail TEXT NOT NULL,           -- canonical JSON object
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX entries_by_incident ON entries (incident_id);
CREATE INDEX entries_by_kind ON entries (kind);
CREATE INDEX entries_by_hash ON entries (hash);
CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER meta_no_update BEFORE UPDATE ON meta
    BEGIN SELECT RAISE(ABORT, 'the audit log header is fixed'); END;
CREATE TRIGGER meta_no_delete BEFORE DELETE ON meta
    BEGIN SELECT RAISE(ABORT, 'the audit log header is fixed'); END;
"""


class AuditLogError(RuntimeError):
    """The log cannot be created, opened, read or written; the message names the file."""


class EntryKind(str, Enum):
    """The closed set of entry kinds, and what each must carry.

    "ids" are the entry's id fields that must be non-empty; the others may be given.
    "detail" lists the required detail fields (more may be added freely). Types: text is a
    non-empty string, string may be empty, number is a finite int or float, time is a UTC ISO
    8601 string, count an int >= 0.

    call_received             ids incident_id. A call intake accepted into an incident.
                              detail: cad_ref text, grade text, category text,
                              call_time_s number (ROS time the call was received).
    policy_decision           ids incident_id. The launch policy's decision on an incident (on
                              opening and at every change). detail: accepted bool, reason text,
                              grade text, category text (the incident's, when decided).
    incident_opened           ids incident_id. detail: grade text, category text.
    incident_closed           ids incident_id. detail: reason text.
    assignment                ids incident_id, vehicle_id, mission_id: the drone chosen.
                              detail: reason text (why this one), eta_s number,
                              alternatives list of {vehicle_id text, eta_s number or null,
                              reason text (why not chosen)}.
    mission_refused           ids incident_id. No mission flown for it (no drone, refused by the
                              bridge or the rules). detail: reason text.
    launch                    ids vehicle_id, mission_id, and incident_id for an incident flight
                              (one without is still recorded, and reported as a flight outside
                              an incident). detail: flight_kind "incident"|"maintenance"|"test",
                              authorization text (the reason the flight rules gave).
    phase_change              ids vehicle_id, mission_id. detail: phase, a dfr_common.mission.Phase
                              name in lower case (idle, preflight, takeoff, transit, on_scene,
                              follow, return, land).
    pilot_takeover            ids vehicle_id, mission_id. detail: reason text.
    failsafe                  ids vehicle_id. detail: reason text.
    mission_result            ids vehicle_id, mission_id. The mission ended: the flight with it
                              (landed, lost, taken over) unless the outcome is retasked (the
                              vehicle flies on for another mission). detail: outcome, a
                              dfr_common.mission.Outcome name in lower case (completed,
                              canceled, failed, pilot_takeover, vehicle_lost, autopilot_failsafe,
                              battery_reserve, ...); reason string; reached_scene bool.
    target_selected           ids incident_id, vehicle_id, mission_id, actor (who chose it).
                              detail: target_id text, reason text.
    footage_recorded          ids vehicle_id, mission_id (incident_id unless a maintenance or
                              test flight). detail: artifact text (path in the store),
                              artifact_kind "footage"|"track", recorded_at time, sha256 text
                              (64 hex digits), bytes count, evidence bool.
    footage_kept_as_evidence  ids incident_id, actor (who decided). All footage and tracks of
                              the incident are kept past the retention period. detail: reason text.
    footage_deleted           ids mission_id. detail: artifact text, artifact_kind
                              "footage"|"track", reason text, recorded_at time, age_days number.
    maintenance_flight        ids vehicle_id, mission_id, actor (who authorised it). A flight
                              that answers no incident, authorised before its launch.
                              detail: flight_kind "maintenance"|"test", reason text.
    rule_violation_refused    A flight rule refused something asked for (a mission, a launch, the
                              camera down in transit, a drone staying on a closed incident), with
                              the ids it concerned and the deciding node as actor where known.
                              detail: rule text (the rule's name), reason text.
    """

    CALL_RECEIVED = "call_received"
    POLICY_DECISION = "policy_decision"
    INCIDENT_OPENED = "incident_opened"
    INCIDENT_CLOSED = "incident_closed"
    ASSIGNMENT = "assignment"
    MISSION_REFUSED = "mission_refused"
    LAUNCH = "launch"
    PHASE_CHANGE = "phase_change"
    PILOT_TAKEOVER = "pilot_takeover"
    FAILSAFE = "failsafe"
    MISSION_RESULT = "mission_result"
    TARGET_SELECTED = "target_selected"
    FOOTAGE_RECORDED = "footage_recorded"
    FOOTAGE_KEPT_AS_EVIDENCE = "footage_kept_as_evidence"
    FOOTAGE_DELETED = "footage_deleted"
    MAINTENANCE_FLIGHT = "maintenance_flight"
    RULE_VIOLATION_REFUSED = "rule_violation_refused"


PHASES = tuple(p.name.lower() for p in Phase)
OUTCOMES = tuple(o.name.lower() for o in Outcome)
FLIGHT_KINDS = ("incident", "maintenance", "test")
ARTIFACT_KINDS = ("footage", "track")


# --- what each kind must carry ----------------------------------------------------------------------------------


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_utc_time(value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return False
    return parsed.tzinfo is not None and parsed.utcoffset().total_seconds() == 0


def _alternatives_problem(value) -> str | None:
    if not isinstance(value, list):
        return " is not a list"
    for i, alternative in enumerate(value):
        if not isinstance(alternative, dict):
            return f"[{i}] is not an object"
        if not isinstance(alternative.get("vehicle_id"), str) or not alternative["vehicle_id"]:
            return f"[{i}] has no vehicle_id"
        if alternative.get("eta_s", "missing") is not None and not _is_number(alternative.get("eta_s")):
            return f"[{i}] has no eta_s (a number, or null when it could not get there)"
        if not isinstance(alternative.get("reason"), str) or not alternative["reason"]:
            return f"[{i}] has no reason"
    return None


@dataclass(frozen=True)
class _Check:
    what: str
    test: Callable[[Any], bool]


_TEXT = _Check("a non-empty string", lambda v: isinstance(v, str) and v != "")
_STRING = _Check("a string", lambda v: isinstance(v, str))
_BOOL = _Check("true or false", lambda v: isinstance(v, bool))
_NUMBER = _Check("a finite number", _is_number)
_COUNT = _Check("an integer >= 0", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0)
_TIME = _Check("a UTC ISO 8601 time, e.g. 2025-03-01T12:00:00Z", _is_utc_time)
_SHA256 = _Check("64 lower-case hex digits", lambda v: isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v))
_ALTERNATIVES = _Check("a list of {vehicle_id, eta_s, reason}", lambda v: _alternatives_problem(v) is None)


def _one_of(values: tuple[str, ...]) -> _Check:
    return _Check("one of " + ", ".join(values), lambda v: v in values)


@dataclass(frozen=True)
class _Requirement:
    ids: tuple[str, ...] = ()
    detail: dict[str, _Check] = field(default_factory=dict)


REQUIREMENTS: dict[EntryKind, _Requirement] = {
    EntryKind.CALL_RECEIVED: _Requirement(("incident_id",), {
        "cad_ref": _TEXT, "grade": _TEXT, "category": _TEXT, "call_time_s": _NUMBER}),
    EntryKind.POLICY_DECISION: _Requirement(("incident_id",), {
        "accepted": _BOOL, "reason": _TEXT, "grade": _TEXT, "category": _TEXT}),
    EntryKind.INCIDENT_OPENED: _Requirement(("incident_id",), {"grade": _TEXT, "category": _TEXT}),
    EntryKind.INCIDENT_CLOSED: _Requirement(("incident_id",), {"reason": _TEXT}),
    EntryKind.ASSIGNMENT: _Requirement(("incident_id", "vehicle_id", "mission_id"), {
        "reason": _TEXT, "eta_s": _NUMBER, "alternatives": _ALTERNATIVES}),
    EntryKind.MISSION_REFUSED: _Requirement(("incident_id",), {"reason": _TEXT}),
    EntryKind.LAUNCH: _Requirement(("vehicle_id", "mission_id"), {
        "flight_kind": _one_of(FLIGHT_KINDS), "authorization": _TEXT}),
    EntryKind.PHASE_CHANGE: _Requirement(("vehicle_id", "mission_id"), {"phase": _one_of(PHASES)}),
    EntryKind.PILOT_TAKEOVER: _Requirement(("vehicle_id", "mission_id"), {"reason": _TEXT}),
    EntryKind.FAILSAFE: _Requirement(("vehicle_id",), {"reason": _TEXT}),
    EntryKind.MISSION_RESULT: _Requirement(("vehicle_id", "mission_id"), {
        "outcome": _one_of(OUTCOMES), "reason": _STRING, "reached_scene": _BOOL}),
    EntryKind.TARGET_SELECTED: _Requirement(("incident_id", "vehicle_id", "mission_id", "actor"), {
        "target_id": _TEXT, "reason": _TEXT}),
    EntryKind.FOOTAGE_RECORDED: _Requirement(("vehicle_id", "mission_id"), {
        "artifact": _TEXT, "artifact_kind": _one_of(ARTIFACT_KINDS), "recorded_at": _TIME, "sha256": _SHA256,
        "bytes": _COUNT, "evidence": _BOOL}),
    EntryKind.FOOTAGE_KEPT_AS_EVIDENCE: _Requirement(("incident_id", "actor"), {"reason": _TEXT}),
    EntryKind.FOOTAGE_DELETED: _Requirement(("mission_id",), {
        "artifact": _TEXT, "artifact_kind": _one_of(ARTIFACT_KINDS), "reason": _TEXT, "recorded_at": _TIME,
        "age_days": _NUMBER}),
    EntryKind.MAINTENANCE_FLIGHT: _Requirement(("vehicle_id", "mission_id", "actor"), {
        "flight_kind": _one_of(("maintenance", "test")), "reason": _TEXT}),
    EntryKind.RULE_VIOLATION_REFUSED: _Requirement((), {"rule": _TEXT, "reason": _TEXT}),
}


def entry_kind(kind) -> EntryKind:
    """The EntryKind named by kind (an EntryKind or its value); ValueError naming the known kinds."""
    try:
        return EntryKind(kind)
    except ValueError:
        raise ValueError(f"unknown audit entry kind {kind!r}; the kinds are: "
                         f"{', '.join(k.value for k in EntryKind)}") from None


# --- canonical JSON and the chain -------------------------------------------------------------------------------


def plain_json(value, where: str = "detail"):
    """A copy of value made only of dict (string keys), list, str, int, float, bool and None.

    Tuples become lists. Anything else (NaN, sets, objects, non-string keys) raises ValueError
    naming where it is, because the hash must be recomputable from the stored JSON alone.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value!r}; JSON has no NaN or infinity (use null for unknown)")
        return float(value)
    if isinstance(value, dict):
        copy = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where} has the key {key!r}; keys must be strings")
            copy[str(key)] = plain_json(item, f"{where}[{key!r}]")
        return copy
    if isinstance(value, (list, tuple)):
        return [plain_json(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise ValueError(f"{where} is a {type(value).__name__} ({value!r}), which is not JSON-serialisable")


def canonical_json(value) -> str:
    """The one encoding of a plain JSON value that the hashes are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def digest(key: bytes | None, text: str) -> str:
    """SHA-256, or HMAC-SHA-256 with the key, of the text, in hex."""
    data = text.encode("ascii")
    if key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def genesis_hash(log_id: str, key: bytes | None) -> str:
    """What the first entry chains from: binds the chain to this log, so entries cannot be moved between logs."""
    chain = CHAIN_SHA256 if key is None else CHAIN_HMAC
    return digest(key, canonical_json({"genesis": APPLICATION, "log_id": log_id, "schema_version": SCHEMA_VERSION,
                                       "chain": chain}))


def key_check(log_id: str, key: bytes) -> str:
    """Stored with a keyed log so that a wrong key is named as such, not as tampering."""
    return digest(key, canonical_json({"key_check": log_id}))


def entry_hash(key: bytes | None, *, seq: int, ros_time_s: float, wall_time: str, kind: str, incident_id: str,
               vehicle_id: str, mission_id: str, actor: str, detail: dict, prev_hash: str) -> str:
    return digest(key, canonical_json({
        "seq": seq, "ros_time_s": ros_time_s, "wall_time": wall_time, "kind": kind, "incident_id": incident_id,
        "vehicle_id": vehicle_id, "mission_id": mission_id, "actor": actor, "detail": detail,
        "prev_hash": prev_hash}))


def read_key_file(path: str | os.PathLike) -> bytes:
    """The key in a key file: its bytes, surrounding white space removed; ValueError when there is none."""
    try:
        key = Path(path).read_bytes().strip()
    except OSError as err:
        raise ValueError(f"cannot read the key file {path}: {err.strerror}") from err
    if not key:
        raise ValueError(f"the key file {path} is empty")
    return key


def utc_iso(moment: datetime) -> str:
    """A time-zone-aware moment as UTC ISO 8601 with microseconds and a Z."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no time zone; give an aware datetime (UTC)")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- entries ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    ros_time_s: float
    wall_time: str
    kind: EntryKind
    incident_id: str
    vehicle_id: str
    mission_id: str
    actor: str
    detail: dict
    prev_hash: str
    hash: str

    def hashed_fields(self) -> dict:
        return {"seq": self.seq, "ros_time_s": self.ros_time_s, "wall_time": self.wall_time,
                "kind": self.kind.value, "incident_id": self.incident_id, "vehicle_id": self.vehicle_id,
                "mission_id": self.mission_id, "actor": self.actor, "detail": self.detail,
                "prev_hash": self.prev_hash}


_COLUMNS = "seq, ros_time_s, wall_time, kind, incident_id, vehicle_id, mission_id, actor, detail, prev_hash, hash"


def _entry_from_row(row, path: Path) -> AuditEntry:
    seq = row[0]
    try:
        kind = EntryKind(row[3])
        detail = json.loads(row[8])
        ros_time_s = float(row[1])
    except (TypeError, ValueError) as err:
        raise AuditLogError(f"audit log {path}: entry {seq} cannot be read ({err}); run verify on it") from err
    return AuditEntry(seq, ros_time_s, row[2], kind, row[4], row[5], row[6], row[7], detail, row[9], row[10])


def _select(conn: sqlite3.Connection, since_seq: int, kind, incident_id: str | None):
    if isinstance(since_seq, bool) or not isinstance(since_seq, int):
        raise ValueError(f"since_seq is {since_seq!r}, not an integer")
    sql, args = f"SELECT {_COLUMNS} FROM entries WHERE seq > ?", [since_seq]
    if kind is not None:
        sql += " AND kind = ?"
        args.append(entry_kind(kind).value)
    if incident_id is not None:
        sql += " AND incident_id = ?"
        args.append(incident_id)
    return conn.execute(sql + " ORDER BY seq", args)


def validate_entry(kind: EntryKind, ids: dict[str, str], detail: dict) -> None:
    """ValueError naming the first id or detail field that the kind needs and does not have."""
    requirement = REQUIREMENTS[kind]
    an = "an" if kind.value[0] in "aeiou" else "a"
    for name in requirement.ids:
        if not ids[name]:
            raise ValueError(f"{an} {kind.value} entry needs a non-empty {name}")
    for name, check in requirement.detail.items():
        if name not in detail:
            raise ValueError(f"{an} {kind.value} entry needs detail[{name!r}] ({check.what})")
        if not check.test(detail[name]):
            more = ""
            if check is _ALTERNATIVES:
                more = f": alternatives{_alternatives_problem(detail[name])}"
            raise ValueError(f"{an} {kind.value} entry's detail[{name!r}] is {detail[name]!r}, not {check.what}{more}")


# --- opening ----------------------------------------------------------------------------------------------------


def _connect(path: Path, read_only: bool) -> sqlite3.Connection:
    if read_only:
        return sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=5.0, isolation_level=None,
                               check_same_thread=False)
    return connect(path)


def open_log_file(path: Path, read_only: bool) -> tuple[sqlite3.Connection, dict[str, str]]:
    """A connection to an existing audit log and its header; AuditLogError naming the file otherwise."""
    def error(what: str, err: BaseException | None = None) -> AuditLogError:
        return AuditLogError(f"audit log {path}: {what}" + (f" ({err})" if err is not None else ""))

    try:
        with open(path, "rb") as f:
            header = f.read(len(_SQLITE_HEADER))
    except OSError as err:
        raise error("cannot be read", err) from err
    if header != _SQLITE_HEADER:
        raise error("is not an SQLite database" + (" (the file is empty)" if not header else ""))
    try:
        conn = _connect(path, read_only)
    except sqlite3.Error as err:
        raise error("cannot be opened", err) from err
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables or "entries" not in tables:
            raise error("is an SQLite database but not an audit log (it lacks the meta or entries table)")
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("application") != APPLICATION:
            raise error(f"is not an audit log (its application is {meta.get('application')!r})")
        if meta.get("schema_version") != str(SCHEMA_VERSION):
            raise error(f"has schema version {meta.get('schema_version')!r}; this module reads {SCHEMA_VERSION}")
        if meta.get("chain") not in (CHAIN_SHA256, CHAIN_HMAC) or not meta.get("log_id"):
            raise error("has a damaged header (no chain kind or log id)")
        if not read_only:
            if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
                raise error("cannot be put in SQLite's WAL mode")
            conn.execute("PRAGMA synchronous=FULL")
    except AuditLogError:
        conn.close()
        raise
    except sqlite3.Error as err:
        conn.close()
        raise error("cannot be read as an audit log", err) from err
    return conn, meta


def read_entries(path: str | os.PathLike, since_seq: int = 0, kind=None,
                 incident_id: str | None = None) -> Iterator[AuditEntry]:
    """The entries of a log on disk, in order, read without writing to it (for reports and checks)."""
    path = Path(path)
    conn, _ = open_log_file(path, read_only=True)
    try:
        try:
            for row in _select(conn, since_seq, kind, incident_id):
                yield _entry_from_row(row, path)
        except sqlite3.Error as err:
            raise AuditLogError(f"audit log {path}: cannot be read ({err})") from err
    finally:
        conn.close()


class AuditLog(DurableSqliteFile):
    """An append-only, hash-chained log in one SQLite file (see the module's docstring).

    AuditLog(path) creates the log when no file is there and otherwise continues its chain.
    key: the HMAC key of a keyed log (given when it is created, and every time after).
    log_id: the id the genesis hash binds to (a new UUID by default); when opening, it must match.
    wall_clock: what gives the wall time written with each entry; only for tests.
    Appends from several threads (and processes) are serialised.
    """

    def __init__(self, path: str | os.PathLike, *, key: bytes | None = None, log_id: str | None = None,
                 wall_clock: Callable[[], datetime] | None = None):
        self.path = Path(path)
        if key is not None and (not isinstance(key, bytes) or not key):
            raise ValueError("the key must be non-empty bytes")
        if log_id is not None and (not isinstance(log_id, str) or not log_id):
            raise ValueError(f"log_id is {log_id!r}; give a non-empty string")
        self._key = key
        self._wall_clock = wall_clock or (lambda: datetime.now(timezone.utc))
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._failed: str | None = None
        if not self.path.exists():
            self._create(log_id or str(uuid.uuid4()))
        self._conn, meta = open_log_file(self.path, read_only=False)
        try:
            self.log_id = meta["log_id"]
            if log_id is not None and log_id != self.log_id:
                raise self._error(f"has log id {self.log_id!r}, not {log_id!r}")
            self._check_key(meta)
            self._check_tail()
        except BaseException:
            self._conn.close()
            self._conn = None
            raise

    def _error(self, what: str, err: BaseException | None = None) -> AuditLogError:
        return AuditLogError(f"audit log {self.path}: {what}" + (f" ({err})" if err is not None else ""))

    def _create(self, log_id: str) -> None:
        """A new log built beside the path and renamed into place, so that a file at the path is always a log."""
        meta = {"application": APPLICATION, "schema_version": str(SCHEMA_VERSION), "log_id": log_id,
                "chain": CHAIN_SHA256 if self._key is None else CHAIN_HMAC}
        if self._key is not None:
            meta["key_check"] = key_check(log_id, self._key)
        create_file(self.path, _SCHEMA, meta, self._error)

    def _check_key(self, meta: dict[str, str]) -> None:
        if meta["chain"] == CHAIN_HMAC and self._key is None:
            raise self._error("is keyed (HMAC-SHA-256); give its key")
        if meta["chain"] == CHAIN_SHA256 and self._key is not None:
            raise self._error("is not keyed, but a key was given")
        if self._key is not None and not hmac.compare_digest(meta.get("key_check", ""),
                                                             key_check(self.log_id, self._key)):
            raise self._error("the key given is not this log's key")

    def _check_tail(self) -> None:
        """Refuse to chain new entries onto a last entry that does not match its hash (run verify to see why)."""
        tail = self._tail(self._conn)
        if tail is not None and entry_hash(self._key, **tail.hashed_fields()) != tail.hash:
            raise self._error(f"its last entry ({tail.seq}) does not match its hash; run verify on it")

    def _tail(self, conn: sqlite3.Connection) -> AuditEntry | None:
        row = conn.execute(f"SELECT {_COLUMNS} FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else _entry_from_row(row, self.path)

    # --- writing ------------------------------------------------------------------------------------------------

    def append(self, kind, *, ros_time_s: float, incident_id: str = "", vehicle_id: str = "", mission_id: str = "",
               actor: str = "", detail: dict) -> AuditEntry:
        """Write one entry, committed and synced before this returns; ValueError for an entry that is not valid."""
        kind = entry_kind(kind)
        if isinstance(ros_time_s, bool) or not isinstance(ros_time_s, (int, float)) or not math.isfinite(ros_time_s):
            raise ValueError(f"ros_time_s is {ros_time_s!r}, not a finite number of seconds")
        ids = {"incident_id": incident_id, "vehicle_id": vehicle_id, "mission_id": mission_id, "actor": actor}
        for name, value in ids.items():
            if not isinstance(value, str):
                raise ValueError(f"{name} is {value!r}, not a string")
        if not isinstance(detail, dict):
            raise ValueError(f"detail is a {type(detail).__name__}, not a dict")
        detail = plain_json(detail)
        validate_entry(kind, ids, detail)
        wall_time = utc_iso(self._wall_clock())
        what = f"the {kind.value} entry"
        with self._lock:
            if self._conn is None:
                raise self._error(f"is closed; cannot write {what}")
            if self._failed is not None:
                raise self._error(f"stopped after a commit failed ({self._failed}); reopen it. Not written: {what}")
            def write(conn):
                # Read inside the write lock, so that another writer's entries are chained onto, never forked.
                tail = self._tail(conn)
                seq = 1 if tail is None else tail.seq + 1
                prev_hash = genesis_hash(self.log_id, self._key) if tail is None else tail.hash
                fields = dict(seq=seq, ros_time_s=float(ros_time_s), wall_time=wall_time, kind=kind.value,
                              incident_id=incident_id, vehicle_id=vehicle_id, mission_id=mission_id, actor=actor,
                              detail=detail, prev_hash=prev_hash)
                entry = AuditEntry(**{**fields, "kind": kind}, hash=entry_hash(self._key, **fields))
                conn.execute(f"INSERT INTO entries ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (entry.seq, entry.ros_time_s, wall_time, kind.value, incident_id, vehicle_id, mission_id,
                              actor, canonical_json(detail), prev_hash, entry.hash))
                return entry

            # After a failed commit, write nothing more until the log is reopened.
            entry = write_transaction(self._conn, write, what, self._error, self._note_failure)
            return entry

    # --- reading ------------------------------------------------------------------------------------------------

    def entries(self, since_seq: int = 0, kind=None, incident_id: str | None = None) -> list[AuditEntry]:
        """The entries after since_seq, in order, optionally of one kind and/or one incident."""
        with self._lock:
            if self._conn is None:
                raise self._error("is closed")
            try:
                rows = _select(self._conn, since_seq, kind, incident_id).fetchall()
            except sqlite3.Error as err:
                raise self._error("cannot be read", err) from err
        return [_entry_from_row(row, self.path) for row in rows]

    def __len__(self) -> int:
        with self._lock:
            if self._conn is None:
                raise self._error("is closed")
            return self._conn.execute("SELECT count(*) FROM entries").fetchone()[0]

"""What a restarted dispatcher must not forget, kept on disk: the incidents a drone has attended, and the
missions it has numbered.

Dispatch learns incidents from intake's latched stream and missions in flight from the
bridges' status, but an incident whose drone was on scene and has since landed shows in
neither: without this record a restarted dispatcher would send a second drone to every
open incident already seen to. And a dispatcher that numbered its missions from 1 again
would give a new flight the id of one already in the audit log. One SQLite file (WAL,
synchronous=FULL): a row per attended incident, written before the incident stops being
dispatched, and a row per mission, written before its goal is sent.

With no path the record lives in memory only, for tests and tools.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from dfr_common.durable_sqlite import DurableSqliteFile, connect, create_file, write_transaction

SCHEMA_VERSION = 1
APPLICATION = "dfr_dispatch record"

_SCHEMA = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE attended (
    incident_id TEXT PRIMARY KEY,
    vehicle_id TEXT NOT NULL,       -- the drone seen on scene
    mission_id TEXT NOT NULL,
    time_s REAL NOT NULL            -- when its drone left the scene for home (ROS time)
);
CREATE TABLE missions (
    number INTEGER PRIMARY KEY,     -- 1, 2, 3, ... across restarts
    mission_id TEXT NOT NULL UNIQUE,
    incident_id TEXT NOT NULL,
    vehicle_id TEXT NOT NULL,
    time_s REAL NOT NULL            -- when it was sent (ROS time)
);
"""


class DispatchRecordError(RuntimeError):
    """The record cannot be created, read or written; the message names the file."""


class DispatchRecord(DurableSqliteFile):
    """`incident_id in record`, and `add()` once a drone has been on scene and the incident needs no other;
    `add_mission()` numbers a mission before it is sent."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._failed: str | None = None
        self._incidents: dict[str, tuple[str, str, float]] = {}
        self.missions_sent = 0
        # Incident -> [(mission, vehicle)] numbered before this process opened the record: a restarted
        # dispatcher holds such an incident until it has heard whether that drone is still on it.
        self.earlier_missions: dict[str, list[tuple[str, str]]] = {}
        if self.path is None:
            return
        if not self.path.exists():
            create_file(self.path, _SCHEMA, {"application": APPLICATION, "schema_version": str(SCHEMA_VERSION)},
                        self._error)
        try:
            self._conn = connect(self.path)
            meta = dict(self._conn.execute("SELECT key, value FROM meta"))
            if meta.get("application") != APPLICATION or meta.get("schema_version") != str(SCHEMA_VERSION):
                raise self._error(f"is not a version {SCHEMA_VERSION} dispatch record (its header says "
                                  f"{meta.get('application')!r} version {meta.get('schema_version')!r})")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._incidents = {row[0]: tuple(row[1:]) for row in
                               self._conn.execute("SELECT incident_id, vehicle_id, mission_id, time_s FROM attended")}
            self.missions_sent = self._conn.execute("SELECT coalesce(max(number), 0) FROM missions").fetchone()[0]
            for mission_id, incident_id, vehicle_id in self._conn.execute(
                    "SELECT mission_id, incident_id, vehicle_id FROM missions ORDER BY number"):
                self.earlier_missions.setdefault(incident_id, []).append((mission_id, vehicle_id))
        except sqlite3.Error as err:
            self.close()
            raise self._error("cannot be read as a dispatch record", err) from err
        except DispatchRecordError:
            self.close()
            raise

    def _error(self, what: str, err: BaseException | None = None) -> DispatchRecordError:
        return DispatchRecordError(f"dispatch record {self.path}: {what}" + (f" ({err})" if err is not None else ""))

    def __contains__(self, incident_id: str) -> bool:
        return incident_id in self._incidents

    def __len__(self) -> int:
        return len(self._incidents)

    def add(self, incident_id: str, vehicle_id: str, mission_id: str, time_s: float) -> None:
        """Written to disk before it counts; a failed write raises (the incident still counts in memory, so
        this dispatcher sends no second drone; a restarted one would not know)."""
        if incident_id in self._incidents:
            return
        self._incidents[incident_id] = (vehicle_id, mission_id, float(time_s))
        self._write("INSERT INTO attended (incident_id, vehicle_id, mission_id, time_s) VALUES (?, ?, ?, ?)",
                    (incident_id, vehicle_id, mission_id, float(time_s)), f"{incident_id} as attended")

    def add_mission(self, incident_id: str, vehicle_id: str, time_s: float) -> str:
        """The next mission's id, M<number>-<incident>-<vehicle>, its number never used before in this record,
        written to disk before it is returned. A failed write raises DispatchRecordError carrying the id
        (`mission_id`), which the caller may still fly: only a restart could repeat it."""
        self.missions_sent += 1
        number = self.missions_sent
        mission_id = f"M{number:05d}-{incident_id}-{vehicle_id}"
        try:
            self._write("INSERT INTO missions (number, mission_id, incident_id, vehicle_id, time_s) "
                        "VALUES (?, ?, ?, ?, ?)", (number, mission_id, incident_id, vehicle_id, float(time_s)),
                        f"mission {mission_id}")
        except DispatchRecordError as err:
            err.mission_id = mission_id
            raise
        return mission_id

    def _write(self, sql: str, values: tuple, what: str) -> None:
        if self.path is None:
            return
        with self._lock:
            if self._conn is None:
                raise self._error("is closed")
            if self._failed is not None:
                raise self._error(f"a write failed earlier ({self._failed}); nothing more is written")
            write_transaction(self._conn, lambda conn: conn.execute(sql, values), what, self._error,
                              self._note_failure)

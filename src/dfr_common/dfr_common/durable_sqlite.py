"""One durable write to an SQLite file: the rule that intake's journal and the audit log share.

A write either reaches the disk whole or raises; when a COMMIT fails, whether the write
reached the disk is unknown, so the caller is told (`note_failure`) and must write
nothing more until it has read the file back.
"""
from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def write_transaction(conn: sqlite3.Connection, write: Callable[[sqlite3.Connection], T], what: str,
                      error: Callable[[str, BaseException], Exception], note_failure: Callable[[str], None]) -> T:
    """Run `write(conn)` between BEGIN IMMEDIATE and COMMIT; SQLite errors become `error(message, cause)`."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as err:
        raise error(f"could not write {what}", err) from err
    try:
        result = write(conn)
    except BaseException as err:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error as rollback_err:
            note_failure(str(rollback_err))
        if isinstance(err, sqlite3.Error):
            raise error(f"could not write {what}", err) from err
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as err:
        note_failure(str(err))
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        raise error(f"could not commit {what}", err) from err
    return result


class DurableSqliteFile:
    """What a file written through `write_transaction` shares: closing, `with`, and the failure mark.

    Subclasses set `_lock` (a threading lock), `_conn` (the connection, None once closed)
    and `_failed` (None, or why writing stopped).
    """

    _lock: object
    _conn: sqlite3.Connection | None
    _failed: str | None

    def _note_failure(self, reason: str) -> None:
        self._failed = reason

    def close(self) -> None:
        """Close the file (a last checkpoint folds the -wal file into it). Closing twice is harmless."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(path: str | os.PathLike) -> sqlite3.Connection:
    """A connection for write_transaction: transactions begun and committed explicitly, usable from any
    thread (the file's owner serialises writes with its own lock)."""
    return sqlite3.connect(str(path), timeout=5.0, isolation_level=None, check_same_thread=False)


def create_file(path: Path, schema: str, meta: dict[str, str], error: Callable[[str, BaseException | None], Exception],
                ) -> None:
    """A new file in WAL mode with `schema` and its meta table's rows, built beside `path` and renamed into
    place, so that a file at the path is always complete. `schema` must create a table meta (key, value)."""
    if not path.parent.is_dir():
        raise error(f"directory {path.parent} does not exist", None)
    building = path.with_name(path.name + ".new")
    try:
        for leftover in (building, Path(f"{building}-wal"), Path(f"{building}-shm")):
            leftover.unlink(missing_ok=True)
        conn = connect(building)
        try:
            if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
                raise error("the file system does not support SQLite's WAL mode", None)
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(schema)
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", sorted(meta.items()))
        finally:
            conn.close()
        publish_file(building, path)
    except (sqlite3.Error, OSError) as err:
        raise error("could not be created", err) from err


def publish_file(building: str | os.PathLike, path: str | os.PathLike) -> None:
    """Put a fully written file in place: synced, renamed over `path` in one step, the directory synced,
    so that a crash leaves either no file or the whole one."""
    with open(building, "rb") as f:
        os.fsync(f.fileno())
    os.replace(building, path)
    directory = os.open(Path(path).parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)

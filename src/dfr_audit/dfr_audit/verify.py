"""Checking an audit log: that no entry was edited, removed, reordered or inserted, and nothing cut off its end.

verify() recomputes every entry's hash from its fields and its predecessor's hash and
stops at the first entry that does not fit, saying which and what most likely happened.
The chain alone cannot show that entries were cut off the end, nor (without a key) that
the whole chain was rewritten: for that a force publishes the head (count:hash, printed
by a successful verify) at intervals, and verify --expect-head checks the log still holds
that head at that place.

    python -m dfr_audit.verify LOG [--key-file F] [--expect-head [COUNT:]HASH]

exits 0 and prints "ok: ..." with the head, or exits 1 with a one-line reason.
"""
from __future__ import annotations

import argparse
import hmac
import json
import os
import re
import sqlite3
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from dfr_audit.audit_log import (
    CHAIN_HMAC,
    CHAIN_SHA256,
    AuditLogError,
    entry_hash,
    genesis_hash,
    key_check,
    open_log_file,
    read_key_file,
)

# How far from its place a moved entry is looked for when diagnosing; only the first problem is searched.
_MOVED_SEARCH = 64


class ProblemKind(str, Enum):
    EDITED = "edited"                                    # an entry's fields no longer match its hash
    REMOVED = "removed"                                  # entries missing from the sequence (a gap, or renumbered)
    REORDERED_OR_INSERTED = "reordered_or_inserted"      # valid entries that do not chain in this order
    TRUNCATED = "truncated"                              # fewer entries than a published head, or the head is gone
    REWRITTEN = "rewritten"                              # the entry at the published head's place is another one
    HEADER = "header"                                    # the log id or chain kind no longer match the entries
    KEY = "key"                                          # a keyed log without its key, or the wrong key
    UNREADABLE = "unreadable"                            # not an audit log, or one SQLite cannot read


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    seq: int | None     # the entry where it shows; None when it is about the whole log
    message: str


@dataclass(frozen=True)
class LogHead:
    """What a force publishes: how many entries the log had and the hash of the last one."""

    count: int
    hash: str

    def __str__(self) -> str:
        return f"{self.count}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> tuple[int | None, str]:
        """(count or None, hash) from "COUNT:HASH" or "HASH"; ValueError for anything else."""
        match = re.fullmatch(r"(?:(\d+):)?([0-9a-f]{64})", text.strip().lower())
        if match is None:
            raise ValueError(f"{text!r} is not a head: give HASH (64 hex digits) or COUNT:HASH")
        return (int(match[1]) if match[1] is not None else None), match[2]


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    path: str
    entries_checked: int            # entries whose hash and link were found good
    head: LogHead | None            # the last entry's place and hash when ok; None for an empty or bad log
    problem: Problem | None

    def reason(self) -> str:
        """One line: ok with the head, or the first problem."""
        if self.ok:
            head = f", head {self.head}" if self.head is not None else " (empty log)"
            return f"ok: {self.entries_checked} entries{head}"
        where = f"entry {self.problem.seq}: " if self.problem.seq is not None else ""
        return f"{self.problem.kind.value}: {where}{self.problem.message}"


@dataclass
class _Row:
    seq: int
    fields: dict | None     # the hashed fields; None when they cannot be read (the entry was edited)
    prev_hash: str
    hash: str


def _row(raw) -> _Row:
    seq, ros_time_s, wall_time, kind, incident_id, vehicle_id, mission_id, actor, detail, prev_hash, hash_ = raw
    try:
        fields = {"seq": seq, "ros_time_s": float(ros_time_s), "wall_time": wall_time, "kind": kind,
                  "incident_id": incident_id, "vehicle_id": vehicle_id, "mission_id": mission_id, "actor": actor,
                  "detail": json.loads(detail), "prev_hash": prev_hash}
    except (TypeError, ValueError):
        fields = None
    return _Row(seq, fields, str(prev_hash), str(hash_))


def _hash_as(row: _Row, seq: int, key: bytes | None) -> str | None:
    if row.fields is None:
        return None
    try:
        return entry_hash(key, **{**row.fields, "seq": seq})
    except (TypeError, ValueError):
        return None


def _seq_of_hash(conn: sqlite3.Connection, hash_: str) -> int | None:
    row = conn.execute("SELECT seq FROM entries WHERE hash = ? LIMIT 1", (hash_,)).fetchone()
    return None if row is None else row[0]


def _diagnose(conn: sqlite3.Connection, row: _Row, previous: _Row | None, key: bytes | None) -> Problem:
    """What most likely happened at the first entry whose link to its predecessor is broken."""
    self_consistent = _hash_as(row, row.seq, key) == row.hash
    chained_from = _seq_of_hash(conn, row.prev_hash)
    written_as = None
    if not self_consistent:
        for candidate in range(max(1, row.seq - _MOVED_SEARCH), row.seq + _MOVED_SEARCH + 1):
            if candidate != row.seq and _hash_as(row, candidate, key) == row.hash:
                written_as = candidate
                break
    if chained_from is not None:
        moved = f" (it was written as entry {written_as})" if written_as is not None else ""
        return Problem(ProblemKind.REORDERED_OR_INSERTED, row.seq,
                       f"chains from entry {chained_from}, not from entry {row.seq - 1}{moved}: entries were "
                       f"reordered or one was inserted before it")
    if written_as is not None and written_as > row.seq:
        return Problem(ProblemKind.REMOVED, row.seq,
                       f"was written as entry {written_as}: {written_as - row.seq} entries before it were removed "
                       f"and the rest renumbered")
    if written_as is not None:
        return Problem(ProblemKind.REORDERED_OR_INSERTED, row.seq,
                       f"was written as entry {written_as}: entries were inserted before it")
    if self_consistent and previous is not None:
        return Problem(ProblemKind.EDITED, previous.seq,
                       f"was replaced and its hash recomputed: entry {row.seq} chains from what it was")
    if self_consistent:
        return Problem(ProblemKind.HEADER, row.seq,
                       "does not chain from this log's genesis: the log id or chain kind in the header was changed")
    return Problem(ProblemKind.EDITED, row.seq, "its fields and its link to the entry before it were changed")


def verify(path: str | os.PathLike, key: bytes | None = None, expect_head: str | LogHead | None = None
           ) -> VerifyReport:
    """Check the whole chain of the log at path (and, given a published head, that it is still there)."""
    path = Path(path)
    if isinstance(expect_head, LogHead):
        expected_count, expected_hash = expect_head.count, expect_head.hash
    elif expect_head is not None:
        expected_count, expected_hash = LogHead.parse(expect_head)
    else:
        expected_count = expected_hash = None

    def report(checked: int, last: _Row | None, problem: Problem | None) -> VerifyReport:
        head = LogHead(last.seq, last.hash) if last is not None and problem is None else None
        return VerifyReport(problem is None, str(path), checked, head, problem)

    try:
        conn, meta = open_log_file(path, read_only=True)
    except AuditLogError as err:
        return report(0, None, Problem(ProblemKind.UNREADABLE, None, str(err)))
    try:
        log_id = meta["log_id"]
        if meta["chain"] == CHAIN_HMAC and key is None:
            return report(0, None, Problem(ProblemKind.KEY, None, "the log is keyed (HMAC-SHA-256); give its key"))
        if meta["chain"] == CHAIN_SHA256 and key is not None:
            return report(0, None, Problem(ProblemKind.HEADER, None,
                                           "a key was given but the log says it is not keyed: its header was "
                                           "changed, or the whole log rewritten without the key"))
        if key is not None and not hmac.compare_digest(meta.get("key_check", ""), key_check(log_id, key)):
            return report(0, None, Problem(ProblemKind.KEY, None, "the key given is not this log's key"))
        genesis = genesis_hash(log_id, key)
        previous: _Row | None = None
        checked = 0
        try:
            for raw in conn.execute("SELECT seq, ros_time_s, wall_time, kind, incident_id, vehicle_id, mission_id, "
                                    "actor, detail, prev_hash, hash FROM entries ORDER BY seq"):
                row = _row(raw)
                expected_seq = 1 if previous is None else previous.seq + 1
                if row.seq != expected_seq:
                    missing = (f"entry {expected_seq} was" if row.seq == expected_seq + 1
                               else f"entries {expected_seq} to {row.seq - 1} were")
                    return report(checked, previous, Problem(ProblemKind.REMOVED, row.seq,
                                                             f"{missing} removed before it"))
                linked = row.prev_hash == (genesis if previous is None else previous.hash)
                if not linked:
                    return report(checked, previous, _diagnose(conn, row, previous, key))
                if _hash_as(row, row.seq, key) != row.hash:
                    return report(checked, previous, Problem(ProblemKind.EDITED, row.seq,
                                                             "its fields do not match its hash"))
                if expected_hash is not None and row.seq == expected_count and row.hash != expected_hash:
                    return report(checked, previous, Problem(
                        ProblemKind.REWRITTEN, row.seq,
                        f"is not the published head {expected_count}:{expected_hash[:12]}...: the log up to it "
                        f"was rewritten"))
                previous = row
                checked += 1
        except sqlite3.Error as err:
            return report(checked, previous, Problem(ProblemKind.UNREADABLE, None, f"cannot be read ({err})"))
        if expected_hash is not None:
            count = previous.seq if previous is not None else 0
            if expected_count is not None and count < expected_count:
                return report(checked, previous, Problem(
                    ProblemKind.TRUNCATED, None,
                    f"the log has {count} entries but the published head has {expected_count}: entries were cut "
                    f"off its end"))
            if expected_count is None and _seq_of_hash(conn, expected_hash) is None:
                return report(checked, previous, Problem(
                    ProblemKind.TRUNCATED, None,
                    f"the published head {expected_hash[:12]}... is not in the log ({count} entries): entries were "
                    f"cut off its end, or it was rewritten"))
        return report(checked, previous, None)
    finally:
        conn.close()


def head(path: str | os.PathLike, key: bytes | None = None) -> LogHead | None:
    """The head to publish (None for an empty log); AuditLogError when the log does not verify."""
    result = verify(path, key)
    if not result.ok:
        raise AuditLogError(f"audit log {path} does not verify, so it has no head to publish: {result.reason()}")
    return result.head


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dfr_audit.verify", description=__doc__.split("\n")[0])
    parser.add_argument("log", help="the audit log (SQLite file)")
    parser.add_argument("--key-file", help="the HMAC key of a keyed log")
    parser.add_argument("--expect-head", help="a published head, COUNT:HASH or HASH, that must still be in the log")
    args = parser.parse_args(argv)
    try:
        key = read_key_file(args.key_file) if args.key_file else None
        if args.expect_head is not None:
            LogHead.parse(args.expect_head)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    result = verify(args.log, key, args.expect_head)
    print(f"{args.log}: {result.reason()}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Unit tests of dfr_audit.verify: every way of tampering with the SQLite file directly (after dropping the
triggers, as anyone holding the file can) is found, at the right entry and named for what it most likely was.
"""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from dfr_audit.audit_log import AuditLog, AuditLogError, canonical_json, entry_hash, genesis_hash
from dfr_audit.verify import LogHead, ProblemKind, head, main, verify

T0 = datetime(2025, 3, 3, 8, 0, 0, tzinfo=timezone.utc)
COLUMNS = ("seq", "ros_time_s", "wall_time", "kind", "incident_id", "vehicle_id", "mission_id", "actor", "detail",
           "prev_hash", "hash")
ENTRIES = 10


def make_log(path, key: bytes | None = None, entries: int = ENTRIES) -> None:
    ticks = iter(range(10**6))
    with AuditLog(path, key=key, log_id="test-log", wall_clock=lambda: T0 + timedelta(seconds=next(ticks))) as log:
        add(log, entries)


def add(log: AuditLog, entries: int) -> None:
    start = len(log)
    for i in range(start, start + entries):
        log.append("phase_change", ros_time_s=100.0 + i * 1.25, vehicle_id="d1", mission_id="M-1",
                   detail={"phase": ("takeoff", "transit", "on_scene", "return", "land")[i % 5], "n": i})


@pytest.fixture
def log_path(tmp_path):
    path = tmp_path / "audit.db"
    make_log(path)
    return path


def rows(path) -> list[dict]:
    conn = sqlite3.connect(path)
    found = [dict(zip(COLUMNS, r)) for r in conn.execute(f"SELECT {', '.join(COLUMNS)} FROM entries ORDER BY seq")]
    conn.close()
    return found


def rehash(row: dict, key: bytes | None = None) -> str:
    fields = {**{c: row[c] for c in COLUMNS if c not in ("hash", "detail")}, "detail": json.loads(row["detail"])}
    return entry_hash(key, **fields)


def tamper(path, replace: list[dict] | None = None, statements: tuple[str, ...] = ()) -> None:
    """Drop the triggers and change the file: run the statements, then put the given rows in place of all rows."""
    conn = sqlite3.connect(path)
    for trigger in ("entries_no_update", "entries_no_delete", "meta_no_update", "meta_no_delete"):
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for statement in statements:
        conn.execute(statement)
    if replace is not None:
        conn.execute("DELETE FROM entries")
        conn.executemany(f"INSERT INTO entries ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                         [tuple(r[c] for c in COLUMNS) for r in replace])
    conn.commit()
    conn.close()


def problem(path, **kwargs):
    result = verify(path, **kwargs)
    assert not result.ok and result.head is None
    return result.problem


def test_an_untouched_log_verifies(log_path):
    result = verify(log_path)
    last = rows(log_path)[-1]
    assert result.ok and result.problem is None
    assert result.entries_checked == ENTRIES
    assert result.head == LogHead(ENTRIES, last["hash"]) == head(log_path)
    assert result.reason() == f"ok: {ENTRIES} entries, head {ENTRIES}:{last['hash']}"


def test_an_empty_log_verifies_with_no_head(tmp_path):
    AuditLog(tmp_path / "audit.db").close()
    result = verify(tmp_path / "audit.db")
    assert result.ok and result.entries_checked == 0 and result.head is None
    assert head(tmp_path / "audit.db") is None


def test_an_edited_detail_is_found(log_path):
    tamper(log_path, statements=("UPDATE entries SET detail = '{\"n\":4,\"phase\":\"return\"}' WHERE seq = 5",))
    found = problem(log_path)
    assert (found.kind, found.seq) == (ProblemKind.EDITED, 5)
    assert verify(log_path).entries_checked == 4


@pytest.mark.parametrize("column, value", [("ros_time_s", 999.0), ("wall_time", "2025-03-04T00:00:00.000000Z"),
                                           ("kind", "failsafe"), ("vehicle_id", "d9"), ("actor", "someone")])
def test_every_edited_field_is_found(log_path, column, value):
    tamper(log_path, statements=(f"UPDATE entries SET {column} = '{value}' WHERE seq = 7",))
    found = problem(log_path)
    assert (found.kind, found.seq) == (ProblemKind.EDITED, 7)


def test_a_detail_that_is_no_longer_json_is_an_edit(log_path):
    tamper(log_path, statements=("UPDATE entries SET detail = 'not json' WHERE seq = 2",))
    assert (problem(log_path).kind, problem(log_path).seq) == (ProblemKind.EDITED, 2)


def test_an_edit_with_its_hash_recomputed_is_found_at_the_edited_entry(log_path):
    changed = rows(log_path)
    changed[5]["detail"] = canonical_json({"n": 5, "phase": "on_scene"})
    changed[5]["hash"] = rehash(changed[5])
    tamper(log_path, replace=changed)
    found = problem(log_path)
    assert (found.kind, found.seq) == (ProblemKind.EDITED, 6)
    assert "hash recomputed" in found.message


def test_a_removed_row_is_found(log_path):
    tamper(log_path, statements=("DELETE FROM entries WHERE seq = 4",))
    found = problem(log_path)
    assert (found.kind, found.seq) == (ProblemKind.REMOVED, 5)
    assert "entry 4 was removed" in found.message


def test_removed_rows_at_the_start_are_found(log_path):
    tamper(log_path, statements=("DELETE FROM entries WHERE seq <= 2",))
    found = problem(log_path)
    assert (found.kind, found.seq) == (ProblemKind.REMOVED, 3)
    assert "entries 1 to 2 were removed" in found.message


def test_a_removed_row_with_the_rest_renumbered_is_found(log_path):
    kept = [r for r in rows(log_path) if r["seq"] != 4]
    for r in kept:
        r["seq"] = r["seq"] - 1 if r["seq"] > 4 else r["seq"]
    tamper(log_path, replace=kept)
    found = problem(log_path)
    assert (found.kind, found.seq) == (ProblemKind.REMOVED, 4)
    assert "written as entry 5" in found.message


def test_two_swapped_rows_are_found(log_path):
    changed = rows(log_path)
    changed[2], changed[3] = {**changed[3], "seq": 3}, {**changed[2], "seq": 4}
    tamper(log_path, replace=changed)
    found = problem(log_path)
    assert (found.kind, found.seq) == (ProblemKind.REORDERED_OR_INSERTED, 3)
    assert "chains from entry 4" in found.message


def test_an_inserted_row_with_a_valid_hash_is_found(log_path):
    """The strongest insertion without a key: the new entry chains properly from its predecessor and the later
    entries are renumbered; the entry after it no longer chains from it."""
    original = rows(log_path)
    forged = {**original[5], "seq": 6, "detail": canonical_json({"n": 99, "phase": "transit"}),
              "prev_hash": original[4]["hash"]}
    forged["hash"] = rehash(forged)
    changed = original[:5] + [forged] + [{**r, "seq": r["seq"] + 1} for r in original[5:]]
    tamper(log_path, replace=changed)
    found = problem(log_path)
    assert (found.kind, found.seq) == (ProblemKind.REORDERED_OR_INSERTED, 7)
    assert "chains from entry 5, not from entry 6" in found.message
    assert verify(log_path).entries_checked == 6


def test_a_truncated_tail_is_found_with_the_published_head(log_path):
    published = head(log_path)
    tamper(log_path, statements=(f"DELETE FROM entries WHERE seq > {ENTRIES - 2}",))
    assert verify(log_path).ok, "a truncated chain is still a chain: only the published head shows the cut"
    found = problem(log_path, expect_head=str(published))
    assert found.kind is ProblemKind.TRUNCATED
    assert f"has {ENTRIES - 2} entries but the published head has {ENTRIES}" in found.message
    assert problem(log_path, expect_head=published.hash).kind is ProblemKind.TRUNCATED


def test_a_log_that_grew_after_its_head_was_published_verifies(log_path):
    published = head(log_path)
    with AuditLog(log_path) as log:
        add(log, 3)
    assert verify(log_path, expect_head=published).ok
    assert verify(log_path, expect_head=published.hash).ok


def test_a_whole_chain_rewritten_without_a_key_is_found_with_the_published_head(log_path):
    published = head(log_path)
    changed = rows(log_path)
    changed[3]["detail"] = canonical_json({"n": 3, "phase": "land"})
    for i in range(3, len(changed)):
        changed[i]["prev_hash"] = changed[i - 1]["hash"]
        changed[i]["hash"] = rehash(changed[i])
    tamper(log_path, replace=changed)
    assert verify(log_path).ok, "without a key, a full rewrite is only caught by a published head"
    found = problem(log_path, expect_head=published)
    assert (found.kind, found.seq) == (ProblemKind.REWRITTEN, ENTRIES)


def test_a_keyed_chain_rewritten_without_the_key_is_found(tmp_path):
    path = tmp_path / "audit.db"
    make_log(path, key=b"force secret")
    assert verify(path, key=b"force secret").ok
    changed = rows(path)
    changed[3]["detail"] = canonical_json({"n": 3, "phase": "land"})
    changed[0]["prev_hash"] = genesis_hash("test-log", None)
    for i in range(len(changed)):
        changed[i]["prev_hash"] = changed[i - 1]["hash"] if i else changed[0]["prev_hash"]
        changed[i]["hash"] = rehash(changed[i])
    tamper(path, replace=changed)
    found = problem(path, key=b"force secret")
    assert (found.kind, found.seq) == (ProblemKind.EDITED, 1)
    # And turning the header into an unkeyed log's does not help while the verifier holds the key.
    tamper(path, statements=("UPDATE meta SET value = 'sha256' WHERE key = 'chain'",
                             "DELETE FROM meta WHERE key = 'key_check'"))
    assert problem(path, key=b"force secret").kind is ProblemKind.HEADER


def test_an_edited_entry_of_a_keyed_log_is_found(tmp_path):
    path = tmp_path / "audit.db"
    make_log(path, key=b"k")
    changed = rows(path)
    changed[8]["actor"] = "someone else"
    changed[8]["hash"] = rehash(changed[8])       # recomputed, but without the key
    tamper(path, replace=changed)
    found = problem(path, key=b"k")
    assert (found.kind, found.seq) == (ProblemKind.EDITED, 9)


def test_a_keyed_log_needs_the_right_key(tmp_path):
    path = tmp_path / "audit.db"
    make_log(path, key=b"right", entries=2)
    assert problem(path).kind is ProblemKind.KEY
    assert problem(path, key=b"wrong").kind is ProblemKind.KEY
    assert "not this log's key" in problem(path, key=b"wrong").message
    assert verify(path, key=b"right").ok


def test_a_changed_log_id_is_found(log_path):
    tamper(log_path, statements=("UPDATE meta SET value = 'another-log' WHERE key = 'log_id'",))
    found = problem(log_path)
    assert (found.kind, found.seq) == (ProblemKind.HEADER, 1)


def test_files_that_are_not_logs_are_unreadable(tmp_path):
    assert problem(tmp_path / "missing.db").kind is ProblemKind.UNREADABLE
    (tmp_path / "junk.db").write_bytes(b"junk" * 100)
    assert problem(tmp_path / "junk.db").kind is ProblemKind.UNREADABLE


def test_bad_heads_are_refused(log_path):
    with pytest.raises(ValueError, match="is not a head"):
        verify(log_path, expect_head="12:xyz")
    assert LogHead.parse("3:" + "A" * 64) == (3, "a" * 64)


def test_head_refuses_a_log_that_does_not_verify(log_path):
    tamper(log_path, statements=("DELETE FROM entries WHERE seq = 2",))
    with pytest.raises(AuditLogError, match="does not verify"):
        head(log_path)


def test_cli_exit_codes_and_one_line_reasons(log_path, tmp_path, capsys):
    assert main([str(log_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and ": ok: 10 entries, head 10:" in out
    published = out.strip().rsplit(" ", 1)[1]
    assert main([str(log_path), "--expect-head", published]) == 0
    capsys.readouterr()
    tamper(log_path, statements=(f"DELETE FROM entries WHERE seq = {ENTRIES}",))
    assert main([str(log_path)]) == 0
    capsys.readouterr()
    assert main([str(log_path), "--expect-head", published]) == 1
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "truncated" in out
    tamper(log_path, statements=("UPDATE entries SET actor = 'x' WHERE seq = 3",))
    assert main([str(log_path)]) == 1
    assert capsys.readouterr().out.strip().endswith("edited: entry 3: its fields do not match its hash")
    assert main([str(log_path), "--expect-head", "nonsense"]) == 1
    assert "is not a head" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.db")]) == 1


def test_cli_with_a_key_file(tmp_path, capsys):
    path = tmp_path / "audit.db"
    make_log(path, key=b"force secret", entries=3)
    (tmp_path / "key").write_bytes(b"force secret\n")
    (tmp_path / "wrong").write_bytes(b"guess\n")
    assert main([str(path), "--key-file", str(tmp_path / "key")]) == 0
    assert main([str(path), "--key-file", str(tmp_path / "wrong")]) == 1
    assert main([str(path)]) == 1
    assert main([str(path), "--key-file", str(tmp_path / "nokey")]) == 1
    assert "cannot read the key file" in capsys.readouterr().err


def test_cli_runs_as_a_module(log_path):
    done = subprocess.run([sys.executable, "-m", "dfr_audit.verify", str(log_path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and "ok: 10 entries" in done.stdout
    tamper(log_path, statements=("DELETE FROM entries WHERE seq = 5",))
    done = subprocess.run([sys.executable, "-m", "dfr_audit.verify", str(log_path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and done.stdout.count("\n") == 1 and "removed: entry 6" in done.stdout

"""Unit tests of dfr_audit.retention: recordings enter the store on the record, leave it when their period has
passed unless they are evidence, and every deletion (and every failure to delete) is accounted for."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from dfr_audit.audit_log import AuditLog, EntryKind, read_entries
from dfr_audit.retention import (
    ArtifactMeta,
    RetentionError,
    RetentionPolicy,
    apply_retention,
    main,
    mark_evidence,
    record_artifact,
    scan_store,
)
from dfr_audit.verify import verify

RECORDED = datetime(2025, 3, 3, 9, 30, 0, tzinfo=timezone.utc)
POLICY = RetentionPolicy(days=28)


@pytest.fixture
def store(tmp_path) -> Path:
    (tmp_path / "store").mkdir()
    return tmp_path / "store"


@pytest.fixture
def log(tmp_path):
    with AuditLog(tmp_path / "audit.db") as audit_log:
        yield audit_log


def record(tmp_path, store, log, name: str, incident_id: str = "INC-1", mission_id: str = "M-1",
           recorded_at: datetime = RECORDED, kind: str = "footage", content: bytes = b"frames"):
    source = tmp_path / name
    source.write_bytes(content)
    meta = ArtifactMeta(mission_id, "d1", kind, recorded_at, incident_id)
    return record_artifact(store, log, source, meta, ros_time_s=1000.0)


def logged(log, kind: EntryKind):
    return log.entries(kind=kind)


def test_recording_moves_the_file_in_writes_its_sidecar_and_logs_it(tmp_path, store, log):
    artifact = record(tmp_path, store, log, "cam0.mp4", content=b"0123456789")
    assert artifact.path == store / "M-1" / "cam0.mp4" and artifact.path.read_bytes() == b"0123456789"
    assert not (tmp_path / "cam0.mp4").exists()
    sidecar = json.loads((store / "M-1" / "cam0.mp4.meta.json").read_text())
    assert sidecar == {"format": 1, "file": "cam0.mp4", "incident_id": "INC-1", "mission_id": "M-1",
                       "vehicle_id": "d1", "kind": "footage", "recorded_at": "2025-03-03T09:30:00.000000Z",
                       "evidence": False, "sha256": hashlib.sha256(b"0123456789").hexdigest(), "bytes": 10}
    (entry,) = logged(log, EntryKind.FOOTAGE_RECORDED)
    assert (entry.incident_id, entry.mission_id, entry.vehicle_id, entry.ros_time_s) == ("INC-1", "M-1", "d1",
                                                                                         1000.0)
    assert entry.detail == {"artifact": "M-1/cam0.mp4", "artifact_kind": "footage",
                            "recorded_at": "2025-03-03T09:30:00.000000Z", "sha256": sidecar["sha256"],
                            "bytes": 10, "evidence": False}
    assert [a.relative for a in scan_store(store)[0]] == ["M-1/cam0.mp4"]


def test_recording_refuses_overwrites_and_bad_metadata(tmp_path, store, log):
    record(tmp_path, store, log, "cam0.mp4")
    with pytest.raises(ValueError, match="already in the store"):
        record(tmp_path, store, log, "cam0.mp4")
    with pytest.raises(ValueError, match="cannot name a store folder"):
        ArtifactMeta("../etc", "d1", "footage", RECORDED)
    with pytest.raises(ValueError, match="no time zone"):
        ArtifactMeta("M-2", "d1", "footage", datetime(2025, 3, 3))
    with pytest.raises(ValueError, match="kind is 'photo'"):
        ArtifactMeta("M-2", "d1", "photo", RECORDED)
    (tmp_path / "x.meta.json").write_text("{}")
    with pytest.raises(ValueError, match="cannot go in the store"):
        record_artifact(store, log, tmp_path / "x.meta.json", ArtifactMeta("M-2", "d1", "track", RECORDED),
                        ros_time_s=1.0)
    with pytest.raises(ValueError, match="is not a file"):
        record_artifact(store, log, tmp_path / "none.mp4", ArtifactMeta("M-2", "d1", "track", RECORDED),
                        ros_time_s=1.0)
    assert len(logged(log, EntryKind.FOOTAGE_RECORDED)) == 1


def test_a_deadline_passing_deletes_and_logs(tmp_path, store, log):
    record(tmp_path, store, log, "cam0.mp4")
    record(tmp_path, store, log, "track.json", kind="track")
    before = apply_retention(store, log, RECORDED + timedelta(days=27, hours=23), POLICY)
    assert before.ok and before.deleted == [] and len(before.kept_within_period) == 2
    assert (store / "M-1" / "cam0.mp4").exists()
    after = apply_retention(store, log, RECORDED + timedelta(days=28, hours=1), POLICY, ros_time_s=5000.0)
    assert after.ok and after.kept_within_period == []
    assert sorted(d.relative for d in after.deleted) == ["M-1/cam0.mp4", "M-1/track.json"]
    assert not (store / "M-1").exists(), "the empty mission folder goes too"
    deletions = logged(log, EntryKind.FOOTAGE_DELETED)
    assert sorted(e.detail["artifact"] for e in deletions) == ["M-1/cam0.mp4", "M-1/track.json"]
    for entry in deletions:
        assert entry.detail["age_days"] == pytest.approx(28 + 1 / 24)
        assert entry.detail["retention_days"] == 28
        assert "retention period of 28 days has passed" in entry.detail["reason"]
        assert "INC-1 is not evidence" in entry.detail["reason"]
        assert (entry.incident_id, entry.mission_id, entry.actor, entry.ros_time_s) == ("INC-1", "M-1", "retention",
                                                                                        5000.0)
    assert {e.detail["artifact_kind"] for e in deletions} == {"footage", "track"}
    assert apply_retention(store, log, RECORDED + timedelta(days=60), POLICY).deleted == []
    assert verify(log.path).ok


def test_the_period_comes_from_the_policy(tmp_path, store, log):
    record(tmp_path, store, log, "cam0.mp4")
    now = RECORDED + timedelta(days=10)
    assert apply_retention(store, log, now, RetentionPolicy(days=31)).deleted == []
    assert [d.relative for d in apply_retention(store, log, now, RetentionPolicy(days=7)).deleted] == ["M-1/cam0.mp4"]
    with pytest.raises(ValueError, match="positive number of days"):
        RetentionPolicy(days=0)
    with pytest.raises(ValueError, match="time-zone-aware"):
        apply_retention(store, log, datetime(2025, 4, 1), POLICY)


def test_evidence_is_kept_and_its_marking_logged(tmp_path, store, log):
    record(tmp_path, store, log, "a.mp4", incident_id="INC-1", mission_id="M-1")
    record(tmp_path, store, log, "b.mp4", incident_id="INC-2", mission_id="M-2")
    marked = mark_evidence(store, log, "INC-1", actor="DS Smith", reason="suspect charged", ros_time_s=2000.0)
    assert marked == ["M-1/a.mp4"]
    (entry,) = logged(log, EntryKind.FOOTAGE_KEPT_AS_EVIDENCE)
    assert (entry.incident_id, entry.actor, entry.detail) == ("INC-1", "DS Smith", {"reason": "suspect charged"})
    assert json.loads((store / "M-1" / "a.mp4.meta.json").read_text())["evidence"] is True
    later = record(tmp_path, store, log, "c.mp4", incident_id="INC-1", mission_id="M-3")
    assert later.evidence, "a recording of an incident already marked is evidence too"
    result = apply_retention(store, log, RECORDED + timedelta(days=90), POLICY)
    assert result.ok and sorted(result.kept_as_evidence) == ["M-1/a.mp4", "M-3/c.mp4"]
    assert [d.relative for d in result.deleted] == ["M-2/b.mp4"]
    assert (store / "M-1" / "a.mp4").exists() and not (store / "M-2").exists()
    assert result.evidence_not_marked_in_log == []


def test_evidence_decided_by_the_log_even_if_a_sidecar_lost_its_flag(tmp_path, store, log):
    record(tmp_path, store, log, "a.mp4")
    mark_evidence(store, log, "INC-1", actor="DS Smith", reason="charged", ros_time_s=2000.0)
    sidecar = store / "M-1" / "a.mp4.meta.json"
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "evidence": False}))
    assert apply_retention(store, log, RECORDED + timedelta(days=90), POLICY).kept_as_evidence == ["M-1/a.mp4"]


def test_evidence_given_but_never_marked_is_kept_and_reported(tmp_path, store, log):
    record(tmp_path, store, log, "a.mp4", incident_id="INC-7")
    result = apply_retention(store, log, RECORDED + timedelta(days=90), POLICY, evidence_incidents={"INC-7"})
    assert result.kept_as_evidence == ["M-1/a.mp4"] and result.deleted == []
    assert result.evidence_not_marked_in_log == ["INC-7"]
    with pytest.raises(ValueError, match="is a string"):
        apply_retention(store, log, RECORDED, POLICY, evidence_incidents="INC-7")


def test_a_failing_delete_is_reported_and_not_logged(tmp_path, store, log, monkeypatch):
    stuck = record(tmp_path, store, log, "stuck.mp4").path
    record(tmp_path, store, log, "fine.mp4")
    real_unlink = Path.unlink

    def unlink(self, missing_ok=False):
        if self == stuck:
            raise PermissionError(13, "Permission denied", str(self))
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    result = apply_retention(store, log, RECORDED + timedelta(days=30), POLICY)
    assert not result.ok
    (failure,) = result.failures
    assert failure.relative == "M-1/stuck.mp4" and "could not be deleted" in failure.reason
    assert "Permission denied" in failure.reason
    assert [d.relative for d in result.deleted] == ["M-1/fine.mp4"]
    assert [e.detail["artifact"] for e in logged(log, EntryKind.FOOTAGE_DELETED)] == ["M-1/fine.mp4"]
    assert stuck.exists() and (store / "M-1" / "stuck.mp4.meta.json").exists()
    monkeypatch.undo()
    retry = apply_retention(store, log, RECORDED + timedelta(days=31), POLICY)
    assert retry.ok and [d.relative for d in retry.deleted] == ["M-1/stuck.mp4"]


def test_files_retention_cannot_account_for_are_reported_never_deleted(tmp_path, store, log):
    record(tmp_path, store, log, "a.mp4")
    (store / "M-1" / "orphan.mp4").write_bytes(b"?")
    (store / "M-9").mkdir()
    (store / "M-9" / "x.mp4.meta.json").write_text("not json")
    (store / "M-9" / "x.mp4").write_bytes(b"?")
    (store / "loose.txt").write_text("?")
    result = apply_retention(store, log, RECORDED + timedelta(days=30), POLICY)
    reasons = {f.relative: f.reason for f in result.failures}
    assert set(reasons) == {"M-1/orphan.mp4", "M-9/x.mp4.meta.json", "loose.txt"}
    assert "without a sidecar" in reasons["M-1/orphan.mp4"]
    assert "not valid JSON" in reasons["M-9/x.mp4.meta.json"]
    assert (store / "M-1" / "orphan.mp4").exists() and (store / "M-9" / "x.mp4").exists()
    assert [d.relative for d in result.deleted] == ["M-1/a.mp4"]


def test_a_file_gone_before_retention_is_logged_and_reported(tmp_path, store, log):
    artifact = record(tmp_path, store, log, "a.mp4")
    artifact.path.unlink()
    early = apply_retention(store, log, RECORDED + timedelta(days=1), POLICY)
    assert [f.relative for f in early.failures] == ["M-1/a.mp4"] and "missing" in early.failures[0].reason
    late = apply_retention(store, log, RECORDED + timedelta(days=30), POLICY)
    assert [f.relative for f in late.failures] == ["M-1/a.mp4"]
    (entry,) = logged(log, EntryKind.FOOTAGE_DELETED)
    assert "already missing" in entry.detail["reason"]


def test_marking_needs_an_incident_and_an_actor(store, log):
    with pytest.raises(ValueError, match="name the incident"):
        mark_evidence(store, log, "", actor="DS Smith", reason="r", ros_time_s=1.0)
    with pytest.raises(ValueError, match="needs a non-empty actor"):
        mark_evidence(store, log, "INC-1", actor="", reason="r", ros_time_s=1.0)
    with pytest.raises(RetentionError, match="not a directory"):
        scan_store(store / "nope")


def test_cli_marks_an_incident_as_evidence_and_retention_then_keeps_it(tmp_path, store, log, capsys):
    record(tmp_path, store, log, "a.mp4")
    log.close()
    args = [str(store), "--log", str(tmp_path / "audit.db")]
    assert main([*args, "--mark-evidence", "INC-1", "--by", "DS Jones"]) == 1
    assert "--reason" in capsys.readouterr().err
    assert main([*args, "--mark-evidence", "INC-1", "--by", "DS Jones", "--reason", "charge decision"]) == 0
    assert "INC-1 is evidence: 1 recordings" in capsys.readouterr().out
    assert main([*args, "--now", "2025-06-01T00:00:00Z"]) == 0
    assert "kept as evidence: M-1/a.mp4" in capsys.readouterr().out
    assert (store / "M-1" / "a.mp4").exists()
    marks = list(read_entries(tmp_path / "audit.db", kind=EntryKind.FOOTAGE_KEPT_AS_EVIDENCE))
    assert [(m.incident_id, m.actor, m.detail["reason"]) for m in marks] == [("INC-1", "DS Jones", "charge decision")]


def test_cli(tmp_path, store, log, capsys):
    record(tmp_path, store, log, "a.mp4")
    record(tmp_path, store, log, "b.mp4", recorded_at=RECORDED + timedelta(days=5))
    log.close()
    args = [str(store), "--log", str(tmp_path / "audit.db")]
    assert main([*args, "--now", "2025-03-20T00:00:00Z"]) == 0
    assert "0 deleted" in capsys.readouterr().out
    assert main([*args, "--now", "2025-04-01T00:00:00+00:00", "--days", "28"]) == 0
    out = capsys.readouterr().out
    assert "deleted M-1/a.mp4 (incident INC-1, 28.6 days old)" in out and "1 deleted" in out
    (store / "M-1" / "orphan.mp4").write_bytes(b"?")
    assert main([*args, "--now", "2025-04-01T00:00:00Z"]) == 1
    assert "FAILED M-1/orphan.mp4" in capsys.readouterr().err
    assert main([*args, "--now", "2025-04-01T00:00:00"]) == 1
    assert "no time zone" in capsys.readouterr().err
    assert main([str(store), "--log", str(tmp_path / "none.db")]) == 1
    assert not (tmp_path / "none.db").exists(), "the command never creates a log"
    done = subprocess.run([sys.executable, "-m", "dfr_audit.retention", *args, "--days", "7",
                           "--now", "2025-04-01T00:00:00Z"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "orphan.mp4" in done.stderr and "1 deleted" in done.stdout
    assert verify(tmp_path / "audit.db").ok

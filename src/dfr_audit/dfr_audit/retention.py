"""Retention: footage and tracks are deleted once the retention period has passed, unless they are evidence.

Footage a drone records is what critics fear most, so its whole life is on the audit log:
footage_recorded when it enters the store, footage_kept_as_evidence when someone marks its
incident as evidence, footage_deleted when retention deletes it, with its age and why.

The store (one directory):

    STORE/<mission_id>/<file>              the footage or track, as recorded
    STORE/<mission_id>/<file>.meta.json    its sidecar: {"format": 1, "file", "incident_id", "mission_id",
                                           "vehicle_id", "kind": "footage"|"track", "recorded_at": UTC ISO 8601,
                                           "evidence": bool, "sha256", "bytes"}

Only record_artifact() puts files in and only apply_retention() takes them out. Whether an
incident is evidence is decided by the audit log (footage_kept_as_evidence entries); the
sidecar's flag mirrors it for whoever browses the store. Anything retention cannot account
for (a file without a sidecar, a sidecar it cannot read, a file it cannot delete) is a
failure in the result and makes the command exit 1: nothing is skipped silently.

    python -m dfr_audit.retention STORE --log LOG [--days N] [--now ISO] [--key-file F]
    python -m dfr_audit.retention STORE --log LOG --mark-evidence INCIDENT --by WHO --reason WHY

Retention is the one place the wall clock decides anything: it takes `now` as an argument.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from dfr_audit.audit_log import ARTIFACT_KINDS, AuditLog, AuditLogError, EntryKind, read_key_file, utc_iso

SIDECAR_SUFFIX = ".meta.json"
PARTIAL_SUFFIX = ".partial"
SIDECAR_FORMAT = 1
SECONDS_PER_DAY = 86400.0
RETENTION_ACTOR = "retention"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_COPY_CHUNK = 1 << 20


class RetentionError(RuntimeError):
    """The store cannot be written as asked; the message says what is where."""


@dataclass(frozen=True)
class RetentionPolicy:
    """How long footage and tracks that are not evidence are kept (days, from when they were recorded)."""

    days: float = 28.0

    def __post_init__(self):
        if isinstance(self.days, bool) or not isinstance(self.days, (int, float)) or not math.isfinite(self.days) \
                or self.days <= 0:
            raise ValueError(f"retention days is {self.days!r}; give a positive number of days")


@dataclass(frozen=True)
class ArtifactMeta:
    """What a recording is: the mission that made it and the incident it answers (empty for a maintenance flight)."""

    mission_id: str
    vehicle_id: str
    kind: str                   # "footage" or "track"
    recorded_at: datetime       # when the recording ended, time-zone aware
    incident_id: str = ""

    def __post_init__(self):
        if not isinstance(self.mission_id, str) or not _SAFE_NAME.fullmatch(self.mission_id):
            raise ValueError(f"mission_id {self.mission_id!r} cannot name a store folder: use letters, digits, "
                             f"'.', '_' and '-', starting with a letter or digit")
        if not isinstance(self.vehicle_id, str) or not self.vehicle_id:
            raise ValueError(f"vehicle_id is {self.vehicle_id!r}; give the vehicle that recorded it")
        if self.kind not in ARTIFACT_KINDS:
            raise ValueError(f"kind is {self.kind!r}, not one of {', '.join(ARTIFACT_KINDS)}")
        if not isinstance(self.recorded_at, datetime):
            raise ValueError(f"recorded_at is {self.recorded_at!r}, not a datetime")
        utc_iso(self.recorded_at)   # refuses a naive time
        if not isinstance(self.incident_id, str):
            raise ValueError(f"incident_id is {self.incident_id!r}, not a string")


@dataclass(frozen=True)
class Artifact:
    """A file in the store, as its sidecar describes it."""

    path: Path
    sidecar: Path
    relative: str               # "<mission_id>/<file>", the name the audit log uses
    meta: ArtifactMeta
    evidence: bool
    sha256: str
    bytes: int


@dataclass(frozen=True)
class DeletedArtifact:
    relative: str
    incident_id: str
    age_days: float


@dataclass(frozen=True)
class RetentionFailure:
    relative: str               # the file or folder, relative to the store
    reason: str


@dataclass
class RetentionResult:
    deleted: list[DeletedArtifact] = field(default_factory=list)
    kept_as_evidence: list[str] = field(default_factory=list)
    kept_within_period: list[str] = field(default_factory=list)
    failures: list[RetentionFailure] = field(default_factory=list)
    # Incidents (or artifacts) kept as evidence that the log never shows marked: given, or flagged by hand.
    evidence_not_marked_in_log: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


# --- files ------------------------------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    directory = os.open(path, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _write_json_atomic(path: Path, data: dict) -> None:
    """Written beside the path and renamed into place, so that a reader sees the old sidecar or the new one."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    _fsync_dir(path.parent)


def _copy_hashing(source: Path, destination: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(source, "rb") as src, open(destination, "xb") as dst:
        while chunk := src.read(_COPY_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    return digest.hexdigest(), size


def _sidecar_data(artifact_path: Path, meta: ArtifactMeta, evidence: bool, sha256: str, size: int) -> dict:
    return {"format": SIDECAR_FORMAT, "file": artifact_path.name, "incident_id": meta.incident_id,
            "mission_id": meta.mission_id, "vehicle_id": meta.vehicle_id, "kind": meta.kind,
            "recorded_at": utc_iso(meta.recorded_at), "evidence": evidence, "sha256": sha256, "bytes": size}


def read_sidecar(sidecar: Path) -> Artifact:
    """The artifact a sidecar describes; ValueError saying what is wrong with it."""
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except OSError as err:
        raise ValueError(f"cannot read the sidecar: {err.strerror}") from err
    except ValueError as err:
        raise ValueError(f"the sidecar is not valid JSON: {err}") from err
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise ValueError(f"the sidecar is not a format {SIDECAR_FORMAT} sidecar")
    expected_file = sidecar.name[:-len(SIDECAR_SUFFIX)]
    if data.get("file") != expected_file:
        raise ValueError(f"the sidecar names the file {data.get('file')!r}, not {expected_file!r}")
    if data.get("mission_id") != sidecar.parent.name:
        raise ValueError(f"the sidecar's mission {data.get('mission_id')!r} is not its folder's")
    try:
        recorded_at = datetime.fromisoformat(data["recorded_at"])
        meta = ArtifactMeta(data["mission_id"], data["vehicle_id"], data["kind"], recorded_at,
                            data["incident_id"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"the sidecar's fields are not valid: {err}") from err
    if not isinstance(data.get("evidence"), bool) or not isinstance(data.get("sha256"), str) \
            or not isinstance(data.get("bytes"), int):
        raise ValueError("the sidecar lacks its evidence flag, sha256 or size")
    path = sidecar.with_name(expected_file)
    return Artifact(path, sidecar, f"{meta.mission_id}/{path.name}", meta, data["evidence"], data["sha256"],
                    data["bytes"])


def scan_store(store_dir: str | os.PathLike) -> tuple[list[Artifact], list[RetentionFailure]]:
    """Every artifact in the store, and everything there that is not one (never ignored)."""
    store_dir = Path(store_dir)
    if not store_dir.is_dir():
        raise RetentionError(f"the store {store_dir} is not a directory")
    artifacts: list[Artifact] = []
    failures: list[RetentionFailure] = []
    for mission_dir in sorted(store_dir.iterdir()):
        if not mission_dir.is_dir() or mission_dir.is_symlink():
            failures.append(RetentionFailure(mission_dir.name, "not a mission folder; retention leaves it alone"))
            continue
        names = {p.name for p in mission_dir.iterdir()}
        described = set()
        for name in sorted(names):
            if not name.endswith(SIDECAR_SUFFIX):
                continue
            sidecar = mission_dir / name
            described.update({name, name[:-len(SIDECAR_SUFFIX)]})
            try:
                artifacts.append(read_sidecar(sidecar))
            except ValueError as err:
                failures.append(RetentionFailure(f"{mission_dir.name}/{name}", f"{err}; its file is left alone"))
        for name in sorted(names - described):
            why = ("an unfinished recording (record_artifact was interrupted)" if name.endswith(PARTIAL_SUFFIX)
                   else "a file without a sidecar: what it is and when it was recorded are unknown")
            failures.append(RetentionFailure(f"{mission_dir.name}/{name}", f"{why}; not deleted"))
    return artifacts, failures


# --- recording and evidence -------------------------------------------------------------------------------------


def evidence_incidents_in_log(audit_log: AuditLog) -> set[str]:
    """The incidents the log shows marked as evidence."""
    return {e.incident_id for e in audit_log.entries(kind=EntryKind.FOOTAGE_KEPT_AS_EVIDENCE)}


def record_artifact(store_dir: str | os.PathLike, audit_log: AuditLog, path: str | os.PathLike, meta: ArtifactMeta,
                    *, ros_time_s: float, move: bool = True, actor: str = "") -> Artifact:
    """Put a recording in the store and log footage_recorded; a file with that name already there is an error.

    The file is copied in and synced, the entry written, then the file renamed into place and its sidecar
    written; with move the original is removed last. An incident already marked as evidence makes it evidence.
    """
    store_dir, source = Path(store_dir), Path(path)
    if not isinstance(meta, ArtifactMeta):
        raise ValueError(f"meta is a {type(meta).__name__}, not ArtifactMeta")
    if not store_dir.is_dir():
        raise RetentionError(f"the store {store_dir} is not a directory")
    if not source.is_file():
        raise ValueError(f"{source} is not a file")
    name = source.name
    if not _SAFE_NAME.fullmatch(name) or name.endswith((SIDECAR_SUFFIX, PARTIAL_SUFFIX, ".tmp")):
        raise ValueError(f"the file name {name!r} cannot go in the store: use letters, digits, '.', '_' and '-', "
                         f"and not the endings {SIDECAR_SUFFIX}, {PARTIAL_SUFFIX} or .tmp")
    mission_dir = store_dir / meta.mission_id
    destination = mission_dir / name
    sidecar = mission_dir / (name + SIDECAR_SUFFIX)
    partial = mission_dir / (name + PARTIAL_SUFFIX)
    if destination.exists() or sidecar.exists():
        raise ValueError(f"{meta.mission_id}/{name} is already in the store; recordings are never overwritten")
    if not mission_dir.exists():
        mission_dir.mkdir()
        _fsync_dir(store_dir)
    try:
        sha256, size = _copy_hashing(source, partial)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise RetentionError(f"could not copy {source} into the store at {partial}: {err}") from err
    evidence = bool(meta.incident_id) and meta.incident_id in evidence_incidents_in_log(audit_log)
    relative = f"{meta.mission_id}/{name}"
    try:
        audit_log.append(EntryKind.FOOTAGE_RECORDED, ros_time_s=ros_time_s, incident_id=meta.incident_id,
                         vehicle_id=meta.vehicle_id, mission_id=meta.mission_id, actor=actor,
                         detail={"artifact": relative, "artifact_kind": meta.kind,
                                 "recorded_at": utc_iso(meta.recorded_at), "sha256": sha256, "bytes": size,
                                 "evidence": evidence})
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    try:
        os.replace(partial, destination)
        _write_json_atomic(sidecar, _sidecar_data(destination, meta, evidence, sha256, size))
    except OSError as err:
        raise RetentionError(f"{relative}: its footage_recorded entry is written but the file could not be put in "
                             f"place ({err}); retention will report it") from err
    if move:
        try:
            source.unlink()
        except OSError as err:
            raise RetentionError(f"{relative} is in the store, but the original {source} could not be removed: "
                                 f"{err.strerror}") from err
    return Artifact(destination, sidecar, relative, meta, evidence, sha256, size)


def mark_evidence(store_dir: str | os.PathLike, audit_log: AuditLog, incident_id: str, *, actor: str, reason: str,
                  ros_time_s: float) -> list[str]:
    """Keep every recording of the incident past the retention period: logged first (the log decides), then
    each sidecar's flag set. Returns the artifacts marked; later recordings of the incident are evidence too."""
    if not isinstance(incident_id, str) or not incident_id:
        raise ValueError(f"incident_id is {incident_id!r}; name the incident whose footage is evidence")
    audit_log.append(EntryKind.FOOTAGE_KEPT_AS_EVIDENCE, ros_time_s=ros_time_s, incident_id=incident_id,
                     actor=actor, detail={"reason": reason})
    artifacts, _ = scan_store(store_dir)
    marked, failed = [], []
    for artifact in artifacts:
        if artifact.meta.incident_id != incident_id:
            continue
        if not artifact.evidence:
            try:
                _write_json_atomic(artifact.sidecar, _sidecar_data(artifact.path, artifact.meta, True,
                                                                   artifact.sha256, artifact.bytes))
            except OSError as err:
                failed.append(f"{artifact.relative} ({err.strerror})")
                continue
        marked.append(artifact.relative)
    if failed:
        raise RetentionError(f"incident {incident_id} is marked as evidence in the audit log, and retention keeps "
                             f"its recordings, but these sidecars could not be updated: {', '.join(failed)}")
    return marked


# --- retention --------------------------------------------------------------------------------------------------


def apply_retention(store_dir: str | os.PathLike, audit_log: AuditLog, now_utc: datetime, policy: RetentionPolicy,
                    evidence_incidents: Iterable[str] = (), *, ros_time_s: float | None = None) -> RetentionResult:
    """Delete every recording older than the policy's period whose incident is not evidence, logging each.

    Evidence: incidents marked in the log, recordings whose sidecar says so, and evidence_incidents (those the
    log does not show marked are listed in the result, so that someone marks them). ros_time_s: the time
    logged with each deletion; by default now_utc, which is ROS time on real airframes.
    """
    if not isinstance(now_utc, datetime) or now_utc.tzinfo is None or now_utc.utcoffset() is None:
        raise ValueError(f"now_utc is {now_utc!r}; give a time-zone-aware datetime")
    if not isinstance(policy, RetentionPolicy):
        raise ValueError(f"policy is a {type(policy).__name__}, not RetentionPolicy")
    if isinstance(evidence_incidents, str):
        raise ValueError("evidence_incidents is a string; give a collection of incident ids")
    store_dir = Path(store_dir)
    ros_time_s = now_utc.timestamp() if ros_time_s is None else ros_time_s
    result = RetentionResult()
    marked = evidence_incidents_in_log(audit_log)
    given = set(evidence_incidents)
    evidence = marked | given
    logged_deletions = {e.detail["artifact"] for e in audit_log.entries(kind=EntryKind.FOOTAGE_DELETED)}
    artifacts, failures = scan_store(store_dir)
    result.failures.extend(failures)
    flagged = {a.meta.incident_id or a.relative for a in artifacts if a.evidence}
    result.evidence_not_marked_in_log = sorted((given | flagged) - marked)
    touched_dirs = set()
    for artifact in artifacts:
        age_days = (now_utc - artifact.meta.recorded_at).total_seconds() / SECONDS_PER_DAY
        if age_days <= policy.days:
            if not artifact.path.exists():
                result.failures.append(RetentionFailure(artifact.relative, "the file is missing from the store "
                                                                           "before its retention period ended"))
            result.kept_within_period.append(artifact.relative)
            continue
        if artifact.evidence or (artifact.meta.incident_id and artifact.meta.incident_id in evidence):
            result.kept_as_evidence.append(artifact.relative)
            continue
        reason = (f"the retention period of {policy.days:g} days has passed and incident "
                  f"{artifact.meta.incident_id or '(none: not an incident flight)'} is not evidence")
        if artifact.path.exists() or artifact.path.is_symlink():
            try:
                artifact.path.unlink()
            except OSError as err:
                result.failures.append(RetentionFailure(artifact.relative, f"could not be deleted: {err}"))
                continue
        elif artifact.relative in logged_deletions:
            reason = None   # deleted and logged by an earlier run that could not remove the sidecar
        else:
            reason += "; the file was already missing (deleted outside retention, or by an interrupted run)"
            result.failures.append(RetentionFailure(artifact.relative, "the file was already missing; its deletion "
                                                                       "is logged now"))
        if reason is not None:
            audit_log.append(EntryKind.FOOTAGE_DELETED, ros_time_s=ros_time_s, incident_id=artifact.meta.incident_id,
                             vehicle_id=artifact.meta.vehicle_id, mission_id=artifact.meta.mission_id,
                             actor=RETENTION_ACTOR,
                             detail={"artifact": artifact.relative, "artifact_kind": artifact.meta.kind,
                                     "reason": reason, "recorded_at": utc_iso(artifact.meta.recorded_at),
                                     "age_days": age_days, "retention_days": policy.days,
                                     "sha256": artifact.sha256})
            result.deleted.append(DeletedArtifact(artifact.relative, artifact.meta.incident_id, age_days))
        try:
            artifact.sidecar.unlink()
            _fsync_dir(artifact.sidecar.parent)
        except OSError as err:
            result.failures.append(RetentionFailure(artifact.relative, f"deleted and logged, but its sidecar could "
                                                                       f"not be removed: {err}"))
        touched_dirs.add(artifact.sidecar.parent)
    for directory in sorted(touched_dirs):
        try:
            if not any(directory.iterdir()):
                directory.rmdir()
        except OSError as err:
            result.failures.append(RetentionFailure(directory.name, f"empty mission folder not removed: {err}"))
    return result


def _parse_now(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise ValueError(f"--now {text!r} is not an ISO 8601 time") from err
    if moment.tzinfo is None:
        raise ValueError(f"--now {text!r} has no time zone; add Z for UTC")
    return moment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dfr_audit.retention", description=__doc__.split("\n")[0])
    parser.add_argument("store", help="the store directory")
    parser.add_argument("--log", required=True, help="the audit log (must exist)")
    parser.add_argument("--days", type=float, default=RetentionPolicy.days, help="the retention period, days")
    parser.add_argument("--now", help="the time to apply retention at (ISO 8601 with a zone); default: now")
    parser.add_argument("--key-file", help="the HMAC key of a keyed log")
    parser.add_argument("--mark-evidence", metavar="INCIDENT", help="only mark the incident's recordings, now and "
                        "to come, as evidence (kept past the period), on the log; needs --by and --reason")
    parser.add_argument("--by", default="", help="who marks the incident as evidence")
    parser.add_argument("--reason", default="", help="why the incident is evidence")
    args = parser.parse_args(argv)
    if args.mark_evidence is not None:
        return _mark(args)
    try:
        policy = RetentionPolicy(days=args.days)
        now = _parse_now(args.now) if args.now else datetime.now(timezone.utc)
        key = read_key_file(args.key_file) if args.key_file else None
        if not Path(args.log).is_file():
            raise ValueError(f"there is no audit log at {args.log}")
        with AuditLog(args.log, key=key) as audit_log:
            result = apply_retention(args.store, audit_log, now, policy)
    except (ValueError, AuditLogError, RetentionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for deleted in result.deleted:
        print(f"deleted {deleted.relative} (incident {deleted.incident_id or '-'}, {deleted.age_days:.1f} days old)")
    for relative in result.kept_as_evidence:
        print(f"kept as evidence: {relative}")
    for incident_id in result.evidence_not_marked_in_log:
        print(f"warning: {incident_id} is kept as evidence but the log does not show it marked")
    for failure in result.failures:
        print(f"FAILED {failure.relative}: {failure.reason}", file=sys.stderr)
    print(f"retention ({policy.days:g} days at {utc_iso(now)}): {len(result.deleted)} deleted, "
          f"{len(result.kept_as_evidence)} kept as evidence, {len(result.kept_within_period)} within the period, "
          f"{len(result.failures)} failures")
    return 0 if result.ok else 1


def _mark(args) -> int:
    try:
        if not Path(args.log).is_file():
            raise ValueError(f"there is no audit log at {args.log}")
        if not args.by.strip() or not args.reason.strip():
            raise ValueError("say who marks the incident as evidence (--by) and why (--reason): both go on the log")
        key = read_key_file(args.key_file) if args.key_file else None
        with AuditLog(args.log, key=key) as audit_log:
            marked = mark_evidence(args.store, audit_log, args.mark_evidence, actor=args.by, reason=args.reason,
                                   ros_time_s=datetime.now(timezone.utc).timestamp())
    except (ValueError, AuditLogError, RetentionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{args.mark_evidence} is evidence: {len(marked)} recordings kept past the retention period"
          + "".join(f"\n  {relative}" for relative in marked))
    return 0


if __name__ == "__main__":
    sys.exit(main())

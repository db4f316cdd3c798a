"""The transparency report a force can publish: what its drones did in a week, from the audit log alone.

The log is verified first; a log that does not verify gives no report. An item is counted
in the window [from, to) by the ROS time of the entry that defines it (a call by its
call_received, an incident by its incident_opened, a flight by its launch); what is then
said about it (its response time, its end, the policy's last word) is taken from the whole
log, so that an incident opened late on Sunday still gets its response time. A UTC window
assumes ROS time is wall time (real airframes); for a simulation log give a ROS time range.

The statistics (weekly_statistics' dict):

    calls_received            call_received entries
    incidents                 incident_opened entries: opened, by_category, by_grade, by_category_grade
                              (the category and grade the incident opened with)
    policy                    policy_decision entries: decisions_accepted, decisions_refused; and of the
                              incidents opened: refused (whose last policy_decision in the log refused a drone),
                              undecided (none), refused_share = refused / opened
    response_time_s           per incident opened and attended: the first phase_change to on_scene of a flight
                              for it (by the phase_change's incident_id, else its mission's launch or assignment)
                              minus the earliest call_time_s of its call_received entries. count, p50, p90 (linear
                              interpolation between ranks, numpy's default), max, values
    flights                   launch entries: total, by_kind (incident, maintenance, test), hours (launch to the
                              vehicle's next mission_result that is not retasked; flights with none are
                              unfinished and add none),
                              hours_by_kind, unfinished, maintenance (maintenance and test launches authorised by
                              a maintenance_flight entry of the same mission and kind before them), and
                              outside_incident with its list: incident launches whose incident was, at launch,
                              not opened, closed, or not eligible by its last policy_decision, or named none
                              (and flights assigned in the air, retasked, to such an incident); and maintenance
                              or test launches without that authorisation. It must be 0.
    missions                  assignments, refused (mission_refused), outcomes (mission_result), pilot_takeovers,
                              failsafes, targets_selected
    footage                   recorded, kept_as_evidence (incidents marked), deleted
    rule_violations_refused   total and by_rule

    python -m dfr_audit.transparency_report LOG --out DIR [--from ISO --to ISO] [--ros-from S --ros-to S]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from dfr_audit.audit_log import AuditLogError, EntryKind, open_log_file, read_entries, read_key_file, utc_iso
from dfr_audit.verify import verify
from dfr_common.grading import urgency

WEEK = timedelta(days=7)
RETASKED = "retasked"       # a mission_result that does not end the flight: the vehicle flies on
SECONDS_PER_HOUR = 3600.0


class ReportError(ValueError):
    """No report can be made: the window is wrong, or the log does not verify."""


@dataclass(frozen=True)
class ReportOptions:
    """How the report is drawn."""

    histogram_bin_s: float = 30.0       # width of the response-time histogram's bins
    dpi: int = 120

    def __post_init__(self):
        if not (isinstance(self.histogram_bin_s, (int, float)) and math.isfinite(self.histogram_bin_s)
                and self.histogram_bin_s > 0):
            raise ValueError(f"histogram_bin_s is {self.histogram_bin_s!r}; give a positive number of seconds")
        if isinstance(self.dpi, bool) or not isinstance(self.dpi, int) or self.dpi <= 0:
            raise ValueError(f"dpi is {self.dpi!r}; give a positive integer")


@dataclass
class _Incident:
    category: str = ""
    grade: str = ""
    opened: bool = False
    open: bool = False
    accepted: bool | None = None        # the last policy decision; None before the first
    call_times_s: list[float] = field(default_factory=list)
    on_scene_s: float | None = None


@dataclass
class _Flight:
    seq: int
    launch_s: float
    mission_id: str
    vehicle_id: str
    incident_id: str
    kind: str
    in_window: bool
    end_s: float | None = None
    outside: str = ""               # why it answered no open, eligible incident; empty when it did


def _aware(moment: datetime, what: str) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise ReportError(f"{what} is {moment!r}; give a time-zone-aware datetime")
    return moment


def _window(week_start_utc, ros_time_range, utc_range) -> dict:
    given = [x is not None for x in (week_start_utc, ros_time_range, utc_range)]
    if sum(given) > 1:
        raise ReportError("give one of week_start_utc, ros_time_range and utc_range")
    if week_start_utc is not None:
        start = _aware(week_start_utc, "week_start_utc")
        utc_range = (start, start + WEEK)
    if utc_range is not None:
        start, end = (_aware(t, "utc_range") for t in utc_range)
        window = {"from_ros_time_s": start.timestamp(), "to_ros_time_s": end.timestamp(),
                  "from_utc": utc_iso(start), "to_utc": utc_iso(end)}
    elif ros_time_range is not None:
        start_s, end_s = (float(t) for t in ros_time_range)
        window = {"from_ros_time_s": start_s, "to_ros_time_s": end_s, "from_utc": None, "to_utc": None}
    else:
        return {"from_ros_time_s": None, "to_ros_time_s": None, "from_utc": None, "to_utc": None}
    if not (math.isfinite(window["from_ros_time_s"]) and math.isfinite(window["to_ros_time_s"])
            and window["from_ros_time_s"] < window["to_ros_time_s"]):
        raise ReportError(f"the window [{window['from_ros_time_s']}, {window['to_ros_time_s']}) is empty or not finite")
    return window


def _summary(values: list[float]) -> dict:
    if not values:
        return {"count": 0, "p50": None, "p90": None, "max": None, "values": []}
    array = np.asarray(values, dtype=float)
    return {"count": len(values), "p50": float(np.percentile(array, 50)), "p90": float(np.percentile(array, 90)),
            "max": float(array.max()), "values": sorted(values)}


def weekly_statistics(audit_log_path: str | os.PathLike, week_start_utc: datetime | None = None, *,
                      ros_time_range: tuple[float, float] | None = None,
                      utc_range: tuple[datetime, datetime] | None = None, key: bytes | None = None) -> dict:
    """The statistics of the module's docstring for a week from week_start_utc, another UTC range, a ROS time
    range, or (none given) the whole log. ReportError when the log does not verify."""
    window = _window(week_start_utc, ros_time_range, utc_range)
    from_s = -math.inf if window["from_ros_time_s"] is None else window["from_ros_time_s"]
    to_s = math.inf if window["to_ros_time_s"] is None else window["to_ros_time_s"]
    checked = verify(audit_log_path, key)
    if not checked.ok:
        raise ReportError(f"{audit_log_path} does not verify, so no report is made from it: {checked.reason()}")
    conn, meta = open_log_file(Path(audit_log_path), read_only=True)
    conn.close()

    incidents: dict[str, _Incident] = {}
    flights: list[_Flight] = []
    flying: dict[str, _Flight] = {}            # vehicle id -> its flight in the air
    mission_incident: dict[str, str] = {}      # mission id -> incident, from launches and assignments
    authorised: set[tuple[str, str]] = set()   # (mission id, flight kind) of maintenance_flight entries
    counts: Counter = Counter()
    opened_in_window: list[str] = []
    by_category, by_grade, outcomes, violations, decisions = Counter(), Counter(), Counter(), Counter(), Counter()
    by_category_grade: dict[str, Counter] = {}

    for entry in read_entries(audit_log_path):
        in_window = from_s <= entry.ros_time_s < to_s
        kind, detail = entry.kind, entry.detail
        if in_window:
            counts[kind] += 1
        incident = incidents.setdefault(entry.incident_id, _Incident()) if entry.incident_id else None
        if kind is EntryKind.CALL_RECEIVED:
            incident.call_times_s.append(float(detail["call_time_s"]))
        elif kind is EntryKind.INCIDENT_OPENED:
            incident.category, incident.grade, incident.opened, incident.open = (
                detail["category"], detail["grade"], True, True)
            if in_window:
                opened_in_window.append(entry.incident_id)
                by_category[incident.category] += 1
                by_grade[incident.grade] += 1
                by_category_grade.setdefault(incident.category, Counter())[incident.grade] += 1
        elif kind is EntryKind.POLICY_DECISION:
            incident.accepted = detail["accepted"]
            if in_window:
                decisions[detail["accepted"]] += 1
        elif kind is EntryKind.INCIDENT_CLOSED:
            incident.open = False
        elif kind is EntryKind.ASSIGNMENT:
            mission_incident.setdefault(entry.mission_id, entry.incident_id)
            airborne = flying.get(entry.vehicle_id)
            if airborne is not None and not airborne.outside:
                why = _incident_problem(entry.incident_id, incident)
                airborne.outside = f"retasked in flight: {why}" if why else ""
        elif kind is EntryKind.MAINTENANCE_FLIGHT:
            authorised.add((entry.mission_id, detail["flight_kind"]))
        elif kind is EntryKind.LAUNCH:
            flight = _Flight(entry.seq, entry.ros_time_s, entry.mission_id, entry.vehicle_id, entry.incident_id,
                             detail["flight_kind"], in_window)
            flight.outside = _outside_incident(flight, incident, authorised)
            flights.append(flight)
            flying[entry.vehicle_id] = flight
            if entry.incident_id:
                mission_incident[entry.mission_id] = entry.incident_id
        elif kind is EntryKind.PHASE_CHANGE and detail["phase"] == "on_scene":
            target = incidents.get(entry.incident_id or mission_incident.get(entry.mission_id, ""))
            if target is not None and (target.on_scene_s is None or entry.ros_time_s < target.on_scene_s):
                target.on_scene_s = entry.ros_time_s
        elif kind is EntryKind.MISSION_RESULT:
            flight = None if detail["outcome"] == RETASKED else flying.pop(entry.vehicle_id, None)
            if flight is not None:
                flight.end_s = entry.ros_time_s
            if in_window:
                outcomes[detail["outcome"]] += 1
        elif kind is EntryKind.RULE_VIOLATION_REFUSED and in_window:
            violations[detail["rule"]] += 1

    opened = [incidents[i] for i in opened_in_window]
    refused = sum(1 for i in opened if i.accepted is False)
    responses = [i.on_scene_s - min(i.call_times_s) for i in opened if i.on_scene_s is not None and i.call_times_s]
    counted = [f for f in flights if f.in_window]
    outside = [f for f in counted if f.outside]
    hours_by_kind = Counter()
    for f in counted:
        hours_by_kind[f.kind] += 0.0 if f.end_s is None else (f.end_s - f.launch_s) / SECONDS_PER_HOUR
    return {
        "window": window,
        "log": {"path": str(audit_log_path), "log_id": meta["log_id"], "entries": checked.entries_checked,
                "head": None if checked.head is None else str(checked.head), "verified": True},
        "calls_received": counts[EntryKind.CALL_RECEIVED],
        "incidents": {"opened": len(opened), "by_category": dict(sorted(by_category.items())),
                      "by_grade": dict(sorted(by_grade.items())),
                      "by_category_grade": {c: dict(sorted(g.items())) for c, g in sorted(by_category_grade.items())}},
        "policy": {"decisions_accepted": decisions[True], "decisions_refused": decisions[False],
                   "refused": refused, "undecided": sum(1 for i in opened if i.accepted is None),
                   "refused_share": refused / len(opened) if opened else None},
        "response_time_s": _summary(responses),
        "flights": {
            "total": len(counted),
            "by_kind": {k: sum(1 for f in counted if f.kind == k) for k in ("incident", "maintenance", "test")},
            "hours": sum(hours_by_kind.values()),
            "hours_by_kind": {k: hours_by_kind.get(k, 0.0) for k in ("incident", "maintenance", "test")},
            "unfinished": sum(1 for f in counted if f.end_s is None),
            "maintenance": sum(1 for f in counted if f.kind != "incident" and not f.outside),
            "outside_incident": len(outside),
            "outside_incident_list": [{"seq": f.seq, "mission_id": f.mission_id, "vehicle_id": f.vehicle_id,
                                       "incident_id": f.incident_id, "flight_kind": f.kind, "why": f.outside}
                                      for f in outside],
        },
        "missions": {"assignments": counts[EntryKind.ASSIGNMENT], "refused": counts[EntryKind.MISSION_REFUSED],
                     "outcomes": dict(sorted(outcomes.items())), "pilot_takeovers": counts[EntryKind.PILOT_TAKEOVER],
                     "failsafes": counts[EntryKind.FAILSAFE], "targets_selected": counts[EntryKind.TARGET_SELECTED]},
        "footage": {"recorded": counts[EntryKind.FOOTAGE_RECORDED],
                    "kept_as_evidence": counts[EntryKind.FOOTAGE_KEPT_AS_EVIDENCE],
                    "deleted": counts[EntryKind.FOOTAGE_DELETED]},
        "rule_violations_refused": {"total": sum(violations.values()), "by_rule": dict(sorted(violations.items()))},
    }


def _outside_incident(flight: _Flight, incident: _Incident | None, authorised: set[tuple[str, str]]) -> str:
    """Why the flight answered no open, eligible incident when it launched; empty when it did."""
    if flight.kind != "incident":
        if (flight.mission_id, flight.kind) in authorised:
            return ""
        return f"a {flight.kind} flight with no maintenance_flight authorisation before its launch"
    if incident is None:
        return "an incident flight naming no incident"
    return _incident_problem(flight.incident_id, incident)


def _incident_problem(incident_id: str, incident: _Incident) -> str:
    """Why a drone could not fly for the incident as the log stands; empty when it could."""
    if not incident.opened:
        return f"incident {incident_id} had not been opened"
    if not incident.open:
        return f"incident {incident_id} was closed"
    if incident.accepted is not True:
        return f"incident {incident_id} was not eligible for a drone"
    return ""


# --- the report -------------------------------------------------------------------------------------------------


def markdown_table(rows: list[tuple], header: tuple) -> list[str]:
    """The lines of a Markdown table; a | inside a cell is escaped so that it cannot split the cell."""
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines


def mark_percentiles(axes, summary: dict, vertical: bool = True) -> None:
    """The p50 and p90 of a summary (a dict with those keys, None when empty) as labelled lines across a chart."""
    for name, style in (("p50", "--"), ("p90", ":")):
        if summary.get(name) is not None:
            line = axes.axvline if vertical else axes.axhline
            line(summary[name], color="black", linestyle=style, label=name)


def note_no_data(axes, text: str) -> None:
    """Says in the middle of an empty chart why it is empty."""
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s"


def _window_text(window: dict) -> str:
    if window["from_utc"] is not None:
        start, end = (datetime.fromisoformat(window[k]).strftime("%Y-%m-%d %H:%M") for k in ("from_utc", "to_utc"))
        return f"{start} to {end} UTC"
    if window["from_ros_time_s"] is not None:
        return f"ROS time {window['from_ros_time_s']:g} s to {window['to_ros_time_s']:g} s"
    return "the whole log"


def _draw(stats: dict, png_path: Path, options: ReportOptions) -> None:
    # The figure alone, without pyplot's global state; PNG is drawn with Agg.
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(11, 4.5), layout="constrained")
    by_category, by_grade = stats["incidents"]["by_category"], stats["incidents"]["by_grade"]
    categories = sorted(by_category, key=lambda c: (-by_category[c], c))
    incidents_axes = figure.add_subplot(1, 2, 1)
    if categories:
        grades = sorted(by_grade, key=lambda g: (urgency(g), g))
        left = np.zeros(len(categories))
        for grade in grades:
            widths = np.array([stats["incidents"]["by_category_grade"][c].get(grade, 0) for c in categories])
            incidents_axes.barh(categories, widths, left=left, label=f"grade {grade}")
            left += widths
        incidents_axes.legend(loc="lower right", framealpha=0.9)
        incidents_axes.invert_yaxis()
        incidents_axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        note_no_data(incidents_axes, "no incidents")
    incidents_axes.set_xlabel("incidents")
    incidents_axes.set_title("Incidents by category and grade")
    response_axes = figure.add_subplot(1, 2, 2)
    values = stats["response_time_s"]["values"]
    if values:
        top = max(values)
        edges = np.arange(0.0, top + options.histogram_bin_s, options.histogram_bin_s)
        if len(edges) < 2 or edges[-1] <= top:
            edges = np.append(edges, edges[-1] + options.histogram_bin_s)
        response_axes.hist(values, bins=edges)
        mark_percentiles(response_axes, stats["response_time_s"])
        response_axes.legend()
        response_axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        note_no_data(response_axes, "no incident attended")
    response_axes.set_xlabel("call to drone on scene, s")
    response_axes.set_ylabel("incidents")
    response_axes.set_title("Response times")
    figure.suptitle(f"Drone as first responder: {_window_text(stats['window'])}")
    figure.savefig(png_path, dpi=options.dpi)


def write_report(stats: dict, out_dir: str | os.PathLike, options: ReportOptions | None = None
                 ) -> tuple[Path, Path]:
    """transparency_report.md, its chart transparency_report.png and the numbers transparency_report.json."""
    options = options or ReportOptions()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown_path, png_path = out_dir / "transparency_report.md", out_dir / "transparency_report.png"
    _draw(stats, png_path, options)
    (out_dir / "transparency_report.json").write_text(json.dumps(stats, indent=1, sort_keys=True) + "\n")
    flights, policy, response = stats["flights"], stats["policy"], stats["response_time_s"]
    share = "-" if policy["refused_share"] is None else f"{100 * policy['refused_share']:.1f} %"
    lines = [f"# Drone as first responder: transparency report, {_window_text(stats['window'])}", "",
             "Every drone flight answers a 999 call, and every decision about it is on a tamper-evident audit log. "
             "These numbers are computed from that log alone.", ""]
    lines += markdown_table([
        ("calls received", stats["calls_received"]),
        ("incidents opened", stats["incidents"]["opened"]),
        ("incidents refused a drone by the launch policy", f"{policy['refused']} ({share})"),
        ("flights", flights["total"]),
        ("flight hours", f"{flights['hours']:.2f}"),
        ("**flights outside an incident (must be 0)**", f"**{flights['outside_incident']}**"),
        ("maintenance and test flights", flights["maintenance"]),
        ("response time p50 / p90 (call to on scene)", f"{_seconds(response['p50'])} / {_seconds(response['p90'])}"),
        ("pilot takeovers", stats["missions"]["pilot_takeovers"]),
        ("failsafes", stats["missions"]["failsafes"]),
        ("requests refused by the flight rules", stats["rule_violations_refused"]["total"]),
        ("recordings made / kept as evidence / deleted",
         f"{stats['footage']['recorded']} / {stats['footage']['kept_as_evidence']} / {stats['footage']['deleted']}"),
    ], ("", "this period"))
    grades = sorted(stats["incidents"]["by_grade"], key=lambda g: (urgency(g), g))
    lines += ["", "## Incidents by category and grade", ""]
    lines += markdown_table([(c, *(g.get(x, 0) for x in grades), sum(g.values()))
                     for c, g in stats["incidents"]["by_category_grade"].items()], ("category", *grades, "total"))
    if flights["outside_incident_list"]:
        lines += ["", "## Flights outside an incident", ""]
        lines += markdown_table([(f["seq"], f["mission_id"], f["vehicle_id"], f["flight_kind"], f["why"])
                         for f in flights["outside_incident_list"]], ("entry", "mission", "vehicle", "kind", "why"))
    lines += ["", f"![Incidents by category and response times]({png_path.name})", "",
              "## Checking these numbers", "",
              f"The audit log had {stats['log']['entries']} entries when this report was made; its head "
              f"(count:hash) was `{stats['log']['head']}`. Anyone holding the log can check that it has not been "
              f"changed since with", "",
              f"    python -m dfr_audit.verify LOG --expect-head {stats['log']['head']}", ""]
    markdown_path.write_text("\n".join(lines))
    return markdown_path, png_path


def _utc(text: str, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise ReportError(f"{what} {text!r} is not an ISO 8601 time") from err
    if moment.tzinfo is None:
        raise ReportError(f"{what} {text!r} has no time zone; add Z for UTC")
    return moment.astimezone(timezone.utc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dfr_audit.transparency_report",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("log", help="the audit log (SQLite file)")
    parser.add_argument("--out", required=True, help="the directory to write the report into")
    parser.add_argument("--from", dest="from_utc", help="start of the period, ISO 8601 with a zone")
    parser.add_argument("--to", dest="to_utc", help="end of the period (excluded), ISO 8601 with a zone")
    parser.add_argument("--ros-from", type=float, help="start of the period in ROS time, s (simulation logs)")
    parser.add_argument("--ros-to", type=float, help="end of the period in ROS time, s")
    parser.add_argument("--key-file", help="the HMAC key of a keyed log")
    parser.add_argument("--histogram-bin-s", type=float, default=ReportOptions.histogram_bin_s)
    args = parser.parse_args(argv)
    try:
        if (args.from_utc is None) != (args.to_utc is None) or (args.ros_from is None) != (args.ros_to is None):
            raise ReportError("give both ends of the period: --from with --to, --ros-from with --ros-to")
        utc_range = None if args.from_utc is None else (_utc(args.from_utc, "--from"), _utc(args.to_utc, "--to"))
        ros_range = None if args.ros_from is None else (args.ros_from, args.ros_to)
        key = read_key_file(args.key_file) if args.key_file else None
        stats = weekly_statistics(args.log, utc_range=utc_range, ros_time_range=ros_range, key=key)
        markdown_path, png_path = write_report(stats, args.out, ReportOptions(histogram_bin_s=args.histogram_bin_s))
    except (ValueError, AuditLogError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{markdown_path}\n{png_path}")
    if stats["flights"]["outside_incident"]:
        print(f"warning: {stats['flights']['outside_incident']} flights outside an incident", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

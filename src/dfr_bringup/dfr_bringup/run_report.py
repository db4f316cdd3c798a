"""The report of one scenario run (`make demo`): a map, a response-time chart and a table per incident.

Read from the run directory the run recorder and the runner write:
    metrics.json       the run's metrics (required)
    flight_paths.json  optional: {"vehicles": {id: [[t_s, lat, lon, alt_m, phase, incident_id], ...]},
                                  "targets": {id: [[t_s, lat, lon, track_id], ...]}}
                       (targets: where each drone's perception placed the target it followed: the chase)
    graph.json         optional: the nodes' specs, whose overrides name the fleet, airspace and operating
                       area files the run used, and whose param_files give dispatch's airspace permissions
Files graph.json does not name come from the config directory. Written into the run directory:
report.md, map.png (site metres east and north of the first base) and response_times.png.

    python -m dfr_bringup.run_report RUN_DIR [--config-dir config]
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import box

from dfr_audit.transparency_report import mark_percentiles, markdown_table, note_no_data
from dfr_common.areas import load_areas
from dfr_common.config_file import load_json, load_yaml
from dfr_common.fleet import Fleet, load_fleet
from dfr_common.geodesy import LocalFrame
from dfr_common.grading import urgency
from dfr_dispatch.airspace import Airspace, load_restrictions

DISPATCH_NODE = "/dfr/dispatch"
# Where the files come from when graph.json does not name them, relative to the config directory.
DEFAULT_FLEET_FILE = "fleet/islington.yaml"
DEFAULT_AIRSPACE_FILE = "airspace/london_restrictions.geojson"
DEFAULT_OPERATING_AREA_FILE = "airspace/operating_area.geojson"
DEFAULT_DISPATCH_PARAMS = "dispatch.yaml"
# Override names that give the operating area, most specific first (intake's, the bridges', the simulator's).
OPERATING_AREA_KEYS = ("operating_area_file", "permitted_area_file", "geofence_file")

GRADE_MARKERS = {"I": "*", "S": "D", "E": "s", "R": "o"}
GRADE_COLOURS = {"I": "tab:red", "S": "tab:orange", "E": "tab:blue", "R": "tab:green"}
OTHER_GRADE_COLOUR = "tab:gray"
OUTCOME_COLOURS = {"attended": "limegreen", "unattended": "gold", "refused": "white"}
MAP_MARGIN_M = 1500.0           # around what happened, so that the bases and paths do not touch the frame
DPI = 120


class RunReportError(ValueError):
    """The run directory holds no usable metrics, or an input file is malformed: the message names the file."""


@dataclass
class MapSources:
    """The files and airspace settings the map is drawn from, and what had to be assumed to find them."""

    fleet_file: Path
    airspace_file: Path
    operating_area_file: Path
    permissions: frozenset[str]
    ceiling_m: float
    notes: list[str] = field(default_factory=list)


# --- inputs ---------------------------------------------------------------------------------------------------


def load_metrics(run_dir: Path) -> dict:
    """metrics.json: must exist and be a JSON object with a list per_incident of objects."""
    path = run_dir / "metrics.json"
    metrics = load_json(path, RunReportError, "metrics file")
    if not isinstance(metrics, dict):
        raise RunReportError(f"{path}: expected a JSON object of metrics, got {type(metrics).__name__}")
    incidents = metrics.get("per_incident", [])
    if not isinstance(incidents, list) or not all(isinstance(i, dict) and "incident_id" in i for i in incidents):
        raise RunReportError(f"{path}: per_incident must be a list of objects with an incident_id")
    return metrics


def _rows(value, width: int, what: str, path: Path) -> list[list]:
    """Rows [t_s, lat, lon, ...] of at least `width` values with a finite latitude and longitude."""
    def usable(row) -> bool:
        return (isinstance(row, list) and len(row) >= width and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in row[1:3]))
    if not isinstance(value, list) or not all(usable(r) for r in value):
        raise RunReportError(f"{path}: {what} must be a list of rows [t_s, latitude, longitude, ...] of at least "
                             f"{width} values")
    return value


def load_flight_paths(run_dir: Path) -> dict | None:
    """flight_paths.json as {"vehicles": {id: rows}, "targets": {id: rows}}; None when the run wrote none."""
    path = run_dir / "flight_paths.json"
    if not path.exists():
        return None
    data = load_json(path, RunReportError, "flight paths file")
    if not isinstance(data, dict):
        raise RunReportError(f"{path}: expected a JSON object with 'vehicles' and 'targets'")
    paths = {}
    for key, width in (("vehicles", 6), ("targets", 4)):
        section = data.get(key, {})
        if not isinstance(section, dict):
            raise RunReportError(f"{path}: '{key}' must map vehicle ids to lists of rows")
        paths[key] = {vehicle: _rows(rows, width, f"{key}.{vehicle}", path) for vehicle, rows in section.items()}
    return paths


def load_graph(run_dir: Path) -> list[dict] | None:
    """graph.json's node specs; None when the run directory has none."""
    path = run_dir / "graph.json"
    if not path.exists():
        return None
    specs = load_json(path, RunReportError, "graph file")
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise RunReportError(f"{path}: expected a list of node specs")
    return specs


def _existing(value, config_dir: Path, default: str, what: str, notes: list[str]) -> Path:
    """The file graph.json named (relative names from the config directory), else the default there."""
    if value:
        path = Path(value) if Path(value).is_absolute() else config_dir / value
        if path.exists():
            return path
        notes.append(f"the {what} the run used, {value}, is not here; drawn from {config_dir / default}")
    return config_dir / default


def _dispatch_parameters(spec: dict | None, config_dir: Path) -> dict:
    """Dispatch's parameters: those of its parameter files (in order), then its overrides."""
    files = spec.get("param_files", []) if spec else [DEFAULT_DISPATCH_PARAMS]
    parameters: dict = {}
    for name in files:
        data = load_yaml(config_dir / name, RunReportError, "parameter file") or {}
        for node in ("/**", DISPATCH_NODE):
            section = data.get(node, {}) if isinstance(data, dict) else {}
            parameters.update(section.get("ros__parameters", {}) if isinstance(section, dict) else {})
    parameters.update(spec.get("overrides", {}) if spec else {})
    return parameters


def map_sources(graph: list[dict] | None, config_dir: Path) -> MapSources:
    """The fleet, airspace and operating area files of the run, and dispatch's permissions and ceiling."""
    notes = [] if graph is not None else [f"graph.json is missing: the map is drawn from the files in {config_dir}"]
    overrides: dict = {}
    for spec in reversed(graph or []):           # the first node naming a file wins
        overrides.update(spec.get("overrides") or {})
    dispatch = next((s for s in graph or [] if s.get("node") == DISPATCH_NODE), None)
    if dispatch is not None:
        overrides.update(dispatch.get("overrides") or {})
    area = next((overrides[k] for k in OPERATING_AREA_KEYS if overrides.get(k)), None)
    parameters = _dispatch_parameters(dispatch, config_dir)
    permissions = parameters.get("airspace_permissions", [])
    if not isinstance(permissions, list):
        raise RunReportError(f"dispatch's airspace_permissions is {permissions!r}; expected a list")
    return MapSources(
        fleet_file=_existing(overrides.get("fleet_file"), config_dir, DEFAULT_FLEET_FILE, "fleet file", notes),
        airspace_file=_existing(overrides.get("airspace_file"), config_dir, DEFAULT_AIRSPACE_FILE,
                                "airspace file", notes),
        operating_area_file=_existing(area, config_dir, DEFAULT_OPERATING_AREA_FILE, "operating area", notes),
        permissions=frozenset(permissions), ceiling_m=float(parameters.get("ceiling_m", 120.0)), notes=notes)


# --- the map ----------------------------------------------------------------------------------------------------


def _to_site(geometry, frame: LocalFrame):
    """A longitude, latitude geometry in site metres (east, north)."""
    return shapely.transform(geometry, lambda coords: _enu(frame, coords[:, 1], coords[:, 0]))


def _polygon_patch(geometry, **style):
    """One patch for a Polygon or MultiPolygon, holes included."""
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path as DrawnPath
    parts = getattr(geometry, "geoms", [geometry])
    rings = [ring for part in parts for ring in (part.exterior, *part.interiors)]
    return PathPatch(DrawnPath.make_compound_path(*(DrawnPath(np.asarray(r.coords)[:, :2], closed=True)
                                                     for r in rings)), **style)


def _enu(frame: LocalFrame, latitudes, longitudes) -> np.ndarray:
    latitudes, longitudes = np.asarray(latitudes, dtype=float), np.asarray(longitudes, dtype=float)
    east, north, _ = frame.to_enu(latitudes, longitudes, np.full(len(latitudes), frame.origin.altitude))
    return np.column_stack([np.atleast_1d(east), np.atleast_1d(north)])


def incident_outcome(incident: dict) -> str:
    """attended (a drone came on scene), refused (the launch policy said no drone) or unattended."""
    if incident.get("response_time_s") is not None:
        return "attended"
    return "unattended" if incident.get("drone_eligible", True) else "refused"


def _has_position(incident: dict) -> bool:
    return all(isinstance(incident.get(k), (int, float)) and math.isfinite(incident[k])
               for k in ("latitude", "longitude"))


def _track_pieces(rows: list[list]) -> list[list[list]]:
    """Target rows cut where the track id changes, so that two targets are not joined by a line."""
    pieces: list[list[list]] = []
    for row in rows:
        if not pieces or pieces[-1][-1][3] != row[3]:
            pieces.append([])
        pieces[-1].append(row)
    return pieces


def draw_map(metrics: dict, paths: dict | None, fleet: Fleet, sources: MapSources, png_path: Path) -> list[str]:
    """map.png; returns sentences about what the map leaves out (areas beyond its edges, incidents without
    a position)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    frame = fleet.site_frame()
    restrictions = load_restrictions(sources.airspace_file)
    no_fly = {r.name for r in Airspace(restrictions, frame, sources.permissions, ceiling_m=sources.ceiling_m).no_fly}
    operating = load_areas(sources.operating_area_file)
    handles: list = []
    notes: list[str] = []

    bases = list(fleet.bases.values())
    seen = [_enu(frame, [b.latitude for b in bases], [b.longitude for b in bases])]
    placed = [i for i in metrics.get("per_incident", []) if _has_position(i)]
    if len(placed) < len(metrics.get("per_incident", [])):
        notes.append(f"incidents not on the map, having no position in metrics.json: "
                     f"{len(metrics['per_incident']) - len(placed)}")
    vehicles = (paths or {}).get("vehicles", {})
    targets = (paths or {}).get("targets", {})
    for rows in [*vehicles.values(), *targets.values()]:
        if rows:
            seen.append(_enu(frame, [r[1] for r in rows], [r[2] for r in rows]))
    if placed:
        seen.append(_enu(frame, [i["latitude"] for i in placed], [i["longitude"] for i in placed]))
    points = np.vstack(seen)
    low, high = points.min(axis=0) - MAP_MARGIN_M, points.max(axis=0) + MAP_MARGIN_M
    view = box(low[0], low[1], high[0], high[1])
    # A map 7 inches high, as wide as equal aspect asks, and the legend beside it.
    width_in = min(20.0, max(8.0, 7.0 * (high[0] - low[0]) / (high[1] - low[1]) + 4.5))
    figure = Figure(figsize=(width_in, 8.0), layout="compressed")
    axes = figure.add_subplot(1, 1, 1)

    for area in operating:
        outline = _to_site(area.geometry, frame)
        axes.add_patch(_polygon_patch(outline, fill=False, edgecolor="black", linestyle="--", linewidth=1.2))
        if outline.boundary.intersects(view):
            handles.append(Line2D([], [], color="black", linestyle="--", label=f"operating area: {area.name}"))
        elif outline.contains(view):
            notes.append(f"the operating area ({area.name}) encloses the whole map; its edge lies beyond it")
        else:
            notes.append(f"the operating area ({area.name}) lies beyond the map")
    beyond = []
    for restriction in restrictions:
        zone = _to_site(restriction.geometry, frame)
        refused = restriction.name in no_fly
        style = (dict(facecolor="tab:red", alpha=0.35, edgecolor="darkred") if refused
                 else dict(facecolor="none", hatch="//", edgecolor="tab:purple", linewidth=1.0))
        axes.add_patch(_polygon_patch(zone, **style))
        if not zone.intersects(view):
            beyond.append(restriction.name)
            continue
        kind = "no-fly" if refused else "restricted, police may enter"
        handles.append(Patch(**style, label=f"{restriction.name} ({kind})"))
        inside = zone.intersection(view).representative_point()
        axes.annotate(restriction.name, (inside.x, inside.y), ha="center", fontsize=8, style="italic",
                      color="darkred" if refused else "indigo", zorder=4)
    if beyond:
        notes.append(f"airspace restrictions beyond the map's edges: {', '.join(beyond)}")

    colours = {vehicle: f"C{i % 10}" for i, vehicle in enumerate(sorted(set(vehicles) | set(targets)))}
    for vehicle, rows in sorted(vehicles.items()):
        if rows:
            track = _enu(frame, [r[1] for r in rows], [r[2] for r in rows])
            handles += axes.plot(track[:, 0], track[:, 1], color=colours[vehicle], linewidth=1.3, zorder=3,
                                 label=f"{vehicle} flight path")
    for vehicle, rows in sorted(targets.items()):
        for i, piece in enumerate(_track_pieces(rows)):
            chase = _enu(frame, [r[1] for r in piece], [r[2] for r in piece])
            line = axes.plot(chase[:, 0], chase[:, 1], color=colours[vehicle], linewidth=5, alpha=0.55, zorder=2,
                             solid_capstyle="round", label=f"target followed by {vehicle} (chase)")
            if i == 0:
                handles += line

    base_points = seen[0]
    axes.scatter(base_points[:, 0], base_points[:, 1], marker="^", s=140, color="navy", edgecolor="white",
                 zorder=5)
    for base, (east, north) in zip(bases, base_points):
        axes.annotate(base.name, (east, north), xytext=(6, 6), textcoords="offset points", fontsize=9,
                      color="navy", zorder=6)
    handles.append(Line2D([], [], marker="^", linestyle="", color="navy", markersize=10, label="base"))

    for incident in placed:
        east, north = _enu(frame, [incident["latitude"]], [incident["longitude"]])[0]
        grade, outcome = str(incident.get("grade", "")), incident_outcome(incident)
        axes.scatter([east], [north], marker=GRADE_MARKERS.get(grade, "X"), s=110, zorder=7,
                     facecolor=OUTCOME_COLOURS[outcome], edgecolor=GRADE_COLOURS.get(grade, OTHER_GRADE_COLOUR),
                     linewidth=1.8)
        axes.annotate(incident["incident_id"], (east, north), xytext=(6, -10), textcoords="offset points",
                      fontsize=7, zorder=7)
    grades = sorted({str(i.get("grade", "")) for i in placed}, key=lambda g: (urgency(g), g))
    handles += [Line2D([], [], marker=GRADE_MARKERS.get(g, "X"), linestyle="", markersize=9, color="white",
                       markeredgecolor=GRADE_COLOURS.get(g, OTHER_GRADE_COLOUR), markeredgewidth=1.8,
                       label=f"incident, grade {g}") for g in grades]
    handles += [Patch(facecolor=colour, edgecolor="black", label=f"incident {outcome}")
                for outcome, colour in OUTCOME_COLOURS.items()
                if any(incident_outcome(i) == outcome for i in placed)]

    axes.set_xlim(low[0], high[0])
    axes.set_ylim(low[1], high[1])
    axes.set_aspect("equal", adjustable="box")
    axes.grid(True, linewidth=0.3)
    first = bases[0]
    axes.set_xlabel(f"metres east of {first.name}")
    axes.set_ylabel(f"metres north of {first.name}")
    bar_m = _scale_bar_m(high[0] - low[0])
    axes.add_artist(AnchoredSizeBar(axes.transData, bar_m, f"{bar_m / 1000:g} km", "lower left", pad=0.6,
                                    frameon=True, size_vertical=bar_m / 60))
    axes.set_title(f"{metrics.get('scenario', 'run')}: bases, airspace, flights and incidents\n"
                   f"site origin (latitude, longitude) {first.latitude:.5f}, {first.longitude:.5f}; "
                   f"one unit is one metre on the ground (equal aspect)", fontsize=10)
    figure.legend(handles=handles, loc="outside right upper", fontsize=8, framealpha=0.9)
    figure.savefig(png_path, dpi=DPI)
    return notes


def _scale_bar_m(width_m: float) -> float:
    """A round length (1, 2 or 5 times a power of ten) near a fifth of the map's width."""
    target = max(width_m / 5.0, 1.0)
    power = 10.0 ** math.floor(math.log10(target))
    return max(step * power for step in (1.0, 2.0, 5.0) if step * power <= target)


# --- the response-time chart ------------------------------------------------------------------------------------


def _call_order(incident: dict) -> tuple:
    call_time = incident.get("call_time_s")
    return (call_time is None, call_time if call_time is not None else 0.0, incident["incident_id"])


def draw_response_times(metrics: dict, png_path: Path) -> None:
    """response_times.png: a bar per attended incident in call order, coloured by grade, its lower bound a tick."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    attended = sorted((i for i in metrics.get("per_incident", []) if i.get("response_time_s") is not None),
                      key=_call_order)
    figure = Figure(figsize=(min(24.0, max(7.0, 1.5 + 0.35 * len(attended))), 4.8), layout="constrained")
    axes = figure.add_subplot(1, 1, 1)
    if attended:
        x = np.arange(len(attended))
        grades = [str(i.get("grade", "")) for i in attended]
        axes.bar(x, [i["response_time_s"] for i in attended],
                 color=[GRADE_COLOURS.get(g, OTHER_GRADE_COLOUR) for g in grades], edgecolor="black", linewidth=0.5)
        bounds = [(k, i["lower_bound_s"]) for k, i in enumerate(attended) if i.get("lower_bound_s") is not None]
        handles = [Patch(color=GRADE_COLOURS.get(g, OTHER_GRADE_COLOUR), label=f"grade {g}")
                   for g in sorted(set(grades), key=lambda g: (urgency(g), g))]
        if bounds:
            axes.plot([k for k, _ in bounds], [b for _, b in bounds], linestyle="", marker="_", markersize=22,
                      markeredgewidth=2.5, color="black")
            handles.append(Line2D([], [], linestyle="", marker="_", markersize=14, markeredgewidth=2.5,
                                  color="black", label="lower bound (take-off, climb, straight line)"))
        mark_percentiles(axes, metrics.get("response_time_s") or {}, vertical=False)
        handles += [h for h in axes.get_lines() if h.get_label() in ("p50", "p90")]
        axes.set_xticks(x, [i["incident_id"] for i in attended], rotation=60, ha="right", fontsize=8)
        figure.legend(handles=handles, loc="outside right upper", fontsize=8)
    else:
        note_no_data(axes, "no incident attended")
    axes.set_ylabel("call to drone on scene, s")
    axes.set_xlabel("attended incidents, in call order")
    axes.set_title(f"{metrics.get('scenario', 'run')}: response times")
    figure.savefig(png_path, dpi=DPI)


# --- the report -------------------------------------------------------------------------------------------------


def _number(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ratio(incident: dict) -> str:
    response, bound = incident.get("response_time_s"), incident.get("lower_bound_s")
    return "-" if response is None or not bound else f"{response / bound:.2f}"


def _summary_rows(metrics: dict) -> list[tuple]:
    response = metrics.get("response_time_s") or {}
    fraction = metrics.get("target_in_view_fraction")
    on_suspect = metrics.get("target_on_suspect_fraction")
    return [
        ("calls received / rejected / accepted", " / ".join(_number(metrics.get(k)) for k in
                                                            ("calls_received", "calls_rejected", "calls_accepted"))),
        ("incidents", _number(metrics.get("incidents"))),
        ("eligible for a drone", _number(metrics.get("incidents_eligible"))),
        ("refused a drone by the launch policy", _number(metrics.get("incidents_refused_by_policy"))),
        ("attended by a drone", _number(metrics.get("incidents_attended"))),
        ("response time p50 / p90 / max, s", " / ".join(_number(response.get(k)) for k in ("p50", "p90", "max"))),
        ("response over its lower bound, p50", _number(metrics.get("response_lower_bound_ratio_p50"), digits=2)),
        ("flights", _number(metrics.get("flights"))),
        ("**flights without an incident (must be 0)**", f"**{_number(metrics.get('flights_without_incident'))}**"),
        ("suspect in the camera while its incident was watched",
         "-" if fraction is None else f"{100 * fraction:.1f} %"),
        ("the drone's target on the suspect", "-" if on_suspect is None else f"{100 * on_suspect:.1f} %"),
        ("simulated time / wall time, s", f"{_number(metrics.get('sim_duration_s'))} / "
                                          f"{_number(metrics.get('wall_duration_s'))}"),
        ("real-time factor", _number(metrics.get("sim_real_time_factor"), digits=2)),
        ("run complete", _number(metrics.get("complete"))),
    ]


def _incident_rows(metrics: dict) -> list[tuple]:
    rows = []
    for incident in sorted(metrics.get("per_incident", []), key=_call_order):
        eligible = incident.get("drone_eligible")
        policy = "eligible" if eligible else f"refused: {incident.get('policy_reason') or 'no reason given'}"
        rows.append((incident["incident_id"], incident.get("grade", "-"), incident.get("category", "-"),
                     _number(incident.get("calls")), policy, incident.get("vehicle_id") or "-",
                     _number(incident.get("response_time_s")), _number(incident.get("lower_bound_s")),
                     _ratio(incident)))
    return rows


def _exceptions(metrics: dict) -> list[str]:
    """The section on flights without an incident and calls that got no drone."""
    lines = ["## Flights without an incident, refused calls", ""]
    without = metrics.get("flights_without_incident")
    lines.append(f"- Flights without an incident: **{_number(without)}**"
                 + ("" if without == 0 else " (must be 0: every flight answers a call)"))
    lines.append(f"- Calls rejected at intake (invalid, or outside the operating area): "
                 f"{_number(metrics.get('calls_rejected'))}; the reasons are in the audit log.")
    refused = [i for i in metrics.get("per_incident", []) if i.get("drone_eligible") is False]
    lines.append(f"- Incidents refused a drone by the launch policy: {len(refused)}")
    lines += [f"  - {i['incident_id']} (grade {i.get('grade', '-')}, {i.get('category', '-')}): "
              f"{i.get('policy_reason') or 'no reason given'}" for i in sorted(refused, key=_call_order)]
    unattended = [i for i in metrics.get("per_incident", []) if incident_outcome(i) == "unattended"]
    if unattended:
        lines.append(f"- Eligible incidents no drone reached: {', '.join(i['incident_id'] for i in unattended)}")
    return lines


def write_report(run_dir: Path, config_dir: Path) -> Path:
    """report.md, map.png and response_times.png in run_dir; the path of report.md. RunReportError (or the
    loaders' errors, all ValueError) names the file that is missing or malformed."""
    run_dir, config_dir = Path(run_dir), Path(config_dir)
    metrics = load_metrics(run_dir)
    paths = load_flight_paths(run_dir)
    sources = map_sources(load_graph(run_dir), config_dir)
    fleet = load_fleet(sources.fleet_file)
    map_path, chart_path, report_path = run_dir / "map.png", run_dir / "response_times.png", run_dir / "report.md"
    notes = list(sources.notes)
    if paths is None:
        notes.append("flight_paths.json is missing: the map shows no flight paths and no chase")
    notes += draw_map(metrics, paths, fleet, sources, map_path)
    draw_response_times(metrics, chart_path)

    scenario = metrics.get("scenario") or "unnamed scenario"
    lines = [f"# Run report: {scenario}", "", f"Run directory `{run_dir.name}`."]
    if metrics.get("complete") is False:
        lines += ["", "**The run did not complete: these numbers cover only part of the scenario.**"]
    lines += ["", "## Summary", ""] + markdown_table(_summary_rows(metrics), ("", "this run"))
    lines += ["", "## Map", "", f"![Bases, airspace, flight paths, the chase and incidents]({map_path.name})", "",
              f"Fleet `{sources.fleet_file}`, airspace `{sources.airspace_file}` (permissions held: "
              f"{', '.join(sorted(sources.permissions)) or 'none'}; ceiling {sources.ceiling_m:g} m), operating area "
              f"`{sources.operating_area_file}`. Filled red: no-fly; hatched: restricted areas police may enter."]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in notes]
    lines += ["", "## Response times", "", f"![Response time per attended incident]({chart_path.name})", "",
              "Response: call to the drone on scene. Lower bound: take-off, climb and a straight line at cruise "
              "speed from the drone's base; ratio = response / lower bound.", "",
              "## Incidents", ""]
    lines += markdown_table(_incident_rows(metrics), ("incident", "grade", "category", "calls", "drone policy",
                                                       "vehicle", "response s", "lower bound s", "ratio"))
    lines += [""] + _exceptions(metrics) + [""]
    report_path.write_text("\n".join(lines))
    return report_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dfr_bringup.run_report", description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, help="the run directory (runs/<timestamp>, runs/latest)")
    parser.add_argument("--config-dir", type=Path, default=Path("config"),
                        help="the project's config/ directory, for files graph.json does not name")
    args = parser.parse_args(argv)
    try:
        if not args.run_dir.is_dir():
            raise RunReportError(f"{args.run_dir} is not a run directory")
        report = write_report(args.run_dir, args.config_dir)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

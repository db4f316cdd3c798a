"""Unit tests of dfr_bringup.run_report: a synthetic run directory over the real Islington fleet and London
airspace, with an incident attended, one refused by the launch policy, one no drone reached and a chase."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from matplotlib.image import imread

from dfr_bringup.run_report import RunReportError, main, map_sources, write_report

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "config"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

INCIDENTS = [
    {"incident_id": "INC-000001", "grade": "I", "category": "dangerous_driving", "calls": 2,
     "drone_eligible": True, "policy_reason": "grade I dangerous_driving: eligible for a drone",
     "vehicle_id": "uav3", "response_time_s": 84.9, "call_time_s": 10.0, "latitude": 51.5400,
     "longitude": -0.1000, "lower_bound_s": 61.2},
    {"incident_id": "INC-000002", "grade": "R", "category": "noise", "calls": 1, "drone_eligible": False,
     "policy_reason": "grade R is not eligible for a drone", "vehicle_id": "", "response_time_s": None,
     "call_time_s": 40.0, "latitude": 51.5450, "longitude": -0.1200, "lower_bound_s": None},
    {"incident_id": "INC-000003", "grade": "E", "category": "burglary", "calls": 1, "drone_eligible": True,
     "policy_reason": "grade E burglary: eligible for a drone", "vehicle_id": "uav7", "response_time_s": 120.5,
     "call_time_s": 30.0, "latitude": 51.5600, "longitude": -0.0850, "lower_bound_s": 80.0},
    {"incident_id": "INC-000004", "grade": "S", "category": "violence", "calls": 3, "drone_eligible": True,
     "policy_reason": "grade S violence: eligible for a drone", "vehicle_id": "", "response_time_s": None,
     "call_time_s": 50.0, "latitude": 51.5520, "longitude": -0.1300, "lower_bound_s": 70.0},
]

METRICS = {
    "scenario": "Synthetic evening", "calls_received": 8, "calls_rejected": 1, "calls_accepted": 7,
    "incidents": 4, "incidents_eligible": 3, "incidents_refused_by_policy": 1, "incidents_attended": 2,
    "response_time_s": {"p50": 102.7, "p90": 116.9, "max": 120.5}, "response_lower_bound_ratio_p50": 1.45,
    "flights": 2, "flights_without_incident": 0, "target_in_view_fraction": 0.875,
    "target_on_suspect_fraction": 0.625, "sim_duration_s": 900.0,
    "wall_duration_s": 300.0, "sim_real_time_factor": 3.0, "complete": True, "per_incident": INCIDENTS,
}

FLIGHT_PATHS = {
    "period_s": 2.0,
    "vehicles": {
        "uav3": [[0.0, 51.5338, -0.1108, 0.0, "launch", "INC-000001"],
                 [30.0, 51.5370, -0.1050, 60.0, "transit", "INC-000001"],
                 [95.0, 51.5400, -0.1000, 60.0, "on_scene", "INC-000001"],
                 [200.0, 51.5420, -0.0950, 60.0, "track", "INC-000001"],
                 [400.0, 51.5338, -0.1108, 0.0, "land", "INC-000001"]],
        "uav7": [[30.0, 51.5579, -0.0749, 0.0, "launch", "INC-000003"],
                 [150.5, 51.5600, -0.0850, None, "on_scene", "INC-000003"],      # altitude unknown
                 [500.0, 51.5579, -0.0749, 0.0, "land", "INC-000003"]],
    },
    "targets": {"uav3": [[100.0, 51.5401, -0.0998, "1"], [150.0, 51.5410, -0.0975, "1"],
                         [200.0, 51.5419, -0.0952, "1"], [210.0, 51.5421, -0.0949, "4"]]},
}


def graph_specs() -> list[dict]:
    """The nodes of graph.json that name the map's files, as the runner writes them."""
    return [
        {"node": "/dfr/intake", "package": "dfr_intake", "executable": "intake_node", "param_files": ["intake.yaml"],
         "overrides": {"operating_area_file": str(CONFIG / "airspace/operating_area.geojson")}, "required": False},
        {"node": "/dfr/dispatch", "package": "dfr_dispatch", "executable": "dispatch_node",
         "param_files": ["dispatch.yaml"],
         "overrides": {"fleet_file": str(CONFIG / "fleet/islington.yaml"),
                       "airspace_file": str(CONFIG / "airspace/london_restrictions.geojson")}, "required": False},
    ]


def make_run_dir(path: Path, flight_paths: bool = True, graph: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.json").write_text(json.dumps(METRICS, indent=2))
    if flight_paths:
        (path / "flight_paths.json").write_text(json.dumps(FLIGHT_PATHS))
    if graph:
        (path / "graph.json").write_text(json.dumps(graph_specs(), indent=2))
    return path


def incident_rows(markdown: str) -> dict[str, list[str]]:
    """The incident table's rows by incident id, cells stripped."""
    rows = [line for line in markdown.splitlines() if line.startswith("| INC-")]
    return {cells[0]: cells for cells in ([c.strip() for c in row.strip("|").split("|")] for row in rows)}


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> tuple[Path, str]:
    run_dir = make_run_dir(tmp_path_factory.mktemp("run"))
    report = write_report(run_dir, CONFIG)
    return run_dir, report.read_text()


def test_writes_the_report_and_two_images_that_decode(full_run):
    run_dir, markdown = full_run
    assert (run_dir / "report.md").is_file()
    for name in ("map.png", "response_times.png"):
        assert_png(run_dir / name)
        assert f"]({name})" in markdown
    assert markdown.startswith("# Run report: Synthetic evening\n")


def test_one_row_per_incident_with_its_values(full_run):
    _, markdown = full_run
    rows = incident_rows(markdown)
    assert len(rows) == len(INCIDENTS)
    assert list(rows) == ["INC-000001", "INC-000003", "INC-000002", "INC-000004"]     # in call order
    assert rows["INC-000001"] == ["INC-000001", "I", "dangerous_driving", "2", "eligible", "uav3", "84.9", "61.2",
                                  f"{84.9 / 61.2:.2f}"]
    assert rows["INC-000003"][5:] == ["uav7", "120.5", "80.0", f"{120.5 / 80.0:.2f}"]
    assert rows["INC-000004"][4:] == ["eligible", "-", "-", "70.0", "-"]


def test_a_refused_incident_shows_its_policy_reason(full_run):
    _, markdown = full_run
    assert incident_rows(markdown)["INC-000002"][4] == "refused: grade R is not eligible for a drone"
    section = markdown.split("## Flights without an incident, refused calls")[1]
    assert "Flights without an incident: **0**" in section
    assert "INC-000002 (grade R, noise): grade R is not eligible for a drone" in section
    assert "Calls rejected at intake (invalid, or outside the operating area): 1" in section
    assert "Eligible incidents no drone reached: INC-000004" in section


def test_summary_has_the_headline_metrics(full_run):
    _, markdown = full_run
    assert "| response time p50 / p90 / max, s | 102.7 / 116.9 / 120.5 |" in markdown
    assert "| **flights without an incident (must be 0)** | **0** |" in markdown
    assert "| suspect in the camera while its incident was watched | 87.5 % |" in markdown
    assert "| the drone's target on the suspect | 62.5 % |" in markdown
    assert "| response over its lower bound, p50 | 1.45 |" in markdown
    assert "permissions held: police_permitted" in markdown
    assert "flight_paths.json is missing" not in markdown


def test_missing_flight_paths_are_said_and_a_moved_run_draws_from_the_config_directory(tmp_path):
    """No flight_paths.json, and a graph.json naming the files of another checkout."""
    run_dir = make_run_dir(tmp_path / "run", flight_paths=False)
    specs = graph_specs()
    specs[1]["overrides"]["fleet_file"] = "/elsewhere/config/fleet/islington.yaml"
    (run_dir / "graph.json").write_text(json.dumps(specs))
    markdown = write_report(run_dir, CONFIG).read_text()
    assert "flight_paths.json is missing: the map shows no flight paths and no chase" in markdown
    assert ("the fleet file the run used, /elsewhere/config/fleet/islington.yaml, is not here; drawn from "
            f"{CONFIG / 'fleet/islington.yaml'}") in markdown
    assert len(incident_rows(markdown)) == len(INCIDENTS)
    assert_png(run_dir / "map.png")
    assert_png(run_dir / "response_times.png")


def test_without_graph_json_the_map_comes_from_the_config_directory():
    sources = map_sources(None, CONFIG)
    assert sources.fleet_file == CONFIG / "fleet/islington.yaml"
    assert sources.airspace_file == CONFIG / "airspace/london_restrictions.geojson"
    assert sources.operating_area_file == CONFIG / "airspace/operating_area.geojson"
    assert sources.permissions == {"police_permitted"} and sources.ceiling_m == 120.0
    assert sources.notes == [f"graph.json is missing: the map is drawn from the files in {CONFIG}"]


def test_graph_json_overrides_name_the_files_and_dispatch_permissions():
    specs = graph_specs()
    specs[1]["overrides"]["airspace_permissions"] = []
    sources = map_sources(specs, CONFIG)
    assert sources.operating_area_file == CONFIG / "airspace/operating_area.geojson"
    assert sources.permissions == frozenset() and sources.notes == []


def test_metrics_that_are_not_json_give_an_error_naming_the_file(tmp_path, capsys):
    run_dir = make_run_dir(tmp_path / "run")
    (run_dir / "metrics.json").write_text("{not json")
    with pytest.raises(RunReportError, match=r"metrics\.json: not valid JSON"):
        write_report(run_dir, CONFIG)
    assert main([str(run_dir), "--config-dir", str(CONFIG)]) == 1
    assert f"{run_dir / 'metrics.json'}: not valid JSON" in capsys.readouterr().err
    assert not (run_dir / "report.md").exists()


def test_missing_metrics_and_malformed_flight_paths_name_the_file(tmp_path):
    run_dir = make_run_dir(tmp_path / "run")
    (run_dir / "flight_paths.json").write_text(json.dumps({"vehicles": {"uav3": [[0.0, "north", -0.1]]}}))
    with pytest.raises(RunReportError, match=r"flight_paths\.json: vehicles\.uav3 must be a list of rows"):
        write_report(run_dir, CONFIG)
    (run_dir / "metrics.json").unlink()
    with pytest.raises(RunReportError, match=r"cannot read metrics file .*metrics\.json"):
        write_report(run_dir, CONFIG)

"""launch/sim.launch.py and the project's runner start the same nodes with the same parameters.

`launch` and `launch_ros` are not importable where ROS 2 comes from PyPI. The launch
file is checked twice: read as source, it must build its nodes from
dfr_bringup.graph.sim_graph() and pass every field of each entry to launch_ros's Node;
run against stand-ins for the launch API that record what they are given, it must
produce, node for node, the executable, name, namespace, parameter files and
parameter values that the runner puts on its command lines.
"""
import ast
import json
import sys
from pathlib import Path

import pytest

from dfr_bringup.graph import SimRun, sim_graph
from dfr_bringup.runner import node_command

sys.path.insert(0, str(Path(__file__).resolve().parent))
import launch_standins  # noqa: E402
from launch_standins import parameters_of  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "sim.launch.py"
CONFIG = REPO / "config"


# ------------------------------------------------------------------ read as source
def test_the_launch_file_builds_its_nodes_from_the_shared_graph():
    calls = [n for n in ast.walk(ast.parse(LAUNCH_FILE.read_text())) if isinstance(n, ast.Call)]
    assert any(getattr(c.func, "id", "") == "sim_graph" for c in calls)
    assert any(getattr(c.func, "id", "") == "dfr_node_actions" for c in calls)
    # The one place specs become Nodes, shared by every launch file.
    shared = REPO / "src" / "dfr_bringup" / "dfr_bringup" / "launch_actions.py"
    tree = ast.parse(shared.read_text())
    function = next(f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "dfr_node_actions")
    calls = [n for n in ast.walk(function) if isinstance(n, ast.Call)]
    nodes = [c for c in calls if getattr(c.func, "id", "") == "Node"]
    assert len(nodes) == 1, "one Node per graph entry"
    kwargs = {kw.arg: ast.unparse(kw.value) for kw in nodes[0].keywords}
    for field in ("package", "executable", "name", "namespace"):
        assert kwargs[field] == f"spec.{field}"
    assert "spec.param_files" in kwargs["parameters"] and "spec.overrides" in kwargs["parameters"]
    assert any(getattr(c.func, "id", "") == "OnProcessExit" for c in calls)
    assert "spec.required" in ast.unparse(function)


# ----------------------------------------------------- run against launch stand-ins
def run_launch_file(monkeypatch, arguments: dict):
    return launch_standins.run_launch_file(monkeypatch, LAUNCH_FILE, arguments)


def runner_view(command: list[str]) -> tuple[list[str], dict]:
    files = [command[i + 1] for i, arg in enumerate(command) if arg == "--params-file"]
    values = {}
    for i, arg in enumerate(command):
        if arg == "-p":
            key, value = command[i + 1].split(":=", 1)
            values[key] = json.loads(value)
    return files, values


@pytest.mark.parametrize("fleet, extra", [
    ("fleet/islington.yaml", {}),
    (str(REPO / "tests" / "fixtures" / "fleet_two_bases.yaml"), {}),
    ("fleet/islington.yaml", {"vehicles": "2", "foxglove": "true"}),
    ("fleet/islington.yaml", {"vehicles": "2", "bridge_processes": "per-vehicle"})])
def test_launch_file_and_runner_start_the_same_nodes_with_the_same_parameters(monkeypatch, tmp_path, fleet, extra):
    arguments = {"fleet": fleet, "speed": "12.5", "output_dir": str(tmp_path), **extra}
    actions = run_launch_file(monkeypatch, arguments)
    launched = [a for a in actions if type(a).__name__ == "Node"]

    fleet_file = Path(fleet) if Path(fleet).is_absolute() else CONFIG / fleet
    specs = sim_graph(SimRun(CONFIG, fleet_file, CONFIG / "scenarios" / "islington_evening_peak.yaml",
                             tmp_path, speed=12.5, vehicles=int(extra.get("vehicles", 0)),
                             foxglove=extra.get("foxglove") == "true",
                             bridges_in_one_process=extra.get("bridge_processes", "one") == "one"))
    if extra:
        assert sum(s.nodes for s in specs if s.package == "dfr_bridge") == 2
        assert sum(s.package == "dfr_bridge" for s in specs) == (2 if "bridge_processes" in extra else 1)
        assert any(s.name == "foxglove_server" for s in specs) == ("foxglove" in extra)
    assert len(launched) == len(specs)
    for node, spec in zip(launched, specs):
        command = node_command(spec, CONFIG)
        assert Path(command[0]).parts[-3:] == ("lib", node.kwargs["package"], node.kwargs["executable"])
        assert command[3] == f"__node:={node.kwargs['name']}" and command[5] == f"__ns:={node.kwargs['namespace']}"
        assert parameters_of(node) == runner_view(command), spec.fully_qualified_name

    handlers = [a for a in actions if type(a).__name__ == "RegisterEventHandler"]
    required = [s for s in specs if s.required]
    assert len(handlers) == len(required) == 1
    on_exit = handlers[0].args[0]
    assert on_exit.kwargs["target_action"] is launched[specs.index(required[0])]
    assert type(on_exit.kwargs["on_exit"][0].kwargs["event"]).__name__ == "Shutdown"


def test_a_changed_graph_is_seen_by_the_comparison(monkeypatch, tmp_path):
    actions = run_launch_file(monkeypatch, {"output_dir": str(tmp_path)})
    node = next(a for a in actions if type(a).__name__ == "Node" and a.kwargs["name"] == "dispatch")
    spec = next(s for s in sim_graph(SimRun(CONFIG, CONFIG / "fleet" / "islington.yaml",
                                            CONFIG / "scenarios" / "foundation_single_call.yaml", tmp_path))
                if s.name == "dispatch")
    command = node_command(spec, CONFIG)
    node.kwargs["parameters"][0] = str(CONFIG / "other.yaml")
    assert parameters_of(node) != runner_view(command)


def test_every_parameter_file_exists_and_names_its_node():
    import yaml
    for spec in sim_graph(SimRun(CONFIG, CONFIG / "fleet" / "islington.yaml",
                                 CONFIG / "scenarios" / "foundation_single_call.yaml", REPO / "runs" / "x")):
        # bridge_fleet's files are for the bridges it holds.
        name_of_node = "bridge" if spec.executable == "bridge_fleet" else spec.name
        for name in spec.param_files:
            keys = set(yaml.safe_load((CONFIG / name).read_text()))
            assert spec.fully_qualified_name in keys or f"/**/{name_of_node}" in keys or keys == {"/**"}, (name, keys)


def test_runner_command_line_follows_ros_args_conventions():
    spec = next(s for s in sim_graph(SimRun(CONFIG, CONFIG / "fleet" / "islington.yaml",
                                            CONFIG / "scenarios" / "foundation_single_call.yaml",
                                            REPO / "runs" / "x", bridges_in_one_process=False)) if s.name == "bridge")
    command = node_command(spec, CONFIG)
    assert command[0].endswith("lib/dfr_bridge/bridge_node")
    assert command[1:7] == ["--ros-args", "-r", "__node:=bridge", "-r", "__ns:=/uav1", "--params-file"]
    assert command[7] == str(CONFIG / "bridge.yaml")
    assert "use_sim_time:=true" in command and 'vehicle_id:="uav1"' in command

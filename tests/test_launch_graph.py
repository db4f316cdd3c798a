"""launch/sim.launch.py and the project's runner start the same nodes with the same parameter files.

`launch` is not importable where ROS 2 comes from PyPI, so the launch file is read as
source: every launch_ros Node it creates, with its package, executable, name,
namespace, parameter files and override keys, is compared with dfr_bringup.graph.
"""
import ast
from pathlib import Path

import pytest

from dfr_bringup.graph import SimRun, sim_graph
from dfr_bringup.runner import node_command
from dfr_common.fleet import load_fleet

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "sim.launch.py"
CONFIG = REPO / "config"
PER_VEHICLE = "<one per vehicle>"


def _dict_keys(node: ast.AST, assignments: dict) -> set[str]:
    keys = set()
    if isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values):
            if key is None:          # {**other}
                keys |= _dict_keys(assignments.get(getattr(value, "id", ""), ast.Dict([], [])), assignments)
            else:
                keys.add(ast.literal_eval(key))
    return keys


def launch_nodes(source: str):
    """(package, executable, name, namespace, param files, override keys, required) of every Node."""
    tree = ast.parse(source)
    assignments = {t.id: n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                   for t in n.targets if isinstance(t, ast.Name)}
    in_loop = {id(n) for loop in ast.walk(tree) if isinstance(loop, ast.For) for n in ast.walk(loop)}
    required_names = {kw.value.id for call in ast.walk(tree) if isinstance(call, ast.Call)
                      and getattr(call.func, "id", "") == "OnProcessExit"
                      for kw in call.keywords if kw.arg == "target_action"}
    required_calls = {id(assignments[name]) for name in required_names}
    nodes = []
    for call in ast.walk(tree):
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", "") == "Node"):
            continue
        kwargs = {kw.arg: kw.value for kw in call.keywords}
        namespace = kwargs["namespace"]
        files, keys = [], set()
        for item in kwargs.get("parameters", ast.List([])).elts:
            if isinstance(item, ast.Call) and getattr(item.func, "id", "") == "param_file":
                files.append(ast.literal_eval(item.args[0]))
            else:
                keys |= _dict_keys(item, assignments)
        nodes.append((
            ast.literal_eval(kwargs["package"]), ast.literal_eval(kwargs["executable"]),
            ast.literal_eval(kwargs["name"]),
            ast.literal_eval(namespace) if isinstance(namespace, ast.Constant) else PER_VEHICLE,
            tuple(files), frozenset(keys), id(call) in required_calls, id(call) in in_loop))
    return nodes


def runner_nodes(fleet_file: Path):
    fleet = load_fleet(fleet_file)
    run = SimRun(CONFIG, fleet_file, CONFIG / "scenarios" / "foundation_single_call.yaml", REPO / "runs" / "x")
    per_vehicle = {v.namespace for v in fleet.vehicles.values()}
    nodes = set()
    for spec in sim_graph(run):
        namespace = PER_VEHICLE if spec.namespace in per_vehicle else spec.namespace
        nodes.add((spec.package, spec.executable, spec.name, namespace, spec.param_files,
                   frozenset(spec.overrides), spec.required))
    return nodes


def test_the_launch_file_is_valid_python_with_a_launch_description():
    tree = ast.parse(LAUNCH_FILE.read_text())
    assert "generate_launch_description" in {f.name for f in tree.body if isinstance(f, ast.FunctionDef)}


@pytest.mark.parametrize("fleet", ["fleet/islington.yaml"])
def test_launch_file_and_runner_start_the_same_nodes_with_the_same_parameter_files(fleet):
    launched = launch_nodes(LAUNCH_FILE.read_text())
    from_launch = {node[:7] for node in launched}
    assert from_launch == runner_nodes(CONFIG / fleet)
    # The per-vehicle node is created in a loop over the fleet, once per vehicle.
    assert all(node[7] == (node[3] == PER_VEHICLE) for node in launched)


def test_every_parameter_file_exists_and_names_its_node():
    import yaml
    for spec in sim_graph(SimRun(CONFIG, CONFIG / "fleet" / "islington.yaml",
                                 CONFIG / "scenarios" / "foundation_single_call.yaml", REPO / "runs" / "x")):
        for name in spec.param_files:
            data = yaml.safe_load((CONFIG / name).read_text())
            keys = set(data)
            assert spec.fully_qualified_name in keys or f"/**/{spec.name}" in keys, (name, keys)


def test_a_changed_launch_file_is_caught():
    source = LAUNCH_FILE.read_text().replace('param_file("dispatch.yaml")', 'param_file("other.yaml")')
    assert {n[:7] for n in launch_nodes(source)} != runner_nodes(CONFIG / "fleet" / "islington.yaml")


def test_runner_command_line_matches_ros_args_conventions():
    spec = next(s for s in sim_graph(SimRun(CONFIG, CONFIG / "fleet" / "islington.yaml",
                                            CONFIG / "scenarios" / "foundation_single_call.yaml",
                                            REPO / "runs" / "x")) if s.name == "bridge")
    command = node_command(spec, CONFIG)
    assert command[0].endswith("lib/dfr_bridge/bridge_node")
    assert command[1:7] == ["--ros-args", "-r", "__node:=bridge", "-r", "__ns:=/uav1", "--params-file"]
    assert command[7] == str(CONFIG / "bridge.yaml")
    assert "use_sim_time:=true" in command and 'vehicle_id:="uav1"' in command

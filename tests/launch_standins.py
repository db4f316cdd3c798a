"""Stand-ins for the parts of `launch`, `launch_ros` and `ament_index_python` that the
launch files use, so that a launch file can be executed where ROS 2 comes from PyPI.

Each stand-in action records what it was given (`args`, `kwargs`); `run_launch_file`
executes a launch file's generate_launch_description() and its OpaqueFunction with the
declared defaults and the given arguments, and returns the actions it produced.
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class PackageNotFoundError(KeyError):
    pass


def fake_launch_modules(share_dirs: dict[str, str] | None = None) -> dict[str, types.ModuleType]:
    """Minimal stand-ins for launch and launch_ros; with `share_dirs`, also for
    ament_index_python.packages, whose get_package_share_directory answers from it."""
    modules = {name: types.ModuleType(name) for name in (
        "launch", "launch.actions", "launch.event_handlers", "launch.events", "launch.substitutions",
        "launch_ros", "launch_ros.actions")}

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]

    modules["launch"].LaunchDescription = lambda entities: entities
    for name in ("DeclareLaunchArgument", "EmitEvent", "ExecuteProcess", "OpaqueFunction", "RegisterEventHandler",
                 "TimerAction"):
        setattr(modules["launch.actions"], name, type(name, (Recorded,), {}))
    modules["launch.event_handlers"].OnProcessExit = type("OnProcessExit", (Recorded,), {})
    modules["launch.events"].Shutdown = type("Shutdown", (Recorded,), {})
    modules["launch.substitutions"].LaunchConfiguration = LaunchConfiguration
    modules["launch_ros.actions"].Node = type("Node", (Recorded,), {})

    if share_dirs is not None:
        ament = types.ModuleType("ament_index_python.packages")

        def get_package_share_directory(package):
            if package not in share_dirs:
                raise PackageNotFoundError(package)
            return share_dirs[package]

        def get_package_prefix(package):
            return str(Path(get_package_share_directory(package)).parents[1])

        ament.PackageNotFoundError = PackageNotFoundError
        ament.get_package_share_directory = get_package_share_directory
        ament.get_package_prefix = get_package_prefix
        modules["ament_index_python.packages"] = ament
    return modules


def run_launch_file(monkeypatch, launch_file: Path, arguments: dict, share_dirs: dict[str, str] | None = None):
    """The actions launch_file's OpaqueFunction returns, for its defaults updated with `arguments`."""
    # The runner (imported by the launch files) must be loaded with the real ament index.
    import dfr_bringup.runner  # noqa: F401

    for name, module in fake_launch_modules(share_dirs).items():
        monkeypatch.setitem(sys.modules, name, module)
    # The shared launch actions bind the launch API when imported: import them afresh, against these.
    monkeypatch.delitem(sys.modules, "dfr_bringup.launch_actions", raising=False)
    spec = importlib.util.spec_from_file_location(f"{launch_file.stem.replace('.', '_')}_under_test", launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entities = module.generate_launch_description()
    context = declared_arguments(entities)
    unknown = set(arguments) - set(context)
    assert not unknown, f"{launch_file.name} declares no argument {sorted(unknown)}"
    context.update(arguments)
    opaque = next(e for e in entities if type(e).__name__ == "OpaqueFunction")
    return opaque.kwargs["function"](context)


def declared_arguments(entities) -> dict[str, str]:
    return {e.args[0]: e.kwargs["default_value"] for e in entities if type(e).__name__ == "DeclareLaunchArgument"}


def of_type(actions, name: str) -> list:
    return [a for a in actions if type(a).__name__ == name]


def parameters_of(node) -> tuple[list[str], dict]:
    files = [p for p in node.kwargs["parameters"] if isinstance(p, str)]
    values = {}
    for p in node.kwargs["parameters"]:
        if isinstance(p, dict):
            values.update(p)
    return files, values

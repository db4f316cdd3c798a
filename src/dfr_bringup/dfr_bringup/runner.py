"""The project's runner: starts the graph as processes, the way `ros2 launch` would.

`launch` and `launch_ros` are not on PyPI, so on a machine with ROS 2 from wheels
this runner starts the nodes that launch/sim.launch.py starts: the same executables
from the colcon install, the same parameter files, the same overrides. Every node's
output is echoed with its name and kept in the run directory; when the required
node (the run recorder) exits, the others are stopped, as launch's OnProcessExit
with a Shutdown would, and the runner exits with the recorder's code.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml
from ament_index_python.packages import PackageNotFoundError, get_package_prefix

from dfr_bringup.graph import NodeSpec, SimRun, sim_graph
from dfr_bringup.middleware import middleware_environment
from dfr_bringup.progress_display import ProgressDisplay
from dfr_intake.scenario import load_scenario


def executable_path(spec: NodeSpec) -> Path:
    """Where colcon installed the node's executable: <prefix>/lib/<package>/<executable>."""
    try:
        prefix = get_package_prefix(spec.package)
    except PackageNotFoundError as err:
        raise SystemExit(f"package '{spec.package}' is not installed: build the workspace "
                         "and source install/setup.bash (or run 'make build')") from err
    path = Path(prefix) / "lib" / spec.package / spec.executable
    if not path.exists():
        raise SystemExit(f"{path} does not exist: is '{spec.executable}' an entry point of {spec.package}?")
    return path


def node_command(spec: NodeSpec, config_dir: Path) -> list[str]:
    command = [str(executable_path(spec)), "--ros-args", "-r", f"__node:={spec.name}",
               "-r", f"__ns:={spec.namespace}"]
    for name in spec.param_files:
        command += ["--params-file", str(config_dir / name)]
    for key, value in spec.overrides.items():
        # Parameter values on the command line are YAML; JSON is YAML, and quotes keep strings strings.
        command += ["-p", f"{key}:={json.dumps(value)}"]
    return command


class Graph:
    """The running node processes."""

    def __init__(self, specs: list[NodeSpec], config_dir: Path, log_path: Path, echo: bool = True):
        self.specs = specs
        self.config_dir = config_dir
        self.echo = echo
        self.log = log_path.open("a", buffering=1)
        self.lock = threading.Lock()
        self.processes: dict[str, subprocess.Popen] = {}
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for spec in self.specs:
            self._spawn(spec)

    def _spawn(self, spec: NodeSpec) -> None:
        command = node_command(spec, self.config_dir)
        self._write(f"[runner] starting {spec.fully_qualified_name}: {' '.join(command)}", echo=False)
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   bufsize=1, env={**os.environ, **middleware_environment(self.config_dir)})
        self.processes[spec.fully_qualified_name] = process
        thread = threading.Thread(target=self._pump, args=(spec.fully_qualified_name, process), daemon=True)
        thread.start()
        self.threads.append(thread)

    def restart(self, name: str, sig: signal.Signals = signal.SIGKILL) -> int:
        """Kill a node (SIGKILL: a crash, nothing of it runs on) and start it again with the same command, as a
        supervisor's respawn would; returns the new process's pid. Call it from the thread that waits on the
        graph (wait_for_required's on_tick), which then sees only the new process."""
        spec = next(s for s in self.specs if s.fully_qualified_name == name)
        old = self.processes[name]
        old.send_signal(sig)
        old.wait(timeout=10.0)
        self._write(f"[runner] {name} (pid {old.pid}) killed by {sig.name}: starting it again")
        self._spawn(spec)
        return self.processes[name].pid

    def _pump(self, name: str, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self._write(f"[{name}] {line.rstrip()}")

    def _write(self, line: str, echo: bool | None = None) -> None:
        with self.lock:
            if self.log.closed:
                return
            self.log.write(line + "\n")
            if self.echo if echo is None else echo:
                print(line, flush=True)

    def wait_for_required(self, stop: threading.Event, on_tick=None) -> int:
        """Block until a required node exits or any node fails (its code is returned), or `stop`;
        `on_tick()` is called every 0.2 s meanwhile."""
        required = [s.fully_qualified_name for s in self.specs if s.required]
        while not stop.wait(0.2):
            if on_tick is not None:
                on_tick()
            for name in required:
                code = self.processes[name].poll()
                if code is not None:
                    self._write(f"[runner] {name} exited with {code}: stopping the graph")
                    return code
            for name, process in self.processes.items():
                code = process.poll()
                if code not in (None, 0):
                    # A node that dies makes the run meaningless: stop, as launch would for a
                    # node whose exit is tied to a Shutdown.
                    self._write(f"[runner] {name} failed with exit code {code}: stopping the graph")
                    return code
            if all(p.poll() is not None for p in self.processes.values()):
                return 1
        self._write("[runner] terminated: stopping the graph")
        return 143

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGINT, then SIGTERM, then SIGKILL, each after a grace period, as launch does."""
        for sig, wait in ((signal.SIGINT, grace_s), (signal.SIGTERM, 2.0), (signal.SIGKILL, 1.0)):
            alive = [p for p in self.processes.values() if p.poll() is None]
            if not alive:
                break
            for process in alive:
                process.send_signal(sig)
            deadline = time.monotonic() + wait
            for process in alive:
                try:
                    process.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
        for thread in self.threads:
            thread.join(timeout=1.0)
        with self.lock:
            self.log.close()


def apply_overrides(specs: list[NodeSpec], overrides: list[str]) -> list[NodeSpec]:
    """Apply NODE:NAME=VALUE overrides from the command line; an unknown node is an error."""
    by_name = {s.fully_qualified_name: s for s in specs}
    for item in overrides:
        node, sep, assignment = item.partition(":")
        name, eq, value = assignment.partition("=")
        if not (sep and eq and name):
            raise SystemExit(f"--param {item!r}: expected NODE:NAME=VALUE, e.g. /dfr/dispatch:cruise_speed_m_s=15")
        if node not in by_name:
            fleet = next((s for s in by_name.values() if s.executable == "bridge_fleet"
                          and node.rstrip("/").endswith("/bridge")
                          and node.strip("/").split("/")[0] in s.overrides.get("vehicles", ())), None)
            if fleet is not None:
                raise SystemExit(f"--param {item!r}: {node} runs in {fleet.fully_qualified_name} with every other "
                                 f"bridge; give {fleet.fully_qualified_name}:{assignment} for them all, or add "
                                 "--bridge-processes per-vehicle for this one alone")
            raise SystemExit(f"--param {item!r}: no node {node}; nodes are {', '.join(sorted(by_name))}")
        spec = by_name[node]
        by_name[node] = dataclasses.replace(spec, overrides={**spec.overrides, name: yaml.safe_load(value)})
    return [by_name[s.fully_qualified_name] for s in specs]


def make_run_dir(runs_dir: Path) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = runs_dir / stamp
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = runs_dir / f"{stamp}-{suffix}"
    run_dir.mkdir(parents=True)
    latest = runs_dir / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(run_dir.name)
    return run_dir


def add_run_arguments(parser: argparse.ArgumentParser, scenario: str) -> None:
    """The arguments of a run of the embedded-simulator graph, shared by the runner and the soak."""
    parser.add_argument("--config-dir", type=Path, default=Path("config"), help="the project's config/ directory")
    parser.add_argument("--fleet", default="fleet/islington.yaml", help="fleet file, relative to the config dir")
    parser.add_argument("--scenario", default=scenario, help="scenario file, relative to the config dir")
    parser.add_argument("--world", default="world/islington.geojson",
                        help="street map the ground actors move on, relative to the config dir")
    parser.add_argument("--speed", type=float, default=10.0, help="sim seconds per wall second")
    parser.add_argument("--vehicles", type=int, default=0,
                        help="fly the fleet's first N vehicles (the others stay docked, without a bridge); 0: all")
    parser.add_argument("--bridge-processes", choices=("one", "per-vehicle"), default="one",
                        help="every vehicle's bridge in one process (the least CPU), or a process each "
                             "(as on real airframes)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where run directories are made")
    parser.add_argument("--param", action="append", default=[], metavar="NODE:NAME=VALUE",
                        help="override a parameter of one node, e.g. /dfr/dispatch:on_scene_duration_s=30 "
                             "(VALUE is YAML); may be repeated")
    parser.add_argument("--quiet", action="store_true", help="keep node output in the log file only")
    parser.add_argument("--progress", action="store_true",
                        help="show a live progress table (node output goes to the log file only)")


def prepare_run(args, foxglove: bool = False) -> tuple[SimRun, list[NodeSpec]]:
    """The run directory (runs/<timestamp>, runs/latest), the graph's nodes, and graph.json describing them."""
    config_dir = args.config_dir.resolve()
    run_dir = make_run_dir(args.runs_dir.resolve())
    run = SimRun(config_dir=config_dir, fleet_file=config_dir / args.fleet,
                 scenario_file=config_dir / args.scenario, output_dir=run_dir, speed=args.speed,
                 world_file=config_dir / args.world, vehicles=args.vehicles, foxglove=foxglove,
                 bridges_in_one_process=args.bridge_processes == "one")
    try:
        specs = apply_overrides(sim_graph(run), args.param)
    except ValueError as err:
        raise SystemExit(f"runner: {err}") from err
    (run_dir / "graph.json").write_text(json.dumps(
        [{"node": s.fully_qualified_name, "package": s.package, "executable": s.executable,
          "param_files": list(s.param_files), "overrides": s.overrides, "required": s.required}
         for s in specs], indent=2) + "\n")
    print(f"[runner] run directory {run_dir}; {len(specs)} nodes; node output in {run_dir / 'graph.log'}",
          flush=True)
    return run, specs


def run_graph(run: SimRun, specs: list[NodeSpec], args, on_tick=None) -> int:
    """Start the graph, wait for its required node (the run recorder), stop it; the recorder's exit code.
    `on_tick()` is called every 0.2 s in the waiting thread."""
    graph = Graph(specs, run.config_dir, run.output_dir / "graph.log", echo=not (args.quiet or args.progress))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    code = 1
    display = ProgressDisplay(run.output_dir, f"{load_scenario(run.scenario_file).name} at {args.speed:g} x") \
        if args.progress else None

    def tick():
        if display is not None:
            display.update()
        if on_tick is not None:
            on_tick(graph)
    try:
        graph.start()
        if display is None:
            code = graph.wait_for_required(stop, on_tick=tick)
        else:
            with display:
                code = graph.wait_for_required(stop, on_tick=tick)
    except KeyboardInterrupt:
        print("[runner] interrupted: stopping the graph", flush=True)
        code = 130
    finally:
        graph.stop()
    for name in ("metrics.json", "report.md", "bag.mcap", "audit_log.sqlite", "recordings"):
        if (run.output_dir / name).exists():
            print(f"[runner] {name}: {run.output_dir / name}", flush=True)
    return code


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(parser, scenario="scenarios/foundation_single_call.yaml")
    parser.add_argument("--foxglove", action="store_true",
                        help="serve the live graph to the Foxglove app: connect it to ws://127.0.0.1:8765")
    args = parser.parse_args(argv)
    run, specs = prepare_run(args, foxglove=args.foxglove)
    return run_graph(run, specs, args)


if __name__ == "__main__":
    sys.exit(main())

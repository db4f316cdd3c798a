"""The graph of the embedded-simulator run: which nodes, with which parameter files.

The project's runner starts exactly this list; launch/sim.launch.py starts the same
nodes under `ros2 launch`, and a test reads that file to check the two agree.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dfr_common.fleet import load_fleet


@dataclass(frozen=True)
class NodeSpec:
    package: str
    executable: str
    name: str
    namespace: str = "/"
    param_files: tuple[str, ...] = ()          # relative to the config directory
    overrides: dict = field(default_factory=dict)
    required: bool = False                     # the run ends when this node exits

    @property
    def fully_qualified_name(self) -> str:
        return f"{self.namespace.rstrip('/')}/{self.name}"


@dataclass(frozen=True)
class SimRun:
    config_dir: Path
    fleet_file: Path
    scenario_file: Path
    output_dir: Path
    speed: float = 10.0
    world_file: Path | None = None             # street map of the ground actors; None: config/world/islington

    @property
    def world(self) -> Path:
        return self.world_file or self.config_dir / "world" / "islington.geojson"


def sim_graph(run: SimRun) -> list[NodeSpec]:
    """Simulator, intake, dispatch, one bridge per vehicle, the cameras, the scenario feed and the recorder."""
    sim_time = {"use_sim_time": True}
    fleet = load_fleet(run.fleet_file)
    on_sim_time = [
        NodeSpec("dfr_intake", "intake_node", "intake", "/dfr", ("intake.yaml",),
                 {**sim_time, "operating_area_file": str(run.config_dir / "airspace" / "operating_area.geojson")}),
        NodeSpec("dfr_dispatch", "dispatch_node", "dispatch", "/dfr", ("dispatch.yaml",),
                 {**sim_time, "fleet_file": str(run.fleet_file)}),
        *(NodeSpec("dfr_bridge", "bridge_node", "bridge", vehicle.namespace, ("bridge.yaml",),
                   {**sim_time, "vehicle_id": vehicle.vehicle_id, "base_id": vehicle.base_id})
          for vehicle in fleet.vehicles.values()),
        NodeSpec("dfr_sim", "camera_node", "camera", "/", ("camera.yaml",),
                 {**sim_time, "fleet_file": str(run.fleet_file), "world_file": str(run.world)}),
        NodeSpec("dfr_intake", "scenario_feed", "scenario_feed", "/dfr", (),
                 {**sim_time, "scenario_file": str(run.scenario_file)}),
        NodeSpec("dfr_bringup", "run_recorder", "run_recorder", "/dfr", ("run_recorder.yaml",),
                 {**sim_time, "fleet_file": str(run.fleet_file), "scenario_file": str(run.scenario_file),
                  "output_dir": str(run.output_dir)}, required=True),
    ]
    # Sim time starts once every other node is up and listening to /clock.
    simulator = NodeSpec("dfr_sim", "sim_node", "sim", "/", ("sim.yaml",),
                         {"fleet_file": str(run.fleet_file), "speed": float(run.speed),
                          "scenario_file": str(run.scenario_file), "world_file": str(run.world),
                          "geofence_file": str(run.config_dir / "airspace" / "operating_area.geojson"),
                          "wait_for_clock_subscribers": len(on_sim_time)})
    return [simulator, *on_sim_time]

"""The graphs the project starts: which nodes and processes, with which parameters.

Three graphs share one DFR part (intake, dispatch, one bridge per vehicle, the scenario
feed and the run recorder, from `dfr_nodes`):

- the embedded-simulator run (`sim_graph`): the project's runner starts exactly this
  list, launch/sim.launch.py starts the same nodes under `ros2 launch`, and a test
  reads that file to check the two agree;
- PX4 SITL with Gazebo (`px4_sitl_graph`, launch/px4_sitl.launch.py): one PX4 process,
  one MAVROS and one camera bridge per vehicle, and Gazebo's /clock;
- real airframes (`real_graph`, launch/real.launch.py): one MAVROS per airframe of
  config/airframes/real.yaml, on wall time.

Everything here is plain data; the launch files turn it into launch actions.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from dfr_bringup.airframes import Airframe, load_airframes
from dfr_common.config_file import ros_parameters
from dfr_common.fleet import Fleet, load_fleet


class LaunchArgumentError(ValueError):
    """A launch argument names something that does not exist or cannot work."""


@dataclass(frozen=True)
class NodeSpec:
    package: str
    executable: str
    name: str
    namespace: str = "/"
    param_files: tuple[str, ...] = ()          # relative to the config directory
    overrides: dict = field(default_factory=dict)
    required: bool = False                     # the run ends when this node exits
    respawn: bool = False                      # started again when it exits (launch's respawn): a live graph
    nodes: int = 1                             # ROS nodes in the process (bridge_fleet: one per vehicle)

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
    vehicles: int = 0                          # bridges for the fleet's first N vehicles; 0: all of them
    foxglove: bool = False                     # serve the live graph to the Foxglove app (ws://127.0.0.1:8765)
    bridges_in_one_process: bool = True        # dfr_bridge's bridge_fleet; False: a process per bridge

    @property
    def world(self) -> Path:
        return self.world_file or self.config_dir / "world" / "islington.geojson"


def select_vehicles(fleet: Fleet, vehicles: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """The vehicles a launch argument names ("uav1,uav3"), in fleet order; empty or None: all."""
    if vehicles is None:
        names: list[str] = []
    elif isinstance(vehicles, str):
        names = [v.strip() for v in vehicles.split(",") if v.strip()]
    else:
        names = list(vehicles)
    if not names:
        return tuple(fleet.vehicles)
    unknown = [v for v in names if v not in fleet.vehicles]
    if unknown:
        raise LaunchArgumentError(f"vehicles: {', '.join(repr(v) for v in unknown)} not in the fleet file "
                                  f"{fleet.source}; it has {', '.join(fleet.vehicles)}")
    repeated = sorted({v for v in names if names.count(v) > 1})
    if repeated:
        raise LaunchArgumentError(f"vehicles: {', '.join(repr(v) for v in repeated)} named more than once")
    return tuple(v for v in fleet.vehicles if v in names)


# A live graph's nodes are started again when they die, RESPAWN_DELAY_S later: each comes back whole from
# what it keeps on disk or hears again (intake's journal, dispatch's record, the audit log; latched
# incidents and status), as `make soak` shows under SIGKILL. Not the recorders: a new bag recorder would
# start a new bag over the old one, and the run recorder's exit is the end of a run.
RESPAWNED = ("intake", "dispatch", "bridge", "bridge_fleet", "perception", "follow", "audit")
RESPAWN_DELAY_S = 1.0


def dfr_nodes(run, use_sim_time: bool, vehicle_ids=None, recorder_ends_run: bool = True,
              respawn: bool = False) -> list[NodeSpec]:
    """Intake, dispatch, one bridge per vehicle, perception, follow, the audit log, the scenario feed and the
    run recorder.

    `run` gives config_dir, fleet_file, scenario_file and output_dir (SimRun, SitlRun,
    RealRun). Without a scenario file there is no scenario feed: calls come from intake's
    ReportIncident service, and the recorder keeps the record until it is stopped.
    `vehicle_ids` limits the bridges to those vehicles (default: the whole fleet); dispatch
    still reads the whole fleet file and counts only on vehicles whose bridge reports. Where
    `run` asks for `bridges_in_one_process` (SimRun does, by default), the bridges share one
    process (dfr_bridge's bridge_fleet), each still its own node /<vehicle>/bridge.
    """
    clock = {"use_sim_time": bool(use_sim_time)}
    fleet = load_fleet(run.fleet_file)
    vehicles = [fleet.vehicles[v] for v in (fleet.vehicles if vehicle_ids is None else vehicle_ids)]
    scenario = str(run.scenario_file) if run.scenario_file else ""
    nodes = [
        NodeSpec("dfr_intake", "intake_node", "intake", "/dfr", ("intake.yaml",),
                 {**clock, "operating_area_file": str(run.config_dir / "airspace" / "operating_area.geojson"),
                  "journal_file": str(run.output_dir / "intake_journal.sqlite")}),
        NodeSpec("dfr_dispatch", "dispatch_node", "dispatch", "/dfr", ("dispatch.yaml", "flight_rules.yaml"),
                 {**clock, "fleet_file": str(run.fleet_file),
                  "airspace_file": str(run.config_dir / "airspace" / "london_restrictions.geojson"),
                  "record_file": str(run.output_dir / "dispatch_record.sqlite")}),
        *bridge_specs(run, vehicles, clock),
        NodeSpec("dfr_perception", "perception_node", "perception", "/dfr", ("perception.yaml",),
                 {**clock, "fleet_file": str(run.fleet_file), "vehicles": [v.vehicle_id for v in vehicles]}),
        NodeSpec("dfr_follow", "follow_node", "follow", "/dfr", ("follow.yaml",),
                 {**clock, "fleet_file": str(run.fleet_file), "vehicles": [v.vehicle_id for v in vehicles],
                  "permitted_area_file": str(run.config_dir / "airspace" / "operating_area.geojson"),
                  "airspace_file": str(run.config_dir / "airspace" / "london_restrictions.geojson")}),
        NodeSpec("dfr_audit", "audit_node", "audit", "/dfr", ("audit.yaml",),
                 {**clock, "fleet_file": str(run.fleet_file), "vehicles": [v.vehicle_id for v in vehicles],
                  "log_file": str(run.output_dir / "audit_log.sqlite"),
                  "store_dir": str(run.output_dir / "recordings")}),
    ]
    if respawn:
        nodes = [dataclasses.replace(spec, respawn=True) if spec.name in RESPAWNED else spec for spec in nodes]
    if run.output_dir is not None:
        # The run's topics, for Foxglove, rosbags and `ros2 bag`; the run does not end with it.
        nodes.append(NodeSpec("dfr_bringup", "bag_recorder", "bag_recorder", "/dfr", ("bag_recorder.yaml",),
                              {**clock, "output_path": str(run.output_dir / "bag.mcap")}))
    if scenario:
        nodes.append(NodeSpec("dfr_intake", "scenario_feed", "scenario_feed", "/dfr", (),
                              {**clock, "scenario_file": scenario}))
    nodes.append(NodeSpec("dfr_bringup", "run_recorder", "run_recorder", "/dfr", ("run_recorder.yaml",),
                          {**clock, "fleet_file": str(run.fleet_file), "scenario_file": scenario,
                           "output_dir": str(run.output_dir), "config_dir": str(run.config_dir),
                           "dispatch_params_file": str(run.config_dir / "dispatch.yaml"),
                           "bridge_params_file": str(run.config_dir / "bridge.yaml")},
                          required=recorder_ends_run))
    return nodes


def bridge_specs(run, vehicles, clock: dict) -> list[NodeSpec]:
    """A bridge process per vehicle, or one process for them all where `run` asks for it."""
    params = ("bridge.yaml", "flight_rules.yaml")
    area = {"permitted_area_file": str(run.config_dir / "airspace" / "operating_area.geojson")}
    if getattr(run, "bridges_in_one_process", False) and vehicles:
        return [NodeSpec("dfr_bridge", "bridge_fleet", "bridge_fleet", "/dfr", params,
                         {**clock, "fleet_file": str(run.fleet_file),
                          "vehicles": [v.vehicle_id for v in vehicles], **area}, nodes=len(vehicles))]
    return [NodeSpec("dfr_bridge", "bridge_node", "bridge", vehicle.namespace, params,
                     {**clock, "vehicle_id": vehicle.vehicle_id, "base_id": vehicle.base_id, **area})
            for vehicle in vehicles]


def foxglove_node(use_sim_time: bool = True) -> NodeSpec:
    """The live view of the graph for the Foxglove app, for users without rviz2."""
    return NodeSpec("dfr_bringup", "foxglove_server", "foxglove_server", "/dfr", ("foxglove_server.yaml",),
                    {"use_sim_time": bool(use_sim_time)})


def node_parameters(config_dir: Path, file_name: str, node: str) -> dict:
    """A node's ros__parameters in one of config/'s parameter files ({} when it has none there)."""
    return ros_parameters(Path(config_dir) / file_name, node)


def lockstep_image_queue_depth(config_dir: Path) -> int:
    """Images of one camera that the simulator's lockstep (sim.yaml) lets wait for perception, plus the one
    being read; 0 when there is no lockstep."""
    sim, camera = node_parameters(config_dir, "sim.yaml", "/sim"), node_parameters(config_dir, "camera.yaml",
                                                                                       "/camera")
    if not sim.get("frame_sync_topic"):
        return 0
    return math.ceil(float(sim.get("frame_sync_s", 0.0)) * float(camera.get("rate_hz", 5.0)) - 1e-9) + 1


def sim_graph(run: SimRun) -> list[NodeSpec]:
    """Simulator, intake, dispatch, one bridge per vehicle, the cameras, the scenario feed and the recorder."""
    fleet_ids = list(load_fleet(run.fleet_file).vehicles)
    if run.vehicles < 0 or run.vehicles > len(fleet_ids):
        raise ValueError(f"vehicles must be 0 (all) to {len(fleet_ids)}, the fleet's size; got {run.vehicles}")
    dfr = dfr_nodes(run, use_sim_time=True, vehicle_ids=fleet_ids[:run.vehicles] if run.vehicles else None)
    camera = NodeSpec("dfr_sim", "camera_node", "camera", "/", ("camera.yaml",),
                      {"use_sim_time": True, "fleet_file": str(run.fleet_file), "world_file": str(run.world)})
    at = next(i for i, spec in enumerate(dfr) if spec.name in ("scenario_feed", "run_recorder"))
    on_sim_time = [*dfr[:at], camera, *dfr[at:]] + ([foxglove_node(use_sim_time=True)] if run.foxglove else [])
    # The recorder scores the chase against ground truth through the same camera the drones carry.
    lens = node_parameters(run.config_dir, "camera.yaml", "/camera")
    lens = {f"camera_{k}": lens[k] for k in ("width", "height", "horizontal_fov_deg") if k in lens}
    on_sim_time = [dataclasses.replace(spec, overrides={**spec.overrides, **lens}) if spec.name == "run_recorder"
                   else spec for spec in on_sim_time]
    # In lockstep the simulator lets perception fall behind a camera by up to frame_sync_s: perception's
    # image queue holds every image of that lag, so that none is dropped while it catches up.
    depth = lockstep_image_queue_depth(run.config_dir)
    if depth:
        on_sim_time = [dataclasses.replace(spec, overrides={"image_queue_depth": depth, **spec.overrides})
                       if spec.name == "perception" else spec for spec in on_sim_time]
    # Sim time starts once every other node is up and listening to /clock.
    simulator = NodeSpec("dfr_sim", "sim_node", "sim", "/", ("sim.yaml",),
                         {"fleet_file": str(run.fleet_file), "speed": float(run.speed),
                          "scenario_file": str(run.scenario_file), "world_file": str(run.world),
                          "geofence_file": str(run.config_dir / "airspace" / "operating_area.geojson"),
                          "wait_for_clock_subscribers": sum(spec.nodes for spec in on_sim_time)})
    return [simulator, *on_sim_time]


# ---------------------------------------------------------------------------- MAVROS
@dataclass(frozen=True)
class MavrosSpec:
    """One mavros_node in /<vehicle>/mavros. Started without a name override: renaming the
    node would rename every plugin node with it and break their private names."""
    vehicle_id: str
    fcu_url: str
    tgt_system: int
    tgt_component: int = 1
    gcs_url: str = ""
    use_sim_time: bool = False

    package = "mavros"
    executable = "mavros_node"
    # MAVROS's own PX4 plugin list and plugin settings, relative to its share directory.
    param_files = ("launch/px4_pluginlists.yaml", "launch/px4_config.yaml")

    @property
    def namespace(self) -> str:
        return f"/{self.vehicle_id}/mavros"

    @property
    def parameters(self) -> dict:
        return {"fcu_url": self.fcu_url, "gcs_url": self.gcs_url, "tgt_system": self.tgt_system,
                "tgt_component": self.tgt_component, "use_sim_time": self.use_sim_time}


def mavros_specs(airframes, use_sim_time: bool = False) -> list[MavrosSpec]:
    """One MAVROS per airframe (dfr_bringup.airframes.Airframe or anything with the same fields)."""
    return [MavrosSpec(a.vehicle_id, a.fcu_url, a.tgt_system, a.tgt_component, a.gcs_url, use_sim_time)
            for a in airframes]


# ------------------------------------------------------------------- PX4 SITL + Gazebo
PX4_AIRFRAME = 4001                  # PX4_SYS_AUTOSTART: the gz x500 quadrotor
PX4_SIM_MODEL = "gz_x500_mono_cam"   # x500 with a forward-looking camera; gz model x500_mono_cam_<instance>
PX4_SITL_MAX_INSTANCES = 10          # from instance 10 on, PX4 SITL sends every offboard link to port 14549
MAVROS_UDP_PORT = 14540              # + instance: where MAVROS listens (PX4's offboard link sends there)
PX4_UDP_PORT = 14580                 # + instance: where PX4's offboard link listens
GAZEBO_START_S = 5.0                 # later instances start this long after the first, which starts Gazebo


def sitl_instance(fleet: Fleet, vehicle_id: str) -> int:
    """A vehicle's PX4 SITL instance: its 0-based place in the fleet file, whatever subset runs."""
    return list(fleet.vehicles).index(vehicle_id)


def sitl_airframe(fleet: Fleet, vehicle_id: str) -> Airframe:
    """MAVROS's link to a PX4 SITL instance i: UDP, listening on 14540+i, sending to 14580+i;
    PX4 SITL sets MAV_SYS_ID to i+1."""
    i = sitl_instance(fleet, vehicle_id)
    return Airframe(vehicle_id, f"udp://:{MAVROS_UDP_PORT + i}@127.0.0.1:{PX4_UDP_PORT + i}", tgt_system=i + 1)


@dataclass(frozen=True)
class Px4Process:
    """One PX4 SITL process: `env` is added to the launch environment."""
    vehicle_id: str
    instance: int
    cmd: tuple[str, ...]
    env: dict
    pose_east_m: float
    pose_north_m: float
    delay_s: float = 0.0
    starts_gazebo: bool = False

    @property
    def name(self) -> str:
        return f"px4_{self.vehicle_id}"


def px4_binary(px4_dir: Path) -> Path:
    return Path(px4_dir) / "build" / "px4_sitl_default" / "bin" / "px4"


def px4_sitl_processes(fleet: Fleet, vehicle_ids, px4_dir: Path, world: str = "default",
                       headless: bool = False) -> list[Px4Process]:
    """One PX4 SITL process per vehicle, spawning its gz model on its dock.

    The first process starts Gazebo (PX4_GZ_WORLD); the others are standalone
    (PX4_GZ_STANDALONE=1) and start a little later. The Gazebo world's origin is the
    site's first base on the ground (PX4_HOME_LAT/LON/ALT, AMSL), and each model is
    spawned at its dock's east and north metres from there (PX4_GZ_MODEL_POSE, gz ENU),
    so PX4's GPS positions are the fleet file's.
    """
    vehicle_ids = list(vehicle_ids)
    if not vehicle_ids:
        raise LaunchArgumentError("no vehicles to start")
    frame = fleet.site_frame()
    origin = frame.origin
    home = {"PX4_HOME_LAT": f"{origin.latitude:.7f}", "PX4_HOME_LON": f"{origin.longitude:.7f}",
            "PX4_HOME_ALT": f"{fleet.site.ground_amsl_m:.2f}"}
    processes = []
    for order, vehicle_id in enumerate(vehicle_ids):
        i = sitl_instance(fleet, vehicle_id)
        if i >= PX4_SITL_MAX_INSTANCES:
            raise LaunchArgumentError(
                f"{vehicle_id} is vehicle {i + 1} of the fleet: PX4 SITL instance {i} would share MAVLink port "
                f"14549 with every instance from 10 on; run at most the first {PX4_SITL_MAX_INSTANCES} vehicles")
        east, north, _ = (round(float(v), 2) + 0.0 for v in frame.point_to_enu(fleet.vehicle_home(vehicle_id)))
        env = {"PX4_SYS_AUTOSTART": str(PX4_AIRFRAME), "PX4_SIM_MODEL": PX4_SIM_MODEL,
               "PX4_GZ_MODEL_POSE": f"{east:.2f},{north:.2f}", "PX4_GZ_WORLD": world, **home}
        first = order == 0
        if first:
            if headless:
                env["HEADLESS"] = "1"
        else:
            env["PX4_GZ_STANDALONE"] = "1"
        # -d: no interactive shell; under ros2 launch every instance would read the same terminal.
        processes.append(Px4Process(vehicle_id, i, (str(px4_binary(px4_dir)), "-i", str(i), "-d"), env,
                                    east, north, 0.0 if first else GAZEBO_START_S, first))
    return processes


@dataclass(frozen=True)
class GzBridgeSpec:
    """A ros_gz_bridge parameter_bridge node."""
    name: str
    namespace: str
    arguments: tuple[str, ...]
    remappings: tuple[tuple[str, str], ...] = ()
    parameters: dict = field(default_factory=dict)

    package = "ros_gz_bridge"
    executable = "parameter_bridge"


CLOCK_BRIDGE = "/clock@rosgraph_msgs/msg/Clock[gz.msgs.Clock"


def gz_camera_topic(world: str, instance: int) -> str:
    """The image topic of x500_mono_cam's camera (link mono_cam/base_link, sensor imager) in Gazebo."""
    return f"/world/{world}/model/x500_mono_cam_{instance}/link/mono_cam/base_link/sensor/imager/image"


def gz_bridge_specs(fleet: Fleet, vehicle_ids, world: str = "default") -> list[GzBridgeSpec]:
    """Gazebo's /clock, and each vehicle's camera on /<vehicle>/camera/image_raw and camera_info."""
    bridges = [GzBridgeSpec("clock_bridge", "/", (CLOCK_BRIDGE,))]
    for vehicle_id in vehicle_ids:
        image = gz_camera_topic(world, sitl_instance(fleet, vehicle_id))
        info = image.rsplit("/", 1)[0] + "/camera_info"
        bridges.append(GzBridgeSpec(
            "camera_bridge", f"/{vehicle_id}",
            (f"{image}@sensor_msgs/msg/Image[gz.msgs.Image", f"{info}@sensor_msgs/msg/CameraInfo[gz.msgs.CameraInfo"),
            ((image, f"/{vehicle_id}/camera/image_raw"), (info, f"/{vehicle_id}/camera/camera_info")),
            {"use_sim_time": True}))
    return bridges


@dataclass(frozen=True)
class SitlRun:
    config_dir: Path
    fleet_file: Path
    scenario_file: Path | None
    output_dir: Path
    px4_dir: Path
    world: str = "default"                     # Gazebo world name (PX4_GZ_WORLD)
    headless: bool = False
    vehicles: tuple[str, ...] = ()             # empty: the whole fleet


@dataclass(frozen=True)
class SitlGraph:
    px4: list[Px4Process]
    gz_bridges: list[GzBridgeSpec]
    mavros: list[MavrosSpec]
    nodes: list[NodeSpec]


def px4_sitl_graph(run: SitlRun) -> SitlGraph:
    """The DFR graph on sim time from Gazebo, against one PX4 SITL instance per vehicle."""
    fleet = load_fleet(run.fleet_file)
    vehicle_ids = select_vehicles(fleet, run.vehicles)
    return SitlGraph(px4=px4_sitl_processes(fleet, vehicle_ids, run.px4_dir, run.world, run.headless),
                     gz_bridges=gz_bridge_specs(fleet, vehicle_ids, run.world),
                     mavros=mavros_specs((sitl_airframe(fleet, v) for v in vehicle_ids), use_sim_time=True),
                     nodes=dfr_nodes(run, use_sim_time=True, vehicle_ids=vehicle_ids, respawn=True))


# -------------------------------------------------------------------- real airframes
@dataclass(frozen=True)
class RealRun:
    config_dir: Path
    fleet_file: Path
    airframes_file: Path
    output_dir: Path
    scenario_file: Path | None = None          # none: calls come from intake's ReportIncident service
    vehicles: tuple[str, ...] = ()             # empty: every vehicle with an airframe


@dataclass(frozen=True)
class RealGraph:
    mavros: list[MavrosSpec]
    nodes: list[NodeSpec]


def real_graph(run: RealRun) -> RealGraph:
    """The DFR graph on wall time against one MAVROS per real airframe.

    The run recorder keeps the record and writes it, but its exit never takes the graph
    down: MAVROS and the bridges stay up while anything may be flying.
    """
    fleet = load_fleet(run.fleet_file)
    airframes = load_airframes(run.airframes_file, fleet)
    vehicle_ids = select_vehicles(fleet, run.vehicles) if run.vehicles else tuple(airframes)
    missing = [v for v in vehicle_ids if v not in airframes]
    if missing:
        raise LaunchArgumentError(f"vehicles: {', '.join(missing)} have no airframe in {run.airframes_file}")
    # Calls come from the control room's CAD system through the gateway.
    gateway = NodeSpec("dfr_intake", "cad_gateway", "cad_gateway", "/dfr", ("cad_gateway.yaml",),
                       {"use_sim_time": False})
    return RealGraph(mavros=mavros_specs((airframes[v] for v in vehicle_ids), use_sim_time=False),
                     nodes=[*dfr_nodes(run, use_sim_time=False, vehicle_ids=vehicle_ids, recorder_ends_run=False,
                                       respawn=True),
                            gateway])

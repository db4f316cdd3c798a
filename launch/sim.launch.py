"""The whole graph on the embedded simulator, under `ros2 launch`.

    colcon build --symlink-install && source install/setup.bash
    ros2 launch launch/sim.launch.py
    ros2 launch launch/sim.launch.py speed:=20 vehicles:=3 \
        scenario:=scenarios/foundation_single_call.yaml

Starts the simulator, the cameras, intake, dispatch, one bridge per vehicle of the fleet
file (or of its first `vehicles`), perception, follow, the audit log, the bag recorder, the
scenario feed and the run recorder, with the parameter files in config/, and ends the run
when the recorder exits. The node list is dfr_bringup.graph.sim_graph(), the same list the
project's runner starts where `ros2 launch` is not installed (`make demo`);
tests/test_launch_graph.py checks that this file turns each of its entries into a
launch_ros Node as the runner does.
"""
from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from dfr_bringup.graph import SimRun, sim_graph
from dfr_bringup.launch_actions import config_path, dfr_node_actions, fleet_argument, output_dir_argument
from dfr_bringup.runner import make_run_dir

REPO = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO / "config"



def launch_setup(context):
    output_dir = LaunchConfiguration("output_dir").perform(context)
    run = SimRun(config_dir=CONFIG_DIR,
                 fleet_file=config_path(CONFIG_DIR, LaunchConfiguration("fleet").perform(context)),
                 scenario_file=config_path(CONFIG_DIR, LaunchConfiguration("scenario").perform(context)),
                 output_dir=Path(output_dir) if output_dir else make_run_dir(REPO / "runs"),
                 speed=float(LaunchConfiguration("speed").perform(context)),
                 world_file=config_path(CONFIG_DIR, LaunchConfiguration("world").perform(context)),
                 vehicles=int(LaunchConfiguration("vehicles").perform(context)),
                 foxglove=LaunchConfiguration("foxglove").perform(context).lower() in ("true", "1"),
                 bridges_in_one_process=LaunchConfiguration("bridge_processes").perform(context) == "one")
    actions = []
    for spec in sim_graph(run):
        actions += dfr_node_actions(spec, CONFIG_DIR)     # the run ends when the recorder says so
    return actions


def generate_launch_description():
    return LaunchDescription([
        fleet_argument(),
        DeclareLaunchArgument("scenario", default_value="scenarios/islington_evening_peak.yaml",
                              description="scenario file, relative to config/ or absolute"),
        DeclareLaunchArgument("world", default_value="world/islington.geojson",
                              description="street map of the ground actors, relative to config/ or absolute"),
        DeclareLaunchArgument("speed", default_value="20.0",
                              description="sim seconds per wall second the simulator aims at (it waits for "
                                          "perception while a camera is read: about 10 on two cores)"),
        DeclareLaunchArgument("vehicles", default_value="0",
                              description="fly the fleet's first N vehicles (the others stay docked); 0: all"),
        DeclareLaunchArgument("bridge_processes", default_value="one", choices=["one", "per-vehicle"],
                              description="every vehicle's bridge in one process (the least CPU), or a "
                                          "process each (as on real airframes)"),
        DeclareLaunchArgument("foxglove", default_value="false",
                              description="true: serve the live graph to the Foxglove app on ws://127.0.0.1:8765"),
        output_dir_argument(),
        OpaqueFunction(function=launch_setup),
    ])

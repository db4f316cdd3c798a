"""The DFR graph against real airframes, under `ros2 launch`.

    colcon build --symlink-install && source install/setup.bash
    ros2 launch launch/real.launch.py
    ros2 launch launch/real.launch.py airframes:=airframes/real.yaml vehicles:=uav1

One MAVROS per airframe of config/airframes/real.yaml (its fcu_url, tgt_system and
gcs_url), in /<vehicle>/mavros; intake, dispatch and one bridge per airframe; the run
recorder. No simulator and no /clock: every node runs on wall time. Calls come from
intake's ReportIncident service; a scenario feed runs only when a scenario
is given (a drill). The recorder writes runs/<timestamp>/metrics.json during the shift
and when the launch is stopped; its exit does not take MAVROS or the bridges down.
The list is dfr_bringup.graph.real_graph(); tests/test_launch_px4_and_real.py runs this
file against stand-ins for the launch API.
"""
from pathlib import Path

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from dfr_bringup.graph import RealRun, real_graph
from dfr_bringup.launch_actions import config_path, dfr_node_actions, fleet_argument, mavros_node, output_dir_argument
from dfr_bringup.runner import make_run_dir

REPO = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO / "config"




def launch_setup(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    scenario = arg("scenario")
    output_dir = arg("output_dir")
    run = RealRun(config_dir=CONFIG_DIR,
                  fleet_file=config_path(CONFIG_DIR, arg("fleet")),
                  airframes_file=config_path(CONFIG_DIR, arg("airframes")),
                  output_dir=Path(output_dir) if output_dir else make_run_dir(REPO / "runs"),
                  scenario_file=config_path(CONFIG_DIR, scenario) if scenario else None,
                  vehicles=tuple(v.strip() for v in arg("vehicles").split(",") if v.strip()))
    graph = real_graph(run)
    try:
        mavros_share = Path(get_package_share_directory("mavros"))
    except PackageNotFoundError as err:
        raise RuntimeError("package 'mavros' is not installed: "
                           "sudo apt install ros-jazzy-mavros ros-jazzy-mavros-extras") from err

    actions = []
    for mavros in graph.mavros:
        actions.append(mavros_node(mavros, mavros_share))
    for spec in graph.nodes:
        actions += dfr_node_actions(spec, CONFIG_DIR)
    return actions


def generate_launch_description():
    return LaunchDescription([
        fleet_argument(),
        DeclareLaunchArgument("airframes", default_value="airframes/real.yaml",
                              description="each vehicle's MAVROS link (fcu_url, tgt_system), relative to config/ "
                                          "or absolute"),
        DeclareLaunchArgument("scenario", default_value="",
                              description="a drill: scenario whose calls are replayed; empty (default): calls come "
                                          "from intake's ReportIncident service"),
        DeclareLaunchArgument("vehicles", default_value="",
                              description="comma-separated vehicle ids; empty: every vehicle with an airframe"),
        output_dir_argument(),
        OpaqueFunction(function=launch_setup),
    ])

"""The DFR graph against PX4 SITL and Gazebo, several vehicles, under `ros2 launch`.

    colcon build --symlink-install && source install/setup.bash
    ros2 launch launch/px4_sitl.launch.py px4_dir:=$HOME/PX4-Autopilot
    ros2 launch launch/px4_sitl.launch.py px4_dir:=$HOME/PX4-Autopilot vehicles:=uav1,uav2 headless:=true

Per vehicle i of the fleet file (0-based, in fleet order): one PX4 SITL process
(`px4 -i i`, the gz x500 with a camera spawned on the vehicle's dock; the first process
starts Gazebo), one MAVROS in /<vehicle>/mavros linked to it over UDP
(14540+i / 14580+i, tgt_system i+1), and a ros_gz bridge of its camera to
/<vehicle>/camera/image_raw and camera_info. Gazebo's /clock is bridged, and every
node runs on it. Then intake, dispatch, one bridge per vehicle, the scenario feed and
the run recorder, as in launch/sim.launch.py; the run ends when the recorder exits.
The list is dfr_bringup.graph.px4_sitl_graph(); tests/test_launch_px4_and_real.py runs
this file against stand-ins for the launch API.
"""
import os
from pathlib import Path

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    ExecuteProcess,
    OpaqueFunction,
    TimerAction,
)
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from dfr_bringup.graph import SitlRun, px4_binary, px4_sitl_graph
from dfr_bringup.launch_actions import config_path, dfr_node_actions, fleet_argument, mavros_node, output_dir_argument
from dfr_bringup.runner import make_run_dir

REPO = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO / "config"



def flag(name: str, value: str) -> bool:
    if value.strip().lower() in ("true", "1", "yes"):
        return True
    if value.strip().lower() in ("false", "0", "no"):
        return False
    raise ValueError(f"launch argument {name}:={value!r}: expected true or false")


def package_share(package: str, apt: str) -> Path:
    try:
        return Path(get_package_share_directory(package))
    except PackageNotFoundError as err:
        raise RuntimeError(f"package '{package}' is not installed: sudo apt install {apt}") from err



def launch_setup(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    px4_dir = Path(os.path.expanduser(arg("px4_dir")))
    if not px4_binary(px4_dir).is_file():
        raise RuntimeError(f"{px4_binary(px4_dir)} does not exist: give px4_dir:=<your PX4-Autopilot checkout> "
                           "and build it there with 'make px4_sitl'")
    scenario = arg("scenario")
    output_dir = arg("output_dir")
    run = SitlRun(config_dir=CONFIG_DIR,
                  fleet_file=config_path(CONFIG_DIR, arg("fleet")),
                  scenario_file=config_path(CONFIG_DIR, scenario) if scenario else None,
                  output_dir=Path(output_dir) if output_dir else make_run_dir(REPO / "runs"),
                  px4_dir=px4_dir,
                  world=arg("world"),
                  headless=flag("headless", arg("headless")),
                  vehicles=tuple(v.strip() for v in arg("vehicles").split(",") if v.strip()))
    graph = px4_sitl_graph(run)
    mavros_share = package_share("mavros", "ros-jazzy-mavros ros-jazzy-mavros-extras")
    package_share("ros_gz_bridge", "ros-jazzy-ros-gz")

    actions = []
    for px4 in graph.px4:
        process = ExecuteProcess(cmd=list(px4.cmd), additional_env=dict(px4.env), name=px4.name, output="screen")
        # The first instance starts Gazebo; the others wait for it a little before spawning.
        actions.append(TimerAction(period=px4.delay_s, actions=[process]) if px4.delay_s > 0 else process)
    for bridge in graph.gz_bridges:
        actions.append(Node(package=bridge.package, executable=bridge.executable, name=bridge.name,
                            namespace=bridge.namespace, output="screen", arguments=list(bridge.arguments),
                            remappings=list(bridge.remappings), parameters=[dict(bridge.parameters)]))
    for mavros in graph.mavros:
        actions.append(mavros_node(mavros, mavros_share))
    for spec in graph.nodes:
        actions += dfr_node_actions(spec, CONFIG_DIR)
    return actions


def generate_launch_description():
    return LaunchDescription([
        fleet_argument(),
        DeclareLaunchArgument("scenario", default_value="scenarios/foundation_single_call.yaml",
                              description="scenario whose calls are replayed, relative to config/ or absolute; "
                                          "empty: no scenario feed"),
        DeclareLaunchArgument("px4_dir", default_value="~/PX4-Autopilot",
                              description="PX4-Autopilot checkout built with 'make px4_sitl'"),
        DeclareLaunchArgument("world", default_value="default",
                              description="Gazebo world name (PX4_GZ_WORLD), one of PX4's gz worlds"),
        DeclareLaunchArgument("headless", default_value="false", description="true: no Gazebo GUI"),
        DeclareLaunchArgument("vehicles", default_value="",
                              description="comma-separated vehicle ids to fly, e.g. uav1,uav2; empty: the whole "
                                          "fleet (PX4 SITL takes at most the first 10)"),
        output_dir_argument(),
        OpaqueFunction(function=launch_setup),
    ])

"""The whole graph on the embedded simulator, under `ros2 launch`.

    colcon build --symlink-install && source install/setup.bash
    ros2 launch launch/sim.launch.py scenario:=scenarios/foundation_single_call.yaml speed:=10

Starts the simulator, intake, dispatch, one bridge per vehicle of the fleet file, the
scenario feed and the run recorder, with the parameter files in config/. The run ends
when the recorder exits. This is the node set the project's runner (`make demo`)
starts where `ros2 launch` is not installed; tests/test_launch_graph.py keeps the two
in step.
"""
import datetime
import os

from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from dfr_common.fleet import load_fleet
from launch import LaunchDescription

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "config")


def param_file(name: str) -> str:
    return os.path.join(CONFIG_DIR, name)


def config_path(value: str) -> str:
    """Launch arguments name files relative to config/ unless they are absolute."""
    return value if os.path.isabs(value) else os.path.join(CONFIG_DIR, value)


def launch_setup(context):
    fleet_file = config_path(LaunchConfiguration("fleet").perform(context))
    scenario_file = config_path(LaunchConfiguration("scenario").perform(context))
    speed = float(LaunchConfiguration("speed").perform(context))
    output_dir = LaunchConfiguration("output_dir").perform(context) or os.path.join(
        "runs", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    sim_time = {"use_sim_time": True}

    fleet = load_fleet(fleet_file)
    # Sim time starts once every other node is up and listening to /clock.
    clock_subscribers = 4 + len(fleet.vehicles)
    nodes = [
        Node(package="dfr_sim", executable="sim_node", name="sim", namespace="/", output="screen",
             parameters=[param_file("sim.yaml"), {"fleet_file": fleet_file, "speed": speed,
                                                  "wait_for_clock_subscribers": clock_subscribers}]),
        Node(package="dfr_intake", executable="intake_node", name="intake", namespace="/dfr", output="screen",
             parameters=[param_file("intake.yaml"),
                         {**sim_time, "operating_area_file": param_file("airspace/operating_area.geojson")}]),
        Node(package="dfr_dispatch", executable="dispatch_node", name="dispatch", namespace="/dfr",
             output="screen", parameters=[param_file("dispatch.yaml"), {**sim_time, "fleet_file": fleet_file}]),
    ]
    for vehicle in fleet.vehicles.values():
        nodes.append(Node(package="dfr_bridge", executable="bridge_node", name="bridge",
                          namespace=vehicle.namespace, output="screen",
                          parameters=[param_file("bridge.yaml"),
                                      {**sim_time, "vehicle_id": vehicle.vehicle_id, "base_id": vehicle.base_id}]))
    nodes.append(Node(package="dfr_intake", executable="scenario_feed", name="scenario_feed", namespace="/dfr",
                      output="screen", parameters=[{**sim_time, "scenario_file": scenario_file}]))
    recorder = Node(package="dfr_bringup", executable="run_recorder", name="run_recorder", namespace="/dfr",
                    output="screen",
                    parameters=[param_file("run_recorder.yaml"),
                                {**sim_time, "fleet_file": fleet_file, "scenario_file": scenario_file,
                                 "output_dir": output_dir}])
    nodes.append(recorder)
    # The run is over when the recorder says so, as the runner does.
    nodes.append(RegisterEventHandler(OnProcessExit(target_action=recorder, on_exit=[EmitEvent(event=Shutdown(
        reason="the run recorder finished"))])))
    return nodes


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("fleet", default_value="fleet/islington.yaml",
                              description="fleet file, relative to config/ or absolute"),
        DeclareLaunchArgument("scenario", default_value="scenarios/foundation_single_call.yaml",
                              description="scenario file, relative to config/ or absolute"),
        DeclareLaunchArgument("speed", default_value="10.0", description="sim seconds per wall second"),
        DeclareLaunchArgument("output_dir", default_value="",
                              description="where metrics.json goes; default runs/<timestamp>"),
        OpaqueFunction(function=launch_setup),
    ])

"""Every bridge in one process (dfr_bridge's bridge_fleet), as the runner and sim.launch.py start it:
each bridge is its own node with its own vehicle, and the process's parameter files and overrides
reach every one of them."""
import dataclasses
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from dfr_bringup.graph import SimRun, sim_graph
from dfr_bringup.runner import node_command

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config"
FLEET = Path(__file__).resolve().parent / "fixtures" / "fleet_two_bases.yaml"


def fleet_spec(**overrides):
    specs = sim_graph(SimRun(CONFIG, FLEET, CONFIG / "scenarios" / "foundation_single_call.yaml", Path("/tmp/x")))
    spec = next(s for s in specs if s.executable == "bridge_fleet")
    # Wall time: no simulator here.
    return dataclasses.replace(spec, overrides={**spec.overrides, "use_sim_time": False, **overrides})


@pytest.fixture
def subprocess_domain():
    # A domain of its own, in the subprocess tests' range (conftest.fresh_domain_id).
    return 1 + (int(os.environ.get("ROS_DOMAIN_ID", "0")) + 53) % 100


def get_parameters(context, node, service, names, timeout_s=20.0):
    import rclpy
    from rcl_interfaces.srv import GetParameters
    from rclpy.executors import SingleThreadedExecutor

    client = node.create_client(GetParameters, service)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + timeout_s
        while not client.service_is_ready() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert client.service_is_ready(), f"{service} never came"
        future = client.call_async(GetParameters.Request(names=names))
        executor.spin_until_future_complete(future, timeout_sec=timeout_s)
        assert future.done(), f"{service} did not answer"
        return [rclpy.parameter.parameter_value_to_python(v) for v in future.result().values]
    finally:
        executor.remove_node(node)
        node.destroy_client(client)


def test_each_bridge_of_the_process_is_its_own_node_with_its_vehicle_and_the_shared_parameters(subprocess_domain):
    import rclpy
    from rclpy.context import Context

    spec = fleet_spec(min_launch_battery=0.8)
    env = {**os.environ, "ROS_DOMAIN_ID": str(subprocess_domain)}
    process = subprocess.Popen(node_command(spec, CONFIG), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    context = Context()
    rclpy.init(context=context, domain_id=subprocess_domain)
    try:
        node = rclpy.create_node("bridge_fleet_probe", context=context)
        wanted = {("bridge", "/uav1"), ("bridge", "/uav2"), ("bridge", "/uav3"), ("bridge_fleet", "/dfr")}
        deadline = time.monotonic() + 30.0
        while not wanted <= set(node.get_node_names_and_namespaces()) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[0]
            time.sleep(0.2)
        assert wanted <= set(node.get_node_names_and_namespaces())
        names = ["vehicle_id", "base_id", "control_rate_hz", "min_launch_battery", "permitted_area_file"]
        for vehicle_id, base_id in (("uav1", "islington"), ("uav3", "stoke_newington")):
            values = get_parameters(context, node, f"/{vehicle_id}/bridge/get_parameters", names)
            assert values[:2] == [vehicle_id, base_id]
            assert values[2] == 10.0                                    # from config/bridge.yaml's /**/bridge
            assert values[3] == 0.8                                     # the process's override
            assert values[4].endswith("operating_area.geojson")
        node.destroy_node()
    finally:
        context.try_shutdown()
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert "3 bridges in this process: /uav1/bridge, /uav2/bridge, /uav3/bridge" in output
    assert "Traceback" not in output


def test_a_vehicle_not_in_the_fleet_is_refused_in_one_line(subprocess_domain):
    env = {**os.environ, "ROS_DOMAIN_ID": str(subprocess_domain)}
    result = subprocess.run(node_command(fleet_spec(vehicles=["uav1", "uav9"]), CONFIG), env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "cannot start: parameter 'vehicles' names ['uav9'], not in" in result.stderr
    assert "Traceback" not in result.stderr

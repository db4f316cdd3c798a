"""The simulator behind MAVROS's own names, types and QoS, driven as a MAVROS client would."""
from pathlib import Path

import pytest
from mavros_msgs.msg import State
from mavros_msgs.srv import CommandBool, CommandTOL, SetMode
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import NavSatFix

from dfr_common.ros import qos

FIXTURES = Path(__file__).resolve().parent / "fixtures"
NS = "/uav1/mavros"

PUBLISHED = {
    "state": ("mavros_msgs/msg/State", ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL),
    "extended_state": ("mavros_msgs/msg/ExtendedState", ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL),
    "home_position/home": ("mavros_msgs/msg/HomePosition", ReliabilityPolicy.RELIABLE,
                           DurabilityPolicy.TRANSIENT_LOCAL),
    "battery": ("sensor_msgs/msg/BatteryState", ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE),
    "global_position/global": ("sensor_msgs/msg/NavSatFix", ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE),
    "global_position/rel_alt": ("std_msgs/msg/Float64", ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE),
    "local_position/pose": ("geometry_msgs/msg/PoseStamped", ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE),
    "local_position/velocity_local": ("geometry_msgs/msg/TwistStamped", ReliabilityPolicy.BEST_EFFORT,
                                      DurabilityPolicy.VOLATILE),
    "statustext/recv": ("mavros_msgs/msg/StatusText", ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE),
}
SUBSCRIBED = {"setpoint_raw/global": "mavros_msgs/msg/GlobalPositionTarget"}
SERVICES = {"cmd/arming": "mavros_msgs/srv/CommandBool", "set_mode": "mavros_msgs/srv/SetMode",
            "cmd/takeoff": "mavros_msgs/srv/CommandTOL", "cmd/land": "mavros_msgs/srv/CommandTOL"}


@pytest.fixture
def graph(graph_factory):
    return graph_factory(fleet_file=FIXTURES / "fleet_two_bases.yaml", with_dispatch=False)


def test_topics_and_services_have_mavros_names_types_and_qos(graph):
    node = graph.client_node
    graph.spin_until(lambda: node.get_clock().now().nanoseconds > 0, 10, "/clock")
    for name, (type_name, reliability, durability) in PUBLISHED.items():
        info = graph.spin_until(lambda n=name: node.get_publishers_info_by_topic(f"{NS}/{n}"), 5, name)
        assert info[0].topic_type == type_name, name
        assert info[0].qos_profile.reliability == reliability, name
        assert info[0].qos_profile.durability == durability, name
    for name, type_name in SUBSCRIBED.items():
        info = graph.spin_until(lambda n=name: node.get_subscriptions_info_by_topic(f"{NS}/{n}"), 5, name)
        assert info[0].topic_type == type_name
        assert info[0].qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
    services = dict(node.get_service_names_and_types())
    for name, type_name in SERVICES.items():
        assert services.get(f"{NS}/{name}") == [type_name], name


def test_sim_time_runs_from_the_simulator(graph):
    node = graph.client_node
    graph.spin_until(lambda: node.get_clock().now().nanoseconds > 2e9, 10, "two sim seconds")
    assert node.get_clock().now().nanoseconds * 1e-9 == pytest.approx(graph.sim.sim_now, abs=0.5)


def test_a_reliable_subscriber_on_a_sensor_topic_gets_nothing_as_with_mavros(graph):
    node = graph.client_node
    reliable, best_effort = [], []
    node.create_subscription(NavSatFix, f"{NS}/global_position/global", reliable.append,
                             QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    node.create_subscription(NavSatFix, f"{NS}/global_position/global", best_effort.append, qos.SENSOR_DATA)
    graph.spin_until(lambda: len(best_effort) >= 5, 10, "fixes")
    assert reliable == []


def test_refusals_answer_as_mavros_does(graph):
    node = graph.client_node
    arming = node.create_client(CommandBool, f"{NS}/cmd/arming")
    set_mode = node.create_client(SetMode, f"{NS}/set_mode")
    takeoff = node.create_client(CommandTOL, f"{NS}/cmd/takeoff")
    states = []
    node.create_subscription(State, f"{NS}/state", states.append, qos.LATCHED_STATE)

    assert graph.call(arming, CommandBool.Request(value=True)).success is False   # estimator still settling
    graph.spin_until(lambda: graph.sim.sim_now > 3.5, 10, "the estimator to settle (estimator_ready_s)")
    assert graph.call(set_mode, SetMode.Request(custom_mode="NOT_A_MODE")).mode_sent is False
    assert graph.call(set_mode, SetMode.Request(custom_mode="AUTO.LAND")).mode_sent is True
    answer = graph.call(arming, CommandBool.Request(value=True))
    assert (answer.success, answer.result) == (False, 1)          # TEMPORARILY_REJECTED: cannot arm in LAND

    assert graph.call(set_mode, SetMode.Request(custom_mode="AUTO.LOITER")).mode_sent is True
    assert graph.call(arming, CommandBool.Request(value=True)).success
    nan = float("nan")
    assert graph.call(takeoff, CommandTOL.Request(latitude=nan, longitude=nan, altitude=nan)).success
    graph.spin_until(lambda: graph.vehicle("uav1").model.mode == "AUTO.LOITER"
                     and graph.vehicle("uav1").model.position[2] > 2.0, 30, "take-off to finish")
    # OFFBOARD without a setpoint stream: MAVROS says the mode was sent; PX4 does not switch.
    assert graph.call(set_mode, SetMode.Request(custom_mode="OFFBOARD")).mode_sent is True
    count = len(states)
    graph.spin_until(lambda: len(states) >= count + 2, 10, "two more heartbeats")
    assert states[-1].mode == "AUTO.LOITER" and states[-1].armed and states[-1].connected


def test_a_stalled_client_keeps_offboard_but_a_silent_one_loses_it(ros_context):
    """Faster than real time, a client's pause is long in sim time: the simulator waits for a late
    offboard stream, up to stream_sync_max_wall_s, and then lets PX4's failsafe happen."""
    import threading
    import time

    import rclpy
    from mavros_msgs.msg import GlobalPositionTarget
    from rclpy.parameter import Parameter

    from dfr_common.ros.node_main import make_executor
    from dfr_sim.sim_node import SimulatorNode

    sim = SimulatorNode(context=ros_context, parameter_overrides=[
        Parameter("fleet_file", value=str(FIXTURES / "fleet_two_bases.yaml")), Parameter("speed", value=50.0),
        Parameter("stream_sync_max_wall_s", value=1.0)])
    sim_executor = make_executor(ros_context)
    sim_executor.add_node(sim)
    spinning = threading.Event()
    spinning.set()
    thread = threading.Thread(target=lambda: [sim_executor.spin_once(timeout_sec=0.01) for _ in iter(
        spinning.is_set, False)], daemon=True)
    thread.start()
    client = rclpy.create_node("pilot_client", context=ros_context,
                               parameter_overrides=[Parameter("use_sim_time", value=True)])
    executor = make_executor(ros_context)
    executor.add_node(client)
    model = next(v for v in sim.vehicles if v.vehicle_id == "uav1").model
    publisher = client.create_publisher(GlobalPositionTarget, f"{NS}/setpoint_raw/global", qos.SENSOR_DATA)
    home = sim.vehicles[0].frame.origin

    def stream():
        publisher.publish(GlobalPositionTarget(
            coordinate_frame=GlobalPositionTarget.FRAME_GLOBAL_REL_ALT, type_mask=0b111111111000,
            latitude=home.latitude, longitude=home.longitude, altitude=10.0))
    timer = client.create_timer(0.1, stream)

    def spin_until(predicate, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not predicate():
            executor.spin_once(timeout_sec=0.01)
        return predicate()

    try:
        assert spin_until(lambda: sim.sim_now > model.config.estimator_ready_s
                          and model.offboard_stream_ready(sim.sim_now), 10)
        model.arm(True, sim.sim_now)
        model.set_mode("OFFBOARD", sim.sim_now)
        assert spin_until(lambda: model.mode == "OFFBOARD" and model.position[2] > 9.0, 20)
        time.sleep(0.5)          # the client stalls: 25 s of sim time at 50x, but the sim waits
        assert spin_until(lambda: sim.sim_now - model.last_setpoint_s < 0.2, 5)
        assert model.mode == "OFFBOARD"
        timer.cancel()           # the client goes silent for good
        assert spin_until(lambda: model.mode != "OFFBOARD", 5)
        assert model.mode == "POSCTL"
    finally:
        spinning.clear()
        thread.join(timeout=5)
        executor.shutdown()
        sim_executor.shutdown()
        client.destroy_node()
        sim.destroy_node()


def test_a_docked_drone_reports_its_position_once_a_second_and_five_times_once_armed(graph):
    """config/sim.yaml: docked_position_rate_hz 1 while disarmed on the ground, position_rate_hz 5 armed."""
    node = graph.client_node
    stamps = []
    node.create_subscription(NavSatFix, f"{NS}/global_position/global",
                             lambda m: stamps.append(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9),
                             qos.SENSOR_DATA)
    arming = node.create_client(CommandBool, f"{NS}/cmd/arming")
    set_mode = node.create_client(SetMode, f"{NS}/set_mode")
    graph.spin_until(lambda: graph.sim.sim_now > 3.5 and len(stamps) >= 4, 15, "fixes of a docked drone")
    docked = len(stamps)
    assert sorted(b - a for a, b in zip(stamps, stamps[1:]))[(docked - 1) // 2] == pytest.approx(1.0, abs=0.05)
    assert graph.call(set_mode, SetMode.Request(custom_mode="AUTO.LOITER")).mode_sent is True
    assert graph.call(arming, CommandBool.Request(value=True)).success
    graph.spin_until(lambda: len(stamps) >= docked + 8, 10, "fixes of an armed drone")
    armed = stamps[docked + 1:]
    assert sorted(b - a for a, b in zip(armed, armed[1:]))[(len(armed) - 1) // 2] == pytest.approx(0.2, abs=0.02)

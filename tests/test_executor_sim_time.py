"""The executor every node spins on runs a sim-time timer once per period, as /clock steps.

A 10 Hz setpoint stream that arrives in bursts with gaps between them trips PX4's
offboard-loss rule in the simulator; rclpy's EventsExecutor did exactly that.
"""
from __future__ import annotations

from collections import Counter


def test_a_sim_time_timer_fires_once_per_period_as_the_clock_steps(bare_ros_context):
    context = bare_ros_context
    import rclpy
    from builtin_interfaces.msg import Time
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock

    from dfr_common.ros.node_main import make_executor

    clock_node = rclpy.create_node("clock_source", context=context)
    clock_pub = clock_node.create_publisher(Clock, "/clock", QoSProfile(depth=10,
                                                                         reliability=ReliabilityPolicy.RELIABLE))
    ticking = rclpy.create_node("ticking", context=context,
                                parameter_overrides=[Parameter("use_sim_time", value=True)])
    fired: list[int] = []
    ticking.create_timer(0.1, lambda: fired.append(ticking.get_clock().now().nanoseconds))
    for _ in range(3):                                  # the bridge's slower timers on the same clock
        ticking.create_timer(0.5, lambda: None)
    executor = make_executor(context)
    for node in (clock_node, ticking):
        executor.add_node(node)
    try:
        def spin_until(predicate, limit=400):
            for _ in range(limit):
                executor.spin_once(timeout_sec=0.005)
                if predicate():
                    return True
            return False

        def publish(ns: int):
            clock_pub.publish(Clock(clock=Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)))

        assert spin_until(lambda: clock_pub.get_subscription_count() > 0, 2000)
        start_ns = 1_000_000_000
        publish(start_ns)
        assert spin_until(lambda: ticking.get_clock().now().nanoseconds == start_ns)
        # As a fast simulator does: /clock every quarter of the timer's period, one spin for each.
        now_ns = start_ns
        for _ in range(2000):
            now_ns += 25_000_000
            publish(now_ns)
            executor.spin_once(timeout_sec=0.0005)
        assert spin_until(lambda: ticking.get_clock().now().nanoseconds == now_ns)
        bursts = [t for t, n in Counter(fired).items() if n > 1]
        assert not bursts, f"the timer ran more than once at one clock value: {bursts[:5]}"
        calls = sum(1 for t in fired if t > start_ns)
        assert calls >= 0.9 * 500, f"the timer ran only {calls} times in 500 periods"
    finally:
        executor.shutdown()
        for node in (clock_node, ticking):
            node.destroy_node()

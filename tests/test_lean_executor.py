"""The executor every node spins on (dfr_common.ros.lean_executor): rclpy's behaviour, fewer wakes.

Sim-time timers are covered by tests/test_executor_sim_time.py; the whole graph's tests run on it.
"""
from __future__ import annotations

import gc
import time
import warnings

import pytest

from dfr_common.ros.spin import spin_until as shared_spin_until


@pytest.fixture
def graph(bare_ros_context):
    """An executor and a helper that makes nodes on it, all destroyed afterwards."""
    import rclpy

    from dfr_common.ros.node_main import make_executor
    context = bare_ros_context
    executor = make_executor(context)
    nodes = []

    def node(name):
        made = rclpy.create_node(name, context=context)
        executor.add_node(made)
        nodes.append(made)
        return made

    yield executor, node
    executor.shutdown()
    for made in nodes:
        made.destroy_node()


def spin_until(executor, predicate, what: str = "the condition"):
    return shared_spin_until(executor, predicate, 10.0, what)


def spin_for(executor, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.01)


def strings(node, topic, received, **kwargs):
    from std_msgs.msg import String
    return node.create_subscription(String, topic, lambda m: received.append(m.data), 10, **kwargs)


def connected(executor, pub):
    spin_until(executor, lambda: pub.get_subscription_count() > 0)


def test_a_message_costs_one_wait_not_a_second_empty_one(graph):
    """rclpy's handler triggers the executor's guard twice per callback: a second wake for nothing."""
    from std_msgs.msg import String
    executor, node = graph
    talker, listener = node("talker"), node("listener")
    pub = talker.create_publisher(String, "chatter", 10)
    received: list[str] = []
    strings(listener, "chatter", received)
    connected(executor, pub)
    spin_for(executor, 0.2)          # discovery's own traffic settles
    waits = executor.waits
    for i in range(50):
        pub.publish(String(data=str(i)))
        deadline = time.monotonic() + 10.0
        while len(received) < i + 1 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=2.0)         # returns as soon as the message is called
    assert received == [str(i) for i in range(50)]
    assert executor.waits - waits <= 55, f"{executor.waits - waits} waits for 50 messages"


def test_a_service_answers_and_a_client_future_completes(graph):
    from rcl_interfaces.srv import GetParameters
    executor, node = graph
    server, caller = node("server"), node("caller")
    asked: list[list[str]] = []
    server.create_service(GetParameters, "names", lambda req, resp: (asked.append(list(req.names)), resp)[1])
    client = caller.create_client(GetParameters, "names")
    spin_until(executor, client.service_is_ready)
    future = client.call_async(GetParameters.Request(names=["speed"]))
    executor.spin_until_future_complete(future, timeout_sec=5.0)
    assert future.done() and future.result() is not None
    assert asked == [["speed"]]


def test_an_async_action_goal_awaiting_a_future_lets_the_node_s_other_callbacks_run(graph):
    """The bridge's mission: an action execute coroutine that waits on a future for the whole flight."""
    from rclpy.action import ActionClient, ActionServer
    from rclpy.task import Future
    from std_msgs.msg import String

    from dfr_interfaces.action import ExecuteMission
    executor, node = graph
    bridge, dispatcher = node("bridge"), node("dispatcher")
    done = Future()
    heard: list[str] = []

    def on_message(msg):
        heard.append(msg.data)
        if msg.data == "landed":
            done.set_result(True)

    async def execute(goal_handle):
        await done
        goal_handle.succeed()
        return ExecuteMission.Result(reason="flown")

    ActionServer(bridge, ExecuteMission, "execute_mission", execute)
    bridge.create_subscription(String, "telemetry", on_message, 10)
    pub = dispatcher.create_publisher(String, "telemetry", 10)
    client = ActionClient(dispatcher, ExecuteMission, "execute_mission")
    spin_until(executor, client.server_is_ready)
    connected(executor, pub)
    goal = client.send_goal_async(ExecuteMission.Goal())
    executor.spin_until_future_complete(goal, timeout_sec=5.0)
    assert goal.result().accepted
    result = goal.result().get_result_async()
    for word in ("climbing", "on scene"):
        pub.publish(String(data=word))
        spin_until(executor, lambda word=word: heard and heard[-1] == word)
    assert not result.done()
    pub.publish(String(data="landed"))
    executor.spin_until_future_complete(result, timeout_sec=5.0)
    assert result.done() and result.result().result.reason == "flown"


def test_an_exception_in_a_callback_comes_out_of_spin_once_and_the_next_message_still_arrives(graph):
    from std_msgs.msg import String
    executor, node = graph
    talker, listener = node("talker"), node("listener")
    pub = talker.create_publisher(String, "chatter", 10)
    received: list[str] = []

    def on_message(msg):
        if msg.data == "bad":
            raise ValueError("a malformed message")
        received.append(msg.data)

    listener.create_subscription(String, "chatter", on_message, 10)
    connected(executor, pub)
    pub.publish(String(data="bad"))
    with pytest.raises(ValueError, match="malformed"):
        spin_for(executor, 5.0)
    pub.publish(String(data="good"))
    spin_until(executor, lambda: received == ["good"])


def test_spin_once_returns_after_its_timeout_when_nothing_is_ready(graph):
    executor, node = graph
    node("idle")
    spin_for(executor, 0.3)
    started = time.monotonic()
    executor.spin_once(timeout_sec=0.2)
    assert 0.15 <= time.monotonic() - started < 1.0


def test_a_subscription_destroyed_by_an_earlier_callback_in_the_same_wake_is_not_called(graph):
    from std_msgs.msg import String
    executor, node = graph
    talker, listener = node("talker"), node("listener")
    first_pub = talker.create_publisher(String, "first", 10)
    second_pub = talker.create_publisher(String, "second", 10)
    second_heard: list[str] = []
    second = strings(listener, "second", second_heard)
    first_heard: list[str] = []

    def on_first(msg):
        first_heard.append(msg.data)
        listener.destroy_subscription(second)

    listener.create_subscription(String, "first", on_first, 10)
    connected(executor, first_pub)
    connected(executor, second_pub)
    second_pub.publish(String(data="late"))
    first_pub.publish(String(data="go"))
    time.sleep(0.2)                 # both ready before one wait
    spin_until(executor, lambda: first_heard == ["go"])
    spin_for(executor, 0.3)
    assert second_heard in ([], ["late"])       # called only if its wait came first
    second_pub.publish(String(data="after"))
    spin_for(executor, 0.3)
    assert "after" not in second_heard


def test_a_callback_group_busy_with_a_suspended_coroutine_holds_its_other_callbacks(graph):
    from rclpy.task import Future
    from std_msgs.msg import String
    executor, node = graph
    talker, listener = node("talker"), node("listener")
    pub_slow = talker.create_publisher(String, "slow", 10)
    pub_other = talker.create_publisher(String, "other", 10)
    release = Future()
    events: list[str] = []

    async def on_slow(msg):
        events.append("slow began")
        await release
        events.append("slow ended")

    listener.create_subscription(String, "slow", on_slow, 10)      # both in the node's default,
    strings(listener, "other", events)                             # mutually exclusive group
    connected(executor, pub_slow)
    connected(executor, pub_other)
    pub_slow.publish(String(data="x"))
    spin_until(executor, lambda: events == ["slow began"])
    pub_other.publish(String(data="other"))
    spin_for(executor, 0.3)
    assert events == ["slow began"], "a callback ran while its group was busy"
    release.set_result(True)
    spin_until(executor, lambda: events == ["slow began", "slow ended", "other"])


def test_a_cancelled_timer_is_not_called_and_a_running_one_is(graph):
    executor, node = graph
    ticking = node("ticking")
    fast: list[float] = []
    cancelled: list[float] = []
    ticking.create_timer(0.02, lambda: fast.append(time.monotonic()))
    stopped = ticking.create_timer(0.02, lambda: cancelled.append(time.monotonic()))
    stopped.cancel()
    spin_until(executor, lambda: len(fast) >= 10)
    assert cancelled == []


def test_a_task_never_started_is_closed_at_shutdown_and_leaves_no_never_awaited_warning(bare_ros_context):
    from dfr_common.ros.node_main import make_executor

    executor = make_executor(bare_ros_context)
    ran = []

    async def mission():
        ran.append(True)

    task = executor.create_task(mission)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        executor.shutdown()
        assert task.cancelled() and not ran
        del task
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]

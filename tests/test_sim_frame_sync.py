"""The simulator waits for perception: sim time holds while perception's newest image done for a
drone is behind, up to a wall-time limit, and a drone perception no longer watches holds nothing."""
import time
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOPIC = "/dfr/perception/frames_done"


@pytest.fixture
def graph(graph_factory):
    return graph_factory(fleet_file=FIXTURES / "fleet_two_bases.yaml", with_dispatch=False,
                         sim_overrides={"frame_sync_topic": TOPIC, "frame_sync_s": 0.6,
                                        "frame_sync_max_wall_s": 1.5})


def test_sim_time_waits_for_perception_then_runs_on_and_a_drone_not_watched_holds_nothing(graph):
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    from dfr_common.ros import qos

    publisher = graph.client_node.create_publisher(Header, TOPIC, qos.RELIABLE)
    graph.spin_until(lambda: publisher.get_subscription_count() > 0 and graph.sim.sim_now > 2.0, 20,
                     "the simulator listening and running")

    def mark(stamp_s: float):
        sec = int(stamp_s)
        publisher.publish(Header(frame_id="uav1", stamp=Time(sec=sec, nanosec=int((stamp_s - sec) * 1e9))))

    def spin_for(wall_s: float):
        end = time.monotonic() + wall_s
        while time.monotonic() < end:
            graph.executor.spin_once(timeout_sec=0.01)

    done = graph.sim.sim_now
    mark(done)
    spin_for(0.8)                   # 40 s of sim time at 50 x, were it not held
    assert graph.sim.sim_now - done < 1.0, "sim time ran on while perception was behind"
    # Perception catches up: sim time goes on at once.
    mark(graph.sim.sim_now)
    graph.spin_until(lambda: graph.sim.sim_now > done + 3.0, 5, "sim time going on")
    # Perception stops (a dead node): the hold lasts the wall limit, then sim time runs on.
    stalled = graph.sim.sim_now
    mark(stalled)
    graph.spin_until(lambda: graph.sim.sim_now > stalled + 10.0, 8, "sim time let go")
    # A zero stamp: perception no longer watches uav1, which holds nothing.
    mark(graph.sim.sim_now)
    publisher.publish(Header(frame_id="uav1"))
    start = graph.sim.sim_now
    spin_for(0.5)
    assert graph.sim.sim_now - start > 5.0

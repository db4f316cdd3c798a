"""Shared set-up of the system tests: an isolated ROS domain and an in-process graph.

System tests run real rclpy nodes, several in one process, on sim time from the
embedded simulator. Each test gets its own rclpy Context on a ROS domain of its own, so
one test's nodes never see another's, nor what DDS still holds of them.
"""
from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Keep test traffic on this host and away from any other ROS graph on it. Set before
# any rclpy Context exists, which is when the middleware reads them. Domains 1-100:
# above 101, Fast DDS's ports reach into Linux's ephemeral range.
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
_SESSION_DOMAIN = int(os.environ["ROS_DOMAIN_ID"])
_CONTEXTS_MADE = itertools.count()


def fresh_domain_id() -> int:
    """A domain for the next test's Context, 1 to 40 above the session's and cycling: a test on the
    session's domain once found /uav1/execute_mission never ready for a minute, a client renewed
    every 15 s, after the test before it had served the same action (rmw_fastrtps calls a service
    unavailable while its graph cache counts request readers and response writers unequal, as stale
    endpoints of an earlier participant on the domain can make them). Subprocess tests use 51 to 81
    above."""
    return 1 + (_SESSION_DOMAIN + next(_CONTEXTS_MADE) % 40) % 100


PARAM_FILES = ("sim.yaml", "camera.yaml", "bridge.yaml", "flight_rules.yaml", "intake.yaml", "dispatch.yaml",
               "run_recorder.yaml", "perception.yaml", "follow.yaml")
WORLD = CONFIG / "world" / "islington.geojson"


class InProcessGraph:
    """The embedded-simulator graph, every node in one executor, on sim time."""

    def __init__(self, context, fleet_file: Path, speed: float = 50.0, sim_overrides=None,
                 dispatch_overrides=None, bridge_overrides=None, with_dispatch=True, with_perception=False,
                 camera_overrides=None, perception_overrides=None, follow_overrides=None):
        import rclpy
        from rclpy.parameter import Parameter

        from dfr_bridge.bridge_node import BridgeNode
        from dfr_common.fleet import load_fleet
        from dfr_common.ros.node_main import make_executor
        from dfr_dispatch.dispatch_node import DispatchNode
        from dfr_intake.intake_node import IntakeNode
        from dfr_sim.sim_node import SimulatorNode

        def params(mapping):
            return [Parameter(k, value=v) for k, v in mapping.items()]

        sim_time = {"use_sim_time": True}
        self.context = context
        self.fleet = load_fleet(fleet_file)
        self.sim = SimulatorNode(context=context, parameter_overrides=params(
            {"fleet_file": str(fleet_file), "speed": speed, **(sim_overrides or {})}))
        self.journal_dir = tempfile.mkdtemp(prefix="dfr_intake_journal_")
        self._make_intake = lambda: IntakeNode(context=context, namespace="dfr", parameter_overrides=params(
            {**sim_time, "operating_area_file": str(CONFIG / "airspace" / "operating_area.geojson"),
             "journal_file": str(Path(self.journal_dir) / "journal.sqlite")}))
        self.intake = self._make_intake()
        self.nodes = [self.sim, self.intake]
        self._servers_seen: set = set()
        self.dispatch = None
        self._make_dispatch = lambda: DispatchNode(context=context, namespace="dfr", parameter_overrides=params(
            {**sim_time, "fleet_file": str(fleet_file),
             "record_file": str(Path(self.journal_dir) / "dispatch_record.sqlite"), **(dispatch_overrides or {})}))
        if with_dispatch:
            self.dispatch = self._make_dispatch()
            self.nodes.append(self.dispatch)
        self._make_bridge = lambda vehicle: BridgeNode(
            context=context, namespace=vehicle.vehicle_id, parameter_overrides=params(
                {**sim_time, "vehicle_id": vehicle.vehicle_id, "base_id": vehicle.base_id, **(bridge_overrides or {})}))
        self.bridges = {}
        for vehicle in self.fleet.vehicles.values():
            bridge = self._make_bridge(vehicle)
            self.bridges[vehicle.vehicle_id] = bridge
            self.nodes.append(bridge)
        if with_perception:
            # The cameras, perception and follow: the chase, on the simulator's world and actors.
            from dfr_follow.follow_node import FollowNode
            from dfr_perception.perception_node import PerceptionNode
            from dfr_sim.camera_node import CameraNode
            self.camera = CameraNode(context=context, parameter_overrides=params(
                {**sim_time, "fleet_file": str(fleet_file), "world_file": str(WORLD), **(camera_overrides or {})}))
            self.perception = PerceptionNode(context=context, namespace="dfr", parameter_overrides=params(
                {**sim_time, "fleet_file": str(fleet_file), **(perception_overrides or {})}))
            self.follow = FollowNode(context=context, namespace="dfr", parameter_overrides=params(
                {**sim_time, "fleet_file": str(fleet_file),
                 "permitted_area_file": str(CONFIG / "airspace" / "operating_area.geojson"),
                 "airspace_file": str(CONFIG / "airspace" / "london_restrictions.geojson"),
                 **(follow_overrides or {})}))
            self.nodes += [self.camera, self.perception, self.follow]
        self.client_node = rclpy.create_node("test_client", context=context,
                                             parameter_overrides=params(sim_time))
        self.nodes.append(self.client_node)
        self.executor = make_executor(context)
        for node in self.nodes:
            self.executor.add_node(node)

    def _replace(self, old, new):
        self.executor.remove_node(old)
        self.nodes.remove(old)
        old.destroy_node()
        self.nodes.append(new)
        self.executor.add_node(new)
        return new

    def restart_dispatch(self):
        """Dispatch dies and a new one starts with the same parameters: all it held in memory is gone."""
        self.dispatch.on_shutdown()
        self.dispatch = self._replace(self.dispatch, self._make_dispatch())
        return self.dispatch

    def restart_intake(self):
        """Intake dies and a new one starts on the same journal: what it held in memory is gone."""
        self.intake.on_shutdown()
        self.intake = self._replace(self.intake, self._make_intake())
        return self.intake

    def inject_fault(self, vehicle_id: str, fault: str, active: bool = True, argument: str = "", value: float = 0.0):
        """A fault switched on (or off) in the simulator, through its service as a scenario's faults are."""
        from dfr_interfaces.srv import InjectFault

        if not hasattr(self, "_fault_client"):
            self._fault_client = self.client_node.create_client(InjectFault, "/sim/inject_fault")
        answer = self.call(self._fault_client, InjectFault.Request(vehicle_id=vehicle_id, fault=fault, active=active,
                                                                   argument=argument, value=value))
        assert answer.success, answer.message
        return answer.message

    def restart_bridge(self, vehicle_id: str):
        """A drone's bridge dies (its mission with it) and a new one starts with the same parameters."""
        bridge = self._replace(self.bridges[vehicle_id], self._make_bridge(self.fleet.vehicles[vehicle_id]))
        self.bridges[vehicle_id] = bridge
        return bridge

    def stop_bridge(self, vehicle_id: str):
        """A drone's bridge dies and nothing replaces it: its status stops, as if never discovered."""
        bridge = self.bridges.pop(vehicle_id)
        self.executor.remove_node(bridge)
        self.nodes.remove(bridge)
        bridge.destroy_node()

    def vehicle(self, vehicle_id: str):
        return next(v for v in self.sim.vehicles if v.vehicle_id == vehicle_id)

    def wait_for_action_server(self, client, timeout_s: float = 60.0, renew_after_s: float = 15.0):
        """The client, once its action server is ready: discovery under load can take longer than a blocking
        10 s wait allows. Once seen, a server stays, and later goals do not ask again: server_is_ready() reads
        the ROS graph cache, which under load can lose a server DDS still has matched (ros2/rmw_fastrtps#792).
        A client that has not seen its server after renew_after_s is replaced by a new one, whose endpoints
        are matched afresh (once in a CI run a first client waited its whole minute); use the one returned."""
        from rclpy.action import ActionClient

        if client in self._servers_seen:
            return client
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.spin_until(client.server_is_ready, min(renew_after_s, deadline - time.monotonic()),
                                "the bridge's action server")
                break
            except AssertionError as err:
                if time.monotonic() >= deadline - 1e-3:
                    seen = client._node.get_node_names_and_namespaces()
                    nodes = sorted(f"{ns.rstrip('/')}/{name}" for name, ns in seen)
                    raise AssertionError(f"timed out after {timeout_s:.0f} s wall waiting for the action server "
                                         f"{client._action_name}, with a new client every {renew_after_s:.0f} s; "
                                         f"nodes seen on domain {self.context.get_domain_id()}: {nodes}") from err
                node, action_type, name = client._node, client._action_type, client._action_name
                client.destroy()
                client = ActionClient(node, action_type, name)
        self._servers_seen.add(client)
        return client

    def spin_until(self, predicate, timeout_s: float, what: str = "condition"):
        """Spin until predicate() is truthy; fail after timeout_s of wall time, saying how far sim time got."""
        from dfr_common.ros.spin import spin_until

        return spin_until(self.executor, predicate, timeout_s, what, lambda: f"{self.sim.sim_now:.0f} s sim")

    def call(self, client, request, timeout_s: float = 10.0):
        assert client.wait_for_service(timeout_sec=timeout_s), f"service {client.srv_name} not available"
        future = client.call_async(request)
        self.spin_until(future.done, timeout_s, f"an answer from {client.srv_name}")
        return future.result()

    def report_call(self, timeout_s: float = 10.0, **fields):
        from dfr_interfaces.msg import Call
        from dfr_interfaces.srv import ReportIncident

        if not hasattr(self, "_report_client"):
            self._report_client = self.client_node.create_client(ReportIncident, "/dfr/report_incident")
        self.spin_until(lambda: self.client_node.get_clock().now().nanoseconds > 0, timeout_s, "sim time")
        fields.setdefault("call_time", self.client_node.get_clock().now().to_msg())   # a retry passes the first's
        call = Call(**fields)
        return self.call(self._report_client, ReportIncident.Request(call=call), timeout_s)

    def publish_incident(self, incident, timeout_s: float = 10.0):
        """Publish `incident` on /dfr/incidents as a new revision, as intake would, and wait until every
        bridge has it: the bridges fly only for incidents they know from that topic."""
        from dfr_common.ros import qos
        from dfr_interfaces.msg import Incident

        if not hasattr(self, "_incident_pub"):
            self._incident_pub = self.client_node.create_publisher(Incident, "/dfr/incidents", qos.incidents(100))
            self._revisions = {}
        incident.revision = self._revisions[incident.incident_id] = self._revisions.get(incident.incident_id, 0) + 1
        self._incident_pub.publish(incident)
        self.spin_until(lambda: all(b.incidents.get(incident.incident_id) is not None
                                    and b.incidents[incident.incident_id].revision == incident.revision
                                    for b in self.bridges.values()), timeout_s, f"the bridges to hear of "
                        f"{incident.incident_id} revision {incident.revision}")
        return incident

    def close(self):
        self.executor.shutdown()
        for node in self.nodes:
            node.destroy_node()
        self.intake.on_shutdown()
        shutil.rmtree(self.journal_dir, ignore_errors=True)


@pytest.fixture
def bare_ros_context():
    """An rclpy Context with no parameter files: for tests of rclpy's and the executor's own behaviour."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context, domain_id=fresh_domain_id())
    yield context
    context.try_shutdown()


@pytest.fixture
def ros_context():
    """An rclpy Context initialised with the project's parameter files, like the runner."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    args = ["--ros-args"]
    for name in PARAM_FILES:
        args += ["--params-file", str(CONFIG / name)]
    rclpy.init(args=args, context=context, domain_id=fresh_domain_id())
    yield context
    context.try_shutdown()


@pytest.fixture
def graph_factory(ros_context):
    graphs = []

    def make(**kwargs):
        graph = InProcessGraph(ros_context, **kwargs)
        graphs.append(graph)
        return graph

    yield make
    for graph in graphs:
        graph.close()

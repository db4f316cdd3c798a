"""The perception node with real rclpy: which drones' cameras it reads, whatever order its inputs come in."""
from pathlib import Path

from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from dfr_common.ros import qos
from dfr_common.ros.spin import spin_until
from dfr_interfaces.msg import Call, Incident, MissionPhase, VehicleStatus

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_a_mission_heard_of_before_its_incident_still_has_its_camera_read(ros_context):
    """Seen in the short evening: at ten times real time the drone's status (on scene, for the e-bike) came
    before the incident that says what to look for, and the drone's camera was never read."""
    from dfr_perception.perception_node import PerceptionNode

    perception = PerceptionNode(context=ros_context, namespace="dfr", parameter_overrides=[
        Parameter("fleet_file", value=str(FIXTURES / "fleet_two_bases.yaml"))])
    client = Node("perception_test_client", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    for node in (perception, client):
        executor.add_node(node)
    try:
        assert perception.params.watch == "described"            # config/perception.yaml
        status_pub = client.create_publisher(VehicleStatus, "/uav1/vehicle_status", qos.LATCHED_STATE)
        incident_pub = client.create_publisher(Incident, "/dfr/incidents", qos.incidents(100))
        status = VehicleStatus(vehicle_id="uav1", connected=True, armed=True, mission_id="M00001-INC-9-uav1",
                               incident_id="INC-9", phase=MissionPhase(value=MissionPhase.ON_SCENE))

        def camera_read():
            return client.count_subscribers("/uav1/camera/image_raw") > 0
        status_pub.publish(status)
        spin_until(executor, lambda: perception.drones["uav1"].status is not None, 10, "the status to arrive")
        for _ in range(50):
            executor.spin_once(timeout_sec=0.01)
        assert not camera_read(), "nothing known yet of what to look for: the camera is not read"

        call = Call(cad_ref="CAD-9", description="E-bike ridden at speed on the pavement")
        incident_pub.publish(Incident(incident_id="INC-9", revision=1, state=Incident.STATE_OPEN, drone_eligible=True,
                                      grade="I", category="dangerous_driving", calls=[call]))
        spin_until(executor, lambda: "INC-9" in perception.incidents, 10, "the incident to arrive")
        status_pub.publish(status)                                # the bridge's next status
        spin_until(executor, camera_read, 10, "the camera of uav1 to be read")
        assert perception.drones["uav1"].keeper.criteria.object_class == "two_wheeler"
    finally:
        executor.shutdown()
        perception.destroy_node()
        client.destroy_node()

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


def test_an_image_is_placed_with_the_camera_attitude_and_heading_stamped_for_it_not_the_latest(ros_context):
    """On sim time the MAVROS mount orientation (unstamped) could only be placed by when it arrived, which for
    a node busy with an image is a clock tick late: a camera panning at 30 degrees a second is then 6 degrees
    off the picture, enough to break the chase's tracks. The camera's stamped attitude and the stamped
    local pose's heading are used instead."""
    import math

    from geometry_msgs.msg import PoseStamped, QuaternionStamped
    from mavros_msgs.msg import HomePosition
    from sensor_msgs.msg import NavSatFix

    from dfr_common.ros.mount_orientation import mount_quaternion
    from dfr_perception.perception_node import PerceptionNode

    perception = PerceptionNode(context=ros_context, namespace="dfr", parameter_overrides=[
        Parameter("fleet_file", value=str(FIXTURES / "fleet_two_bases.yaml"))])
    try:
        drone = perception.drones["uav1"]
        home = HomePosition()
        home.geo.latitude, home.geo.longitude, home.geo.altitude = 51.5338, -0.1109, 80.0
        drone.pose.on_home(home)

        def stamped(msg, t):
            msg.header.stamp.sec, msg.header.stamp.nanosec = int(t), int(round((t % 1.0) * 1e9))
            return msg

        def attitude(t, yaw_deg):
            return stamped(QuaternionStamped(quaternion=mount_quaternion(0.0, -60.0, yaw_deg)), t)

        def nose(t, yaw_deg):
            pose = stamped(PoseStamped(), t)
            pose.pose.orientation.z, pose.pose.orientation.w = (math.sin(math.radians(yaw_deg) / 2),
                                                                math.cos(math.radians(yaw_deg) / 2))
            return pose
        for t, yaw in ((10.0, 0.0), (10.2, 6.0), (10.4, 12.0)):
            drone.pose.on_fix(stamped(NavSatFix(latitude=51.5338, longitude=-0.1109, altitude=120.0), t))
            drone.pose.on_local_pose(nose(t, 90.0 + yaw))
            perception._on_camera_attitude(drone, attitude(t, yaw))
        perception._on_gimbal(drone, mount_quaternion(0.0, -60.0, 40.0))   # MAVROS's, placed by arrival: not used
        pose = perception._pose(drone, 10.2)
        assert (pose.gimbal_pitch_deg, pose.gimbal_yaw_deg) == (approx(-60.0), approx(6.0))
        assert math.degrees(pose.heading_enu_rad) == approx(96.0)
        assert drone.attitude_late == 0
        perception._pose(drone, 10.6)                                 # an image before its attitude came
        assert drone.attitude_late == 1
    finally:
        perception.destroy_node()


def approx(value):
    import pytest
    return pytest.approx(value, abs=1e-6)

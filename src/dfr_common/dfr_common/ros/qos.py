"""QoS profiles, named for what they carry (see the design's conventions)."""
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

# Telemetry and other streams where the newest sample is all that matters. MAVROS
# publishes its sensor-like topics with this profile: a reliable subscriber gets nothing.
SENSOR_DATA = qos_profile_sensor_data

# A reader of camera images that may fall behind (perception): the newest image only. With
# SENSOR_DATA's depth of 5, a reader slower than the camera works through a queue of stale frames,
# a second behind at 5 Hz, however fast it tries to catch up.
def latest_images(depth: int = 1) -> QoSProfile:
    """The newest `depth` images (best effort)."""
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE,
                      history=HistoryPolicy.KEEP_LAST)


LATEST_IMAGE = latest_images(1)

# State a late joiner needs at once (MAVROS state, extended_state, home_position).
LATCHED_STATE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL,
                           history=HistoryPolicy.KEEP_LAST)

# MAVROS's mission plugin: mission/waypoints and mission/reached.
MAVROS_MISSION = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)

# Commands and state that must arrive, with no history for late joiners.
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST)


def incidents(depth: int) -> QoSProfile:
    """Incidents: reliable and latched, deep enough that a late dispatcher sees every open one."""
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)

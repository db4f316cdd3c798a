"""PX4 and MAVLink names and numbers that the simulator reproduces.

Mode strings are the ones MAVROS reports in mavros_msgs/State.mode and accepts in
SetMode.custom_mode for PX4; MAV_RESULT values are what CommandBool and CommandTOL
return in `result`. Kept free of ROS types so the vehicle model stays plain Python.
"""

MANUAL = "MANUAL"
ACRO = "ACRO"
ALTCTL = "ALTCTL"
POSCTL = "POSCTL"
OFFBOARD = "OFFBOARD"
STABILIZED = "STABILIZED"
RATTITUDE = "RATTITUDE"
AUTO_MISSION = "AUTO.MISSION"
AUTO_LOITER = "AUTO.LOITER"
AUTO_RTL = "AUTO.RTL"
AUTO_LAND = "AUTO.LAND"
AUTO_RTGS = "AUTO.RTGS"
AUTO_READY = "AUTO.READY"
AUTO_TAKEOFF = "AUTO.TAKEOFF"
AUTO_FOLLOW_TARGET = "AUTO.FOLLOW_TARGET"
AUTO_PRECLAND = "AUTO.PRECLAND"

# Every name MAVROS maps to a PX4 custom mode; SetMode answers mode_sent=false for others.
KNOWN_MODES = frozenset({
    MANUAL, ACRO, ALTCTL, POSCTL, OFFBOARD, STABILIZED, RATTITUDE, AUTO_MISSION, AUTO_LOITER,
    AUTO_RTL, AUTO_LAND, AUTO_RTGS, AUTO_READY, AUTO_TAKEOFF, AUTO_FOLLOW_TARGET, AUTO_PRECLAND,
})

# Modes that need the pilot's remote control to run.
PILOT_MODES = frozenset({MANUAL, ACRO, ALTCTL, POSCTL, STABILIZED, RATTITUDE})

# Modes that need a global position estimate; PX4 refuses them without one, and leaves
# them when it is lost.
POSITION_MODES = frozenset({POSCTL, OFFBOARD, AUTO_MISSION, AUTO_LOITER, AUTO_RTL, AUTO_TAKEOFF,
                            AUTO_FOLLOW_TARGET, AUTO_PRECLAND})

# Modes in which PX4 refuses to arm.
MODES_PREVENTING_ARMING = frozenset({AUTO_RTL, AUTO_LAND, AUTO_FOLLOW_TARGET, AUTO_PRECLAND})

# MAV_RESULT, as carried in COMMAND_ACK and MAVROS's `result` fields.
MAV_RESULT_ACCEPTED = 0
MAV_RESULT_TEMPORARILY_REJECTED = 1
MAV_RESULT_DENIED = 2
MAV_RESULT_UNSUPPORTED = 3
MAV_RESULT_FAILED = 4

# mavros_msgs/ExtendedState landed_state values.
LANDED_STATE_UNDEFINED = 0
LANDED_STATE_ON_GROUND = 1
LANDED_STATE_IN_AIR = 2
LANDED_STATE_TAKEOFF = 3
LANDED_STATE_LANDING = 4

# mavros_msgs/GlobalPositionTarget coordinate frames PX4 accepts, and type_mask bits.
FRAME_GLOBAL_INT = 5
FRAME_GLOBAL_REL_ALT = 6
FRAME_GLOBAL_TERRAIN_ALT = 11
IGNORE_LATITUDE = 1
IGNORE_LONGITUDE = 2
IGNORE_ALTITUDE = 4
IGNORE_VX = 8
IGNORE_VY = 16
IGNORE_VZ = 32
IGNORE_YAW = 1024

# MAV_STATE, reported in State.system_status.
MAV_STATE_STANDBY = 3
MAV_STATE_ACTIVE = 4
MAV_STATE_CRITICAL = 5
MAV_STATE_EMERGENCY = 6

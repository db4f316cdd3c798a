"""Mission phases and outcomes, mirroring dfr_interfaces MissionPhase and ExecuteMission's result.

Plain enums so that algorithm modules can speak of phases without importing messages;
tests/test_interfaces.py checks the values stay equal to the messages' constants.
"""
from enum import Enum


class Phase(Enum):
    IDLE = 0
    PREFLIGHT = 1
    TAKEOFF = 2
    TRANSIT = 3
    ON_SCENE = 4
    FOLLOW = 5
    RETURN = 6
    LAND = 7


class Outcome(Enum):
    COMPLETED = 0
    CANCELED = 1
    FAILED = 2
    PILOT_TAKEOVER = 3
    VEHICLE_LOST = 4
    AUTOPILOT_FAILSAFE = 5
    BATTERY_RESERVE = 6
    RETASKED = 7

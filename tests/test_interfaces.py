"""The plain-Python mirrors of interface constants agree with the generated messages."""
from mavros_msgs.msg import ExtendedState, GlobalPositionTarget

from dfr_common import px4
from dfr_common.grading import GRADES
from dfr_common.mission import Outcome, Phase
from dfr_interfaces.action import ExecuteMission
from dfr_interfaces.msg import Call, MissionPhase


def test_phases_mirror_mission_phase():
    for phase in Phase:
        assert getattr(MissionPhase, phase.name) == phase.value


def test_outcomes_mirror_the_mission_result():
    for outcome in Outcome:
        assert getattr(ExecuteMission.Result, f"OUTCOME_{outcome.name}") == outcome.value


def test_grades_mirror_the_call_message():
    assert GRADES == (Call.GRADE_IMMEDIATE, Call.GRADE_SIGNIFICANT, Call.GRADE_EXTENDED, Call.GRADE_REFERRED)


def test_px4_numbers_mirror_mavros_msgs():
    for name in ("UNDEFINED", "ON_GROUND", "IN_AIR", "TAKEOFF", "LANDING"):
        assert getattr(px4, f"LANDED_STATE_{name}") == getattr(ExtendedState, f"LANDED_STATE_{name}")
    assert px4.FRAME_GLOBAL_INT == GlobalPositionTarget.FRAME_GLOBAL_INT
    assert px4.FRAME_GLOBAL_REL_ALT == GlobalPositionTarget.FRAME_GLOBAL_REL_ALT
    assert px4.FRAME_GLOBAL_TERRAIN_ALT == GlobalPositionTarget.FRAME_GLOBAL_TERRAIN_ALT
    for name in ("LATITUDE", "LONGITUDE", "ALTITUDE", "VX", "VY", "VZ", "YAW"):
        assert getattr(px4, f"IGNORE_{name}") == getattr(GlobalPositionTarget, f"IGNORE_{name}")

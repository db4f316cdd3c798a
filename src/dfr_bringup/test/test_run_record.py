"""The run's record counts each flight once, with the incident it flew for."""
import math

import pytest

from dfr_bringup.run_record import PHASE_IDLE, RunRecord, response_lower_bound_s

TRANSIT = 3


def test_a_flight_is_counted_when_the_drone_leaves_the_ground_armed_with_its_incident():
    record = RunRecord()
    record.on_vehicle(1.0, "uav1", PHASE_IDLE, False, "")
    record.on_vehicle(2.0, "uav1", 1, True, "INC-000001")
    record.on_vehicle(3.0, "uav1", TRANSIT, True, "INC-000001")
    record.on_vehicle(90.0, "uav1", PHASE_IDLE, False, "")
    record.on_vehicle(95.0, "uav1", 1, True, "")          # armed without an incident
    assert record.metrics()["flights"] == 2 and record.metrics()["flights_without_incident"] == 1


def test_a_status_without_a_link_counts_no_new_flight_when_the_link_returns():
    """A dropped MAVROS link, or a bridge started again mid-flight, first shows the drone disarmed (unknown),
    then armed with no mission: one flight, flown for its incident."""
    record = RunRecord()
    record.on_vehicle(2.0, "uav1", TRANSIT, True, "INC-000001")
    record.on_vehicle(50.0, "uav1", PHASE_IDLE, False, "", connected=False)     # a new bridge, no state yet
    record.on_vehicle(51.0, "uav1", PHASE_IDLE, True, "")
    assert record.metrics()["flights"] == 1 and record.metrics()["flights_without_incident"] == 0
    assert record.airborne() == 1


def test_a_drone_armed_on_its_dock_that_never_lifts_off_is_no_flight():
    """Seen in CI: a mission canceled while its arm request was on its way left the drone armed on its dock,
    its mission gone, until PX4 disarmed it: counted as a flight without an incident."""
    record = RunRecord()
    record.on_vehicle(1.0, "uav2", 1, True, "INC-000001", on_ground=True)
    record.on_vehicle(2.0, "uav2", PHASE_IDLE, True, "", on_ground=True)
    record.on_vehicle(3.0, "uav2", PHASE_IDLE, False, "", on_ground=True)
    assert record.metrics()["flights"] == 0
    # It counts once it is off the ground, once, however its landed state flickers in the take-off.
    record.on_vehicle(10.0, "uav2", 1, True, "INC-000002", on_ground=True)
    record.on_vehicle(11.0, "uav2", 2, True, "INC-000002", on_ground=False)
    record.on_vehicle(11.5, "uav2", 2, True, "INC-000002", on_ground=True)
    record.on_vehicle(12.0, "uav2", TRANSIT, True, "INC-000002", on_ground=False)
    assert record.metrics()["flights"] == 1 and record.metrics()["flights_without_incident"] == 0


def test_the_response_lower_bound_is_the_climb_and_the_straight_line_from_the_nearest_base_to_the_stand_off():
    bases = [(0.0, 0.0), (3000.0, 0.0)]
    # 1,040 m from the nearer base, 40 m of it inside the stand-off: 10 s of climb and 1,000 m at 20 m/s.
    assert response_lower_bound_s((2000.0 - 40.0, 0.0), bases, 20.0, 10.0, standoff_m=0.0) == pytest.approx(62.0)
    assert response_lower_bound_s((1960.0, 0.0), bases, 20.0, 10.0, standoff_m=40.0) == pytest.approx(60.0)
    assert response_lower_bound_s((10.0, 0.0), bases, 20.0, 10.0, standoff_m=40.0) == pytest.approx(10.0)
    assert response_lower_bound_s((math.nan, 0.0), bases, 20.0, 10.0) is None
    assert response_lower_bound_s((0.0, 0.0), [], 20.0, 10.0) is None

"""The run's record counts each flight once, with the incident it flew for."""
from dfr_bringup.run_record import PHASE_IDLE, RunRecord

TRANSIT = 3


def test_a_flight_is_counted_at_arming_with_its_incident():
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

"""Intake's ReportIncident service through real rclpy: bad calls get specific errors and are never published."""
import math
from pathlib import Path

import pytest
from rclpy.duration import Duration

from dfr_common.ros import qos
from dfr_interfaces.msg import Incident

FIXTURES = Path(__file__).resolve().parent / "fixtures"
GOOD = dict(cad_ref="CAD-1", grade="I", category="dangerous_driving", latitude=51.5412, longitude=-0.1027,
            location_uncertainty_m=30.0, description="e-bike on the pavement")


@pytest.fixture
def graph(graph_factory):
    graph = graph_factory(fleet_file=FIXTURES / "fleet_two_bases.yaml", with_dispatch=False)
    graph.published = []
    graph.client_node.create_subscription(Incident, "/dfr/incidents", graph.published.append, qos.incidents(100))
    return graph


def settle(graph, seconds=0.5):
    end = graph.client_node.get_clock().now() + Duration(seconds=seconds)
    graph.spin_until(lambda: graph.client_node.get_clock().now() >= end, 10, "sim time to pass")


@pytest.mark.parametrize("change,field", [
    ({"latitude": math.nan}, "latitude"),
    ({"longitude": math.inf}, "longitude"),
    ({"latitude": 48.85, "longitude": 2.35}, "location"),        # Paris: outside the operating area
    ({"latitude": 95.0}, "latitude"),
    ({"grade": "X"}, "grade"),
    ({"category": "parking"}, "category"),
    ({"cad_ref": ""}, "cad_ref"),
    ({"location_uncertainty_m": -1.0}, "location_uncertainty_m"),
])
def test_a_bad_call_is_rejected_field_by_field_and_not_published(graph, change, field):
    answer = graph.report_call(**{**GOOD, **change})
    assert not answer.accepted
    assert answer.incident_id == ""
    assert any(error.startswith(f"{field}:") for error in answer.errors), answer.errors
    settle(graph)
    assert graph.published == []


def test_a_call_from_the_future_is_rejected(graph):
    from dfr_interfaces.msg import Call
    from dfr_interfaces.srv import ReportIncident
    client = graph.client_node.create_client(ReportIncident, "/dfr/report_incident")
    graph.spin_until(lambda: graph.client_node.get_clock().now().nanoseconds > 0, 10, "sim time")
    future = (graph.client_node.get_clock().now() + Duration(seconds=600)).to_msg()
    answer = graph.call(client, ReportIncident.Request(call=Call(call_time=future, **GOOD)))
    assert not answer.accepted
    assert any(e.startswith("call_time:") and "future" in e for e in answer.errors)


def test_a_good_call_is_published_with_the_policy_decision(graph):
    answer = graph.report_call(**GOOD)
    assert answer.accepted and answer.drone_eligible
    graph.spin_until(lambda: graph.published, 10, "the incident")
    incident = graph.published[0]
    assert incident.incident_id == answer.incident_id
    assert incident.state == Incident.STATE_OPEN and incident.revision == 1
    assert incident.calls[0].cad_ref == "CAD-1"
    assert incident.location.latitude == pytest.approx(GOOD["latitude"])
    assert math.isnan(incident.location.altitude)


def test_a_protest_is_recorded_but_never_eligible(graph):
    answer = graph.report_call(**{**GOOD, "cad_ref": "CAD-2", "category": "protest"})
    assert answer.accepted and not answer.drone_eligible
    assert "excluded" in answer.policy_reason
    graph.spin_until(lambda: graph.published, 10, "the incident")
    assert graph.published[0].drone_eligible is False


def test_the_same_call_reported_twice_is_one_incident(graph):
    from dfr_interfaces.msg import Call
    from dfr_interfaces.srv import ReportIncident
    client = graph.client_node.create_client(ReportIncident, "/dfr/report_incident")
    graph.spin_until(lambda: graph.client_node.get_clock().now().nanoseconds > 0, 10, "sim time")
    call = Call(call_time=graph.client_node.get_clock().now().to_msg(), **GOOD)
    first = graph.call(client, ReportIncident.Request(call=call))
    again = graph.call(client, ReportIncident.Request(call=call))      # a retry of the very same call
    assert again.accepted and not again.merged and again.incident_id == first.incident_id
    settle(graph)
    assert [i.incident_id for i in graph.published] == [first.incident_id]


def test_a_cad_reference_reused_for_a_different_call_is_rejected(graph):
    first = graph.report_call(**GOOD)
    other = graph.report_call(**{**GOOD, "grade": "S", "latitude": 51.55})
    assert first.accepted and not other.accepted
    assert other.errors[0].startswith("cad_ref:") and first.incident_id in other.errors[0]
    assert "grade" in other.errors[0] and "latitude" in other.errors[0]


def test_a_late_subscriber_still_gets_every_incident(graph):
    for i in range(3):
        assert graph.report_call(**{**GOOD, "cad_ref": f"CAD-{i}"}).accepted
    late = []
    graph.client_node.create_subscription(Incident, "/dfr/incidents", late.append, qos.incidents(100))
    graph.spin_until(lambda: len(late) == 3, 10, "the latched incidents")
    assert sorted(i.calls[0].cad_ref for i in late) == ["CAD-0", "CAD-1", "CAD-2"]

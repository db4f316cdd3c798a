"""Intake's ReportIncident service through real rclpy: bad calls get specific errors and are never published."""
import datetime
import math
from pathlib import Path

import pytest
from rclpy.duration import Duration

from dfr_common.ros import qos
from dfr_interfaces.msg import Incident

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO = FIXTURES.parents[1]
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
    for i in range(3):      # a kilometre apart: three events, not one
        assert graph.report_call(**{**GOOD, "cad_ref": f"CAD-{i}", "latitude": GOOD["latitude"] + 0.01 * i}).accepted
    late = []
    graph.client_node.create_subscription(Incident, "/dfr/incidents", late.append, qos.incidents(100))
    graph.spin_until(lambda: len(late) == 3, 10, "the latched incidents")
    assert sorted(i.calls[0].cad_ref for i in late) == ["CAD-0", "CAD-1", "CAD-2"]


# ------------------------------------------------------------------ merging, closing, restarting
def test_calls_about_one_event_merge_into_one_incident_that_keeps_every_call(graph):
    graph.spin_until(lambda: graph.client_node.get_clock().now().nanoseconds > 0, 10, "sim time")
    when = graph.client_node.get_clock().now().to_msg()
    first = graph.report_call(**GOOD, call_time=when)
    second = graph.report_call(**{**GOOD, "cad_ref": "CAD-2", "grade": "S", "category": "vehicle_pursuit",
                                  "latitude": GOOD["latitude"] + 0.0005})            # 55 m away, minutes later
    assert first.accepted and second.accepted and second.merged and not first.merged
    assert second.incident_id == first.incident_id
    other = graph.report_call(**{**GOOD, "cad_ref": "CAD-3", "category": "noise"})   # not the same kind of event
    assert not other.merged and other.incident_id != first.incident_id
    graph.spin_until(lambda: any(i.revision == 2 for i in graph.published), 10, "the merged revision")
    merged = max((i for i in graph.published if i.incident_id == first.incident_id), key=lambda i: i.revision)
    assert [c.cad_ref for c in merged.calls] == ["CAD-1", "CAD-2"]
    assert merged.grade == "I" and merged.state == Incident.STATE_OPEN
    again = graph.report_call(**GOOD, call_time=when)                                   # a CAD retry
    assert again.accepted and again.repeat and again.incident_id == first.incident_id


def test_closing_goes_through_intake_and_is_published(graph):
    from dfr_interfaces.srv import CloseIncident
    opened = graph.report_call(**GOOD)
    client = graph.client_node.create_client(CloseIncident, "/dfr/close_incident")
    answer = graph.call(client, CloseIncident.Request(incident_id=opened.incident_id, reason="resolved"))
    assert answer.success, answer.message
    graph.spin_until(lambda: any(i.state == Incident.STATE_CLOSED for i in graph.published), 10, "the closure")
    again = graph.call(client, CloseIncident.Request(incident_id=opened.incident_id, reason="resolved"))
    assert not again.success and "already closed" in again.message
    unknown = graph.call(client, CloseIncident.Request(incident_id="INC-999999", reason="resolved"))
    assert not unknown.success and "INC-999999" in unknown.message


def test_a_restarted_intake_publishes_the_open_incidents_again_and_continues_the_ids(graph, ros_context):
    from dfr_intake.intake_node import IntakeNode
    from dfr_interfaces.srv import CloseIncident
    graph.spin_until(lambda: graph.client_node.get_clock().now().nanoseconds > 0, 10, "sim time")
    when = graph.client_node.get_clock().now().to_msg()
    ids = [graph.report_call(**{**GOOD, "cad_ref": f"CAD-{i}", "latitude": GOOD["latitude"] + 0.01 * i},
                             call_time=when).incident_id for i in range(3)]
    closer = graph.client_node.create_client(CloseIncident, "/dfr/close_incident")
    assert graph.call(closer, CloseIncident.Request(incident_id=ids[1], reason="stood down")).success
    journal = graph.intake.get_parameter("journal_file").value
    # Intake stops (its process would die here) and a new one starts on the same journal file.
    graph.executor.remove_node(graph.intake)
    graph.intake.destroy_node()
    graph.intake.on_shutdown()
    graph.nodes.remove(graph.intake)
    from rclpy.parameter import Parameter
    restarted = IntakeNode(context=ros_context, namespace="dfr", parameter_overrides=[
        Parameter("use_sim_time", value=True), Parameter("journal_file", value=journal),
        Parameter("operating_area_file", value=str(REPO / "config" / "airspace" / "operating_area.geojson"))])
    graph.intake = restarted
    graph.nodes.append(restarted)
    graph.executor.add_node(restarted)
    late = []
    graph.client_node.create_subscription(Incident, "/dfr/incidents", late.append, qos.incidents(100))
    graph.spin_until(lambda: {i.incident_id for i in late} >= {ids[0], ids[2]}, 10, "the open incidents again")
    # Closed: the new intake does not announce it again. (The old intake's latched revisions may
    # still reach a subscriber in this process; the latest revision wins, and it says closed.)
    assert ids[1] not in {r.incident_id for r in restarted.book.open_incidents()}
    seen_closed = [i for i in late if i.incident_id == ids[1]]
    assert not seen_closed or max(seen_closed, key=lambda i: i.revision).state == Incident.STATE_CLOSED
    assert graph.report_call(**{**GOOD, "cad_ref": "CAD-0"}, call_time=when).repeat   # known after the restart
    fresh = graph.report_call(**{**GOOD, "cad_ref": "CAD-9", "latitude": GOOD["latitude"] + 0.05})
    assert fresh.incident_id == f"INC-{int(ids[2].split('-')[1]) + 1:06d}"      # the sequence goes on


def test_the_cad_gateway_forwards_http_calls_to_intake(graph, ros_context, monkeypatch):
    import httpx
    from rclpy.parameter import Parameter

    from dfr_intake.cad_gateway_node import CadGatewayNode
    monkeypatch.setenv("DFR_CAD_TOKEN_TEST", "s3cret-token")
    gateway = CadGatewayNode(context=ros_context, namespace="dfr", parameter_overrides=[
        Parameter("port", value=0), Parameter("token_env", value="DFR_CAD_TOKEN_TEST")])
    graph.nodes.append(gateway)
    graph.executor.add_node(gateway)
    import threading
    spinning = threading.Event()
    spinning.set()
    spinner = threading.Thread(target=lambda: [graph.executor.spin_once(timeout_sec=0.01)
                                               for _ in iter(spinning.is_set, False)], daemon=True)
    graph.spin_until(lambda: graph.client_node.get_clock().now().nanoseconds > 1e9, 10, "sim time")
    now_s = graph.client_node.get_clock().now().nanoseconds * 1e-9
    stamp = datetime.datetime.fromtimestamp(now_s, datetime.timezone.utc).isoformat()
    body = {"cad_ref": "CAD-H1", "call_time": stamp, "grade": "I", "category": "dangerous_driving",
            "latitude": GOOD["latitude"], "longitude": GOOD["longitude"], "location_uncertainty_m": 30.0,
            "address": "Upper Street", "description": "e-bike"}
    spinner.start()
    try:
        url = f"{gateway.server.url}/v1/calls"
        assert httpx.post(url, json=body, timeout=10).status_code == 401
        headers = {"Authorization": "Bearer s3cret-token"}
        answer = httpx.post(url, json=body, headers=headers, timeout=10)
        assert answer.status_code == 201, answer.text
        assert answer.json()["incident_id"].startswith("INC-") and answer.json()["drone_eligible"]
        retry = httpx.post(url, json=body, headers=headers, timeout=10)
        assert retry.status_code == 200 and retry.json()["incident_id"] == answer.json()["incident_id"]
        far = httpx.post(url, json={**body, "cad_ref": "CAD-H2", "latitude": 48.85, "longitude": 2.35},
                         headers=headers, timeout=10)
        assert far.status_code == 422 and any(e["field"] == "location" for e in far.json()["errors"])
    finally:
        spinning.clear()
        spinner.join(timeout=5)
        gateway.on_shutdown()
    assert any(i.calls[0].cad_ref == "CAD-H1" for i in graph.published)
    assert not any(i.calls[0].cad_ref == "CAD-H2" for i in graph.published)


def test_a_call_that_comes_before_intakes_first_clock_is_not_refused_as_from_the_future(ros_context, tmp_path):
    """Seen in the short evening: the scenario feed, already on sim time, reported its first call before intake
    had heard /clock, and intake (its time still 0) refused it as 5 s in the future."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from dfr_common.ros.spin import spin_until
    from dfr_intake.intake_node import IntakeNode
    from dfr_interfaces.msg import Call
    from dfr_interfaces.srv import ReportIncident

    intake = IntakeNode(context=ros_context, namespace="dfr", parameter_overrides=[
        Parameter("use_sim_time", value=True), Parameter("journal_file", value=str(tmp_path / "journal.sqlite")),
        Parameter("operating_area_file", value=str(REPO / "config" / "airspace" / "operating_area.geojson"))])
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(intake)
    try:
        assert intake.get_clock().now().nanoseconds == 0                  # no /clock in this test
        client = intake.create_client(ReportIncident, "/dfr/report_incident")
        call = Call(**GOOD)
        call.call_time.sec = 8                                            # the tolerance is 5 s
        future = client.call_async(ReportIncident.Request(call=call))
        spin_until(executor, future.done, 10, "intake's answer")
        assert future.result().accepted, future.result().errors
    finally:
        executor.shutdown()
        intake.destroy_node()
        intake.on_shutdown()


def test_intake_is_a_managed_node_that_takes_no_calls_while_inactive_and_loses_none(graph):
    """Deactivated (say, while its journal's disk is checked) it serves no calls, and callers retry; cleaned up
    and configured again, it replays its journal, and activated it publishes the open incidents again."""
    from rclpy.lifecycle import TransitionCallbackReturn as Result

    intake = graph.intake
    first = graph.report_call(**GOOD)
    assert first.accepted

    from dfr_interfaces.srv import ReportIncident
    # Whether a server is there, as a client sees it: matched by DDS (the ROS graph's lists lag under load).
    probe = graph.client_node.create_client(ReportIncident, "/dfr/report_incident")
    graph.spin_until(probe.service_is_ready, 10, "report_incident served")
    assert intake.trigger_deactivate() == Result.SUCCESS and not intake.served
    graph.spin_until(lambda: not probe.service_is_ready(), 10, "report_incident gone")
    assert intake.trigger_cleanup() == Result.SUCCESS and intake.journal is None
    assert intake.trigger_configure() == Result.SUCCESS
    assert first.incident_id in {r.incident_id for r in intake.book.open_incidents()}      # replayed
    late = []
    graph.client_node.create_subscription(Incident, "/dfr/incidents", late.append, qos.incidents(100))
    assert intake.trigger_activate() == Result.SUCCESS
    graph.spin_until(probe.service_is_ready, 10, "report_incident back")
    graph.spin_until(lambda: first.incident_id in {i.incident_id for i in late}, 10, "the open incident again")
    second = graph.report_call(**{**GOOD, "cad_ref": "CAD-2", "latitude": GOOD["latitude"] + 0.02})
    assert second.accepted and second.incident_id != first.incident_id


def test_an_intake_whose_journal_cannot_be_read_stays_unconfigured_and_is_configured_once_it_is_mended(
        ros_context, tmp_path):
    from rclpy.lifecycle import TransitionCallbackReturn as Result
    from rclpy.parameter import Parameter

    from dfr_intake.intake_node import IntakeNode

    journal = tmp_path / "journal.sqlite"
    journal.write_text("a page of notes, not a journal")
    area = Parameter("operating_area_file", value=str(REPO / "config" / "airspace" / "operating_area.geojson"))
    intake = IntakeNode(context=ros_context, namespace="dfr", parameter_overrides=[
        Parameter("journal_file", value=str(journal)), Parameter("autostart", value=False), area])
    try:
        assert intake.trigger_configure() == Result.FAILURE
        assert str(journal) in intake.configure_error and "not an SQLite database" in intake.configure_error
        journal.rename(tmp_path / "journal.sqlite.damaged")             # moved aside: a new journal is made
        assert intake.trigger_configure() == Result.SUCCESS and intake.trigger_activate() == Result.SUCCESS
    finally:
        intake.on_shutdown()
        intake.destroy_node()
    # Started on its own (autostart, as the runner and launch files do), the same fault ends it with the reason.
    (tmp_path / "bad.sqlite").write_text("not a journal either")
    with pytest.raises(ValueError, match="not an SQLite database"):
        IntakeNode(context=ros_context, namespace="dfr", parameter_overrides=[
            Parameter("journal_file", value=str(tmp_path / "bad.sqlite")), area])

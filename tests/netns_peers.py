"""The two ends of tests/test_across_hosts.py, each run as its own process in its own network namespace.

  python netns_peers.py listen            prints every incident id published on /dfr/incidents
  python netns_peers.py report N PERIOD   reports N calls to intake, one every PERIOD s; a call not answered
                                          within 2 s is reported again (intake answers a repeat as before);
                                          prints "accepted CAD-REF INC-ID" for each
  python netns_peers.py call REF LAT LON [sim] [--when FILE]
                                          reports one call, as above, then exits; with `sim`, stamped on
                                          sim time (/clock) as the graph's other nodes are; with --when,
                                          once FILE exists (the clock heard before, in case it stops)
  python netns_peers.py watch V1,V2       prints "status VEHICLE MISSION PHASE INCIDENT SIM_S" for every change
                                          of a drone's mission or phase it hears, on sim time
"""
import os
import sys
import time

import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter

from dfr_common.ros import qos
from dfr_interfaces.msg import Call, Incident
from dfr_interfaces.srv import ReportIncident


def listen(node: Node) -> None:
    seen = set()

    def on_incident(msg):
        if msg.incident_id not in seen:
            seen.add(msg.incident_id)
            print(f"incident {msg.incident_id}", flush=True)
    node.create_subscription(Incident, "/dfr/incidents", on_incident, qos.incidents(1000))
    rclpy.spin(node)


def report_one(node: Node, client, cad_ref: str, latitude: float, longitude: float) -> None:
    call = Call(cad_ref=cad_ref, grade="I", category="assault", latitude=latitude, longitude=longitude,
                location_uncertainty_m=20.0, description="assault in the street")
    call.call_time = node.get_clock().now().to_msg()
    while True:                                    # across a cut link: ask again until answered
        if not client.wait_for_service(timeout_sec=2.0):
            continue
        future = client.call_async(ReportIncident.Request(call=call))
        rclpy.spin_until_future_complete(node, future, timeout_sec=2.0)
        if future.done():
            answer = future.result()
            print(f"{'accepted' if answer.accepted else 'rejected'} {call.cad_ref} {answer.incident_id} "
                  f"{';'.join(answer.errors)}", flush=True)
            return
        client.remove_pending_request(future)


def report(node: Node, calls: int, period_s: float) -> None:
    client = node.create_client(ReportIncident, "/dfr/report_incident")
    for n in range(calls):
        report_one(node, client, f"CAD-NS-{n:03d}", 51.5412 + 0.003 * n, -0.1027)
        time.sleep(period_s)
    print("done", flush=True)


def watch(node: Node, vehicles: list[str]) -> None:
    from dfr_common.mission import Phase
    from dfr_interfaces.msg import VehicleStatus

    last = {}

    def on_status(msg):
        now = (msg.vehicle_id, msg.mission_id, Phase(msg.phase.value).name.lower())
        if last.get(msg.vehicle_id) != now:
            last[msg.vehicle_id] = now
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            print(f"status {msg.vehicle_id} {msg.mission_id or '-'} {now[2]} {msg.incident_id or '-'} {stamp:.1f}",
                  flush=True)
    for vehicle in vehicles:
        node.create_subscription(VehicleStatus, f"/{vehicle}/vehicle_status", on_status, qos.LATCHED_STATE)
    rclpy.spin(node)


def main() -> None:
    rclpy.init()
    args = sys.argv[1:]
    on_sim_time = "sim" in args
    when = args[args.index("--when") + 1] if "--when" in args else None
    node = Node(f"netns_{args[0]}", parameter_overrides=[Parameter("use_sim_time", value=on_sim_time)])
    while on_sim_time and node.get_clock().now().nanoseconds == 0:
        rclpy.spin_once(node, timeout_sec=0.1)
    while when and not os.path.exists(when):
        rclpy.spin_once(node, timeout_sec=0.1)
    if sys.argv[1] == "listen":
        listen(node)
    elif sys.argv[1] == "watch":
        watch(node, sys.argv[2].split(","))
    elif sys.argv[1] == "call":
        report_one(node, node.create_client(ReportIncident, "/dfr/report_incident"), sys.argv[2],
                   float(sys.argv[3]), float(sys.argv[4]))
    else:
        report(node, int(sys.argv[2]), float(sys.argv[3]))


if __name__ == "__main__":
    main()

"""The two ends of tests/test_across_hosts.py, each run as its own process in its own network namespace.

  python netns_peers.py listen            prints every incident id published on /dfr/incidents
  python netns_peers.py report N PERIOD   reports N calls to intake, one every PERIOD s; a call not answered
                                          within 2 s is reported again (intake answers a repeat as before);
                                          prints "accepted CAD-REF INC-ID" for each
"""
import sys
import time

import rclpy
from rclpy.node import Node

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


def report(node: Node, calls: int, period_s: float) -> None:
    client = node.create_client(ReportIncident, "/dfr/report_incident")
    for n in range(calls):
        call = Call(cad_ref=f"CAD-NS-{n:03d}", grade="I", category="assault", latitude=51.5412 + 0.003 * n,
                    longitude=-0.1027, location_uncertainty_m=20.0, description="assault in the street")
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
                break
            client.remove_pending_request(future)
        time.sleep(period_s)
    print("done", flush=True)


def main() -> None:
    rclpy.init()
    node = Node(f"netns_{sys.argv[1]}")
    if sys.argv[1] == "listen":
        listen(node)
    else:
        report(node, int(sys.argv[2]), float(sys.argv[3]))


if __name__ == "__main__":
    main()

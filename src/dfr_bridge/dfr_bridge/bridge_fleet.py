"""Every vehicle's bridge in one process, on one executor: for a simulated fleet on a small computer.

Nine bridge processes spend most of their CPU in the middleware: each has its own DDS
participant and wakes on its own for every /clock tick. In one process the bridges share a
participant and a wait. Each is still its own node, /<vehicle>/bridge, with the parameters,
topics, services and action it has alone. A real airframe's bridge runs alone beside its
MAVROS (launch/real.launch.py), and one killed alone (make soak) needs a process of its own.

The process's own node, bridge_fleet, holds only which vehicles to fly. The parameter files
and overrides given to the process (bridge.yaml's /**/bridge, use_sim_time, ...) reach every
bridge, as they would reach each bridge's own process.
"""
from __future__ import annotations

import sys

from dfr_bridge.bridge_node import BridgeNode
from dfr_common.fleet import fleet_and_vehicle_ids
from dfr_common.ros.lean_node import LeanNode
from dfr_common.ros.node_main import run
from dfr_common.ros.parameters import Param, declare


class BridgeFleet(LeanNode):
    def __init__(self, **kwargs):
        super().__init__("bridge_fleet", **kwargs)
        p = declare(self, [
            Param("fleet_file", "", "path of the fleet file (config/fleet/*.yaml): each vehicle's namespace and base"),
            Param("vehicles", [], "vehicle ids to fly; empty: every vehicle of the fleet"),
        ])
        fleet, vehicle_ids = fleet_and_vehicle_ids(p.fleet_file, p.vehicles)
        self.vehicles = [fleet.vehicles[v] for v in vehicle_ids]

    def bridges(self) -> list[BridgeNode]:
        """One bridge per vehicle. Its own arguments come before the process's: its name and
        namespace, and its vehicle and base, override the process's remaps and parameters."""
        made = []
        for vehicle in self.vehicles:
            made.append(BridgeNode(cli_args=[
                "--ros-args", "-r", "__node:=bridge", "-r", f"__ns:={vehicle.namespace}",
                "-p", f"vehicle_id:={vehicle.vehicle_id}", "-p", f"base_id:={vehicle.base_id}"]))
        self.get_logger().info(f"{len(made)} bridges in this process: "
                               f"{', '.join(node.get_fully_qualified_name() for node in made)}")
        return made


def make_nodes() -> list:
    fleet = BridgeFleet()
    return [fleet, *fleet.bridges()]


def main(args=None):
    sys.exit(run(make_nodes, args))


if __name__ == "__main__":
    main()

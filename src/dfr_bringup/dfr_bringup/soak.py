"""The soak (`make soak`): an hour of sim time of the embedded city scenario under a mix of faults.

The runner's graph, in separate processes, with faults struck in turn on whatever the fleet is
doing (dfr_bringup.soak_plan): intake, dispatch and a flying drone's bridge killed and started
again, a drone's MAVROS link dropped, its GPS lost, OFFBOARD refused to an idle drone, a battery
drained mid-chase. Every node's memory is sampled throughout. At the end the run's own record
(intake's journal, the audit log, metrics.json) is read back and soak.json says what was lost:
calls and incidents (must be none), missions aborted and why, and each node's memory growth.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import threading
import time
from pathlib import Path

from dfr_bringup.runner import add_run_arguments, prepare_run, run_graph
from dfr_bringup.soak_plan import (
    BATTERY_DRAIN,
    FAULT_KINDS,
    GPS_LOSS,
    KILL_BRIDGE,
    LINK_LOSS,
    PROCESS_OF,
    REFUSE_OFFBOARD,
    DroneSeen,
    FaultTiming,
    JournalIncident,
    choose_drone,
    fault_plan,
    soak_report,
    summary_lines,
)
from dfr_common import px4
from dfr_common.mission import Phase

WAITING_FOR_A_PILOT = px4.PILOT_MODES | {px4.AUTO_LOITER}


def rss_mib(pid: int) -> float | None:
    """Resident memory of a process (VmRSS), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        return None
    return None


class SoakWatch:
    """A node of the soak's own: hears the drones' status and sim time, strikes the simulator's faults
    through its inject_fault service, and hands process kills to the thread that owns the graph.

    It also stands in for the remote pilot. A failsafe that leaves a drone in a pilot mode (PX4's
    offboard-loss action with RC, COM_OBL_RC_ACT, config/sim.yaml) hands it to a pilot, and in the
    simulator no pilot comes: the drone would hover until its battery forced it home. A drone with
    no mission, armed and in a pilot mode or Hold for pilot_reaction_s, is sent home (AUTO.RTL through
    MAVROS's set_mode), as the control room's pilot would; each such order is in soak.json."""

    def __init__(self, vehicle_ids: list[str], plan, timing: FaultTiming, pilot_reaction_s: float = 30.0):
        import rclpy
        from mavros_msgs.srv import SetMode
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter import Parameter
        from rclpy.signals import SignalHandlerOptions

        from dfr_common.ros import qos
        from dfr_common.ros.lean_node import LeanNode
        from dfr_interfaces.msg import VehicleStatus
        from dfr_interfaces.srv import InjectFault

        self._InjectFault = InjectFault
        self.context = rclpy.Context()
        # The runner's own signal handling stops the graph; rclpy's would take SIGINT from it.
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = LeanNode("soak", namespace="/dfr", context=self.context,
                             parameter_overrides=[Parameter("use_sim_time", value=True)])
        self.vehicle_ids = vehicle_ids
        self.drones: dict[str, DroneSeen] = {}
        for vehicle_id in vehicle_ids:
            self.node.create_subscription(VehicleStatus, f"/{vehicle_id}/vehicle_status", self._on_status,
                                          qos.LATCHED_STATE)
        self.fault_client = self.node.create_client(InjectFault, "/sim/inject_fault")
        self._SetMode = SetMode
        self.mode_clients = {v: self.node.create_client(SetMode, f"/{v}/mavros/set_mode") for v in vehicle_ids}
        self.pilot_reaction_s = pilot_reaction_s
        self.waiting_since: dict[str, float] = {}     # drone -> since when it waits for a pilot
        self.pilot_orders: list[dict] = []
        self.pending = list(plan)
        self.timing = timing
        self.active: list[dict] = []          # simulator faults in force: vehicle_id, fault, argument, until_s
        self.faults: list[dict] = []          # what was struck, for soak.json
        self.kills: collections.deque = collections.deque()   # node names, for the graph's thread
        self.lock = threading.Lock()
        self.start_s: float | None = None
        self.node.create_timer(0.5, self._tick)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def elapsed_s(self) -> float:
        now = self.node.get_clock().now().nanoseconds * 1e-9
        if now <= 0.0:
            return 0.0
        if self.start_s is None:
            self.start_s = now
        return now - self.start_s

    def _on_status(self, msg) -> None:
        self.drones[msg.vehicle_id] = DroneSeen(msg.vehicle_id, msg.phase.value, msg.armed, msg.incident_id,
                                                msg.mission_id, msg.mode if msg.connected else "")

    def _stand_in_pilot(self, now: float) -> None:
        for vehicle_id, drone in self.drones.items():
            if not (drone.armed and not drone.mission_id and drone.mode in WAITING_FOR_A_PILOT):
                self.waiting_since.pop(vehicle_id, None)
                continue
            since = self.waiting_since.setdefault(vehicle_id, now)
            if now - since < self.pilot_reaction_s:
                continue
            self.waiting_since[vehicle_id] = now          # asked again after as long, if PX4 refused
            order = {"at_s": round(now, 1), "vehicle_id": vehicle_id, "mode_was": drone.mode, "order": px4.AUTO_RTL}
            with self.lock:
                self.pilot_orders.append(order)
            self.mode_clients[vehicle_id].call_async(self._SetMode.Request(base_mode=0, custom_mode=px4.AUTO_RTL))

    def _fleet(self) -> list[DroneSeen]:
        return [self.drones[v] for v in self.vehicle_ids if v in self.drones]

    def _record(self, fault, at_s: float, result: str, vehicle: str = "", detail: str = "") -> dict:
        record = {"planned_s": fault.at_s, "at_s": round(at_s, 1), "kind": fault.kind, "vehicle_id": vehicle,
                  "result": result, "detail": detail}
        with self.lock:
            self.faults.append(record)
        return record

    def _inject(self, vehicle_id: str, fault: str, active: bool, record: dict | None, argument: str = "",
                value: float = 0.0) -> None:
        request = self._InjectFault.Request(vehicle_id=vehicle_id, fault=fault, active=active, argument=argument,
                                            value=value)

        def answered(future):
            answer = future.result()
            if record is not None and (answer is None or not answer.success):
                record["result"] = "refused by the simulator"
                record["detail"] = "" if answer is None else answer.message
        self.fault_client.call_async(request).add_done_callback(answered)

    def _tick(self) -> None:
        now = self.elapsed_s()
        if now <= 0.0:
            return
        self._lift(now)
        self._stand_in_pilot(now)
        busy = frozenset(a["vehicle_id"] for a in self.active)
        for fault in list(self.pending):
            if fault.at_s > now:
                break
            if fault.kind in PROCESS_OF:
                self.pending.remove(fault)
                self.kills.append(PROCESS_OF[fault.kind])
                self._record(fault, now, "struck", detail=f"{PROCESS_OF[fault.kind]} killed and started again")
                continue
            vehicle_id = choose_drone(fault.kind, self._fleet(), busy)
            if vehicle_id is None:
                if now >= fault.give_up_s:
                    self.pending.remove(fault)
                    self._record(fault, now, "skipped", detail="no drone fit for it came by in time")
                continue
            self.pending.remove(fault)
            drone = self.drones[vehicle_id]
            phase = f"in {Phase(drone.phase).name.lower()}" + (f" on {drone.incident_id}" if drone.incident_id else "")
            record = self._record(fault, now, "struck", vehicle_id, phase)
            busy = busy | {vehicle_id}
            if fault.kind == KILL_BRIDGE:
                self.kills.append(f"/{vehicle_id}/bridge")
                continue
            sim_fault, argument, value, lasts = {
                LINK_LOSS: ("link_loss", "", 0.0, self.timing.link_loss_s),
                GPS_LOSS: ("gps_loss", "", 0.0, self.timing.gps_loss_s),
                REFUSE_OFFBOARD: ("refuse_mode", "OFFBOARD", 0.0, self.timing.refuse_offboard_s),
                BATTERY_DRAIN: ("battery_drain", "", self.timing.battery_drain_multiplier, None),
            }[fault.kind]
            self._inject(vehicle_id, sim_fault, True, record, argument, value)
            self.active.append({"vehicle_id": vehicle_id, "fault": sim_fault, "argument": argument,
                                "until_s": None if lasts is None else now + lasts})

    def _lift(self, now: float) -> None:
        """Timed faults end on time; a drained battery's drain ends once its drone is down and disarmed."""
        for active in list(self.active):
            drone = self.drones.get(active["vehicle_id"])
            if active["until_s"] is not None:
                done = now >= active["until_s"]
            else:
                done = drone is not None and not drone.armed
            if done:
                self.active.remove(active)
                self._inject(active["vehicle_id"], active["fault"], False, None, active["argument"])

    def take_kills(self) -> list[str]:
        names = []
        while self.kills:
            names.append(self.kills.popleft())
        return names

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.context.try_shutdown()


def read_record(run_dir: Path, scenario_file: Path) -> tuple[list[str], list[JournalIncident], dict, list[dict]]:
    """The run's own record: the scenario's calls, intake's journal, metrics.json and the audit log."""
    from dfr_audit.audit_log import read_entries
    from dfr_intake.journal import Journal
    from dfr_intake.scenario import load_scenario

    calls = [c.cad_ref for c in load_scenario(scenario_file).calls]
    with Journal(run_dir / "intake_journal.sqlite") as journal:
        book = journal.replay()
    incidents = [JournalIncident(r.incident_id, tuple(c.cad_ref for c in r.calls), r.drone_eligible, r.open)
                 for r in book.incidents.values()]
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    audit = [{"kind": e.kind.value, "vehicle_id": e.vehicle_id, "mission_id": e.mission_id,
              "incident_id": e.incident_id, "detail": e.detail}
             for e in read_entries(run_dir / "audit_log.sqlite")]
    return calls, incidents, metrics, audit


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(parser, scenario="scenarios/islington_soak.yaml")
    parser.add_argument("--fault-period-s", type=float, default=240.0, help="sim seconds between faults")
    parser.add_argument("--first-fault-s", type=float, default=240.0,
                        help="sim time of the first fault (a battery drained; the scenario's chase is on by then)")
    parser.add_argument("--faults", default=",".join(FAULT_KINDS),
                        help=f"the kinds struck in turn, comma-separated; of {', '.join(FAULT_KINDS)}")
    parser.add_argument("--seed", type=int, default=1, help="seed of the faults' timing")
    parser.add_argument("--memory-period-s", type=float, default=5.0, help="wall seconds between memory samples")
    parser.add_argument("--warm-up-s", type=float, default=300.0,
                        help="sim seconds before memory growth is counted (start-up, first flights)")
    # A bridge killed alone needs a process of its own.
    parser.set_defaults(bridge_processes="per-vehicle")
    args = parser.parse_args(argv)
    if args.bridge_processes == "one" and KILL_BRIDGE in [k.strip() for k in args.faults.split(",")]:
        parser.error(f"--faults has {KILL_BRIDGE}: a bridge is killed alone only with --bridge-processes per-vehicle")

    from dfr_bringup.middleware import middleware_environment
    from dfr_common.fleet import load_fleet
    from dfr_intake.scenario import load_scenario

    run, specs = prepare_run(args)
    scenario = load_scenario(run.scenario_file)
    calls_end_s = max((c.at_s for c in scenario.calls), default=0.0)
    try:
        plan = fault_plan(calls_end_s, args.fault_period_s, args.first_fault_s, args.seed,
                          tuple(k.strip() for k in args.faults.split(",") if k.strip()))
    except ValueError as err:
        raise SystemExit(f"soak: {err}") from err
    fleet_ids = list(load_fleet(run.fleet_file).vehicles)
    flown = fleet_ids[:args.vehicles] if args.vehicles else fleet_ids
    print(f"[soak] {len(plan)} faults over {calls_end_s:.0f} s of calls, one every {args.fault_period_s:.0f} s",
          flush=True)
    os.environ.update(middleware_environment(run.config_dir))
    watch = SoakWatch(flown, plan, FaultTiming())
    memory: dict[str, list[tuple[float, float, int]]] = {}
    next_sample = [0.0]

    def on_tick(graph) -> None:
        for name in watch.take_kills():
            pid = graph.restart(name)
            print(f"[soak] {watch.elapsed_s():.0f} s: {name} killed and started again (pid {pid})", flush=True)
        if time.monotonic() >= next_sample[0]:
            next_sample[0] = time.monotonic() + args.memory_period_s
            now = watch.elapsed_s()
            for name, process in graph.processes.items():
                rss = rss_mib(process.pid)
                if rss is not None:
                    memory.setdefault(name, []).append((round(now, 1), round(rss, 2), process.pid))
    try:
        code = run_graph(run, specs, args, on_tick=on_tick)
    finally:
        watch.close()
    with watch.lock:
        faults, pilot_orders = list(watch.faults), list(watch.pilot_orders)
    faults += [{"planned_s": f.at_s, "at_s": None, "kind": f.kind, "vehicle_id": "", "result": "not reached",
                "detail": "the run ended first"} for f in watch.pending]
    calls, incidents, metrics, audit = read_record(run.output_dir, run.scenario_file)
    report = soak_report(calls, incidents, metrics, audit, faults, memory, args.warm_up_s)
    report["runner_exit_code"] = code
    report["pilot_orders"] = pilot_orders
    report["passed"] = report["passed"] and code == 0
    (run.output_dir / "soak.json").write_text(json.dumps(report, indent=2) + "\n")
    for line in summary_lines(report):
        print(f"[soak] {line}", flush=True)
    print(f"[soak] soak.json: {run.output_dir / 'soak.json'}", flush=True)
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

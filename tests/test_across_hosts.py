"""The control room and a base on separate hosts: two network namespaces joined by a veth pair, created here,
with DDS discovery through a Fast DDS discovery server in the control room (no multicast between them).

Calls come from the base's side to intake in the control room while the base's link is cut for a few seconds
and restored: every call is answered once, and every incident reaches the control room's listener. Then the
whole graph split the same way, with a drone in the air while its base is cut off: it flies its orders, and
the control room loses nothing. Needs root for `ip netns` (skipped otherwise, with the reason).
"""
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PEERS = Path(__file__).resolve().parent / "netns_peers.py"
SERVER_PORT = 11811                  # config/dds/discovery_server.xml
AREA = str(REPO / "config" / "airspace" / "operating_area.geojson")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class _Lines:
    """A process's stdout, read line by line on a thread, for the test to wait on."""

    def __init__(self, process: subprocess.Popen):
        self.process, self.lines = process, []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line.strip())

    def wait_for(self, predicate, timeout_s: float, what: str):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(list(self.lines)):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{what}: not within {timeout_s:.0f} s; output so far: {self.lines[-20:]}")


@pytest.fixture
def two_hosts():
    """Namespaces 'control room' (10.77.<k>.1) and 'base' (10.77.<k>.2) on one link; removed afterwards."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2 (`ip netns`)")
    k = os.getpid() % 200 + 20
    control, base, link = f"dfrcr{k}", f"dfrbase{k}", (f"dfrv{k}a", f"dfrv{k}b")
    try:
        _ip("netns", "add", control)
    except subprocess.CalledProcessError as err:
        pytest.skip(f"cannot create a network namespace here: {err.stderr.strip()}")
    try:
        _ip("netns", "add", base)
        _ip("link", "add", link[0], "type", "veth", "peer", "name", link[1])
        for ns, end, address in ((control, link[0], f"10.77.{k}.1/24"), (base, link[1], f"10.77.{k}.2/24")):
            _ip("link", "set", end, "netns", ns)
            _ip("-n", ns, "addr", "add", address, "dev", end)
            _ip("-n", ns, "link", "set", end, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield control, base, link[1], f"10.77.{k}.1"
    finally:
        for ns in (control, base):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


class _Hosts:
    """Processes started in the two namespaces, each told to find the graph through the discovery server."""

    def __init__(self, server_ip: str):
        self.env = {key: value for key, value in os.environ.items()
                    if key not in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS",
                                   "FASTRTPS_DEFAULT_PROFILES_FILE")}
        self.env.update(ROS_DISCOVERY_SERVER=f"{server_ip}:{SERVER_PORT}", ROS_DOMAIN_ID="0", PYTHONUNBUFFERED="1")
        self.processes: list[subprocess.Popen] = []

    def start(self, ns: str, *command) -> subprocess.Popen:
        process = subprocess.Popen(["ip", "netns", "exec", ns, *map(str, command)], env=self.env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def node(self, ns: str, package: str, executable: str, name: str, namespace: str, param_files=(), **params):
        command = [sys.executable, REPO / "install" / package / "lib" / package / executable, "--ros-args",
                   "-r", f"__node:={name}", "-r", f"__ns:={namespace}"]
        for file in param_files:
            command += ["--params-file", REPO / "config" / file]
        for key, value in params.items():
            command += ["-p", f"{key}:={json.dumps(value)}"]      # YAML; quotes keep strings strings
        return _Lines(self.start(ns, *command))

    def stop(self):
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _discovery_server(hosts: _Hosts, control: str, server_ip: str) -> None:
    server = shutil.which("fast-discovery-server", path=str(Path(sys.executable).parent))
    assert server, "fast-discovery-server is installed with Fast DDS"
    hosts.start(control, server, "-x", REPO / "config" / "dds" / "discovery_server.xml", "-l", server_ip)


def test_calls_from_a_base_reach_the_control_room_across_a_cut_link_and_none_is_lost(two_hosts, tmp_path):
    control, base, base_link, server_ip = two_hosts
    hosts = _Hosts(server_ip)
    try:
        _discovery_server(hosts, control, server_ip)
        hosts.node(control, "dfr_intake", "intake_node", "intake", "/dfr", ("intake.yaml",),
                   operating_area_file=AREA, journal_file=str(tmp_path / "journal.sqlite"))
        listener = _Lines(hosts.start(control, sys.executable, PEERS, "listen"))
        calls = 12
        reporter = _Lines(hosts.start(base, sys.executable, PEERS, "report", calls, 0.5))

        def accepted(lines):
            return [line.split() for line in lines if line.startswith("accepted")]
        reporter.wait_for(lambda lines: len(accepted(lines)) >= 4, 60, "four calls answered across the link")
        _ip("-n", base, "link", "set", base_link, "down")          # the base's link is cut ...
        before = len(accepted(reporter.lines))
        time.sleep(4.0)
        cut_off = len(accepted(reporter.lines)) <= before + 1      # (one answer may have been on its way)
        _ip("-n", base, "link", "set", base_link, "up")            # ... and restored
        assert cut_off, f"calls were still answered with the link down: {reporter.lines}"
        reporter.wait_for(lambda lines: "done" in lines, 90, "every call answered")
        answers = accepted(reporter.lines)
        assert [a[1] for a in answers] == [f"CAD-NS-{n:03d}" for n in range(calls)], reporter.lines
        incidents = {a[2] for a in answers}
        assert len(incidents) == calls                       # each call answered once, each its own incident
        listener.wait_for(lambda lines: {line.split()[1] for line in lines if line.startswith("incident")}
                          >= incidents, 30, "every incident published to the control room")
    finally:
        hosts.stop()


def _statuses(lines, vehicle=None):
    return [line.split() for line in lines if line.startswith("status") and (vehicle is None or
                                                                              line.split()[1] == vehicle)]


def test_a_base_cut_off_with_a_drone_in_the_air_flies_its_orders_and_the_control_room_loses_nothing(
        two_hosts, tmp_path):
    """The simulator and the bridges (the base, with its drones) in one namespace; intake, dispatch and the CAD
    client (the control room) in the other. A drone is sent, and its base's link is cut while it flies: the
    bridge flies its orders on to the scene without the control room, a call taken meanwhile waits in the
    control room, and once the link is back the first incident counts as attended, no second drone was sent to
    it, and the new call gets a drone. Sim time comes from the base over the link: the control room's clock
    stands still while it is cut, so what it sees afterwards is what it missed, not a timeout."""
    control, base, base_link, server_ip = two_hosts
    fleet = str(REPO / "tests" / "fixtures" / "fleet_two_bases.yaml")
    vehicles = ("uav1", "uav2", "uav3")
    hosts = _Hosts(server_ip)
    seen: dict[str, _Lines] = {}
    try:
        _discovery_server(hosts, control, server_ip)
        clock = {"use_sim_time": True}
        intake = hosts.node(control, "dfr_intake", "intake_node", "intake", "/dfr", ("intake.yaml",), **clock,
                            operating_area_file=AREA, journal_file=str(tmp_path / "journal.sqlite"))
        dispatch = hosts.node(control, "dfr_dispatch", "dispatch_node", "dispatch", "/dfr",
                              ("dispatch.yaml", "flight_rules.yaml"), **clock, fleet_file=fleet,
                              record_file=str(tmp_path / "dispatch_record.sqlite"), on_scene_duration_s=20.0,
                              standoff_radius_m=0.0, cruise_altitude_m=40.0)
        control_view = _Lines(hosts.start(control, sys.executable, PEERS, "watch", ",".join(vehicles)))
        sim = hosts.node(base, "dfr_sim", "sim_node", "sim", "/", ("sim.yaml",), fleet_file=fleet, speed=4.0,
                         geofence_file=AREA, frame_sync_topic="")
        bridges = []
        for vehicle in vehicles:
            bridges.append(hosts.node(
                base, "dfr_bridge", "bridge_node", "bridge", f"/{vehicle}", ("bridge.yaml", "flight_rules.yaml"),
                **clock, vehicle_id=vehicle, base_id="stoke_newington" if vehicle == "uav3" else "islington",
                permitted_area_file=AREA))
        base_view = _Lines(hosts.start(base, sys.executable, PEERS, "watch", ",".join(vehicles)))
        seen.update(sim=sim, bridge_uav1=bridges[0], dispatch=dispatch, intake=intake, base_view=base_view,
                    control_view=control_view)
        dispatch.wait_for(lambda lines: any("dispatching 3 vehicles" in line for line in lines), 60, "dispatch up")
        base_view.wait_for(lambda lines: {s[1] for s in _statuses(lines)} == set(vehicles), 60,
                           "every drone's status at its base")
        control_view.wait_for(lambda lines: {s[1] for s in _statuses(lines)} == set(vehicles), 60,
                              "every drone's status in the control room")

        first = _Lines(hosts.start(control, sys.executable, PEERS, "call", "CAD-CUT-1", 51.5412, -0.1027, "sim"))
        first.wait_for(lambda lines: any(line.startswith("accepted") for line in lines), 30, "the first call")
        incident = next(line.split()[2] for line in first.lines if line.startswith("accepted"))
        base_view.wait_for(lambda lines: any(s[3] == "transit" and s[4] == incident for s in _statuses(lines)), 90,
                           "a drone in transit to the incident")
        drone = next(s[1] for s in _statuses(base_view.lines) if s[3] == "transit" and s[4] == incident)

        go = tmp_path / "second call"           # a CAD client that has the time, to call once the base is cut off
        second = _Lines(hosts.start(control, sys.executable, PEERS, "call", "CAD-CUT-2", 51.5560, -0.0790, "sim",
                                    "--when", go))
        time.sleep(2.0)
        _ip("-n", base, "link", "set", base_link, "down")          # the base is cut off ...
        seen_by_control = len(control_view.lines)
        go.touch()
        second.wait_for(lambda lines: any(line.startswith("accepted") for line in lines), 30,
                        "intake, in the control room, taking a call while the base is cut off")
        base_view.wait_for(lambda lines: any(s[1] == drone and s[3] == "on_scene" for s in _statuses(lines)), 60,
                           "the drone flying on to the scene with its base cut off")
        heard_meanwhile = control_view.lines[seen_by_control:]
        _ip("-n", base, "link", "set", base_link, "up")            # ... and back
        assert not heard_meanwhile, f"the control room heard the base through a cut link: {heard_meanwhile}"

        dispatch.wait_for(lambda lines: any(f"{incident} " in line and "succeeded" in line for line in lines)
                          or any(f"-{incident}-" in line and "succeeded" in line for line in lines), 120,
                          "the first mission's end reaching dispatch")
        second_incident = next(line.split()[2] for line in second.lines if line.startswith("accepted"))
        dispatch.wait_for(lambda lines: any(f"{second_incident} (grade" in line and "sending" in line
                                            for line in lines), 60, "a drone sent to the call taken meanwhile")
        sent_to_first = [line for line in dispatch.lines if f"{incident} (grade" in line and "sending" in line]
        assert len(sent_to_first) == 1, sent_to_first              # no second drone for the first incident
        assert not any(f"{incident} goes back in the queue" in line or f"{incident}: " in line and "lost" in line
                       for line in dispatch.lines), dispatch.lines[-20:]
        assert intake.process.poll() is None and dispatch.process.poll() is None
    except AssertionError as err:
        story = "\n".join(f"--- {name}:\n" + "\n".join(lines.lines[-15:]) for name, lines in seen.items())
        raise AssertionError(f"{err}\n{story}") from None
    finally:
        hosts.stop()

"""The control room and a base on separate hosts: two network namespaces joined by a veth pair, created here,
with DDS discovery through a Fast DDS discovery server in the control room (no multicast between them).

Calls come from the base's side to intake in the control room while the base's link is cut for a few seconds
and restored: every call is answered once, and every incident reaches the control room's listener. Needs
root for `ip netns` (skipped otherwise, with the reason).
"""
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


def test_calls_from_a_base_reach_the_control_room_across_a_cut_link_and_none_is_lost(two_hosts, tmp_path):
    control, base, base_link, server_ip = two_hosts
    env = {key: value for key, value in os.environ.items()
           if key not in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS", "FASTRTPS_DEFAULT_PROFILES_FILE")}
    env.update(ROS_DISCOVERY_SERVER=f"{server_ip}:{SERVER_PORT}", ROS_DOMAIN_ID="0", PYTHONUNBUFFERED="1")
    server = shutil.which("fast-discovery-server", path=str(Path(sys.executable).parent))
    assert server, "fast-discovery-server is installed with Fast DDS"
    intake = REPO / "install" / "dfr_intake" / "lib" / "dfr_intake" / "intake_node"
    processes = []

    def start(ns: str, *command) -> subprocess.Popen:
        process = subprocess.Popen(["ip", "netns", "exec", ns, *map(str, command)], env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        processes.append(process)
        return process
    try:
        start(control, server, "-x", REPO / "config" / "dds" / "discovery_server.xml", "-l", server_ip)
        start(control, sys.executable, intake, "--ros-args", "-r", "__node:=intake", "-r", "__ns:=/dfr",
              "--params-file", REPO / "config" / "intake.yaml",
              "-p", f"operating_area_file:={REPO / 'config' / 'airspace' / 'operating_area.geojson'}",
              "-p", f"journal_file:={tmp_path / 'journal.sqlite'}")
        listener = _Lines(start(control, sys.executable, PEERS, "listen"))
        calls = 12
        reporter = _Lines(start(base, sys.executable, PEERS, "report", calls, 0.5))

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
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

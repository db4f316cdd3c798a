"""DDS security (SROS2), as far as it can be tried here.

The Fast DDS of ROS 2's PyPI wheels is built without its security plugins, so no encrypted,
authenticated graph runs on these machines (README, Across machines: Security). What rcl itself
enforces can be shown: with ROS_SECURITY_ENABLE=true and the Enforce strategy, a dfr node whose
enclave is not in the keystore refuses to start, in one line naming the keystore, rather than join
the graph unprotected; with the Permissive strategy it starts.
"""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INTAKE = REPO / "install" / "dfr_intake" / "lib" / "dfr_intake" / "intake_node"


def _start_intake(tmp_path, strategy: str, seconds: float = 6.0):
    env = {**os.environ, "ROS_SECURITY_ENABLE": "true", "ROS_SECURITY_STRATEGY": strategy,
           "ROS_SECURITY_KEYSTORE": str(tmp_path / "keystore"),
           "ROS_DOMAIN_ID": str(1 + (int(os.environ["ROS_DOMAIN_ID"]) + 80) % 100)}
    (tmp_path / "keystore" / "enclaves").mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(INTAKE), "--ros-args", "-r", "__node:=intake", "-r", "__ns:=/dfr",
               "--enclave", "/dfr/intake", "--params-file", str(REPO / "config" / "intake.yaml"),
               "-p", f"operating_area_file:={REPO / 'config' / 'airspace' / 'operating_area.geojson'}",
               "-p", f"journal_file:={tmp_path / 'journal.sqlite'}"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=seconds, env=env)
        return result.returncode, result.stdout + result.stderr
    except subprocess.TimeoutExpired as running:
        return None, (running.stdout or b"").decode() + (running.stderr or b"").decode()


def test_a_node_without_its_enclave_refuses_to_start_when_security_is_enforced(tmp_path):
    code, output = _start_intake(tmp_path, "Enforce")
    assert code == 2, output
    assert "cannot start" in output and "SECURITY ERROR" in output and str(tmp_path / "keystore") in output
    assert "Traceback" not in output and not (tmp_path / "journal.sqlite").exists()


def test_the_permissive_strategy_lets_it_start_unprotected(tmp_path):
    code, output = _start_intake(tmp_path, "Permissive")
    assert code is None, output                    # still running when the test stopped it: it started
    assert "intake ready" in output or (tmp_path / "journal.sqlite").exists(), output

"""launch/px4_sitl.launch.py and launch/real.launch.py, run against stand-ins for the launch API.

Neither PX4, Gazebo, MAVROS nor `ros2 launch` is installed here, so each file is
executed with stand-in actions that record what they are given (tests/launch_standins.py)
and the result is checked against what PX4 SITL, MAVROS and ros_gz expect: one PX4
process per vehicle with its instance, environment and dock pose; one MAVROS per vehicle
in /<vehicle>/mavros on the instance's UDP ports, without a name override; the camera
and /clock bridges; and the same DFR nodes, parameter files and values as the
embedded-simulator graph, less the simulator and the camera renderer.
"""
from __future__ import annotations

import ast
import dataclasses
import sys
from pathlib import Path

import pymap3d
import pytest
import yaml

from dfr_bringup.airframes import AirframeConfigError
from dfr_bringup.graph import LaunchArgumentError, SimRun, sim_graph

sys.path.insert(0, str(Path(__file__).resolve().parent))
from launch_standins import of_type, parameters_of, run_launch_file  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config"
SITL_LAUNCH = REPO / "launch" / "px4_sitl.launch.py"
REAL_LAUNCH = REPO / "launch" / "real.launch.py"
SCENARIO = CONFIG / "scenarios" / "foundation_single_call.yaml"
MAVROS_SHARE = "/opt/ros/jazzy/share/mavros"
SHARES = {"mavros": MAVROS_SHARE, "ros_gz_bridge": "/opt/ros/jazzy/share/ros_gz_bridge"}
FLEET = yaml.safe_load((CONFIG / "fleet" / "islington.yaml").read_text())
VEHICLES = [v["id"] for v in FLEET["vehicles"]]


@pytest.fixture
def px4_dir(tmp_path):
    """A PX4-Autopilot checkout as far as the launch file looks: the SITL binary."""
    binary = tmp_path / "PX4-Autopilot" / "build" / "px4_sitl_default" / "bin" / "px4"
    binary.parent.mkdir(parents=True)
    binary.write_text("")
    return binary.parents[3]


def run_sitl(monkeypatch, tmp_path, px4_dir, shares=SHARES, **arguments):
    return run_launch_file(monkeypatch, SITL_LAUNCH,
                           {"px4_dir": str(px4_dir), "output_dir": str(tmp_path / "run"), **arguments}, shares)


def run_real(monkeypatch, tmp_path, shares=SHARES, **arguments):
    return run_launch_file(monkeypatch, REAL_LAUNCH, {"output_dir": str(tmp_path / "run"), **arguments}, shares)


def px4_processes(actions) -> list:
    """ExecuteProcess actions, started at once or behind a TimerAction, with their delay."""
    found = [(p, 0.0) for p in of_type(actions, "ExecuteProcess")]
    for timer in of_type(actions, "TimerAction"):
        found += [(p, timer.kwargs["period"]) for p in of_type(timer.kwargs["actions"], "ExecuteProcess")]
    return sorted(found, key=lambda item: int(item[0].kwargs["cmd"][item[0].kwargs["cmd"].index("-i") + 1]))


def nodes_of(actions, package: str) -> list:
    return [n for n in of_type(actions, "Node") if n.kwargs["package"] == package]


def dfr_launched(actions) -> list:
    return [n for n in of_type(actions, "Node") if n.kwargs["package"].startswith("dfr_")]


def embedded_graph(output_dir: Path, leave_out=("sim", "camera")):
    """The embedded graph less the simulator and its cameras; its recorder then has no camera to score the
    chase through (that needs the embedded simulator's ground truth), and perception no lockstep to queue
    images for."""
    specs = sim_graph(SimRun(CONFIG, CONFIG / "fleet" / "islington.yaml", SCENARIO, output_dir,
                             bridges_in_one_process=False))        # a bridge beside each airframe's MAVROS
    return [dataclasses.replace(s, overrides={k: v for k, v in s.overrides.items()
                                              if not k.startswith("camera_") and k != "image_queue_depth"})
            for s in specs if s.name not in leave_out]


def expected_pose(vehicle: dict) -> tuple[float, float]:
    """The dock in ENU metres from the first base, worked out here with pymap3d alone."""
    first = FLEET["bases"][0]
    base = next(b for b in FLEET["bases"] if b["id"] == vehicle["base"])
    h = FLEET["site"]["ground_amsl_m"] + FLEET["site"]["geoid_undulation_m"]
    east_dock, north_dock = vehicle.get("dock", [0.0, 0.0])
    lat, lon, alt = pymap3d.enu2geodetic(east_dock, north_dock, 0.0, base["latitude"], base["longitude"], h)
    east, north, _ = pymap3d.geodetic2enu(lat, lon, alt, first["latitude"], first["longitude"], h)
    return east, north


# ------------------------------------------------------------------------ PX4 SITL
def test_sitl_starts_one_px4_per_vehicle_with_its_instance_environment_and_dock(monkeypatch, tmp_path, px4_dir):
    actions = run_sitl(monkeypatch, tmp_path, px4_dir)
    processes = px4_processes(actions)
    assert len(processes) == len(VEHICLES) == 9
    first_base = FLEET["bases"][0]
    for i, ((process, delay), vehicle) in enumerate(zip(processes, FLEET["vehicles"])):
        cmd = process.kwargs["cmd"]
        assert cmd[0] == str(px4_dir / "build" / "px4_sitl_default" / "bin" / "px4")
        assert cmd[cmd.index("-i") + 1] == str(i)
        env = process.kwargs["additional_env"]
        assert env["PX4_SYS_AUTOSTART"] == "4001"
        assert env["PX4_SIM_MODEL"] == "gz_x500_mono_cam"
        assert env["PX4_GZ_WORLD"] == "default"
        assert float(env["PX4_HOME_LAT"]) == pytest.approx(first_base["latitude"], abs=1e-7)
        assert float(env["PX4_HOME_LON"]) == pytest.approx(first_base["longitude"], abs=1e-7)
        assert float(env["PX4_HOME_ALT"]) == pytest.approx(FLEET["site"]["ground_amsl_m"])
        x, y = (float(v) for v in env["PX4_GZ_MODEL_POSE"].split(","))
        east, north = expected_pose(vehicle)
        assert (x, y) == (pytest.approx(east, abs=0.01), pytest.approx(north, abs=0.01)), vehicle["id"]
        if i == 0:      # starts Gazebo, at once
            assert "PX4_GZ_STANDALONE" not in env and delay == 0.0
        else:           # joins it, once it is up
            assert env["PX4_GZ_STANDALONE"] == "1" and delay > 0.0
        assert "HEADLESS" not in env
    poses = {v["id"]: p[0].kwargs["additional_env"]["PX4_GZ_MODEL_POSE"] for v, p in zip(FLEET["vehicles"], processes)}
    assert poses["uav1"] == "-6.00,0.00" and poses["uav2"] == "0.00,0.00" and poses["uav3"] == "6.00,0.00"
    # Kentish Town is north-west of Islington, Stoke Newington north-east, kilometres away.
    x4, y4 = (float(v) for v in poses["uav4"].split(","))
    x7, y7 = (float(v) for v in poses["uav7"].split(","))
    assert x4 < -1500 and y4 > 1500 and x7 > 2000 and y7 > 2000


def test_sitl_world_and_headless_reach_px4(monkeypatch, tmp_path, px4_dir):
    actions = run_sitl(monkeypatch, tmp_path, px4_dir, world="baylands", headless="true")
    processes = px4_processes(actions)
    assert {p.kwargs["additional_env"]["PX4_GZ_WORLD"] for p, _ in processes} == {"baylands"}
    assert processes[0][0].kwargs["additional_env"]["HEADLESS"] == "1"
    bridges = [b for b in nodes_of(actions, "ros_gz_bridge") if b.kwargs["name"] == "camera_bridge"]
    assert all(arg.startswith("/world/baylands/") for b in bridges for arg in b.kwargs["arguments"])


def test_sitl_starts_one_mavros_per_vehicle_on_its_instance_ports_without_a_name(monkeypatch, tmp_path, px4_dir):
    mavros = nodes_of(run_sitl(monkeypatch, tmp_path, px4_dir), "mavros")
    assert len(mavros) == len(VEHICLES)
    for i, (node, vehicle_id) in enumerate(zip(mavros, VEHICLES)):
        assert node.kwargs["executable"] == "mavros_node"
        assert node.kwargs["namespace"] == f"/{vehicle_id}/mavros"
        assert "name" not in node.kwargs
        files, values = parameters_of(node)
        assert files == [f"{MAVROS_SHARE}/launch/px4_pluginlists.yaml", f"{MAVROS_SHARE}/launch/px4_config.yaml"]
        assert values["fcu_url"] == f"udp://:{14540 + i}@127.0.0.1:{14580 + i}"
        assert values["tgt_system"] == i + 1 and values["tgt_component"] == 1
        assert values["use_sim_time"] is True


def test_sitl_bridges_each_camera_and_the_clock(monkeypatch, tmp_path, px4_dir):
    bridges = nodes_of(run_sitl(monkeypatch, tmp_path, px4_dir), "ros_gz_bridge")
    assert all(b.kwargs["executable"] == "parameter_bridge" for b in bridges)
    clock = [b for b in bridges if b.kwargs["name"] == "clock_bridge"]
    assert len(clock) == 1 and clock[0].kwargs["arguments"] == ["/clock@rosgraph_msgs/msg/Clock[gz.msgs.Clock"]
    cameras = [b for b in bridges if b.kwargs["name"] == "camera_bridge"]
    assert [b.kwargs["namespace"] for b in cameras] == [f"/{v}" for v in VEHICLES]
    for i, (bridge, vehicle_id) in enumerate(zip(cameras, VEHICLES)):
        sensor = f"/world/default/model/x500_mono_cam_{i}/link/mono_cam/base_link/sensor/imager"
        assert bridge.kwargs["arguments"] == [f"{sensor}/image@sensor_msgs/msg/Image[gz.msgs.Image",
                                              f"{sensor}/camera_info@sensor_msgs/msg/CameraInfo[gz.msgs.CameraInfo"]
        assert dict(bridge.kwargs["remappings"]) == {f"{sensor}/image": f"/{vehicle_id}/camera/image_raw",
                                                     f"{sensor}/camera_info": f"/{vehicle_id}/camera/camera_info"}
        assert parameters_of(bridge)[1]["use_sim_time"] is True


def test_sitl_starts_the_embedded_graph_less_simulator_and_cameras_on_sim_time(monkeypatch, tmp_path, px4_dir):
    actions = run_sitl(monkeypatch, tmp_path, px4_dir)
    launched = dfr_launched(actions)
    specs = embedded_graph(tmp_path / "run")
    assert [(n.kwargs["package"], n.kwargs["executable"], n.kwargs["name"], n.kwargs["namespace"])
            for n in launched] == [(s.package, s.executable, s.name, s.namespace) for s in specs]
    for node, spec in zip(launched, specs):
        assert parameters_of(node) == ([str(CONFIG / f) for f in spec.param_files], spec.overrides)
        assert parameters_of(node)[1]["use_sim_time"] is True
    assert not [n for n in launched if n.kwargs["name"] in ("sim", "camera")]
    handlers = of_type(actions, "RegisterEventHandler")
    assert len(handlers) == 1
    on_exit = handlers[0].args[0]
    assert on_exit.kwargs["target_action"].kwargs["name"] == "run_recorder"
    assert type(on_exit.kwargs["on_exit"][0].kwargs["event"]).__name__ == "Shutdown"


def test_sitl_with_a_subset_of_vehicles_keeps_their_fleet_instances(monkeypatch, tmp_path, px4_dir):
    actions = run_sitl(monkeypatch, tmp_path, px4_dir, vehicles="uav5, uav2")
    processes = px4_processes(actions)
    assert [p.kwargs["cmd"][p.kwargs["cmd"].index("-i") + 1] for p, _ in processes] == ["1", "4"]
    first, second = (p.kwargs["additional_env"] for p, _ in processes)
    assert "PX4_GZ_STANDALONE" not in first and second["PX4_GZ_STANDALONE"] == "1"
    assert [(n.kwargs["namespace"], parameters_of(n)[1]["fcu_url"], parameters_of(n)[1]["tgt_system"])
            for n in nodes_of(actions, "mavros")] == [("/uav2/mavros", "udp://:14541@127.0.0.1:14581", 2),
                                                      ("/uav5/mavros", "udp://:14544@127.0.0.1:14584", 5)]
    assert [b.kwargs["namespace"] for b in nodes_of(actions, "ros_gz_bridge")] == ["/", "/uav2", "/uav5"]
    assert [n.kwargs["namespace"] for n in dfr_launched(actions) if n.kwargs["name"] == "bridge"] == ["/uav2",
                                                                                                      "/uav5"]


def test_sitl_a_single_vehicle_starts_gazebo_itself(monkeypatch, tmp_path, px4_dir):
    (process, delay), = px4_processes(run_sitl(monkeypatch, tmp_path, px4_dir, vehicles="uav8"))
    assert process.kwargs["cmd"][process.kwargs["cmd"].index("-i") + 1] == "7"
    assert "PX4_GZ_STANDALONE" not in process.kwargs["additional_env"] and delay == 0.0


def test_sitl_without_a_scenario_has_no_scenario_feed(monkeypatch, tmp_path, px4_dir):
    launched = dfr_launched(run_sitl(monkeypatch, tmp_path, px4_dir, scenario=""))
    assert "scenario_feed" not in [n.kwargs["name"] for n in launched]
    recorder = next(n for n in launched if n.kwargs["name"] == "run_recorder")
    assert parameters_of(recorder)[1]["scenario_file"] == ""


@pytest.mark.parametrize("vehicles, message", [("uav1,uav12", "'uav12' not in the fleet file"),
                                               ("uav1,uav1", "'uav1' named more than once")])
def test_sitl_refuses_bad_vehicle_lists(monkeypatch, tmp_path, px4_dir, vehicles, message):
    with pytest.raises(LaunchArgumentError, match=message):
        run_sitl(monkeypatch, tmp_path, px4_dir, vehicles=vehicles)


def test_sitl_refuses_more_vehicles_than_px4_sitl_has_ports_for(monkeypatch, tmp_path, px4_dir):
    fleet = dict(FLEET, vehicles=[{"id": f"uav{n}", "base": "islington", "dock": [n, 0]} for n in range(1, 12)])
    path = tmp_path / "eleven.yaml"
    path.write_text(yaml.safe_dump(fleet))
    with pytest.raises(LaunchArgumentError, match="uav11 is vehicle 11 .* 14549"):
        run_sitl(monkeypatch, tmp_path, px4_dir, fleet=str(path))
    assert len(px4_processes(run_sitl(monkeypatch, tmp_path, px4_dir, fleet=str(path), vehicles="uav10"))) == 1


def test_sitl_says_what_is_missing(monkeypatch, tmp_path, px4_dir):
    with pytest.raises(RuntimeError, match="make px4_sitl"):
        run_sitl(monkeypatch, tmp_path, tmp_path / "nowhere")
    with pytest.raises(RuntimeError, match="apt install ros-jazzy-mavros"):
        run_sitl(monkeypatch, tmp_path, px4_dir, shares={"ros_gz_bridge": "/x"})
    with pytest.raises(RuntimeError, match="apt install ros-jazzy-ros-gz"):
        run_sitl(monkeypatch, tmp_path, px4_dir, shares={"mavros": "/x"})


# -------------------------------------------------------------------- real airframes
def test_real_starts_one_mavros_per_airframe_from_its_config(monkeypatch, tmp_path):
    airframes = yaml.safe_load((CONFIG / "airframes" / "real.yaml").read_text())["airframes"]
    mavros = nodes_of(run_real(monkeypatch, tmp_path), "mavros")
    assert [n.kwargs["namespace"] for n in mavros] == [f"/{v}/mavros" for v in airframes]
    for node, airframe in zip(mavros, airframes.values()):
        assert node.kwargs["executable"] == "mavros_node" and "name" not in node.kwargs
        files, values = parameters_of(node)
        assert files == [f"{MAVROS_SHARE}/launch/px4_pluginlists.yaml", f"{MAVROS_SHARE}/launch/px4_config.yaml"]
        assert values["fcu_url"] == airframe["fcu_url"]
        assert values["tgt_system"] == airframe["tgt_system"]
        assert values["gcs_url"] == airframe.get("gcs_url", "")
        assert values["use_sim_time"] is False


def test_real_runs_the_dfr_graph_on_wall_time_without_simulator_or_scenario(monkeypatch, tmp_path):
    actions = run_real(monkeypatch, tmp_path)
    launched = dfr_launched(actions)
    # Calls come from CAD over HTTP: the gateway runs in front of intake, its token never in the files.
    gateway = [n for n in launched if n.kwargs["name"] == "cad_gateway"]
    assert len(gateway) == 1 and gateway[0].kwargs["namespace"] == "/dfr"
    files, values = parameters_of(gateway[0])
    assert files == [str(CONFIG / "cad_gateway.yaml")] and values == {"use_sim_time": False}
    import yaml
    gateway_params = yaml.safe_load((CONFIG / "cad_gateway.yaml").read_text())["/dfr/cad_gateway"]["ros__parameters"]
    assert "token" not in gateway_params and gateway_params["token_file"] == ""
    launched = [n for n in launched if n.kwargs["name"] != "cad_gateway"]
    with_airframes = {"uav1", "uav2", "uav3"}
    specs = [s for s in embedded_graph(tmp_path / "run", leave_out=("sim", "camera", "scenario_feed"))
             if s.name != "bridge" or s.namespace.strip("/") in with_airframes]
    assert [(n.kwargs["executable"], n.kwargs["name"], n.kwargs["namespace"]) for n in launched] == \
        [(s.executable, s.name, s.namespace) for s in specs]
    for node, spec in zip(launched, specs):
        files, values = parameters_of(node)
        assert files == [str(CONFIG / f) for f in spec.param_files]
        expected = {**spec.overrides, "use_sim_time": False, **(
            {"scenario_file": ""} if spec.name == "run_recorder" else {})}
        if "vehicles" in expected:            # perception and follow watch the drones that fly
            expected["vehicles"] = [v for v in expected["vehicles"] if v in with_airframes]
        assert values == expected
    assert not of_type(actions, "ExecuteProcess") and not nodes_of(actions, "ros_gz_bridge")
    # The recorder's exit must not take MAVROS and the bridges down under a flying drone.
    assert not of_type(actions, "RegisterEventHandler")
    # A live graph outlives a crash: what keeps its state on disk or hears it again is started again.
    respawned = {n.kwargs["name"] for n in launched if n.kwargs.get("respawn")}
    assert respawned == {"intake", "dispatch", "bridge", "perception", "follow", "audit"}
    assert all(n.kwargs["respawn_delay"] > 0 for n in launched if n.kwargs.get("respawn"))


def test_real_with_a_drill_scenario_and_a_subset(monkeypatch, tmp_path):
    actions = run_real(monkeypatch, tmp_path, scenario="scenarios/foundation_single_call.yaml", vehicles="uav2")
    assert [n.kwargs["namespace"] for n in nodes_of(actions, "mavros")] == ["/uav2/mavros"]
    launched = dfr_launched(actions)
    assert [n.kwargs["namespace"] for n in launched if n.kwargs["name"] == "bridge"] == ["/uav2"]
    feed = next(n for n in launched if n.kwargs["name"] == "scenario_feed")
    assert parameters_of(feed)[1] == {"use_sim_time": False, "scenario_file": str(SCENARIO)}


def test_real_refuses_a_vehicle_without_an_airframe(monkeypatch, tmp_path):
    with pytest.raises(LaunchArgumentError, match="uav5 have no airframe"):
        run_real(monkeypatch, tmp_path, vehicles="uav1,uav5")


@pytest.mark.parametrize("airframes, message", [
    ({"uav1": {"fcu_url": "serial:///dev/ttyUSB0:921600", "tgt_system": 1},
      "uav42": {"fcu_url": "udp://:14540@10.0.0.9:14580", "tgt_system": 2}}, "airframes.uav42: unknown vehicle"),
    ({"uav1": {"tgt_system": 1}}, "airframes.uav1: missing 'fcu_url'"),
    ({"uav1": {"fcu_url": "http://10.0.0.9:14580", "tgt_system": 1}}, "MAVROS has no URL scheme 'http://'"),
    ({"uav1": {"fcu_url": "/dev/ttyUSB0:921600", "tgt_system": 1}}, "has no scheme; write it as serial://"),
    ({"uav1": {"fcu_url": "serial:///dev/ttyUSB0:921600", "tgt_system": 1},
      "uav2": {"fcu_url": "serial:///dev/ttyUSB1:921600", "tgt_system": 1}},
     "airframes.uav2: tgt_system 1 is already uav1's"),
])
def test_real_airframe_errors_are_specific(monkeypatch, tmp_path, airframes, message):
    path = tmp_path / "airframes.yaml"
    path.write_text(yaml.safe_dump({"airframes": airframes}))
    with pytest.raises(AirframeConfigError, match=message) as raised:
        run_real(monkeypatch, tmp_path, airframes=str(path))
    assert str(path) in str(raised.value)


# ---------------------------------------------------------------------- read as source
@pytest.mark.parametrize("launch_file, graph", [(SITL_LAUNCH, "px4_sitl_graph"), (REAL_LAUNCH, "real_graph")])
def test_the_launch_files_build_everything_from_the_shared_graph(launch_file, graph):
    tree = ast.parse(launch_file.read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert any(getattr(c.func, "id", "") == graph for c in calls)
    for call in (c for c in calls if getattr(c.func, "id", "") == "Node"):
        kwargs = {kw.arg: ast.unparse(kw.value) for kw in call.keywords}
        if kwargs["package"] == "mavros.package":
            assert "name" not in kwargs, "MAVROS must keep its own node name"
    assert "use_sim_time" not in launch_file.read_text(), \
        "use_sim_time comes from the graph, not from the launch file"

"""Unit tests of dfr_bringup.graph: the shared DFR part and the PX4 SITL and real-airframe graphs."""
from __future__ import annotations

from pathlib import Path

import pytest

from dfr_bringup.graph import (
    LaunchArgumentError,
    RealRun,
    SimRun,
    SitlRun,
    dfr_nodes,
    gz_bridge_specs,
    lockstep_image_queue_depth,
    mavros_specs,
    px4_sitl_graph,
    px4_sitl_processes,
    real_graph,
    select_vehicles,
    sim_graph,
    sitl_airframe,
)
from dfr_common.fleet import load_fleet

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "config"
FLEET_FILE = CONFIG / "fleet" / "islington.yaml"
FLEET = load_fleet(FLEET_FILE)
SCENARIO = CONFIG / "scenarios" / "foundation_single_call.yaml"


def test_select_vehicles_keeps_fleet_order_and_refuses_strangers():
    assert select_vehicles(FLEET, "") == tuple(FLEET.vehicles)
    assert select_vehicles(FLEET, None) == tuple(FLEET.vehicles)
    assert select_vehicles(FLEET, " uav7 ,uav2,") == ("uav2", "uav7")
    assert select_vehicles(FLEET, ["uav3"]) == ("uav3",)
    with pytest.raises(LaunchArgumentError, match="'uav0' not in the fleet file"):
        select_vehicles(FLEET, "uav0")
    with pytest.raises(LaunchArgumentError, match="'uav2' named more than once"):
        select_vehicles(FLEET, "uav2,uav2")


def test_the_embedded_graph_is_the_dfr_part_plus_simulator_and_cameras():
    run = SimRun(CONFIG, FLEET_FILE, SCENARIO, Path("/tmp/run"))
    specs = sim_graph(run)
    assert [s.name for s in specs[:1]] == ["sim"]
    dfr = dfr_nodes(run, use_sim_time=True)
    assert [s.fully_qualified_name for s in specs if s.name not in ("sim", "camera")] == \
        [s.fully_qualified_name for s in dfr]
    # The same nodes, the recorder told about the camera it scores the chase through.
    recorder = next(s for s in specs if s.name == "run_recorder")
    assert recorder.overrides == {**next(s for s in dfr if s.name == "run_recorder").overrides,
                                  "camera_width": 640, "camera_height": 480, "camera_horizontal_fov_deg": 80.0}
    # And perception told how many images the simulator's lockstep lets wait for it.
    perception = next(s for s in specs if s.name == "perception")
    assert perception.overrides == {**next(s for s in dfr if s.name == "perception").overrides,
                                    "image_queue_depth": lockstep_image_queue_depth(CONFIG)}
    assert [s for s in specs if s.name not in ("sim", "camera", "run_recorder", "perception")] == \
        [s for s in dfr if s.name not in ("run_recorder", "perception")]
    few = sim_graph(SimRun(CONFIG, FLEET_FILE, SCENARIO, Path("/tmp/run"), vehicles=2))
    fleet = next(s for s in few if s.executable == "bridge_fleet")
    assert fleet.overrides["vehicles"] == ["uav1", "uav2"] and fleet.nodes == 2
    assert not any(s.name == "bridge" for s in few)
    few = sim_graph(SimRun(CONFIG, FLEET_FILE, SCENARIO, Path("/tmp/run"), vehicles=2, bridges_in_one_process=False))
    assert [s.namespace for s in few if s.name == "bridge"] == ["/uav1", "/uav2"]
    assert not any(s.executable == "bridge_fleet" for s in few)
    with pytest.raises(ValueError, match="vehicles must be 0"):
        sim_graph(SimRun(CONFIG, FLEET_FILE, SCENARIO, Path("/tmp/run"), vehicles=99))
    names = [s.name for s in specs]
    assert names.index("camera") == names.index("scenario_feed") - 1
    # Every node the simulator waits for: each bridge in bridge_fleet's process counts.
    assert specs[0].overrides["wait_for_clock_subscribers"] == len(specs) - 2 + len(FLEET.vehicles)


def test_the_dfr_part_without_a_scenario_has_no_feed_and_the_recorder_keeps_a_shift():
    run = RealRun(CONFIG, FLEET_FILE, CONFIG / "airframes" / "real.yaml", Path("/tmp/run"))
    nodes = dfr_nodes(run, use_sim_time=False, vehicle_ids=("uav2",), recorder_ends_run=False)
    assert [s.fully_qualified_name for s in nodes] == ["/dfr/intake", "/dfr/dispatch", "/uav2/bridge",
                                                       "/dfr/perception", "/dfr/follow", "/dfr/audit",
                                                       "/dfr/bag_recorder", "/dfr/run_recorder"]
    bag = next(s for s in nodes if s.name == "bag_recorder")
    assert bag.overrides["output_path"] == "/tmp/run/bag.mcap" and not bag.required
    assert all(s.overrides["vehicles"] == ["uav2"] for s in nodes if s.name in ("perception", "follow", "audit"))
    assert all(s.overrides["use_sim_time"] is False for s in nodes)
    assert nodes[-1].overrides["scenario_file"] == "" and not nodes[-1].required


def test_sitl_links_follow_px4_instance_numbers():
    assert sitl_airframe(FLEET, "uav1").fcu_url == "udp://:14540@127.0.0.1:14580"
    assert sitl_airframe(FLEET, "uav9").fcu_url == "udp://:14548@127.0.0.1:14588"
    assert sitl_airframe(FLEET, "uav9").tgt_system == 9
    spec, = mavros_specs([sitl_airframe(FLEET, "uav4")], use_sim_time=True)
    assert spec.namespace == "/uav4/mavros" and spec.package == "mavros" and spec.executable == "mavros_node"
    assert spec.parameters == {"fcu_url": "udp://:14543@127.0.0.1:14583", "gcs_url": "", "tgt_system": 4,
                               "tgt_component": 1, "use_sim_time": True}
    assert spec.param_files == ("launch/px4_pluginlists.yaml", "launch/px4_config.yaml")


def test_px4_processes_start_gazebo_once_and_put_each_model_on_its_dock():
    processes = px4_sitl_processes(FLEET, ("uav2", "uav3"), Path("/px4"), world="walls", headless=True)
    first, second = processes
    assert first.cmd == ("/px4/build/px4_sitl_default/bin/px4", "-i", "1", "-d") and first.starts_gazebo
    assert first.env["HEADLESS"] == "1" and "PX4_GZ_STANDALONE" not in first.env and first.delay_s == 0
    assert second.env["PX4_GZ_STANDALONE"] == "1" and "HEADLESS" not in second.env and second.delay_s > 0
    assert (first.pose_east_m, first.pose_north_m) == (0.0, 0.0)
    assert second.env["PX4_GZ_MODEL_POSE"] == "6.00,0.00"
    assert {p.env["PX4_GZ_WORLD"] for p in processes} == {"walls"}
    assert first.name == "px4_uav2"
    with pytest.raises(LaunchArgumentError, match="no vehicles"):
        px4_sitl_processes(FLEET, (), Path("/px4"))


def test_gz_bridges_the_clock_once_and_each_camera_into_its_namespace():
    clock, camera = gz_bridge_specs(FLEET, ("uav3",), world="default")
    assert clock.arguments == ("/clock@rosgraph_msgs/msg/Clock[gz.msgs.Clock",) and clock.namespace == "/"
    assert camera.namespace == "/uav3" and camera.package == "ros_gz_bridge"
    assert camera.executable == "parameter_bridge"
    assert dict(camera.remappings) == {
        "/world/default/model/x500_mono_cam_2/link/mono_cam/base_link/sensor/imager/image": "/uav3/camera/image_raw",
        "/world/default/model/x500_mono_cam_2/link/mono_cam/base_link/sensor/imager/camera_info":
            "/uav3/camera/camera_info"}


def test_the_sitl_graph_puts_the_pieces_together_on_sim_time():
    graph = px4_sitl_graph(SitlRun(CONFIG, FLEET_FILE, SCENARIO, Path("/tmp/run"), Path("/px4"),
                                   vehicles=("uav1", "uav2")))
    assert [p.vehicle_id for p in graph.px4] == [m.vehicle_id for m in graph.mavros] == ["uav1", "uav2"]
    assert len(graph.gz_bridges) == 3
    assert all(m.use_sim_time for m in graph.mavros)
    assert all(n.overrides["use_sim_time"] is True for n in graph.nodes)
    assert [n for n in graph.nodes if n.required][0].name == "run_recorder"


def test_the_real_graph_takes_its_vehicles_from_the_airframes(tmp_path):
    run = RealRun(CONFIG, FLEET_FILE, CONFIG / "airframes" / "real.yaml", tmp_path)
    graph = real_graph(run)
    assert [m.vehicle_id for m in graph.mavros] == ["uav1", "uav2", "uav3"]
    assert not any(n.required for n in graph.nodes)
    with pytest.raises(LaunchArgumentError, match="uav9 have no airframe"):
        real_graph(RealRun(CONFIG, FLEET_FILE, CONFIG / "airframes" / "real.yaml", tmp_path, vehicles=("uav9",)))


def test_the_image_queue_holds_every_image_the_lockstep_lets_wait(tmp_path):
    (tmp_path / "camera.yaml").write_text("/camera:\n  ros__parameters:\n    rate_hz: 5.0\n")
    sim = tmp_path / "sim.yaml"
    for lag_s, depth in ((0.25, 3), (1.0, 6), (0.2, 2), (0.01, 2)):
        sim.write_text(f"/sim:\n  ros__parameters:\n    frame_sync_topic: /done\n    frame_sync_s: {lag_s}\n")
        assert lockstep_image_queue_depth(tmp_path) == depth, lag_s
    sim.write_text("/sim:\n  ros__parameters:\n    frame_sync_topic: ''\n    frame_sync_s: 1.0\n")
    assert lockstep_image_queue_depth(tmp_path) == 0

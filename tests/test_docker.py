"""docker/Dockerfile, read as text: Docker is not available here, so its promises are checked statically."""
import os
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = (REPO / "docker" / "Dockerfile").read_text()


def test_it_builds_on_the_official_jazzy_image_with_mavros_from_apt():
    assert re.search(r"^ARG ROS_DISTRO=jazzy$", DOCKERFILE, re.M)
    assert re.search(r"^FROM ros:\$\{ROS_DISTRO\}-ros-base AS graph$", DOCKERFILE, re.M)
    for package in ("mavros", "mavros-msgs", "geographic-msgs"):
        assert f"ros-${{ROS_DISTRO}}-{package}" in DOCKERFILE
    assert "install_geographiclib_datasets.sh" in DOCKERFILE


def test_it_builds_the_workspace_and_checks_the_real_interfaces_win():
    assert "rosdep install --from-paths src --ignore-src" in DOCKERFILE
    assert "colcon build" in DOCKERFILE
    for package in ("mavros_msgs", "geographic_msgs"):
        assert f"test ! -e install/{package}/share/{package}/dfr_standin" in DOCKERFILE


def test_what_it_copies_exists_and_the_entrypoint_is_executable():
    for source in re.findall(r"^COPY (\S+) ", DOCKERFILE, re.M):
        assert (REPO / source).exists(), source
    assert os.access(REPO / "docker" / "entrypoint.sh", os.X_OK)
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv/", "build/", "install/", "log/"} <= set(ignored)


def test_the_compose_file_builds_each_service_from_a_stage_that_exists_and_runs_a_launch_file_we_ship():
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", DOCKERFILE, re.M))
    assert {"graph", "px4-sitl"} <= stages
    services = compose["services"]
    assert {"graph", "px4-sitl"} <= set(services)
    for name in ("graph", "px4-sitl"):
        service = services[name]
        assert service["build"]["target"] in stages and service["build"]["dockerfile"] == "docker/Dockerfile"
        launch_file = next(arg for arg in service["command"] if arg.endswith(".launch.py"))
        assert (REPO / launch_file).exists(), launch_file
    assert "px4_dir:=/opt/PX4-Autopilot" in services["px4-sitl"]["command"]
    assert "make -C /opt/PX4-Autopilot px4_sitl" in DOCKERFILE and "ros-${ROS_DISTRO}-ros-gz" in DOCKERFILE

"""Launch actions shared by the files in launch/: the graph's node specs made into launch_ros Nodes.

Imported only by launch files, so only where ROS 2's `launch` and `launch_ros` are
installed; `graph.py` stays free of them so the runner and tests can read the graph.
"""
from __future__ import annotations

import os
from pathlib import Path

from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch_ros.actions import Node

from dfr_bringup.graph import RESPAWN_DELAY_S
from dfr_bringup.middleware import middleware_environment


def config_path(config_dir: Path, value: str) -> Path:
    """Launch arguments name files relative to config/ unless they are absolute."""
    return Path(value) if os.path.isabs(value) else config_dir / value


def dfr_node_actions(spec, config_dir: Path) -> list:
    """The node (started again when it dies, where the graph says so), and for a node the run depends on,
    the shutdown of the launch when it exits."""
    respawn = {"respawn": True, "respawn_delay": RESPAWN_DELAY_S} if spec.respawn else {}
    node = Node(package=spec.package, executable=spec.executable, name=spec.name, namespace=spec.namespace,
                output="screen", additional_env=middleware_environment(config_dir),
                parameters=[str(config_dir / name) for name in spec.param_files] + [dict(spec.overrides)],
                **respawn)
    if not spec.required:
        return [node]
    return [node, RegisterEventHandler(OnProcessExit(
        target_action=node,
        on_exit=[EmitEvent(event=Shutdown(reason=f"{spec.fully_qualified_name} finished the run"))]))]


def mavros_node(mavros, mavros_share: Path) -> Node:
    # No name=: MAVROS's plugin nodes take their names from the node's, so a rename breaks them.
    return Node(package=mavros.package, executable=mavros.executable, namespace=mavros.namespace, output="screen",
                parameters=[str(mavros_share / f) for f in mavros.param_files] + [mavros.parameters])


def fleet_argument() -> DeclareLaunchArgument:
    return DeclareLaunchArgument("fleet", default_value="fleet/islington.yaml",
                                 description="fleet file, relative to config/ or absolute")


def output_dir_argument() -> DeclareLaunchArgument:
    return DeclareLaunchArgument("output_dir", default_value="",
                                 description="where metrics.json goes; default runs/<timestamp>, with runs/latest")

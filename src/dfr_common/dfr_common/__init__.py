"""Shared pieces of the dfr stack.

Plain Python, never importing rclpy: `geodesy` (WGS 84 and local ENU frames), `fleet`
(the fleet file), `areas` (GeoJSON areas), `px4` (PX4 and MAVROS names and numbers),
`mission` (mission phases and outcomes), `grading` (call grades), `config_file` (reading
YAML and JSON configuration files), `documented` (configuration fields that carry their
description and range). The `ros` subpackage holds the thin rclpy helpers that only node
modules import.
"""

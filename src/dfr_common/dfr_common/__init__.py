"""Shared pieces of the dfr stack.

Plain Python, never importing rclpy: `geodesy` (WGS 84 and local ENU frames), `fleet`
(the fleet file), `areas` (GeoJSON areas), `px4` (PX4 and MAVROS names and numbers),
`mission` (mission phases and outcomes), `grading` (call grades), `yaml_file` (reading
configuration files). The `ros` subpackage holds the thin rclpy helpers that only node
modules import.
"""

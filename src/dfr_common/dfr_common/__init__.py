"""Shared pieces of the dfr stack.

The modules `geodesy` and `fleet` are plain Python and never import rclpy; `qos`,
`parameters` and `ros_time` are the thin rclpy helpers that node modules use.
"""

"""The embedded simulator: PX4-like multirotors behind MAVROS's ROS 2 interface, and /clock."""

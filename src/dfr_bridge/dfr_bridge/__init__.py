"""The MAVROS bridge: the one place that knows MAVROS and PX4."""

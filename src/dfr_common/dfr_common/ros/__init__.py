"""The thin rclpy helpers every node module shares: QoS profiles, parameter declaration,
time conversions and the nodes' `main`. Only node modules import this subpackage."""

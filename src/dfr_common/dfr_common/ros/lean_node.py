"""The rclpy Node every dfr node derives from: endpoints without QoS event handlers unless asked.

rclpy gives each publisher and subscription two event handlers by default (warnings for an
incompatible QoS or type), and its executor visits every handler each time it wakes. In a node
with many endpoints (the simulator's MAVROS face for nine drones, perception's per-drone topics)
that was most of the node's CPU: measured on the evening peak at 10 x real time, 60 % of
perception's time went to building its wait set. Our own topics' QoS is fixed on both sides in
dfr_common.ros.qos, so the warnings say nothing there; where a node meets the outside world (the
bridge reading a real MAVROS) it asks for them with `WARN_INCOMPATIBLE_SUBSCRIPTION`.
"""
from __future__ import annotations

from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.lifecycle import LifecycleNode
from rclpy.node import Node

QUIET_PUBLISHER = PublisherEventCallbacks(use_default_callbacks=False)
QUIET_SUBSCRIPTION = SubscriptionEventCallbacks(use_default_callbacks=False)
WARN_INCOMPATIBLE_SUBSCRIPTION = SubscriptionEventCallbacks()     # rclpy's default warnings


class LeanNode(Node):
    def create_publisher(self, *args, event_callbacks=None, **kwargs):
        return super().create_publisher(*args, event_callbacks=event_callbacks or QUIET_PUBLISHER, **kwargs)

    def create_subscription(self, *args, event_callbacks=None, **kwargs):
        return super().create_subscription(*args, event_callbacks=event_callbacks or QUIET_SUBSCRIPTION, **kwargs)


class LeanLifecycleNode(LeanNode, LifecycleNode):
    """A managed (lifecycle) node with LeanNode's quiet endpoints."""

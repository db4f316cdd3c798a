"""Subscriptions a node holds only while it needs them.

Every message taken costs a Python node CPU, and the simulator builds its ground truth (a
hundred actors, 10 Hz) only for a subscriber: a node that needs a stream only while a
camera, a chase or a drone is watched subscribes then, and lets go after.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence


class LazySubscriptions:
    def __init__(self, node, specs: Sequence[tuple[type, str, Callable, object]],
                 on_release: Callable[[], None] | None = None):
        """`specs`: (message type, topic, callback, QoS) of each subscription; `on_release`: called on letting go."""
        self._node = node
        self._specs = tuple(specs)
        self._on_release = on_release
        self._held: list = []

    @property
    def active(self) -> bool:
        return bool(self._held)

    def want(self, wanted: bool) -> None:
        if wanted and not self._held:
            self._held = [self._node.create_subscription(msg_type, topic, callback, qos)
                          for msg_type, topic, callback, qos in self._specs]
        elif not wanted and self._held:
            for subscription in self._held:
                self._node.destroy_subscription(subscription)
            self._held = []
            if self._on_release is not None:
                self._on_release()

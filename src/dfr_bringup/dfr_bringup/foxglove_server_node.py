"""Serves the live graph to the Foxglove app (app.foxglove.dev or the desktop app), for users without rviz2.

In Foxglove: Open connection, Foxglove WebSocket, ws://<host>:<port> (8765 by default). Every
selected topic is a channel of ROS 2 messages (CDR with ros2msg schemas, which Foxglove decodes
natively): the markers (visualization_msgs/MarkerArray in frame `map`) in the 3D panel, the
redacted camera images in the Image panel, vehicle statuses, incidents and targets in Raw
Messages and Plot. The topics are found as the bag recorder finds them (dfr_bringup.topic_tap);
nothing is sent for a topic no client subscribes to, and camera images are rate-limited per topic.
Unlike the bag, the live view may show track lists and their markers: only keeping them is a
privacy issue. Raw camera images are left out by default.
"""
from __future__ import annotations

import sys

from dfr_bringup.foxglove_live import LiveTopics
from dfr_bringup.topic_tap import TappedTopic, TopicTap, tap_params
from dfr_common.ros.lean_node import LeanNode
from dfr_common.ros.node_main import run
from dfr_common.ros.parameters import Param, declare


class FoxgloveServerNode(LeanNode):
    def __init__(self, **kwargs):
        super().__init__("foxglove_server", **kwargs)
        p = self.params = declare(self, [
            Param("host", "127.0.0.1", "address the WebSocket server listens on: 127.0.0.1 serves this machine "
                                       "only; 0.0.0.0 exposes the live graph, camera video included, to the "
                                       "network, with no authentication"),
            Param("port", 8765, "TCP port of the WebSocket server; 0: any free one", 0, 65535),
            *tap_params(verb="served", exclude=[".*/camera/image_raw"], max_rate_hz_images=5.0),
        ])
        self.live: LiveTopics | None = None
        self.tap = TopicTap(self, p, self._on_message, on_topic=self._advertise, wanted=self._wanted,
                            doing="serving")
        self.live = LiveTopics(p.host, p.port, name=self.get_fully_qualified_name())
        self.get_logger().info(f"serving the graph to Foxglove on {self.live.url} "
                               f"(in the app: Open connection, Foxglove WebSocket)")
        self.tap.start()

    def _advertise(self, topic: TappedTopic) -> None:
        self.live.add_topic(topic.name, topic.type_name, topic.definition, latched=topic.latched, depth=topic.depth)

    def _wanted(self, topic: str) -> bool:
        return self.live.wanted(topic)

    def _on_message(self, topic: str, type_name: str, data: bytes, now_ns: int) -> None:
        self.live.log(topic, data, now_ns)

    def close(self) -> None:
        """Stops discovery and the server (clients see the connection close)."""
        self.tap.stop()
        if self.live is not None:
            self.live.stop()

    def on_shutdown(self):
        self.close()

    def destroy_node(self):
        # Also when the context went down first and on_shutdown was not called.
        self.close()
        return super().destroy_node()


def main(args=None):
    sys.exit(run(FoxgloveServerNode, args))


if __name__ == "__main__":
    main()

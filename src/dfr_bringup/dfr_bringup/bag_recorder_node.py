"""Records the run's topics into an MCAP bag, as `ros2 bag record -s mcap` would.

rosbag2 is not on PyPI; this node stands in for it wherever the graph runs. It looks
for new topics every `discovery_period_s`, subscribes to each selected one with a QoS
that every publisher of it can reach (latched topics transient local, so their last
values are in the bag), and writes the messages as they came off the wire (CDR),
stamped with the node's clock: sim time in simulation. Camera images are large: raw
images are excluded by default and the other image topics are rate-limited per topic.
The file is finished (summary and indexes) when the node shuts down, and flushed every
`flush_period_s` before that.
"""
from __future__ import annotations

import sys

from rclpy.clock import Clock, ClockType

from dfr_bringup.mcap_bag import McapBagWriter, MessageDefinitions
from dfr_bringup.topic_tap import TappedTopic, TopicTap, tap_params
from dfr_common.ros.lean_node import LeanNode
from dfr_common.ros.node_main import run
from dfr_common.ros.parameters import Param, ParameterError, declare


class BagRecorderNode(LeanNode):
    def __init__(self, **kwargs):
        super().__init__("bag_recorder", **kwargs)
        p = self.params = declare(self, [
            Param("output_path", "", "the .mcap file to write (it must not exist yet); empty: record nothing"),
            *tap_params(verb="recorded", exclude=[".*/camera/image_raw"], max_rate_hz_images=2.0),
            Param("compression", "zstd", "MCAP chunk compression: zstd, lz4 or none"),
            Param("flush_period_s", 5.0, "wall time between two flushes of the file to disk", 0.1, 600.0),
        ])
        self.bag: McapBagWriter | None = None
        definitions = MessageDefinitions()
        self.tap = TopicTap(self, p, self._on_message, on_topic=self._add_topic, definitions=definitions,
                            doing="recording")
        if not p.output_path:
            self.get_logger().info("output_path is empty: recording nothing")
            return
        try:
            self.bag = McapBagWriter(p.output_path, compression=p.compression, definitions=definitions)
        except (FileExistsError, ValueError) as err:
            raise ParameterError(f"{self.get_fully_qualified_name()}: output_path: {err}") from err
        wall = Clock(clock_type=ClockType.STEADY_TIME)    # flushing goes on while sim time stands
        self.create_timer(p.flush_period_s, self.bag.flush, clock=wall)
        self.get_logger().info(f"recording to {p.output_path}")
        self.tap.start()

    @property
    def subscriptions_by_topic(self) -> dict[str, object]:
        return self.tap.subscriptions

    def discover(self) -> None:
        """Subscribes to every selected topic that has publishers and is not recorded yet."""
        if self.bag is not None and not self.bag.closed:
            self.tap.discover()

    def _add_topic(self, topic: TappedTopic) -> None:
        self.bag.add_topic(topic.name, topic.type_name, topic.offers, topic.type_hash)

    def _on_message(self, topic: str, type_name: str, data: bytes, now_ns: int) -> None:
        if self.bag is not None and not self.bag.closed:
            self.bag.write(topic, data, now_ns)

    def summary(self) -> str:
        bag = self.bag
        if bag is None:
            return "recorded nothing (output_path is empty)"
        counts = bag.message_counts
        dropped = self.tap.dropped_images
        size = bag.size_bytes
        size_text = f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"
        return (f"{bag.path}: {len(counts)} topics, {bag.message_count} messages, {size_text}"
                f"{f'; {dropped} images left out by the rate limit' if dropped else ''}")

    def close(self) -> None:
        """Finishes the file; the bag is readable only after this."""
        self.tap.stop()
        if self.bag is not None and not self.bag.closed:
            self.bag.close()
            self.get_logger().info(f"bag written: {self.summary()}")

    def on_shutdown(self):
        self.close()

    def destroy_node(self):
        # Also when the context went down first and on_shutdown was not called.
        if self.bag is not None and not self.bag.closed:
            self.bag.close()
        return super().destroy_node()


def main(args=None):
    sys.exit(run(BagRecorderNode, args))


if __name__ == "__main__":
    main()

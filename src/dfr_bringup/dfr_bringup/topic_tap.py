"""Taps the live graph's topics as they come off the wire (CDR), for a node that passes them on whole:
the bag recorder writes them into MCAP, the Foxglove server sends them to the Foxglove app.

A TopicTap looks for new topics every `discovery_period_s` (wall time, so it goes on while sim
time stands), keeps those that the include/exclude patterns select, resolves each type's complete
message definition (ros2msg) from the installed .msg files, and subscribes with raw=True and a QoS
that every publisher of the topic can reach (latched topics transient local, so their last values
arrive too). Each message goes to the node's callback as (topic, type name, CDR bytes, time in ns
of the node's clock: sim time in simulation); sensor_msgs/Image topics are rate-limited per topic.
The node declares the tap's parameters with tap_params(), so both nodes take the same ones.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from rclpy.clock import Clock, ClockType
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from dfr_bringup.mcap_bag import (
    MessageDefinitionError,
    MessageDefinitions,
    OfferedQos,
    RateLimit,
    TopicSelection,
    subscription_policy,
)
from dfr_common.ros.parameters import Param, ParameterError

IMAGE_TYPE = "sensor_msgs/msg/Image"

# (topic, type name 'pkg/msg/Type', serialized message, receive time in ns of the node's clock)
MessageCallback = Callable[[str, str, bytes, int], None]


def tap_params(*, verb: str, exclude: Sequence[str], max_rate_hz_images: float) -> list[Param]:
    """The tap's parameters, for dfr_common.ros.parameters.declare; `verb` is what the node does
    with a topic, as a past participle ('recorded', 'served')."""
    return [
        Param("include", [".*"], f"regular expressions: a topic is {verb} if its whole name matches one"),
        Param("exclude", list(exclude), f"regular expressions: a topic whose whole name matches one is never "
                                        f"{verb}, even if included"),
        Param("include_hidden_topics", False, f"hidden topics are {verb} too (a name part starting with '_', "
                                              "e.g. actions' feedback and status)"),
        Param("max_rate_hz_images", max_rate_hz_images, f"at most this many sensor_msgs/Image messages per second "
                                                        f"(sim time) per topic are {verb}; 0: all", 0.0, 1000.0),
        Param("queue_depth", 100, "subscription queue depth (latched topics: at least the publisher's)",
              1, 100000),
        Param("discovery_period_s", 1.0, "wall time between two looks for new topics", 0.05, 60.0),
    ]


def message_class(type_name: str):
    """The Python class of 'pkg/msg/Type'."""
    package, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def offered_qos(profile) -> OfferedQos:
    """An rclpy QoSProfile of a publisher, with rmw's names for its policies."""
    return OfferedQos(
        history=profile.history.name.lower(), depth=int(profile.depth),
        reliability=profile.reliability.name.lower(), durability=profile.durability.name.lower(),
        deadline_ns=profile.deadline.nanoseconds, lifespan_ns=profile.lifespan.nanoseconds,
        liveliness=profile.liveliness.name.lower(),
        liveliness_lease_duration_ns=profile.liveliness_lease_duration.nanoseconds,
        avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions))


@dataclass(frozen=True)
class TappedTopic:
    """A topic the tap is about to subscribe to."""

    name: str
    type_name: str                      # 'pkg/msg/Type'
    definition: str                     # the complete ros2msg definition, as rosbag2 writes it
    offers: tuple[OfferedQos, ...]      # the publishers' QoS
    type_hash: str                      # 'RIHS01_...' where the publishers say, else ''
    latched: bool                       # subscribed transient local: every publisher is
    depth: int                          # the subscription's queue depth


class TopicRefused(Exception):
    """Raised by a tap's on_topic to leave a topic out; the message says why."""


class TopicTap:
    """Discovers the selected topics of the graph and subscribes to them raw, on behalf of `node`.

    `params` holds the values of tap_params(). `on_topic(TappedTopic)`, where given, is called
    once before a topic is subscribed (it raises TopicRefused to leave the topic out);
    `on_message` gets every message; `wanted(topic)`, where given, is asked first, so that no
    work (and no image rate budget) is spent on a topic nobody wants now. `doing` names the
    node's work in its log lines ('recording').
    """

    def __init__(self, node, params, on_message: MessageCallback, *,
                 on_topic: Callable[[TappedTopic], None] | None = None,
                 wanted: Callable[[str], bool] | None = None,
                 definitions: MessageDefinitions | None = None, doing: str = "tapping"):
        try:
            self.selection = TopicSelection(params.include, params.exclude, params.include_hidden_topics)
        except ValueError as err:
            raise ParameterError(f"{node.get_fully_qualified_name()}: {err}") from err
        self.node = node
        self.params = params
        self.on_message = on_message
        self.on_topic = on_topic
        self.wanted = wanted
        self.definitions = definitions or MessageDefinitions()
        self.doing = doing
        self.subscriptions: dict[str, object] = {}
        self.types: dict[str, str] = {}
        self.rate_limits: dict[str, RateLimit] = {}
        self.ignored: set[str] = set()
        self.stopped = False
        self._timer = None

    def start(self) -> None:
        """Looks for topics now and then every discovery_period_s of wall time."""
        wall = Clock(clock_type=ClockType.STEADY_TIME)
        self._timer = self.node.create_timer(self.params.discovery_period_s, self.discover, clock=wall)
        self.discover()

    def stop(self) -> None:
        """No more discovery and no more messages to the callback (the subscriptions go with the node)."""
        self.stopped = True
        if self._timer is not None:
            self._timer.cancel()

    def discover(self) -> None:
        """Subscribes to every selected topic that has publishers and is not tapped yet."""
        if self.stopped:
            return
        for topic, types in self.node.get_topic_names_and_types():
            if topic in self.subscriptions or topic in self.ignored:
                continue
            if not self.selection(topic):
                self.ignored.add(topic)
                continue
            if len(types) != 1:
                self._ignore(topic, f"it has several types ({', '.join(types)})")
                continue
            publishers = self.node.get_publishers_info_by_topic(topic)
            if not publishers:
                continue          # only subscribers so far: look again later
            self._tap(topic, types[0], publishers)

    def _tap(self, topic: str, type_name: str, publishers) -> None:
        try:
            cls = message_class(type_name)
        except (ImportError, AttributeError, ValueError) as err:
            self._ignore(topic, f"its type {type_name} is not installed here ({err})")
            return
        try:
            stale = self.definitions.stale(type_name, lambda t: list(message_class(t).get_fields_and_field_types()))
            definition = self.definitions.complete(type_name)
        except (MessageDefinitionError, ImportError, AttributeError) as err:
            self._ignore(topic, f"no message definition for {type_name}: {err}")
            return
        if stale:
            self._ignore(topic, "its installed .msg differs from the built type, so readers would misread it "
                                f"(rebuild the workspace): {'; '.join(stale)}")
            return
        offers = tuple(offered_qos(info.qos_profile) for info in publishers)
        type_hash = str(getattr(publishers[0], "topic_type_hash", "") or "")
        policy = subscription_policy(offers, self.params.queue_depth)
        tapped = TappedTopic(topic, type_name, definition, offers, type_hash if type_hash.startswith("RIHS") else "",
                             policy.transient_local, policy.depth)
        if self.on_topic is not None:
            try:
                self.on_topic(tapped)
            except (TopicRefused, MessageDefinitionError) as err:
                self._ignore(topic, str(err))
                return
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=policy.depth,
                         reliability=ReliabilityPolicy.RELIABLE if policy.reliable else ReliabilityPolicy.BEST_EFFORT,
                         durability=(DurabilityPolicy.TRANSIENT_LOCAL if policy.transient_local
                                     else DurabilityPolicy.VOLATILE))
        if type_name == IMAGE_TYPE:
            self.rate_limits[topic] = RateLimit(self.params.max_rate_hz_images)
        self.types[topic] = type_name
        self.subscriptions[topic] = self.node.create_subscription(
            cls, topic, partial(self._on_message, topic), qos, raw=True)

    def _ignore(self, topic: str, why: str) -> None:
        self.ignored.add(topic)
        self.node.get_logger().warning(f"not {self.doing} {topic}: {why}")

    def _on_message(self, topic: str, data: bytes) -> None:
        if self.stopped or (self.wanted is not None and not self.wanted(topic)):
            return
        now_ns = self.node.get_clock().now().nanoseconds      # sim time under use_sim_time (0 before /clock)
        limit = self.rate_limits.get(topic)
        if limit is not None and not limit.keep(now_ns):
            return
        self.on_message(topic, self.types[topic], data, now_ns)

    @property
    def dropped_images(self) -> int:
        """Images left out by the rate limit, all topics together."""
        return sum(limit.dropped for limit in self.rate_limits.values())

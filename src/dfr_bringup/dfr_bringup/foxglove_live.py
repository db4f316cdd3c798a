"""Live ROS 2 topics for the Foxglove app, over foxglove-sdk's WebSocket server.

One channel per topic, carrying the messages as ROS 2 CDR, as they came off the wire (message
encoding "cdr"), with the type's complete definition as its schema (encoding "ros2msg", named
'pkg/msg/Type'): the Foxglove app decodes these natively, so MarkerArray shows in the 3D panel,
Image in the Image panel and any message in Raw Messages and Plot. A message is sent only while
a client subscribes to its channel (the server says so through Channel.has_sinks). The last
messages of a latched (transient local) topic are kept and sent again when a client subscribes,
as a late ROS subscriber would get them; clients subscribed already get them once more.

No rclpy here: the node feeds it from its subscriptions.
"""
from __future__ import annotations

import threading
from collections import deque

import foxglove
from foxglove.websocket import ServerListener

from dfr_bringup.mcap_bag import MESSAGE_ENCODING, SCHEMA_ENCODING


class _Listener(ServerListener):
    def __init__(self, live: LiveTopics):
        self.live = live

    def on_subscribe(self, client, channel) -> None:      # called on the server's thread
        self.live.replay(channel.id)


class LiveTopics:
    """A running WebSocket server for the Foxglove app and its channels, one per topic.

    Raises OSError when the server cannot listen on host:port (port 0: any free port).
    stop() stops the server; it runs once, later calls do nothing.
    """

    def __init__(self, host: str, port: int, *, name: str = "dfr"):
        self.context = foxglove.Context()           # its own: channels of other code in the process stay out
        self._channels: dict[str, foxglove.Channel] = {}
        self._topic_by_channel: dict[int, str] = {}
        self._latched: dict[str, deque[tuple[bytes, int]]] = {}
        self._lock = threading.Lock()
        self.sent = 0
        try:
            self._server = foxglove.start_server(name=name, host=host, port=port, context=self.context,
                                                 server_listener=_Listener(self))
        except RuntimeError as err:
            raise OSError(f"cannot serve Foxglove on {host}:{port}: {err}") from err
        self.host = host
        self.port = self._server.port
        self.stopped = False

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def app_url(self) -> str | None:
        """A link that opens app.foxglove.dev connected to this server."""
        return None if self.stopped else self._server.app_url()

    @property
    def topics(self) -> list[str]:
        return list(self._channels)

    def channel(self, topic: str) -> foxglove.Channel:
        return self._channels[topic]

    def add_topic(self, topic: str, type_name: str, definition: str, *, latched: bool = False,
                  depth: int = 1) -> None:
        """Advertises a topic of type 'pkg/msg/Type' with its complete ros2msg definition; a latched
        topic keeps its last `depth` messages for clients that subscribe later."""
        if topic in self._channels:
            raise ValueError(f"topic {topic} is served already")
        schema = foxglove.Schema(name=type_name, encoding=SCHEMA_ENCODING, data=definition.encode("utf-8"))
        with self._lock:
            if latched:
                self._latched[topic] = deque(maxlen=max(1, depth))
            channel = foxglove.Channel(topic, message_encoding=MESSAGE_ENCODING, schema=schema,
                                       context=self.context)
            self._topic_by_channel[channel.id()] = topic
            self._channels[topic] = channel

    def wanted(self, topic: str) -> bool:
        """Whether a message of the topic is of use now: a client subscribes, or the topic is latched."""
        channel = self._channels.get(topic)
        return channel is not None and (topic in self._latched or channel.has_sinks())

    def log(self, topic: str, data: bytes, log_time_ns: int) -> None:
        """One serialized message of an added topic, received at log_time_ns."""
        channel = self._channels[topic]
        log_time_ns = max(0, int(log_time_ns))
        history = self._latched.get(topic)
        if history is not None:
            with self._lock:
                history.append((bytes(data), log_time_ns))
        if not self.stopped and channel.has_sinks():
            channel.log(bytes(data), log_time=log_time_ns)
            self.sent += 1

    def replay(self, channel_id: int) -> None:
        """Sends the kept messages of a latched topic again (a client has just subscribed)."""
        with self._lock:
            topic = self._topic_by_channel.get(channel_id)
            kept = list(self._latched.get(topic, ()))
        if topic is None or self.stopped:
            return
        for data, log_time_ns in kept:
            self._channels[topic].log(data, log_time=log_time_ns)

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self._server.stop()

"""A ROS 2 bag in one MCAP file, as rosbag2's MCAP storage plugin writes it, without rosbag2.

rosbag2 is not on PyPI, so the run's bag is written here with the `mcap` library in the
layout that `ros2 bag`, `rosbags` and Foxglove read: profile "ros2", messages in their CDR
encoding as they came off the wire, one schema per type holding the complete message
definition ("ros2msg": the type's .msg text, then every type it uses after a delimiter), one
channel per topic with the publishers' QoS ("offered_qos_profiles") for playback, and at
close the "rosbag2" metadata record and the summary and indexes. Times are nanoseconds.

Also here: which topics a recorder takes (TopicSelection), the QoS that receives from every
publisher of a topic (subscription_policy) and the per-topic rate limit of large streams
(RateLimit). No rclpy: the node converts rclpy's QoS into OfferedQos.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from mcap import __version__ as mcap_version
from mcap.writer import CompressionType, Writer

PROFILE = "ros2"
MESSAGE_ENCODING = "cdr"
SCHEMA_ENCODING = "ros2msg"
DELIMITER = "=" * 80
BAG_METADATA_VERSION = 9            # rosbag2 in Jazzy: QoS policies written as words
DURATION_INFINITE_NS = 2**63 - 1    # RMW_DURATION_INFINITE: {sec: 9223372036, nsec: 854775807}

# Field types of .msg files that are not messages (bounded strings, string<=N, are caught apart).
PRIMITIVE_TYPES = frozenset({"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16",
                             "int32", "uint32", "int64", "uint64", "string", "wstring"})
_COMPRESSION = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


class MessageDefinitionError(LookupError):
    """A message type's .msg definition, or one of the types it uses, cannot be found or understood."""


def _default_share_directory(package: str) -> str:
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    try:
        return get_package_share_directory(package)
    except PackageNotFoundError as err:
        raise MessageDefinitionError(f"package '{package}' is not installed (not in AMENT_PREFIX_PATH)") from err


def split_type_name(type_name: str) -> tuple[str, str, str]:
    """'pkg/msg/Type' or 'pkg/Type' -> ('pkg', 'msg', 'Type')."""
    parts = type_name.split("/")
    if len(parts) == 2:
        parts.insert(1, "msg")
    if len(parts) != 3 or not all(_NAME.fullmatch(p) for p in parts):
        raise MessageDefinitionError(f"'{type_name}' is not a message type name like 'pkg/msg/Type'")
    return parts[0], parts[1], parts[2]


def field_types(msg_text: str, package: str) -> list[str]:
    """The message types a .msg text uses, sorted and each once, as 'pkg/Type'.

    A type without a package is of the same package, except Header (std_msgs/Header).
    Constants and fields of primitive type are skipped.
    """
    found = set()
    for line in msg_text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        base = words[0].split("[", 1)[0]
        if base in PRIMITIVE_TYPES or base.startswith(("string<=", "wstring<=")):
            continue
        if "/" in base:
            found.add(base)
        elif base == "Header":
            found.add("std_msgs/Header")
        else:
            found.add(f"{package}/{base}")
    return sorted(found)


def field_names(msg_text: str) -> list[str]:
    """The names of the fields a .msg text declares, in order (constants left out)."""
    names = []
    for line in msg_text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 2 or "=" in words[1] or (len(words) > 2 and words[2].startswith("=")):
            continue
        names.append(words[1])
    return names


class MessageDefinitions:
    """Complete message definitions from the installed share/<pkg>/msg/<Type>.msg files, cached.

    The layout is rosbag2's: the type's own text first, then each type it uses, depth
    first in sorted order and each only once, after a newline, a line of 80 '=' and a
    line "MSG: pkg/Type" (the name as the field that uses it spells it).
    """

    def __init__(self, share_directory: Callable[[str], str] = _default_share_directory):
        self._share_directory = share_directory
        self._texts: dict[tuple[str, str], str] = {}
        self._complete: dict[str, str] = {}

    def text(self, type_name: str) -> str:
        """The .msg file of one type, as it is installed."""
        package, kind, name = split_type_name(type_name)
        if kind != "msg":
            raise MessageDefinitionError(f"'{type_name}': only message (.msg) types are recorded, not '{kind}'")
        key = (package, name)
        if key not in self._texts:
            path = Path(self._share_directory(package)) / "msg" / f"{name}.msg"
            try:
                self._texts[key] = path.read_text(encoding="utf-8")
            except OSError as err:
                raise MessageDefinitionError(f"no definition of '{type_name}': cannot read {path}: "
                                             f"{err.strerror}") from err
        return self._texts[key]

    def complete(self, type_name: str) -> str:
        """The type's definition with every type it uses, for an MCAP schema of encoding 'ros2msg'."""
        if type_name not in self._complete:
            seen: set[str] = set()
            self._complete[type_name] = self._append(type_name, seen, depth=50)
        return self._complete[type_name]

    def stale(self, type_name: str, built_fields: Callable[[str], Sequence[str]]) -> list[str]:
        """Where the installed .msg files differ from the built types whose fields
        `built_fields('pkg/msg/Type')` gives: readers would decode such a bag wrongly.

        It happens when a .msg is edited and not yet built, the .msg being installed as
        a link to the source (colcon build --symlink-install).
        """
        problems = []
        named = [type_name] + [line[5:] for line in self.complete(type_name).splitlines() if line.startswith("MSG: ")]
        for name in named:
            package, _, short = split_type_name(name)
            written, built = field_names(self.text(name)), list(built_fields(f"{package}/msg/{short}"))
            if written != built:
                problems.append(f"{package}/msg/{short}: the .msg has fields {written}, the built type {built}")
        return problems

    def _append(self, type_name: str, seen: set[str], depth: int) -> str:
        if depth <= 0:
            raise MessageDefinitionError(f"'{type_name}': message types nest too deep (a cycle?)")
        text = self.text(type_name)
        out = [text]
        for used in field_types(text, split_type_name(type_name)[0]):
            if used in seen:
                continue
            seen.add(used)
            try:
                out.append(f"\n{DELIMITER}\nMSG: {used}\n{self._append(used, seen, depth - 1)}")
            except MessageDefinitionError as err:
                raise MessageDefinitionError(f"'{type_name}' uses {err}") from err
        return "".join(out)


@dataclass(frozen=True)
class OfferedQos:
    """One publisher's QoS, with rmw's names for the policies ('reliable', 'transient_local', ...)."""

    history: str = "unknown"
    depth: int = 0
    reliability: str = "reliable"
    durability: str = "volatile"
    deadline_ns: int = DURATION_INFINITE_NS
    lifespan_ns: int = DURATION_INFINITE_NS
    liveliness: str = "automatic"
    liveliness_lease_duration_ns: int = DURATION_INFINITE_NS
    avoid_ros_namespace_conventions: bool = False

    def as_dict(self) -> dict:
        """The profile as rosbag2 (metadata version 9) writes it."""
        def duration(ns: int) -> dict:
            return {"sec": ns // 1_000_000_000, "nsec": ns % 1_000_000_000}
        return {"history": self.history, "depth": self.depth, "reliability": self.reliability,
                "durability": self.durability, "deadline": duration(self.deadline_ns),
                "lifespan": duration(self.lifespan_ns), "liveliness": self.liveliness,
                "liveliness_lease_duration": duration(self.liveliness_lease_duration_ns),
                "avoid_ros_namespace_conventions": self.avoid_ros_namespace_conventions}


def offered_qos_profiles_yaml(offers: Iterable[OfferedQos]) -> str:
    """The channel metadata 'offered_qos_profiles': a YAML list of profiles; '' when none are known."""
    profiles = [offer.as_dict() for offer in offers]
    return yaml.safe_dump(profiles, default_flow_style=False, sort_keys=False) if profiles else ""


@dataclass(frozen=True)
class SubscriptionPolicy:
    reliable: bool
    transient_local: bool
    depth: int


def subscription_policy(offers: Sequence[OfferedQos], depth: int) -> SubscriptionPolicy:
    """The QoS that receives from every publisher of a topic, as rosbag2's recorder chooses it.

    Reliable only when every publisher is reliable (a reliable subscription gets nothing
    from a best-effort publisher); transient local only when every publisher is, so the
    last values of latched topics are recorded (a transient-local subscription gets
    nothing from a volatile publisher). The queue is at least as deep as the deepest
    latched publisher's, so a late recorder gets all of that history.
    """
    reliable = all(o.reliability == "reliable" for o in offers)
    transient_local = bool(offers) and all(o.durability == "transient_local" for o in offers)
    if transient_local:
        depth = max([depth, *(o.depth for o in offers)])
    return SubscriptionPolicy(reliable, transient_local, depth)


class TopicSelection:
    """Which topics are recorded: a name matching an include pattern and no exclude pattern.

    Patterns are Python regular expressions matched against the whole fully qualified
    name. Hidden topics (a name part starting with '_', such as actions' feedback and
    status) are left out unless asked for, as `ros2 bag record` does.
    """

    def __init__(self, include: Sequence[str], exclude: Sequence[str], include_hidden: bool = False):
        self.include = [self._compile(p, "include") for p in include]
        self.exclude = [self._compile(p, "exclude") for p in exclude]
        self.include_hidden = include_hidden

    @staticmethod
    def _compile(pattern: str, which: str) -> re.Pattern:
        try:
            return re.compile(pattern)
        except re.error as err:
            raise ValueError(f"{which} pattern {pattern!r} is not a regular expression: {err}") from err

    def __call__(self, topic: str) -> bool:
        if not self.include_hidden and any(part.startswith("_") for part in topic.split("/")):
            return False
        return (any(p.fullmatch(topic) for p in self.include)
                and not any(p.fullmatch(topic) for p in self.exclude))


class RateLimit:
    """Keeps at most `max_rate_hz` messages a second of one topic; 0 keeps everything.

    A message is kept when at least 1/max_rate_hz has passed since the last kept one;
    time going backwards (a restarted simulation) starts afresh.
    """

    def __init__(self, max_rate_hz: float):
        self.period_ns = int(1e9 / max_rate_hz) if max_rate_hz > 0 else 0
        self.last_ns: int | None = None
        self.dropped = 0

    def keep(self, now_ns: int) -> bool:
        if self.last_ns is None or now_ns < self.last_ns or now_ns - self.last_ns >= self.period_ns:
            self.last_ns = now_ns
            return True
        self.dropped += 1
        return False


@dataclass
class _Topic:
    name: str
    type_name: str
    channel_id: int
    offers: tuple[OfferedQos, ...]
    type_hash: str
    count: int = 0


class McapBagWriter:
    """Writes serialized (CDR) ROS 2 messages into one MCAP file that rosbag2 could have written.

    Usage: add_topic() once per topic, write() for each message, close() at the end;
    close() writes the summary and indexes, so call it from the node's shutdown (it
    runs once; later calls do nothing). flush() ends the chunk in progress and puts all
    so far on disk, so a run that is killed keeps those messages for `mcap recover`.
    """

    def __init__(self, path: str | os.PathLike, *, compression: str = "zstd", chunk_size: int = 1024 * 1024,
                 ros_distro: str | None = None, definitions: MessageDefinitions | None = None):
        if compression not in _COMPRESSION:
            raise ValueError(f"compression must be one of {', '.join(_COMPRESSION)}, not {compression!r}")
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path} exists already; not overwriting a recording")
        self.compression = compression
        self.ros_distro = os.environ.get("ROS_DISTRO", "") if ros_distro is None else ros_distro
        self.definitions = definitions or MessageDefinitions()
        self._topics: dict[str, _Topic] = {}
        self._schemas: dict[str, int] = {}
        self._start_ns: int | None = None
        self._end_ns = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")  # kept open until close()
        self._writer = Writer(self._file, chunk_size=chunk_size, compression=_COMPRESSION[compression])
        self._writer.start(profile=PROFILE, library=f"dfr_bringup.mcap_bag (mcap {mcap_version})")
        self.closed = False

    def __enter__(self) -> McapBagWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def has_topic(self, topic: str) -> bool:
        return topic in self._topics

    def add_topic(self, topic: str, type_name: str, offers: Iterable[OfferedQos] = (), type_hash: str = "") -> None:
        """Declares a topic: its channel, and its type's schema the first time the type is seen.

        Raises MessageDefinitionError, before anything is written, when the type's
        definition is not installed.
        """
        self._check_open()
        if topic in self._topics:
            raise ValueError(f"topic {topic} is in the bag already")
        package, kind, name = split_type_name(type_name)
        type_name = f"{package}/{kind}/{name}"
        if type_name not in self._schemas:
            definition = self.definitions.complete(type_name)
            self._schemas[type_name] = self._writer.register_schema(
                name=type_name, encoding=SCHEMA_ENCODING, data=definition.encode("utf-8"))
        offers = tuple(offers)
        channel_id = self._writer.register_channel(
            topic=topic, message_encoding=MESSAGE_ENCODING, schema_id=self._schemas[type_name],
            metadata={"offered_qos_profiles": offered_qos_profiles_yaml(offers), "topic_type_hash": type_hash})
        self._topics[topic] = _Topic(topic, type_name, channel_id, offers, type_hash)

    def write(self, topic: str, data: bytes, log_time_ns: int, publish_time_ns: int | None = None) -> None:
        """One message, serialized as it was on the wire; log time is when it was received."""
        self._check_open()
        entry = self._topics.get(topic)
        if entry is None:
            raise KeyError(f"topic {topic} was not added to the bag")
        if log_time_ns < 0:
            raise ValueError(f"{topic}: negative log time {log_time_ns} ns")
        entry.count += 1
        self._writer.add_message(channel_id=entry.channel_id, log_time=log_time_ns, data=bytes(data),
                                 publish_time=log_time_ns if publish_time_ns is None else publish_time_ns,
                                 sequence=entry.count)
        self._start_ns = log_time_ns if self._start_ns is None else min(self._start_ns, log_time_ns)
        self._end_ns = max(self._end_ns, log_time_ns)

    def flush(self) -> None:
        if not self.closed:
            self._writer.flush()

    @property
    def message_counts(self) -> dict[str, int]:
        return {name: t.count for name, t in self._topics.items()}

    @property
    def message_count(self) -> int:
        return sum(t.count for t in self._topics.values())

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size if self.closed else self._file.tell()

    def close(self) -> None:
        """Writes rosbag2's metadata record, the summary and the indexes, and closes the file."""
        if self.closed:
            return
        self.closed = True
        try:
            self._writer.add_metadata("rosbag2", {"serialized_metadata": self.bag_metadata_yaml()})
            self._writer.finish()
        finally:
            self._file.close()

    def bag_metadata_yaml(self) -> str:
        """rosbag2's BagMetadata (version 9), which `ros2 bag info` shows for the file."""
        start = self._start_ns or 0
        duration = self._end_ns - start if self._start_ns is not None else 0
        count = self.message_count
        metadata = {
            "version": BAG_METADATA_VERSION,
            "storage_identifier": "mcap",
            "duration": {"nanoseconds": duration},
            "starting_time": {"nanoseconds_since_epoch": start},
            "message_count": count,
            "topics_with_message_count": [
                {"topic_metadata": {"name": t.name, "type": t.type_name, "serialization_format": MESSAGE_ENCODING,
                                    "offered_qos_profiles": [o.as_dict() for o in t.offers],
                                    "type_description_hash": t.type_hash},
                 "message_count": t.count}
                for t in self._topics.values()],
            "compression_format": "",       # MCAP's chunk compression is inside the file, not rosbag2's
            "compression_mode": "",
            "relative_file_paths": [self.path.name],
            "files": [{"path": self.path.name, "starting_time": {"nanoseconds_since_epoch": start},
                       "duration": {"nanoseconds": duration}, "message_count": count}],
            "custom_data": {},
            "ros_distro": self.ros_distro,
        }
        return yaml.safe_dump(metadata, default_flow_style=False, sort_keys=False)

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"{self.path}: the bag is closed")

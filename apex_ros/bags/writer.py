"""Write rosbag2 bags: a directory of MCAP files (profile 'ros2') plus metadata.yaml (v9).

Layout and records follow Jazzy's rosbag2_storage_mcap: files `<bag>_<i>.mcap`, one schema
per type ('ros2msg' text), one channel per topic (message encoding 'cdr', metadata
'offered_qos_profiles' and 'topic_type_hash'), messages as the CDR bytes received, and at
the close of each file a 'rosbag2' metadata record holding the bag information so far.
Chunks are uncompressed (Jazzy's default) but carry CRCs, so damage is detected.

Crash safety: the open chunk is written out at least every `flush_period` seconds, so a
hard kill loses at most that much; the file then lacks its summary and metadata.yaml is
missing, and apex_ros.bags.reader recovers everything up to the last whole record.
"""
import dataclasses
import os
import time
from pathlib import Path

from mcap.writer import CompressionType, Writer

from .. import __version__
from ..errors import ApexError
from . import metadata as md
from .msgdefs import message_definition, type_hash

CHUNK_SIZE = 768 * 1024        # mcap-cpp's default, used by rosbag2
RECORD_OVERHEAD = 31 + 16      # message record header; its message-index entry


class BagError(ApexError):
    """A bag that cannot be written or read as asked; says which bag, file, topic."""


@dataclasses.dataclass
class TopicInfo:
    name: str
    type: str
    qos: list = dataclasses.field(default_factory=list)   # offered profiles (metadata.qos_profile)
    type_hash: str = ''
    definition: str = ''
    count: int = 0


class _File:
    """One MCAP file being written."""

    def __init__(self, path: Path, chunk_size: int):
        self.path = path
        self.stream = open(path, 'xb')
        self.writer = Writer(self.stream, chunk_size=chunk_size, compression=CompressionType.NONE)
        self.writer.start(profile='ros2', library=f'apex_ros {__version__} (mcap-python)')
        self.schemas, self.channels = {}, {}
        self.start = self.end = 0
        self.count = 0
        self.pending = 0           # bytes buffered in the open chunk

    def add_topic(self, topic: TopicInfo):
        if topic.type not in self.schemas:
            self.schemas[topic.type] = self.writer.register_schema(
                topic.type, 'ros2msg' if topic.definition else '', topic.definition.encode())
        self.channels[topic.name] = self.writer.register_channel(
            topic.name, 'cdr', self.schemas[topic.type],
            {'offered_qos_profiles': md.qos_yaml(topic.qos), 'topic_type_hash': topic.type_hash})

    def write(self, topic, data, log_time, publish_time, sequence):
        self.writer.add_message(self.channels[topic], log_time, data, publish_time,
                                sequence & 0xFFFFFFFF)
        if self.count == 0:
            self.start = self.end = log_time
        self.start, self.end = min(self.start, log_time), max(self.end, log_time)
        self.count += 1
        self.pending += len(data) + RECORD_OVERHEAD

    @property
    def size(self) -> int:
        return self.stream.tell() + self.pending

    def flush(self):
        self.writer.flush()
        self.pending = 0

    def close(self, information: dict):
        self.writer.add_metadata('rosbag2', {'serialized_metadata':
                                             md.dump_information(information)})
        self.writer.finish()
        self.stream.flush()
        os.fsync(self.stream.fileno())
        self.stream.close()

    def summary(self, root: Path) -> dict:
        return {'path': str(self.path.relative_to(root)), 'start': self.start, 'end': self.end,
                'count': self.count}


class BagWriter:
    """Create the bag directory `path` (it must not exist) and write messages to it.

    max_bag_size (bytes) / max_bag_duration (s): start a new file when the current one reaches
    either (0: never), as `ros2 bag record --max-bag-size/--max-bag-duration` do.
    """

    def __init__(self, path, max_bag_size: int = 0, max_bag_duration: float = 0.0,
                 flush_period: float = 1.0, chunk_size: int = CHUNK_SIZE,
                 custom_data: dict | None = None):
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f'{self.path} exists already; choose a new bag directory')
        if max_bag_size < 0 or max_bag_duration < 0:
            raise BagError('max bag size and duration must be >= 0 (0: no splitting)')
        self.max_size, self.max_duration_ns = int(max_bag_size), int(max_bag_duration * 1e9)
        self.flush_period, self.chunk_size = flush_period, chunk_size
        self.custom_data = dict(custom_data or {})
        try:
            self.path.mkdir(parents=True)
        except OSError as e:
            raise BagError(f'cannot create bag directory {self.path}: {e.strerror}') from None
        self.topics: dict[str, TopicInfo] = {}
        self.closed_files: list[dict] = []
        self.warnings: list[str] = []
        self.file = self._open_file()
        self.last_flush = time.monotonic()

    # --- topics and messages ----------------------------------------------------------------
    def add_topic(self, name: str, type_name: str, qos=(), type_hash_str: str | None = None,
                  definition: str | None = None) -> TopicInfo:
        if name in self.topics:
            raise BagError(f'topic {name} is already in the bag')
        if definition is None:
            try:
                definition = message_definition(type_name)
            except ApexError as e:   # rosbag2 too records such a topic, schema left empty
                self.warnings.append(f'{name}: {e}; its schema is left empty')
                definition = ''
        topic = TopicInfo(name, type_name, list(qos),
                          type_hash(type_name) if not type_hash_str else type_hash_str,
                          definition)
        self.topics[name] = topic
        self.file.add_topic(topic)
        return topic

    def write(self, topic: str, data: bytes, log_time: int, publish_time: int | None = None,
              sequence: int = 0):
        """Store `data` (the CDR bytes as received) on `topic`; times in ns since the epoch."""
        if topic not in self.topics:
            raise BagError(f'topic {topic} was not added to the bag')
        if self._split_due(log_time):
            self.split()
        self.file.write(topic, data, log_time, log_time if publish_time is None else publish_time,
                        sequence)
        self.topics[topic].count += 1
        if self.file.pending >= self.chunk_size:
            self.file.pending = 0   # the mcap writer closed the chunk itself
        self.flush_if_due()

    def _split_due(self, log_time) -> bool:
        f = self.file
        if f.count == 0:
            return False
        return ((self.max_size and f.size >= self.max_size) or
                (self.max_duration_ns and log_time - f.start >= self.max_duration_ns))

    def flush_if_due(self):
        if time.monotonic() - self.last_flush >= self.flush_period:
            self.flush()

    def flush(self):
        """Write the open chunk to the file (readable after a crash from here on)."""
        self.file.flush()
        self.last_flush = time.monotonic()

    # --- files ------------------------------------------------------------------------------
    def _open_file(self) -> _File:
        index = len(self.closed_files)
        f = _File(self.path / f'{self.path.name}_{index}.mcap', self.chunk_size)
        for topic in self.topics.values():
            f.add_topic(topic)
        return f

    def split(self):
        """Close the current file and continue in a new one."""
        self._close_file()
        self.file = self._open_file()

    def _close_file(self):
        files = self.closed_files + [self.file.summary(self.path)]
        self.file.close(self.information(files))
        self.closed_files.append(files[-1])

    def information(self, files=None) -> dict:
        files = files if files is not None else (self.closed_files +
                                                 [self.file.summary(self.path)])
        topics = [{'name': t.name, 'type': t.type, 'qos': t.qos, 'type_hash': t.type_hash,
                   'count': t.count} for t in self.topics.values()]
        return md.bag_information(files, topics, self.custom_data)

    def close(self) -> dict:
        """Finish the open file and write metadata.yaml; returns the bag information."""
        if self.file is None:
            return self.information(self.closed_files)
        self._close_file()
        self.file = None
        info = self.information(self.closed_files)
        md.write_metadata(self.path, info)
        return info

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

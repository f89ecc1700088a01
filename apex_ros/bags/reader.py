"""Read rosbag2 MCAP bags (ours, `ros2 bag record`'s, or any ros2-profile MCAP) tolerantly.

Messages come in file order, the order they were received; nothing is reordered. Each file
is read record by record with mcap's stream reader, so a file whose recording was killed
(no summary, maybe a torn last record) or that is damaged is read up to the last whole,
intact record, and the reader says where it stopped and why. A bag without metadata.yaml
(the recorder never closed) is read from its .mcap files alone, and the reader says so.
Receive times going backwards on a topic are reported, never silently fixed.
"""
import dataclasses
import io
import re
import struct
from pathlib import Path

from mcap.data_stream import ReadDataStream
from mcap.exceptions import McapError
from mcap.opcode import Opcode
from mcap.records import Channel, Chunk, Footer, Message, Schema
from mcap.stream_reader import StreamReader, breakup_chunk
from mcap_ros2.decoder import DecoderFactory

from . import metadata as md
from .writer import BagError

MAX_LISTED = 5   # backwards-time events spelled out; the rest are counted
MCAP_MAGIC = b'\x89MCAP'   # the first bytes of every MCAP file (then the version, '\r\n')


@dataclasses.dataclass
class BagMessage:
    topic: str
    type: str
    log_time: int        # receive time, ns
    publish_time: int
    sequence: int
    data: bytes          # CDR, as recorded
    file: str            # file name within the bag
    offset: int          # byte offset of its record (of its chunk, in chunked files)
    index: int           # ordinal among this topic's messages in the bag
    msg: object = None   # decoded message (when asked for)
    channel: int = dataclasses.field(default=0, repr=False)


@dataclasses.dataclass
class FileStatus:
    path: str
    size: int
    messages: int = 0
    complete: bool = False            # read through the footer
    stopped_at: int | None = None     # byte offset where reading stopped, if it did early
    problem: str = ''
    expected: int | None = None       # message count metadata.yaml lists for the file

    def describe(self) -> str:
        if self.complete and not self.problem:
            text = f'{self.path}: complete, {self.messages} messages'
        elif self.stopped_at is None:
            text = f'{self.path}: {self.problem}'
        elif self.stopped_at >= self.size:
            text = (f'{self.path}: ends after its last whole record at byte {self.stopped_at} '
                    f'without the MCAP summary (the recording was not closed); read '
                    f'{self.messages} messages')
        else:
            text = (f'{self.path}: stopped at byte {self.stopped_at} of {self.size}: '
                    f'{self.problem}; read {self.messages} messages before it, the remaining '
                    f'{self.size - self.stopped_at} bytes are skipped')
        if self.expected is not None and self.expected != self.messages:
            text += f' (metadata.yaml lists {self.expected})'
        return text


def _file_index(path: Path):
    m = re.search(r'_(\d+)\.mcap$', path.name)
    return (int(m.group(1)) if m else -1, path.name)


class BagReader:
    """`path`: a bag directory (metadata.yaml optional) or a single .mcap file."""

    def __init__(self, path):
        self.path = Path(path)
        self.notes: list[str] = []       # how the bag was read, what was recovered
        self.backwards: list[str] = []   # receive times going backwards
        self.backwards_count = 0
        self.files: list[FileStatus] = []
        if self.path.is_file():
            if not _starts_as_mcap(self.path):
                raise BagError(f'{self.path}: not an MCAP file (or rosbag2 directory)')
            self.root, self.metadata = self.path.parent, None
            self.file_names = [self.path.name]
            self.notes.append(f'{self.path}: a single MCAP file, no metadata.yaml')
        elif self.path.is_dir():
            self.root = self.path
            self.metadata = md.read_metadata(self.path)
            if self.metadata is not None:
                self.file_names = list(self.metadata['relative_file_paths'])
            else:
                found = sorted(self.path.glob('*.mcap'), key=_file_index)
                if not found:
                    others = sorted(p.name for p in self.path.iterdir())[:8]
                    raise BagError(f'{self.path}: no metadata.yaml and no .mcap files '
                                   f'(contains: {", ".join(others) or "nothing"}); apex_ros '
                                   'reads MCAP bags')
                self.file_names = [p.name for p in found]
                self.notes.append(
                    f'{self.path}: no metadata.yaml (the recorder did not close the bag: '
                    f'killed?); read {len(found)} MCAP file(s) directly and rebuilt the topic '
                    'list and counts from them')
        else:
            raise BagError(f'{self.path}: no such bag (directory or .mcap file)')
        self.topic_table: dict[str, dict] = {}   # name -> {type, count, qos, type_hash}
        if self.metadata is not None:
            for t in self.metadata.get('topics_with_message_count', []):
                tm = t['topic_metadata']
                self.topic_table[tm['name']] = {
                    'type': tm['type'], 'count': t['message_count'],
                    'qos': md.parse_qos(tm.get('offered_qos_profiles')),
                    'type_hash': tm.get('type_description_hash', '')}
        self._scanned = False

    # --- topics -----------------------------------------------------------------------------
    def topics(self) -> dict:
        """{topic: {type, count, qos, type_hash}}; without metadata.yaml, from a scan."""
        if self.metadata is None and not self._scanned:
            for _ in self.messages():
                pass
        return self.topic_table

    def require_topics(self, needed: dict):
        """Raise BagError naming every topic of `needed` ({topic: why}) the bag lacks."""
        have = self.topics()
        missing = [f'{t} ({why})' for t, why in needed.items() if not have.get(t, {}).get('count')]
        if missing:
            raise BagError(f'{self.path} lacks topic(s) {"; ".join(missing)}; it has: '
                           f'{", ".join(sorted(have)) or "no topics"}')

    # --- messages ---------------------------------------------------------------------------
    def messages(self, topics=None, decode: bool = False):
        """Yield BagMessage in file order (the topics given, or all); `decode` fills .msg."""
        wanted = None if topics is None else set(topics)
        self.files, self.backwards, self.backwards_count = [], [], 0
        counts, last_time = {}, {}
        expected = {f['path']: f['message_count'] for f in (self.metadata or {}).get('files', [])}
        for name in self.file_names:
            status = FileStatus(name, 0, expected=expected.get(name))
            self.files.append(status)
            for m in self._read_file(self.root / name, status, wanted, decode, counts):
                prev = last_time.get(m.topic)
                if prev is not None and m.log_time < prev:
                    self._note_backwards(m, prev)
                last_time[m.topic] = m.log_time
                yield m
        if self.metadata is None:
            for topic, n in counts.items():
                self.topic_table[topic]['count'] = n
            self._scanned = wanted is None

    def _note_backwards(self, m, prev):
        self.backwards_count += 1
        if len(self.backwards) < MAX_LISTED:
            self.backwards.append(
                f'{m.topic}: receive time goes backwards at message {m.index} ({m.file}, '
                f'record at byte {m.offset}): {prev} ns -> {m.log_time} ns '
                f'({(m.log_time - prev) * 1e-9:+.6f} s)')

    def _read_file(self, path: Path, status: FileStatus, wanted, decode, counts):
        try:
            stream = open(path, 'rb')
        except OSError as e:
            status.problem = f'cannot open ({e.strerror}); listed in metadata.yaml but missing'
            return
        state = _FileState(path.name, wanted, decode, counts)
        with stream:
            status.size = path.stat().st_size
            records = StreamReader(stream, emit_chunks=True,
                                   record_size_limit=max(status.size, 1)).records
            good_end = 0
            try:
                for record in records:
                    inner = breakup_chunk(record, validate_crc=True) \
                        if isinstance(record, Chunk) else [record]
                    yield from self._records(inner, state, status, good_end)
                    status.complete = status.complete or isinstance(record, Footer)
                    good_end = stream.tell()
                return
            except _Damage as e:
                status.stopped_at, status.problem = good_end, str(e)
                return
            except (McapError, ValueError, struct.error, EOFError, RuntimeError,
                    MemoryError) as e:
                status.stopped_at = good_end
                status.problem = f'unreadable record ({type(e).__name__}: {e})'
            except Exception as e:  # zstd/lz4 raise their own types for corrupt chunks
                if type(e).__module__.split('.')[0] not in ('zstandard', 'lz4', '_lz4'):
                    raise
                status.stopped_at, status.problem = good_end, f'corrupt chunk ({e})'
                return
            stream.seek(good_end)
            tail = stream.read()
        if not _runs_past_end(tail):
            return
        status.problem = 'the file ends inside a record (truncated)'
        inner, end = salvage_torn_chunk(tail)
        if inner:   # a torn last chunk, uncompressed: its whole records are still readable
            before = status.messages
            try:
                yield from self._records(inner, state, status, good_end)
            except _Damage:
                pass
            status.problem += (f'; salvaged {status.messages - before} messages from the torn '
                               f'chunk at byte {good_end} (its CRC cannot be checked)')
            status.stopped_at = good_end + end

    def _records(self, records, state, status, offset):
        for r in records:
            if isinstance(r, Schema):
                state.schemas[r.id] = r
            elif isinstance(r, Channel):
                state.channels[r.id] = r
                self._add_topic(r, state.schemas.get(r.schema_id))
            elif isinstance(r, Message):
                m = self._message(r, state, offset)
                status.messages += 1
                if state.wanted is None or m.topic in state.wanted:
                    if state.decode:
                        m.msg = self._decode(m, state)
                    yield m

    def _add_topic(self, channel, schema):
        entry = self.topic_table.setdefault(channel.topic, {
            'type': schema.name if schema else '', 'count': 0,
            'qos': md.parse_qos(channel.metadata.get('offered_qos_profiles')),
            'type_hash': channel.metadata.get('topic_type_hash', '')})
        if self.metadata is None:
            entry['count'] = entry.get('count', 0)

    def _message(self, r, state, offset):
        channel = state.channels.get(r.channel_id)
        if channel is None:
            raise _Damage(f'message on unknown channel {r.channel_id}')
        schema = state.schemas.get(channel.schema_id)
        index = state.counts.get(channel.topic, 0)
        state.counts[channel.topic] = index + 1
        return BagMessage(channel.topic, schema.name if schema else '', r.log_time,
                          r.publish_time, r.sequence, r.data, state.file_name, offset, index,
                          channel=r.channel_id)

    def _decode(self, m, state):
        channel = state.channels[m.channel]
        schema = state.schemas.get(channel.schema_id)
        decoder = state.decoders.decoder_for(channel.message_encoding, schema) \
            if schema else None
        if decoder is None:
            raise BagError(f'{self.path}: topic {m.topic} has no ros2msg schema '
                           f'(encoding {channel.message_encoding!r}); cannot decode it')
        try:
            return decoder(m.data)
        except Exception as e:  # the CDR decoder raises assorted types on bad bytes
            raise _Damage(f'message {m.index} on {m.topic} does not decode as {m.type} '
                          f'({type(e).__name__}: {e})') from None

    # --- report -----------------------------------------------------------------------------
    def report(self) -> list[str]:
        """Human-readable lines: how the bag was read, what stopped early, time problems."""
        lines = list(self.notes)
        lines += [f.describe() for f in self.files if not f.complete or f.problem
                  or (f.expected is not None and f.expected != f.messages)]
        lines += self.backwards
        if self.backwards_count > len(self.backwards):
            lines.append(f'... receive time went backwards {self.backwards_count} times in all')
        return lines

    @property
    def damaged(self) -> bool:
        return any(f.stopped_at is not None and f.stopped_at < f.size or
                   (f.problem and f.stopped_at is None) for f in self.files)


class _Damage(Exception):
    pass


def _starts_as_mcap(path: Path) -> bool:
    try:
        with open(path, 'rb') as f:
            return f.read(len(MCAP_MAGIC)) == MCAP_MAGIC
    except OSError as e:
        raise BagError(f'{path}: cannot read ({e.strerror})') from None


class _FileState:
    def __init__(self, file_name, wanted, decode, counts):
        self.file_name, self.wanted, self.decode, self.counts = file_name, wanted, decode, counts
        self.schemas, self.channels, self.decoders = {}, {}, DecoderFactory()


def _runs_past_end(tail: bytes) -> bool:
    """Whether the record starting `tail` claims more bytes than the file has left."""
    if len(tail) < 9:
        return True
    _, length = struct.unpack_from('<BQ', tail)
    return 9 + length > len(tail)


def salvage_torn_chunk(tail: bytes):
    """The whole records inside a truncated, uncompressed chunk record at the start of `tail`
    -> (records, bytes of `tail` they span); ([], 0) if it is not such a chunk."""
    if len(tail) < 9 or tail[0] != Opcode.CHUNK:
        return [], 0
    try:
        (n,) = struct.unpack_from('<I', tail, 9 + 28)
        compression = tail[9 + 32:9 + 32 + n]
        pos = 9 + 32 + n + 8
    except struct.error:
        return [], 0
    if compression != b'':
        return [], 0
    records, end = [], 0
    readers = {Opcode.SCHEMA: Schema.read, Opcode.CHANNEL: Channel.read}
    while pos + 9 <= len(tail):
        opcode, length = struct.unpack_from('<BQ', tail, pos)
        body = tail[pos + 9:pos + 9 + length]
        if len(body) < length:
            break
        stream = ReadDataStream(io.BytesIO(body))
        try:
            if opcode == Opcode.MESSAGE:
                records.append(Message.read(stream, length))
            elif opcode in readers:
                records.append(readers[opcode](stream))
        except (McapError, ValueError, struct.error):
            break
        pos += 9 + length
        end = pos
    return records, end

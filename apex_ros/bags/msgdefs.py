"""ROS 2 message definitions and type hashes for bag schemas, found the way rosbag2 finds them.

rosbag2's MCAP storage stores one schema per type (encoding 'ros2msg'): the type's own .msg
file, then for each dependency not yet written (sorted, depth first) a line of 80 '=' and
'MSG: pkg/Type' followed by that type's .msg text. The .msg files come from the packages'
share/ directories: AMENT_PREFIX_PATH, then this Python's prefix (where the ROS wheels put
them). A type found in neither falls back to the rosbags type store (same fields, no
comments). No rclpy here.
"""
import functools
import os
import re
import sys
from pathlib import Path

from ..errors import ApexError

SEPARATOR = '=' * 80
_TYPENAME = re.compile(r'^([a-zA-Z][a-zA-Z0-9_]*)/(?:(msg|srv)/)?([a-zA-Z][a-zA-Z0-9_]*)$')
_FIELD_TYPE = re.compile(r'(?:^|\n)\s*([a-zA-Z0-9_/]+)(?:\[[^\]]*\])?\s+')
PRIMITIVES = frozenset(('bool', 'byte', 'char', 'float32', 'float64', 'int8', 'uint8', 'int16',
                        'uint16', 'int32', 'uint32', 'int64', 'uint64', 'string'))


def _prefixes():
    paths = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    return [Path(p) for p in dict.fromkeys(paths + [sys.prefix])]


def _msg_file(type_name: str):
    m = _TYPENAME.match(type_name)
    if m is None:
        raise ApexError(f'message type {type_name!r}: expected pkg/msg/Type')
    package, namespace, name = m.group(1), m.group(2) or 'msg', m.group(3)
    for prefix in _prefixes():
        path = prefix / 'share' / package / namespace / f'{name}.msg'
        if path.is_file():
            return path, package
    return None, package


def _dependencies(text: str, package: str):
    deps = set()
    for m in _FIELD_TYPE.finditer(text):
        field_type = m.group(1)
        if field_type in PRIMITIVES:
            continue
        deps.add(field_type if '/' in field_type else f'{package}/{field_type}')
    return sorted(deps)


def _local_definition(type_name: str):
    """rosbag2's full text from the share/ .msg files, or None if a file is missing."""
    seen = set()

    def append(name):
        path, package = _msg_file(name)
        if path is None:
            raise FileNotFoundError(name)
        text = path.read_text()
        out = text
        for dep in _dependencies(text, package):
            if dep not in seen:
                seen.add(dep)
                out += f'\n{SEPARATOR}\nMSG: {dep}\n' + append(dep)
        return out
    try:
        return append(type_name)
    except FileNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def _typestore():
    try:
        from rosbags.typesys import Stores, get_typestore
    except ImportError:
        return None
    return get_typestore(Stores.ROS2_JAZZY)


@functools.lru_cache(maxsize=None)
def message_definition(type_name: str) -> str:
    """The 'ros2msg' schema text rosbag2 would store for `type_name` (pkg/msg/Type)."""
    text = _local_definition(type_name)
    if text is not None:
        return text
    store = _typestore()
    if store is not None and type_name in store.fielddefs:
        return store.generate_msgdef(type_name, ros_version=2)[0]
    raise ApexError(f'no message definition for {type_name}: neither a share/*/msg file '
                    '(AMENT_PREFIX_PATH) nor the rosbags Jazzy type store has it')


@functools.lru_cache(maxsize=None)
def type_hash(type_name: str) -> str:
    """RIHS01 type hash of a Jazzy message type ('' if unknown; a live graph reports it too)."""
    store = _typestore()
    if store is None or type_name not in store.fielddefs:
        return ''
    return store.hash_rihs01(type_name)

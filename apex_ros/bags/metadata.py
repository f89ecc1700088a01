"""rosbag2 metadata: QoS profiles and metadata.yaml (version 9, as Jazzy writes it).

QoS profiles are plain dicts with rosbag2's keys and v9 values (policy names, not numbers):
    {history, depth, reliability, durability, deadline: {sec, nsec}, lifespan,
     liveliness, liveliness_lease_duration, avoid_ros_namespace_conventions}
In metadata.yaml v9 `offered_qos_profiles` is a YAML list of them; in the MCAP channel
metadata (key 'offered_qos_profiles') the same list is serialized to a YAML string.
Versions <= 8 stored that string in metadata.yaml too, with policies as numbers.
"""
import os

import yaml

from ..errors import ApexError
from ..files import atomic_write_text

VERSION = 9
METADATA_FILE = 'metadata.yaml'
TOP_KEY = 'rosbag2_bagfile_information'
INFINITE = {'sec': 9223372036, 'nsec': 854775807}   # RMW_DURATION_INFINITE

# rmw enum values (index = number used by metadata versions <= 8)
HISTORY = ('system_default', 'keep_last', 'keep_all', 'unknown')
RELIABILITY = ('system_default', 'reliable', 'best_effort', 'unknown', 'best_available')
DURABILITY = ('system_default', 'transient_local', 'volatile', 'unknown', 'best_available')
LIVELINESS = ('system_default', 'automatic', 'manual_by_node', 'manual_by_topic', 'unknown',
              'best_available')
_POLICIES = {'history': HISTORY, 'reliability': RELIABILITY, 'durability': DURABILITY,
             'liveliness': LIVELINESS}


def qos_profile(reliability='reliable', durability='volatile', history='unknown', depth=0,
                deadline=None, lifespan=None, liveliness='automatic', lease=None,
                avoid_ros_namespace_conventions=False) -> dict:
    """A profile as rosbag2 records a publisher's offer (DDS does not tell the history, so
    offers read from the graph have history 'unknown' and depth 0)."""
    return {'history': history, 'depth': int(depth), 'reliability': reliability,
            'durability': durability, 'deadline': dict(deadline or INFINITE),
            'lifespan': dict(lifespan or INFINITE), 'liveliness': liveliness,
            'liveliness_lease_duration': dict(lease or INFINITE),
            'avoid_ros_namespace_conventions': bool(avoid_ros_namespace_conventions)}


def qos_yaml(profiles) -> str:
    """The channel-metadata string: the profile list as YAML ('' for none, like rosbag2)."""
    profiles = list(profiles)
    if not profiles:
        return ''
    return yaml.safe_dump(profiles, sort_keys=False, default_flow_style=False)


def parse_qos(value) -> list:
    """Profiles from metadata.yaml or channel metadata: a list, or a YAML string; numbers of
    old metadata versions become policy names."""
    if not value:
        return []
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ApexError(f'offered_qos_profiles is not valid YAML: {e}') from None
    profiles = []
    for item in value or []:
        p = dict(item)
        for key, names in _POLICIES.items():
            if isinstance(p.get(key), int) and 0 <= p[key] < len(names):
                p[key] = names[p[key]]
        profiles.append(p)
    return profiles


def bag_information(files: list, topics: list, custom_data=None, ros_distro=None) -> dict:
    """metadata.yaml content. `files`: [{path, start, end, count}] (ns); `topics`:
    [{name, type, serialization_format, qos, type_hash, count}]."""
    counted = [f for f in files if f['count']]
    start = min((f['start'] for f in counted), default=0)
    end = max((f['end'] for f in counted), default=0)
    return {
        'version': VERSION,
        'storage_identifier': 'mcap',
        'duration': {'nanoseconds': end - start},
        'starting_time': {'nanoseconds_since_epoch': start},
        'message_count': sum(f['count'] for f in files),
        'topics_with_message_count': [{
            'topic_metadata': {
                'name': t['name'], 'type': t['type'],
                'serialization_format': t.get('serialization_format', 'cdr'),
                'offered_qos_profiles': list(t.get('qos') or []),
                'type_description_hash': t.get('type_hash') or '',
            },
            'message_count': t['count'],
        } for t in topics],
        'compression_format': '',
        'compression_mode': '',
        'relative_file_paths': [f['path'] for f in files],
        'files': [{
            'path': f['path'],
            'starting_time': {'nanoseconds_since_epoch': f['start'] if f['count'] else 0},
            'duration': {'nanoseconds': f['end'] - f['start'] if f['count'] else 0},
            'message_count': f['count'],
        } for f in files],
        'custom_data': dict(custom_data) if custom_data else None,
        'ros_distro': ros_distro or os.environ.get('ROS_DISTRO', 'jazzy'),
    }


def dump_information(info: dict) -> str:
    return yaml.safe_dump(info, sort_keys=False, default_flow_style=False)


def write_metadata(bag_dir, info: dict):
    path = os.path.join(bag_dir, METADATA_FILE)
    atomic_write_text(path, dump_information({TOP_KEY: info}))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)   # the temp file was private; a bag is meant to be shared


def read_metadata(bag_dir):
    """-> the bag information dict, or None if the bag has no metadata.yaml."""
    path = os.path.join(bag_dir, METADATA_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
        info = data[TOP_KEY]
        info['version'], info['relative_file_paths']
    except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
        raise ApexError(f'{path}: not a rosbag2 metadata file: {e}') from None
    if info.get('storage_identifier', 'mcap') != 'mcap':
        raise ApexError(f'{path}: storage {info["storage_identifier"]!r}; apex_ros reads MCAP '
                        'bags (record with `ros2 bag record -s mcap`, the Jazzy default)')
    if info.get('compression_mode'):
        raise ApexError(f'{path}: {info["compression_mode"]}-compressed bags '
                        f'({info.get("compression_format")}) are not supported; decompress '
                        'with `ros2 bag convert` first')
    return info

"""rclpy QoS profiles built from the plain settings in apex_ros.ros.protocol."""
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from . import protocol as topics


def profile(settings: dict) -> QoSProfile:
    return QoSProfile(
        depth=settings['depth'],
        reliability=(ReliabilityPolicy.BEST_EFFORT if settings['reliability'] == 'best_effort'
                     else ReliabilityPolicy.RELIABLE),
        durability=(DurabilityPolicy.TRANSIENT_LOCAL
                    if settings.get('durability') == 'transient_local'
                    else DurabilityPolicy.VOLATILE))


STATE = profile(topics.STATE_QOS)
STATE_PUB = profile(topics.STATE_PUB_QOS)
FULL_STATE = profile(topics.FULL_STATE_QOS)
COMMAND = profile(topics.COMMAND_QOS)
BUNDLE = profile(topics.BUNDLE_QOS)
EVENT = profile(topics.EVENT_QOS)

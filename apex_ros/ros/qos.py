"""rclpy QoS profiles built from the plain settings in apex_ros.ros.protocol."""
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from . import protocol


def profile(settings: dict) -> QoSProfile:
    return QoSProfile(
        depth=settings['depth'],
        reliability=(ReliabilityPolicy.BEST_EFFORT if settings['reliability'] == 'best_effort'
                     else ReliabilityPolicy.RELIABLE),
        durability=(DurabilityPolicy.TRANSIENT_LOCAL
                    if settings.get('durability') == 'transient_local'
                    else DurabilityPolicy.VOLATILE))


STATE = profile(protocol.STATE_QOS)
STATE_PUB = profile(protocol.STATE_PUB_QOS)
FULL_STATE = profile(protocol.FULL_STATE_QOS)
INPUT_STREAM = profile(protocol.INPUT_STREAM_QOS)
INPUT_ONESHOT = profile(protocol.INPUT_ONESHOT_QOS)
INPUT_PUB = profile(protocol.INPUT_PUB_QOS)
COMMAND = profile(protocol.COMMAND_QOS)
BUNDLE = profile(protocol.BUNDLE_QOS)
EVENT = profile(protocol.EVENT_QOS)
DEMONSTRATIONS = profile(protocol.DEMONSTRATIONS_QOS)
PLAN = profile(protocol.PLAN_QOS)
STATUS = profile(protocol.STATUS_QOS)

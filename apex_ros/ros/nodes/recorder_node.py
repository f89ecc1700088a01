"""Bag recorder node: what `ros2 bag record -s mcap` does, for the topics apex_ros needs.

Subscribes each requested topic once it has a publisher (polling the graph, as rosbag2
does), with a QoS adapted to the publishers' offers (reliable / transient local only if all
offer it), takes the messages raw (the CDR bytes, never re-serialized) and writes them with
apex_ros.bags.BagWriter: a rosbag2 directory with metadata.yaml (v9) and MCAP files, the
offered QoS profiles and type hashes as the graph reports them.

Parameters: topics (default: /joint_states and /<controller>/commands, plus the full-state
topic when sim is true; with bundle (a policy bundle's path): the bundle's controller unless
controller is given, its gripper command topic and the input topics it declares: an
object's pose, a goal), output (default rosbag2_<date>-<time>), max_bag_size (bytes),
max_bag_duration (s), flush_period (s: the most a hard kill can lose), depth (subscription
queue), start_paused. Services ~/pause, ~/resume, ~/split_bagfile (std_srvs/Trigger).
SIGINT/SIGTERM close the bag cleanly (metadata.yaml written, nothing truncated).
"""
import sys
import time

from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    LivelinessPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from std_srvs.srv import Trigger

from ...bags import metadata as md
from ...bags.writer import BagWriter
from .. import protocol
from .common import spin


def default_topics(controller: str, sim: bool, bundle: str = '') -> list:
    """/joint_states and the command topic of `controller` ('' with a bundle: the bundle's
    controller), the bundle's gripper command topic and input topics, the full state in sim."""
    if not bundle:
        return ([protocol.JOINT_STATES, protocol.command_topic(controller or
                                                               protocol.DEFAULT_CONTROLLER)]
                + ([protocol.FULL_STATE] if sim else []))
    from ...deploy.bundle import PolicyBundle
    policy = PolicyBundle(bundle)
    command = policy.command
    chosen = [protocol.JOINT_STATES, protocol.command_topic(controller or command.controller)]
    if command.gripper is not None:
        chosen.append(protocol.command_topic(command.gripper_controller))
    chosen += [spec.topic for spec in policy.inputs]
    return chosen + [protocol.FULL_STATE] if sim else chosen


def default_output() -> str:
    return time.strftime('rosbag2_%Y_%m_%d-%H_%M_%S')


def _duration(d) -> dict:
    ns = d.nanoseconds
    if ns >= 0x7FFFFFFFFFFFFFFF:     # rclpy's infinite duration -> RMW_DURATION_INFINITE
        return dict(md.INFINITE)
    return {'sec': ns // 1_000_000_000, 'nsec': ns % 1_000_000_000}


def offered_profile(qos) -> dict:
    """An endpoint's QoS (from get_publishers_info_by_topic) as rosbag2 records it."""
    return md.qos_profile(
        reliability=ReliabilityPolicy(qos.reliability).name.lower(),
        durability=DurabilityPolicy(qos.durability).name.lower(),
        history=HistoryPolicy(qos.history).name.lower(), depth=qos.depth,
        deadline=_duration(qos.deadline), lifespan=_duration(qos.lifespan),
        liveliness=LivelinessPolicy(qos.liveliness).name.lower(),
        lease=_duration(qos.liveliness_lease_duration),
        avoid_ros_namespace_conventions=qos.avoid_ros_namespace_conventions)


def subscription_qos(endpoints, depth: int) -> QoSProfile:
    """rosbag2's adapt_request_to_offers: reliable / transient local only if every publisher
    offers it, so the subscription matches all of them."""
    offers = [e.qos_profile for e in endpoints]
    reliable = bool(offers) and all(q.reliability == ReliabilityPolicy.RELIABLE for q in offers)
    latched = bool(offers) and all(q.durability == DurabilityPolicy.TRANSIENT_LOCAL
                                   for q in offers)
    return QoSProfile(depth=depth,
                      reliability=(ReliabilityPolicy.RELIABLE if reliable
                                   else ReliabilityPolicy.BEST_EFFORT),
                      durability=(DurabilityPolicy.TRANSIENT_LOCAL if latched
                                  else DurabilityPolicy.VOLATILE))


class RecorderNode(Node):
    def __init__(self, **settings):
        super().__init__(settings.pop('node_name', protocol.RECORDER_NODE))

        def p(name, default):
            return self.declare_parameter(name, settings.get(name, default)).value
        controller = p('controller', '')
        sim = p('sim', False)
        requested = [t for t in p('topics', ['']) if t]
        self.wanted = requested or default_topics(controller, sim, p('bundle', ''))
        output = p('output', '') or default_output()
        self.depth = p('depth', 100)
        self.paused = p('start_paused', False)
        flush_period = p('flush_period', 1.0)
        self.writer = BagWriter(output, max_bag_size=p('max_bag_size', 0),
                                max_bag_duration=p('max_bag_duration', 0.0),
                                flush_period=flush_period,
                                custom_data={'recorder': 'apex_ros recorder_node'})
        self.subscribed, self.dropped_while_paused = {}, 0
        self.create_timer(p('poll_period', 0.2), self.discover)
        self.create_timer(flush_period, self.writer.flush_if_due)
        self.create_service(Trigger, protocol.PAUSE, self.on_pause)
        self.create_service(Trigger, protocol.RESUME, self.on_resume)
        self.create_service(Trigger, protocol.SPLIT_BAGFILE, self.on_split)
        self.get_logger().info(f'recording to {self.writer.path}: waiting for '
                               f'{", ".join(self.wanted)}'
                               + (' (paused)' if self.paused else ''))
        self.discover()

    # --- discovery ----------------------------------------------------------------------
    def discover(self):
        if len(self.subscribed) == len(self.wanted):
            return
        types = dict(self.get_topic_names_and_types())
        for topic in self.wanted:
            if topic in self.subscribed or topic not in types:
                continue
            endpoints = self.get_publishers_info_by_topic(topic)
            if not endpoints:
                continue
            self.subscribe(topic, types[topic], endpoints)

    def subscribe(self, topic, type_names, endpoints):
        type_name = type_names[0]
        if len(type_names) > 1:
            self.get_logger().warning(f'{topic} has several types {type_names}; '
                                      f'recording {type_name}')
        same = [e for e in endpoints if e.topic_type == type_name] or endpoints
        type_hash = same[0].topic_type_hash
        self.writer.add_topic(topic, type_name, [offered_profile(e.qos_profile) for e in same],
                              type_hash_str=str(type_hash) if type_hash.version > 0 else '')
        for warning in self.writer.warnings:
            self.get_logger().warning(warning)
        self.writer.warnings.clear()
        qos = subscription_qos(same, self.depth)
        self.subscribed[topic] = self.create_subscription(
            protocol.message_class(type_name), topic, self._callback(topic), qos, raw=True)
        self.get_logger().info(f'recording {topic} ({type_name}, '
                               f'{qos.reliability.name.lower()}, {len(same)} publisher(s))')

    def _callback(self, topic):
        write = self.writer.write

        def on_message(data, info):
            if self.paused:
                self.dropped_while_paused += 1
                return
            received = info.get('received_timestamp') or time.time_ns()
            write(topic, data, received, info.get('source_timestamp') or received,
                  info.get('publication_sequence_number') or 0)
        return on_message

    # --- services -----------------------------------------------------------------------
    def on_pause(self, request, response):
        self.paused, response.success, response.message = True, True, 'paused'
        return response

    def on_resume(self, request, response):
        self.paused, response.success, response.message = False, True, 'recording'
        return response

    def on_split(self, request, response):
        self.writer.split()
        response.success, response.message = True, str(self.writer.file.path)
        return response

    # --- shutdown -----------------------------------------------------------------------
    def on_shutdown(self):
        """Called by common.spin on SIGINT/SIGTERM/shutdown: finish the bag."""
        info = self.writer.close()
        counts = ', '.join(f'{t["topic_metadata"]["name"]} {t["message_count"]}'
                           for t in info['topics_with_message_count'])
        never = [t for t in self.wanted if t not in self.subscribed]
        print(f'recorder: closed {self.writer.path}: {info["message_count"]} messages in '
              f'{len(info["files"])} file(s) ({counts or "no topics"})'
              + (f'; never published: {", ".join(never)}' if never else ''), file=sys.stderr,
              flush=True)


def main(argv=None):
    sys.exit(spin(RecorderNode, argv))


if __name__ == '__main__':
    main()

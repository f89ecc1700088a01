"""rosbag2 recording and offline DAgger relabeling.

Format tests write bags in-process (CDR bytes from rclpy's serializer, as a subscription
hands them over) and read them back with ours and with independent readers and writers
(rosbags, mcap + mcap-ros2-support). ROS tests run the recorder node as a subprocess over
DDS on loopback; the last test runs the whole loop: executor -> bag -> relabel -> train.
"""
import glob
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
import rosutil  # noqa: I100 (first: isolates the ROS domain before rclpy.init)
import torch
import yaml
from conftest import small_apex_config
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from rosutil import NodeProcesses, wait_for
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64
from std_srvs.srv import Trigger

from apex_ros import cli
from apex_ros.bags import metadata as md
from apex_ros.bags.episodes import load_episodes
from apex_ros.bags.reader import BagReader
from apex_ros.bags.relabel import relabel_bags
from apex_ros.bags.writer import BagError, BagWriter
from apex_ros.config.run import load_run_config
from apex_ros.deploy.export import export_bundle
from apex_ros.learning.dataset import Dataset
from apex_ros.learning.student import MLPPolicy
from apex_ros.ros import protocol
from apex_ros.ros.nodes.common import float64_array
from apex_ros.sim.episodes import policy_actor, run_episode
from apex_ros.sim.observation import joint_columns
from apex_ros.sim.simulation import Simulation
from apex_ros.tasks import make_task

JOINT_STATE_TYPE = 'sensor_msgs/msg/JointState'
ARRAY_TYPE = 'std_msgs/msg/Float64MultiArray'


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    """(run config, task, weak bundle path): a 30-step cart-pole and an untrained MLP."""
    d = tmp_path_factory.mktemp('small')
    path = small_apex_config(d, task={'episode_steps': 30}, apex={'iterations': 1},
                             train={'steps': 400})
    cfg = load_run_config('cartpole_swingup', path)
    task = cfg.make_task()
    torch.manual_seed(0)
    export_bundle(MLPPolicy(task.obs_dim, task.nu), task, d / 'weak.onnx', 0)
    return cfg, task, d / 'weak.onnx'


def joint_state(task, state, stamp_s, names=None, extra=()):
    cols = joint_columns(task.model)
    names = list(names or cols)
    js = JointState(name=names + [n for n, _, _ in extra],
                    position=[float(state[cols[n][0]]) for n in names] + [p for _, p, _ in extra],
                    velocity=[float(state[cols[n][1]]) for n in names] + [v for _, _, v in extra])
    js.header.stamp.sec = int(stamp_s)
    js.header.stamp.nanosec = int(round((stamp_s - int(stamp_s)) * 1e9))
    return js


def record_rollouts(path, task, policy, seeds, full_state=True, joint_states=True,
                    writer=None):
    """What the recorder would write while `policy` drives the lockstep sim through episodes
    `seeds`; -> (states per episode (T+1, nstate), returns)."""
    w = writer or BagWriter(path)
    if full_state:
        w.add_topic(protocol.FULL_STATE, ARRAY_TYPE, [md.qos_profile()])
    if joint_states:
        w.add_topic(protocol.JOINT_STATES, JOINT_STATE_TYPE, [md.qos_profile()])
    sim, t, all_states, returns = Simulation(task), time.time_ns(), [], []
    for e, seed in enumerate(seeds):
        sim.reset(seed)
        states, ret = [], 0.0
        for step in range(task.episode_steps + 1):
            state = sim.state()
            states.append(state)
            t += 1_000_000
            if full_state:
                full = protocol.FullState(e, step, state, sim.warmstart())
                w.write(protocol.FULL_STATE,
                        serialize_message(float64_array(protocol.pack_full_state(full))), t)
            if joint_states:
                w.write(protocol.JOINT_STATES,
                        serialize_message(joint_state(task, state, sim.data.time)), t)
            if step < task.episode_steps:
                ret += sim.step(policy(task.observe(state[None]))[0])[0]
        all_states.append(np.array(states))
        returns.append(ret)
    if writer is None:
        w.close()
    return all_states, returns


@pytest.fixture
def weak_policy(small):
    from apex_ros.deploy.bundle import PolicyBundle
    return PolicyBundle(small[2])


# --- format -------------------------------------------------------------------------------------
def test_bag_layout_is_jazzys_and_independent_readers_agree(small, weak_policy, tmp_path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore
    _, task, _ = small
    bag = tmp_path / 'bag'
    record_rollouts(bag, task, weak_policy, [1])
    info = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert list(info) == ['version', 'storage_identifier', 'duration', 'starting_time',
                          'message_count', 'topics_with_message_count', 'compression_format',
                          'compression_mode', 'relative_file_paths', 'files', 'custom_data',
                          'ros_distro']
    assert (info['version'], info['storage_identifier']) == (9, 'mcap')
    assert info['relative_file_paths'] == ['bag_0.mcap']
    n = task.episode_steps + 1
    assert info['message_count'] == 2 * n and info['files'][0]['message_count'] == 2 * n
    js = next(t for t in info['topics_with_message_count']
              if t['topic_metadata']['name'] == protocol.JOINT_STATES)
    assert js['message_count'] == n
    meta = js['topic_metadata']
    assert (meta['type'], meta['serialization_format']) == (JOINT_STATE_TYPE, 'cdr')
    assert meta['type_description_hash'] == ('RIHS01_a13ee3a330e346c9d87b5aa18d24e11690752bd33a'
                                             '0350f11c5882bc9179260e')
    qos = meta['offered_qos_profiles']   # v9: a YAML list, policies by name
    assert isinstance(qos, list) and qos[0]['reliability'] == 'reliable'
    assert qos[0]['deadline'] == {'sec': 9223372036, 'nsec': 854775807}

    with open(bag / 'bag_0.mcap', 'rb') as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == 'ros2'
        summary = reader.get_summary()
        schema = next(s for s in summary.schemas.values() if s.name == JOINT_STATE_TYPE)
        assert schema.encoding == 'ros2msg'
        text = schema.data.decode()
        assert 'MSG: std_msgs/Header' in text and 'MSG: builtin_interfaces/Time' in text
        channel = next(c for c in summary.channels.values() if c.topic == protocol.JOINT_STATES)
        assert channel.message_encoding == 'cdr'
        assert md.parse_qos(channel.metadata['offered_qos_profiles']) == qos
        assert channel.metadata['topic_type_hash'] == meta['type_description_hash']
        assert 'rosbag2' in [m.name for m in reader.iter_metadata()]
        decoded = [m.position for _, c, _, m in reader.iter_decoded_messages()
                   if c.topic == protocol.JOINT_STATES]
    assert len(decoded) == n
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as r:
        assert {c.topic: c.msgcount for c in r.connections} == {
            protocol.JOINT_STATES: n, protocol.FULL_STATE: n}
        raw = [data for c, _, data in r.messages() if c.topic == protocol.JOINT_STATES]
    ours = [m.data for m in BagReader(bag).messages([protocol.JOINT_STATES])]
    assert raw == ours   # the very bytes


def test_split_by_size_and_by_duration(tmp_path):
    data = serialize_message(JointState(name=['a'] * 20, position=[1.0] * 20))
    t0 = 1_700_000_000_000_000_000
    with BagWriter(tmp_path / 'by_size', max_bag_size=20_000) as w:
        w.add_topic('/j', JOINT_STATE_TYPE)
        for i in range(1000):
            w.write('/j', data, t0 + i * 1_000_000)
    with BagWriter(tmp_path / 'by_time', max_bag_duration=0.25) as w:
        w.add_topic('/j', JOINT_STATE_TYPE)
        for i in range(1000):
            w.write('/j', data, t0 + i * 1_000_000)
    sized = sorted(glob.glob(str(tmp_path / 'by_size' / '*.mcap')))
    assert len(sized) >= 1000 * len(data) // 20_000
    timed = BagReader(tmp_path / 'by_time').metadata['files']
    assert [f['message_count'] for f in timed] == [250, 250, 250, 250]
    for bag in ('by_size', 'by_time'):
        reader = BagReader(tmp_path / bag)
        times = [m.log_time for m in reader.messages()]
        assert times == [t0 + i * 1_000_000 for i in range(1000)]
        assert not reader.report()


def test_reads_bags_of_independent_writers(small, weak_policy, tmp_path):
    """mcap + mcap-ros2-support (a bare .mcap, no metadata.yaml) and rosbags' rosbag2 writer:
    the states rebuilt from their bags are the states that were simulated."""
    from mcap_ros2.writer import Writer as McapRos2Writer
    from rosbags.rosbag2 import StoragePlugin
    from rosbags.rosbag2 import Writer as RosbagsWriter
    from rosbags.typesys import Stores, get_typestore

    from apex_ros.bags.msgdefs import message_definition
    _, task, _ = small
    sim, seeds, expected = Simulation(task), [5, 6], []
    path = tmp_path / 'independent.mcap'
    with open(path, 'wb') as f:
        w = McapRos2Writer(f)
        schemas = {t: w.register_msgdef(t, message_definition(t))
                   for t in (ARRAY_TYPE, JOINT_STATE_TYPE)}
        t = 1_000
        for e, seed in enumerate(seeds):
            sim.reset(seed)
            states = []
            for step in range(task.episode_steps + 1):
                state = sim.state()
                states.append(state)
                t += 1_000
                w.write_message(protocol.FULL_STATE, schemas[ARRAY_TYPE], {
                    'layout': {'dim': [], 'data_offset': 0},
                    'data': protocol.pack_full_state(
                        protocol.FullState(e, step, state, sim.warmstart())).data}, t)
                js = joint_state(task, state, sim.data.time)
                w.write_message(protocol.JOINT_STATES, schemas[JOINT_STATE_TYPE], {
                    'header': {'stamp': {'sec': js.header.stamp.sec,
                                         'nanosec': js.header.stamp.nanosec}, 'frame_id': ''},
                    'name': list(js.name), 'position': list(js.position),
                    'velocity': list(js.velocity), 'effort': []}, t)
                if step < task.episode_steps:
                    sim.step(weak_policy(task.observe(state[None]))[0])
            expected.append(np.array(states[:-1]))   # the terminal state has no label
        w.finish()
    for source in ('full_state', 'joint_states'):
        episodes, notes = load_episodes(BagReader(path), task, source)
        assert len(episodes) == 2
        for ep, states in zip(episodes, expected):
            if source == 'full_state':
                np.testing.assert_array_equal(ep.states, states)
            else:   # joint positions and velocities; time from the stamps
                np.testing.assert_allclose(ep.states[:, 1:], states[:, 1:], atol=1e-12)
                np.testing.assert_allclose(ep.states[:, 0], states[:, 0], atol=1e-6)

    rosbags_bag = tmp_path / 'rosbags_bag'
    store = get_typestore(Stores.ROS2_JAZZY)
    with RosbagsWriter(rosbags_bag, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conn = w.add_connection(protocol.FULL_STATE, ARRAY_TYPE, typestore=store)
        reference = record_rollouts(None, task, weak_policy, [7], joint_states=False,
                                    writer=_RosbagsAdapter(w, conn))[0][0]
    episodes, _ = load_episodes(BagReader(rosbags_bag), task)
    np.testing.assert_array_equal(episodes[0].states, reference[:-1])


class _RosbagsAdapter:
    """record_rollouts' writer interface over a rosbags Writer with one connection."""

    def __init__(self, writer, connection):
        self.writer, self.connection = writer, connection

    def add_topic(self, *args):
        pass

    def write(self, topic, data, log_time):
        self.writer.write(self.connection, log_time, data)


# --- bad input ----------------------------------------------------------------------------------
def test_missing_topic_is_named(small, weak_policy, tmp_path):
    _, task, _ = small
    with BagWriter(tmp_path / 'rewards_only') as w:
        w.add_topic(protocol.REWARD, 'std_msgs/msg/Float64')
        w.write(protocol.REWARD, serialize_message(Float64(data=1.0)), 1)
    with pytest.raises(BagError, match=f'lacks .*{protocol.FULL_STATE}.*{protocol.JOINT_STATES}'
                       f'.*it has: {protocol.REWARD}'):
        load_episodes(BagReader(tmp_path / 'rewards_only'), task)
    record_rollouts(tmp_path / 'full_only', task, weak_policy, [1], joint_states=False)
    with pytest.raises(BagError, match=f'lacks topic.*{protocol.JOINT_STATES}'):
        load_episodes(BagReader(tmp_path / 'full_only'), task, 'joint_states')
    # the topic of an input the task declares (test/goal_tasks.py: its goal, its object's pose)
    reach = make_task('goal_tasks:Reach')
    with BagWriter(tmp_path / 'joints_only') as w:
        w.add_topic(protocol.JOINT_STATES, JOINT_STATE_TYPE)
        w.write(protocol.JOINT_STATES, serialize_message(joint_state(
            reach, Simulation(reach).reset(0), 0.0)), 1)
    with pytest.raises(BagError, match='lacks topic.*/goal \\(task goal_reach needs it to '
                                       'rebuild its state \\(input goal\\)'):
        load_episodes(BagReader(tmp_path / 'joints_only'), reach)


def test_joint_names_the_model_lacks_are_listed(small, tmp_path):
    _, task, _ = small
    state = Simulation(task).reset(0)
    with BagWriter(tmp_path / 'bag') as w:
        w.add_topic(protocol.JOINT_STATES, JOINT_STATE_TYPE)
        for k in range(3):
            js = joint_state(task, state, k * task.dt,
                             extra=[('gripper_left', 0.0, 0.0), ('gripper_right', 0.0, 0.0)])
            w.write(protocol.JOINT_STATES, serialize_message(js), k + 1)
    with pytest.raises(BagError, match=r"lacks: \['gripper_left', 'gripper_right'\]"):
        load_episodes(BagReader(tmp_path / 'bag'), task)
    episodes, _ = load_episodes(BagReader(tmp_path / 'bag'), task,
                                ignore_joints=['gripper_left', 'gripper_right'])
    assert len(episodes) == 1 and len(episodes[0].states) == 3
    with BagWriter(tmp_path / 'no_hinge') as w:
        w.add_topic(protocol.JOINT_STATES, JOINT_STATE_TYPE)
        w.write(protocol.JOINT_STATES, serialize_message(joint_state(task, state, 0.0,
                                                                   names=['slider'])), 1)
    with pytest.raises(BagError, match=r"lacks joints \['hinge'\]"):
        load_episodes(BagReader(tmp_path / 'no_hinge'), task)


def test_backwards_timestamps_are_reported_not_reordered(small, weak_policy, tmp_path):
    _, task, _ = small
    data = serialize_message(JointState())
    times = [10, 20, 15, 30, 25, 40]
    with BagWriter(tmp_path / 'bag') as w:
        w.add_topic('/j', JOINT_STATE_TYPE)
        for t in times:
            w.write('/j', data, t)
    reader = BagReader(tmp_path / 'bag')
    assert [m.log_time for m in reader.messages()] == times
    report = reader.report()
    assert len(report) == 2
    assert 'receive time goes backwards at message 2' in report[0] and '20 ns -> 15 ns' in \
        report[0]
    assert 'at message 4' in report[1]
    # /joint_states stamps going back (a simulation reset) are an episode boundary, reported
    states, _ = record_rollouts(tmp_path / 'two', task, weak_policy, [1, 2], full_state=False)
    episodes, notes = load_episodes(BagReader(tmp_path / 'two'), task)
    assert [len(e.states) for e in episodes] == [task.episode_steps] * 2
    assert any('episode boundary' in n and 'stamp went back' in n for n in notes)


def test_truncated_and_corrupt_bags_are_read_up_to_the_damage(small, weak_policy, tmp_path):
    _, task, _ = small
    bag = tmp_path / 'bag'
    with BagWriter(bag, chunk_size=4096) as w:   # small chunks: damage costs little
        record_rollouts(None, task, weak_policy, [1, 2], joint_states=False, writer=w)
    total = 2 * (task.episode_steps + 1)
    file = bag / 'bag_0.mcap'
    size = file.stat().st_size

    truncated = tmp_path / 'cut.mcap'
    truncated.write_bytes(file.read_bytes()[:size // 2])
    reader = BagReader(truncated)
    got = list(reader.messages())
    assert 0 < len(got) < total
    assert [int(m.index) for m in got] == list(range(len(got)))
    (line,) = [r for r in reader.report() if 'ends inside a record' in r]
    stopped = reader.files[0].stopped_at
    assert f'stopped at byte {stopped} of {size // 2}' in line and 'salvaged' in line

    corrupt = tmp_path / 'flipped.mcap'
    data = bytearray(file.read_bytes())
    data[size // 2:size // 2 + 8] = b'\xff' * 8
    corrupt.write_bytes(bytes(data))
    reader = BagReader(corrupt)
    got = list(reader.messages(decode=True))
    assert 0 < len(got) < total
    (line,) = [r for r in reader.report() if 'stopped at byte' in r]
    assert f'of {size}' in line and 'crc validation failed' in line
    assert reader.damaged
    # the relabeler gets every state before the damage
    episodes, notes = load_episodes(reader, task)
    labelable = [m for m in got if protocol.unpack_full_state(
        m.msg.data, task.layout.size, task.model.nv).step < task.episode_steps]
    assert sum(len(e.states) for e in episodes) == len(labelable)


# --- the recorder node --------------------------------------------------------------------------
@pytest.fixture
def ros_node():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('bag_test_probe', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    yield node, executor
    executor.shutdown()
    node.destroy_node()
    context.try_shutdown()


def recorder_cmd():
    return rosutil.executable('recorder_node', 'apex_ros.ros.nodes.recorder_node')


def recording(node, executor, topic):
    """Whether the recorder subscribed `topic`."""
    return wait_for(lambda: any(i.node_name == 'recorder' for i in
                                node.get_subscriptions_info_by_topic(topic)), 20.0, executor)


def flushed(bag_dir, count, executor):
    """Whether the recorder's flushed chunks of `bag_dir` hold `count` messages (read as a
    crashed bag is, while the recorder still writes)."""
    def enough():
        files = list(Path(bag_dir).glob('*.mcap'))
        return bool(files) and sum(1 for _ in BagReader(bag_dir).messages()) >= count
    return wait_for(enough, 20.0, executor)


@pytest.mark.slow
def test_recorder_stores_raw_bytes_and_offers_and_survives_a_hard_kill(ros_node, tmp_path):
    node, executor = ros_node
    best_effort = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
    js_pub = node.create_publisher(JointState, protocol.JOINT_STATES, best_effort)
    procs = NodeProcesses()
    try:
        # `apex-ros record`, SIGTERM: closed cleanly, every message, the publisher's QoS offer
        with open(tmp_path / 'rec1.log', 'wb') as log:
            rec = subprocess.Popen(
                rosutil.executable('apex-ros', 'apex_ros.cli') +
                ['record', protocol.JOINT_STATES, '-o', str(tmp_path / 'clean'),
                 '--flush-period', '0.1'],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        procs.procs.append(rec)
        assert recording(node, executor, protocol.JOINT_STATES)
        sent = [JointState(name=['a'], position=[float(i)]) for i in range(50)]
        for msg in sent:
            js_pub.publish(msg)
            executor.spin_once(timeout_sec=0.002)
        assert flushed(tmp_path / 'clean', len(sent), executor)   # best effort: all arrived
        assert rosutil.stop_node(rec, signal.SIGTERM) == 0
        reader = BagReader(tmp_path / 'clean')
        assert reader.metadata is not None and not reader.report()
        got = [deserialize_message(m.data, JointState)
               for m in reader.messages([protocol.JOINT_STATES])]
        assert got == sent   # (the bytes differ from serialize_message's only in CDR padding)
        offer = reader.topics()[protocol.JOINT_STATES]['qos']
        assert offer[0]['reliability'] == 'best_effort'
        assert 'closed' in (tmp_path / 'rec1.log').read_text()

        # SIGKILL mid-recording: what was flushed is read back, and the reader says how
        rec = procs.start(recorder_cmd(), 'recorder', log_path=tmp_path / 'rec2.log',
                          params={'output': str(tmp_path / 'killed'), 'flush_period': 0.2})
        assert recording(node, executor, protocol.JOINT_STATES)
        for i in range(100):
            js_pub.publish(JointState(name=['a'], position=[float(i)]))
            executor.spin_once(timeout_sec=0.005)
        assert flushed(tmp_path / 'killed', 90, executor)
        os.killpg(rec.pid, signal.SIGKILL)
        rec.wait()
        reader = BagReader(tmp_path / 'killed')
        positions = [m.msg.position[0] for m in reader.messages(decode=True)]
        assert len(positions) >= 90 and positions == sorted(positions)
        report = '\n'.join(reader.report())
        assert 'no metadata.yaml' in report and 'without the MCAP summary' in report
    finally:
        procs.stop_all()


# --- the loop: executor -> bag -> relabel -> train -> better policy ---------------------------
@pytest.mark.slow
def test_record_relabel_train_improves_the_policy(small, tmp_path):
    from apex_ros.deploy.bundle import PolicyBundle
    from apex_ros.learning.apex import ApexTrainer
    from apex_ros.ros.nodes.graph_client import GraphClient
    cfg, task, weak = small
    config = small_apex_config(tmp_path, task={'episode_steps': task.episode_steps},
                               apex={'iterations': 1}, train={'steps': 400})
    bag = tmp_path / 'rollouts'
    procs = NodeProcesses()
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('loop_test', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    returns = []
    node.create_subscription(Float64, protocol.EPISODE_RETURN, lambda m: returns.append(m.data),
                             10)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    try:
        procs.start(rosutil.executable('sim_node', 'apex_ros.ros.nodes.sim_node'), 'sim',
                    log_path=tmp_path / 'sim.log',
                    params={'task': task.name, 'config': str(config), 'mode': 'lockstep'})
        procs.start(rosutil.executable('policy_executor', 'apex_ros.ros.nodes.policy_executor'),
                    'policy_executor', log_path=tmp_path / 'executor.log',
                    params={'trigger': 'state', 'state_watchdog': False,  # lockstep
                            'hold': 'zero', 'autostart': False})
        recorder = procs.start(recorder_cmd(), 'recorder', log_path=tmp_path / 'rec.log',
                               params={'output': str(bag), 'sim': True})
        assert recording(node, executor, protocol.FULL_STATE)
        assert recording(node, executor, protocol.JOINT_STATES)
        spinner.start()
        client = GraphClient(node, task, timeout=60.0)
        client.executor_drive(str(weak))
        for _ in range(3):
            n = len(returns)
            client.call(client.reset_client, Trigger.Request(), 'sim reset')
            assert wait_for(lambda: len(returns) > n, 60.0)
        client.executor_stop()
        assert rosutil.stop_node(recorder, signal.SIGINT) == 0
    finally:
        executor.shutdown()
        procs.stop_all()
        node.destroy_node()
        context.try_shutdown()
    assert (bag / 'metadata.yaml').exists()

    shard = tmp_path / 'shard.npz'
    summary = relabel_bags([bag], cfg, weak, shard, workers=2, progress=False,
                           log=lambda *a: None)
    assert summary['episodes'] >= 3
    rollouts = Dataset.load(shard).rollouts
    info = rollouts[-1].info
    assert info['bag'] == str(bag) and info['topic'] == protocol.FULL_STATE
    assert info['planner']['name'] == 'icem' and info['planner']['config']['budget'] == 60
    assert len(info['log_times_ns']) == len(rollouts[-1].obs) == task.episode_steps

    trainer = ApexTrainer(cfg, tmp_path / 'run', shards=[shard], progress=False,
                          log=lambda *a: None)
    assert len(trainer.dataset) == len(rollouts)
    trainer.phase_train('train_dagger')   # on the relabeled bag only
    export_bundle(trainer.model, task, tmp_path / 'new.onnx', 1)
    new = PolicyBundle(tmp_path / 'new.onnx')
    old = PolicyBundle(weak)
    seeds = range(1000, 1005)
    old_return = np.mean([run_episode(task, policy_actor(task, old), s).ret for s in seeds])
    new_return = np.mean([run_episode(task, policy_actor(task, new), s).ret for s in seeds])
    assert new_return > old_return + 1.0, (old_return, new_return, returns)


# --- the command line ---------------------------------------------------------------------------
def test_cli_relabel_writes_shard_and_reports_bad_bags(small, weak_policy, tmp_path, capsys):
    cfg, task, weak = small
    record_rollouts(tmp_path / 'bag', task, weak_policy, [1], full_state=False)
    out = tmp_path / 'shard.npz'
    argv = ['relabel', str(tmp_path / 'bag'), '--task', task.name, '--config', str(cfg.path),
            '--policy', str(weak), '--out', str(out), '--workers', '1', '--quiet']
    assert cli.main(argv) == 0
    assert f'{task.episode_steps} states' in capsys.readouterr().out
    (rollout,) = Dataset.load(out).rollouts
    assert rollout.info['state_source'] == 'joint_states'
    assert len(rollout.info['stamps_ns']) == task.episode_steps
    argv[1] = str(tmp_path / 'nowhere')
    assert cli.main(argv) == 2
    assert 'no such bag' in capsys.readouterr().err
    assert Path(out).exists()


def test_recorder_default_topics_follow_the_bundle(tmp_path, cartpole):
    """With a bundle the recorder records its controller's commands (unless one is named),
    its gripper's and the inputs it reads; without, the effort controller's."""
    from apex_ros.ros.nodes.recorder_node import default_topics
    fetch = make_task('fetch_pick_and_place')
    bundle = str(tmp_path / 'fetch.onnx')
    export_bundle(MLPPolicy(fetch.obs_dim, fetch.nu), fetch, bundle, 0)
    assert default_topics('', False, bundle) == [
        protocol.JOINT_STATES, '/cartesian_controller/commands', '/gripper_controller/commands',
        '/goal', '/object0/pose', '/object0/twist']
    assert default_topics('my_cartesian', True, bundle)[1:3] == [
        '/my_cartesian/commands', '/gripper_controller/commands']
    assert default_topics('my_cartesian', True, bundle)[-1] == protocol.FULL_STATE
    assert default_topics('', True) == [protocol.JOINT_STATES, '/effort_controller/commands',
                                        protocol.FULL_STATE]

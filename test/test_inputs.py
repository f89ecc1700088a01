"""Inputs beyond /joint_states (an object's pose, a goal) end to end: declared by the task,
written into the bundle and validated, assembled into the observation by the executor (which
holds, saying which input and why, when one is missing, stale, non-finite or in the wrong
frame), published by the sim node (which takes a goal on /sim/goal), recorded and rebuilt
into the task state for relabeling. The task is test/goal_tasks.py's Reach (`goal_tasks:Reach`)."""
import itertools
import json
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import goal_tasks
import numpy as np
import onnx
import pytest
import rclpy
import rosutil  # noqa: I100 (first: isolates the ROS domain before rclpy.init)
import torch
from conftest import small_apex_config
from geometry_msgs.msg import PointStamped, PoseStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rosutil import Collector, LogCollector, wait_for
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from apex_ros import cli
from apex_ros.bags.episodes import load_episodes
from apex_ros.bags.reader import BagReader
from apex_ros.deploy.bundle import METADATA_KEY, BundleError, PolicyBundle
from apex_ros.deploy.export import bundle_bytes, export_bundle
from apex_ros.deploy.inputs import InputObservation, InputSpec, fill_message, received
from apex_ros.errors import ApexError
from apex_ros.learning.dataset import Dataset
from apex_ros.learning.student import MLPPolicy
from apex_ros.ros import protocol
from apex_ros.ros.nodes.policy_executor import PolicyExecutor
from apex_ros.sim.simulation import Simulation
from apex_ros.tasks import make_task

TASK = 'goal_tasks:Reach'
TEST_DIR = str(Path(__file__).parent)
COMMANDS = protocol.command_topic(protocol.DEFAULT_CONTROLLER)
NAMES_IN_USE = (f'input_executor_{i}' for i in itertools.count())
GOAL_SLOT, OBJECT_X_SLOT = 4, 7   # obs: x, y, vx, vy, goal[0..2], object0:joint[0..6]


@pytest.fixture(scope='module')
def reach():
    return make_task(TASK)


@pytest.fixture(scope='module')
def bundle(reach, tmp_path_factory):
    """A linear bundle: command = (goal x, object x), clamped to [-1, 1]."""
    model = MLPPolicy(reach.obs_dim, reach.nu, hidden=())
    weight = np.zeros((reach.nu, reach.obs_dim))
    weight[0, GOAL_SLOT] = weight[1, OBJECT_X_SLOT] = 1.0
    with torch.no_grad():
        model.mlp[0].weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        model.mlp[0].bias.zero_()
    path = tmp_path_factory.mktemp('bundles') / 'reach.onnx'
    export_bundle(model, reach, path, iteration=1)
    return str(path)


def edited(path, edit) -> bytes:
    """The bundle at `path` with its metadata changed by edit(meta)."""
    proto = onnx.load(path)
    entry = next(e for e in proto.metadata_props if e.key == METADATA_KEY)
    meta = json.loads(entry.value)
    edit(meta)
    entry.value = json.dumps(meta)
    return proto.SerializeToString()


# --- declaration, export, bundle --------------------------------------------------------------
def test_export_writes_the_inputs_and_refuses_an_uncovered_term(reach, bundle):
    b = PolicyBundle(bundle)
    assert b.inputs == [goal_tasks.GOAL_INPUT, goal_tasks.OBJECT_INPUT]
    assert b.meta['inputs'][1] == {
        'name': 'object0', 'type': 'geometry_msgs/PoseStamped', 'topic': '/object0/pose',
        'frame': 'world', 'max_age': 0.25, 'fills': list(goal_tasks.OBJECT)}
    assert b.required_joints() == ['x', 'y']   # the object's coordinates come from its input
    uncovered = make_task('goal_tasks:ReachUncovered')
    model = MLPPolicy(uncovered.obs_dim, uncovered.nu, hidden=())
    with pytest.raises(ApexError, match=r"goal_reach_uncovered: observation terms "
                                        r"\['qpos:object0:joint\[0\]', .*declared input"):
        bundle_bytes(model, uncovered, 1)

    class Misdeclared(goal_tasks.Reach):
        def inputs(self):
            return (goal_tasks.OBJECT_INPUT, InputSpec(
                'goal', 'geometry_msgs/PointStamped', '/goal', 'world',
                ('extra:gaol[0]', 'extra:goal[1]', 'extra:goal[2]')))
    with pytest.raises(ApexError, match=r"inputs\[1\] \(goal\)\.fills: .*no extra-state block "
                                        r"'gaol'"):
        bundle_bytes(model, Misdeclared(), 1)


@pytest.mark.parametrize('edit, why', [
    (lambda m: m['inputs'][0].pop('frame'), r'inputs\[0\]: lacks field\(s\) frame'),
    (lambda m: m['inputs'][0].update(type='geometry_msgs/Twist'),
     r"inputs\[0\]\.type: 'geometry_msgs/Twist'; supported"),
    (lambda m: m['inputs'][1]['fills'].pop(), r'inputs\[1\]\.fills: geometry_msgs/PoseStamped '
                                              r'carries 7 values, 6 terms given'),
    (lambda m: m['inputs'][1].update(max_age=-1), r'inputs\[1\]\.max_age: expected seconds'),
    (lambda m: m['inputs'][1].update(name='goal'), r"inputs\[1\]\.name: 'goal' is declared "
                                                   'twice'),
    (lambda m: m['inputs'][0]['fills'].__setitem__(0, 'cos:x'),
     r"inputs\[0\]\.fills: 'cos:x' is neither a state coordinate nor a site position"),
    (lambda m: m['inputs'][0]['fills'].__setitem__(0, 'site:palm[0]'),
     r'inputs\[0\]\.fills: an input carries state coordinates or site positions, not both'),
    (lambda m: m.update(inputs={}), 'metadata field inputs: expected a list'),
])
def test_bundle_refuses_bad_input_declarations_naming_the_field(bundle, edit, why):
    with pytest.raises(BundleError, match=why):
        PolicyBundle(edited(bundle, edit))


def test_bundles_without_inputs_still_load(cartpole, tmp_path):
    path = tmp_path / 'cartpole.onnx'
    export_bundle(MLPPolicy(cartpole.obs_dim, cartpole.nu), cartpole, path, 0)
    old = PolicyBundle(edited(str(path), lambda m: m.pop('inputs')))   # as bundles were
    assert old.inputs == [] and old.required_joints() == ['slider', 'hinge']


def test_observation_from_joint_states_and_inputs_is_the_simulation_s(reach, bundle):
    """The sim's messages (fill_message) assembled by the executor's InputObservation give
    exactly the task's observation; every unusable input is named with its reason."""
    b = PolicyBundle(bundle)
    sim = Simulation(reach)
    state = sim.reset(3)
    sim.step([0.5, -0.5])
    state = sim.state()
    observe = InputObservation(b.obs_terms, b.inputs, {'goal': '/my_goal'})
    js = (['y', 'x', 'other'], [state[2], state[1], 9.0], [state[11], state[10], 0.0])
    latest = {}
    assert [s.status for s in observe.status(latest, 0.0)] == ['missing', 'missing']
    with pytest.raises(ValueError, match=r'input goal \(/my_goal\): no geometry_msgs/'
                                         'PointStamped received on /my_goal'):
        observe(*js, latest, 0.0)
    messages = {}
    for spec in b.inputs:
        columns = [reach.observation.terms.index(t) for t in spec.fills]
        values = reach.observe(state)[columns].astype(np.float64)
        msg_type = PointStamped if spec.name == 'goal' else PoseStamped
        messages[spec.name] = fill_message(spec, msg_type(), values)
        latest[spec.name] = received(spec, 10.0, messages[spec.name])
    np.testing.assert_array_equal(observe(*js, latest, 10.2), reach.observe(state))
    assert [(s.name, s.status, s.limit) for s in observe.status(latest, 10.2)] == [
        ('goal', 'ok', 0.0), ('object0', 'ok', 0.25)]
    assert observe.problem(latest, 100.0).describe() == (   # a goal has no age limit
        'input object0 (/object0/pose): latest message is 90000 ms old (max_age 250 ms)')
    nan_w = [0.0, 0.0, 0.0, math.nan, 0.0, 0.0, 0.0]
    for msg, why in ((fill_message(b.inputs[1], PoseStamped(), nan_w), 'non-finite values'),
                     (fill_message(b.inputs[1], PoseStamped(), [0.0] * 7), None)):
        msg.header.frame_id = 'world' if why else 'map'
        latest['object0'] = received(b.inputs[1], 10.0, msg)
        assert observe.problem(latest, 10.1).why.startswith(
            why or "frame_id 'map', expected 'world'")
    with pytest.raises(ApexError, match=r"observation terms \['qpos:object0:joint\[0\]'"):
        InputObservation(b.obs_terms, b.inputs[:1])


# --- the executor over DDS --------------------------------------------------------------------

class Rig:
    """A probe publishing joint states and, while `object` is not None, the object's pose
    ((x, y, z, qw, qx, qy, qz), frame) at 200 Hz; goals on demand; collects commands."""

    def __init__(self, context, goal_topic):
        self.name = next(NAMES_IN_USE)
        self.spin = SingleThreadedExecutor(context=context)
        self.probe = rclpy.create_node('input_probe', context=context)
        self.spin.add_node(self.probe)
        self.state_pub = self.probe.create_publisher(JointState, protocol.JOINT_STATES, 10)
        self.object_pub = self.probe.create_publisher(PoseStamped, '/object0/pose', 10)
        self.goal_pub = self.probe.create_publisher(PointStamped, goal_topic, 10)
        self.commands = Collector(self.probe, Float64MultiArray, COMMANDS)
        self.logs = LogCollector(self.probe, self.name)
        self.object = ((0.3, 0.3, 0.0, 1.0, 0.0, 0.0, 0.0), 'world')
        self.probe.create_timer(0.005, self._publish)
        self.node = PolicyExecutor(self.name, context=context, parameter_overrides=[
            Parameter('bundle', value=''), Parameter('rate_hz', value=100.0),
            Parameter('inputs.goal.topic', value=goal_topic)])
        self.spin.add_node(self.node)
        self.spin.add_node(self.node.control_node)  # the control loop's lean node

    def _publish(self):
        self.state_pub.publish(JointState(name=['x', 'y'], position=[0.0, 0.0],
                                          velocity=[0.0, 0.0]))
        if self.object is not None:
            values, frame = self.object
            msg = fill_message(goal_tasks.OBJECT_INPUT, PoseStamped(), values)
            msg.header.frame_id = frame
            self.object_pub.publish(msg)

    def send_goal(self, x, frame='world'):
        msg = fill_message(goal_tasks.GOAL_INPUT, PointStamped(), [x, 0.0, 0.0])
        msg.header.frame_id = frame
        self.goal_pub.publish(msg)

    def wait(self, predicate, timeout=5.0):
        return wait_for(predicate, timeout, self.spin)

    def values(self, start=0):
        return [list(m.data) for m in self.commands.msgs[start:]]

    def wait_command(self, expected, timeout=5.0):
        start = len(self.commands.items)
        return self.wait(lambda: expected in self.values(start), timeout)

    def wait_hold(self, *why):
        """The hold command arrives and the log names the reason."""
        assert self.wait_command([0.0, 0.0]), why
        assert self.logs.wait_text('holding', *why, spin=self.spin), (why, self.logs.texts())
        start = len(self.commands.items)   # and nothing but holds while it lasts
        assert self.wait(lambda: len(self.commands.items) >= start + 5)
        assert self.values(start)[:5] == [[0.0, 0.0]] * 5

    def close(self):
        self.node.trigger_shutdown()
        self.spin.remove_node(self.node)
        self.node.destroy_node()
        self.spin.shutdown()
        self.probe.destroy_node()


@pytest.fixture
def rig(context):
    r = Rig(context, '/my_goal')
    yield r
    r.close()


def command(goal_x, object_x=0.3):
    return [pytest.approx(goal_x, rel=1e-6), pytest.approx(object_x, rel=1e-6)]


@pytest.mark.slow
def test_executor_holds_on_each_unusable_input_naming_it_and_recovers(rig, bundle, tmp_path):
    node = rig.node
    node.set_parameters([Parameter('bundle', value=bundle)])
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    # exactly the declared inputs, the goal on its remapped topic
    subscribed = {name for name, _ in node.get_topic_names_and_types()
                  if node.get_subscriptions_info_by_topic(name)}
    assert {'/my_goal', '/object0/pose'} <= subscribed and '/goal' not in subscribed
    assert rosutil.wait_for_subscribers(rig.goal_pub, spin=rig.spin)
    assert rosutil.wait_for_publishers(rig.commands.sub, spin=rig.spin)
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    rig.wait_hold('input goal (/my_goal): no geometry_msgs/PointStamped received')
    rig.send_goal(0.25)
    assert rig.wait_command(command(0.25))
    status = node.input_status()
    assert [(s.name, s.status, s.limit) for s in status] == [('goal', 'ok', 0.0),
                                                             ('object0', 'ok', 0.25)]
    assert status[1].age < 0.25 and status[0].topic == '/my_goal'

    rig.object = None                                   # the pose stream stops
    rig.wait_hold('input object0 (/object0/pose): latest message is', 'max_age 250 ms')
    assert node.input_status()[1].status == 'stale'
    rig.object = ((0.5, 0.3, 0.0, 1.0, 0.0, 0.0, 0.0), 'world')
    assert rig.wait_command(command(0.25, 0.5))
    rig.object = ((0.5, math.nan, 0.0, 1.0, 0.0, 0.0, 0.0), 'world')
    rig.wait_hold('input object0', 'non-finite values')
    rig.object = ((0.4, 0.3, 0.0, 1.0, 0.0, 0.0, 0.0), 'map')
    rig.wait_hold('input object0', "frame_id 'map', expected 'world'")
    rig.object = ((0.4, 0.3, 0.0, 1.0, 0.0, 0.0, 0.0), 'world')
    assert rig.wait_command(command(0.25, 0.4))
    rig.send_goal(-0.2, 'map')                          # a goal in the wrong frame
    rig.wait_hold('input goal (/my_goal)', "frame_id 'map'")
    rig.send_goal(-0.2)
    assert rig.wait_command(command(-0.2, 0.4))
    # a bundle reading other inputs cannot be swapped in: the subscriptions are the running one's
    renamed = tmp_path / 'renamed.onnx'
    renamed.write_bytes(edited(bundle, lambda m: m['inputs'][0].update(name='target')))
    result, = node.set_parameters([Parameter('bundle', value=str(renamed))])
    assert not result.successful and "it reads inputs {'target'" in result.reason
    assert rig.wait_command(command(-0.2, 0.4))


CLEAN_PROBE = """
import json, sys
import rclpy
from apex_ros.ros.nodes.policy_executor import PolicyExecutor, SUCCESS
from rclpy.parameter import Parameter
rclpy.init()
node = PolicyExecutor(parameter_overrides=[Parameter('bundle', value=sys.argv[1])])
ok = node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS
print(json.dumps([ok, [s.name for s in node.input_status()],
                  [m for m in ('torch', 'mujoco') if m in sys.modules]]))
"""


def test_executor_with_inputs_stays_light(bundle):
    """Subscribing geometry_msgs inputs pulls in neither torch nor mujoco."""
    out = subprocess.run([sys.executable, '-c', CLEAN_PROBE, bundle], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    assert json.loads(out.splitlines()[-1]) == [True, ['goal', 'object0'], []]


def test_executor_refuses_a_bundle_whose_observation_no_input_covers(rig, bundle, tmp_path):
    path = tmp_path / 'no_inputs.onnx'
    path.write_bytes(edited(bundle, lambda m: m.pop('inputs')))
    rig.node.set_parameters([Parameter('bundle', value=str(path))])
    assert rig.node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert rig.logs.wait_text('cannot configure', "observation terms ['extra:goal[0]'",
                              'neither /joint_states nor a declared input', spin=rig.spin)


# --- the sim node, recording, relabeling ------------------------------------------------------
@pytest.fixture
def ros_probe(monkeypatch):
    monkeypatch.setenv('PYTHONPATH', os.pathsep.join(
        [TEST_DIR] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
    with rosutil.probe_node('sim_input_probe') as probe:
        yield probe


LONG = 'task.episode_steps=100000'   # one episode for the whole test


def sim_node_cmd():
    return rosutil.executable('sim_node', 'apex_ros.ros.nodes.sim_node')


@pytest.mark.slow
def test_sim_node_publishes_inputs_takes_a_goal_and_serves_joint_states_faster(
        ros_probe, reach, tmp_path):
    node, executor, procs = ros_probe
    joints = Collector(node, JointState, protocol.JOINT_STATES)
    goals = Collector(node, PointStamped, '/goal')
    poses = Collector(node, PoseStamped, '/object0/pose')
    full = Collector(node, Float64MultiArray, protocol.FULL_STATE)
    set_goal = node.create_publisher(PointStamped, '/sim/goal', 10)
    log = tmp_path / 'sim.log'
    procs.start(sim_node_cmd(), 'sim', log_path=log,
                params={'task': TASK, 'mode': 'realtime', 'state_rate': 250.0, 'set': LONG})
    assert full.wait(20, timeout=30.0, spin=executor), log.read_text()
    latest = protocol.unpack_full_state(full.msgs[-1].data, reach.layout.size, reach.model.nv)
    goal = latest.state[reach.layout.extra['goal']]
    assert goals.msgs[-1].header.frame_id == 'world' and poses.msgs[-1].header.frame_id == 'world'
    assert [goals.msgs[-1].point.x, goals.msgs[-1].point.y] == pytest.approx(goal[:2])
    object_qpos = latest.state[reach.layout.qpos][2:9]   # gravity 0: it stays where it is
    p = poses.msgs[-1].pose
    assert [p.position.x, p.position.y, p.position.z, p.orientation.w, p.orientation.x,
            p.orientation.y, p.orientation.z] == pytest.approx(object_qpos)
    # 5 joint states (and inputs) per control step of 20 ms: 250 Hz under a 50 Hz control rate
    full_times = [protocol.unpack_full_state(m.data, reach.layout.size, reach.model.nv).state[0]
                  for m in full.msgs[-5:]]
    assert np.diff(full_times) == pytest.approx([0.02] * 4)
    assert joints.wait(len(joints.msgs) + 12, spin=executor)
    # Stamped in simulation time, one state every 4 ms. A loaded machine can lose a burst on
    # loopback (the reliable writer keeps 10): a gap is then a whole number of periods.
    for received_msgs in (joints.msgs, goals.msgs, poses.msgs):
        stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in received_msgs]
        periods = np.diff(stamps) / 0.004
        assert periods == pytest.approx(np.round(periods), abs=1e-6) and min(periods) > 0.5
        assert np.mean(np.round(periods) == 1) >= 0.9, periods

    def send(x, frame):
        msg = fill_message(goal_tasks.GOAL_INPUT, PointStamped(), [x, -0.1, 0.0])
        msg.header.frame_id = frame
        set_goal.publish(msg)
    assert rosutil.wait_for_subscribers(set_goal, spin=executor)
    send(0.2, 'map')
    assert wait_for(lambda: 'rejected goal' in log.read_text(), 10.0, executor)
    send(0.2, 'world')
    assert wait_for(lambda: goals.msgs[-1].point.x == 0.2, 10.0, executor)
    full.clear()
    assert full.wait(1, spin=executor)
    state = protocol.unpack_full_state(full.msgs[-1].data, reach.layout.size,
                                       reach.model.nv).state
    assert list(state[reach.layout.extra['goal']]) == [0.2, -0.1, 0.0]


@pytest.mark.slow
@pytest.mark.parametrize('name, inputs', [
    ('adroit_door', ['palm', 'handle']),
    ('fetch_pick_and_place', ['goal', 'object0', 'object0_twist']),
    ('halfcheetah_run', [])])
def test_observation_from_the_sim_node_topics_is_the_full_state_s(ros_probe, tmp_path, name,
                                                                   inputs):
    """A bundle's observation rebuilt from what the sim node publishes (/joint_states and
    the task's inputs: Door's palm and handle by forward kinematics, Fetch's goal and box
    pose and twist) by the executor's InputObservation is exactly the task's observation of
    the full state of the same instant (Door's palm-to-handle offset included)."""
    node, executor, procs = ros_probe
    task = make_task(name)
    b = PolicyBundle(bundle_bytes(MLPPolicy(task.obs_dim, task.nu, (8,)), task, 1))
    assert [spec.name for spec in b.inputs] == inputs
    joints = Collector(node, JointState, protocol.JOINT_STATES)
    messages = {spec.name: Collector(node, protocol.message_class(spec.type), spec.topic)
                for spec in b.inputs}
    full = Collector(node, Float64MultiArray, protocol.FULL_STATE)
    log = tmp_path / 'sim.log'
    procs.start(sim_node_cmd(), 'sim', log_path=log,
                params={'task': name, 'mode': 'realtime', 'set': LONG})
    assert full.wait(5, timeout=30.0, spin=executor), log.read_text()

    def stamp(msg):
        return round(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, 6)
    observe = InputObservation(b.obs_terms, b.inputs)

    def instants():
        """(full state, joint states, inputs) of the instants all topics were received (each
        subscription may have matched later than the full state's)."""
        by_stamp = [{stamp(m): m for m in c.msgs} for c in (joints, *messages.values())]
        out = []
        for msg in list(full.msgs):
            state = protocol.unpack_full_state(msg.data, task.layout.size, task.model.nv).state
            got = [seen.get(round(state[0], 6)) for seen in by_stamp]
            if None not in got:
                out.append((state, got[0], dict(zip(messages, got[1:]))))
        return out
    assert wait_for(lambda: len(instants()) >= 3, 30.0, executor), log.read_text()
    for state, js, got in instants():
        latest = {spec.name: received(spec, 1.0, got[spec.name]) for spec in b.inputs}
        obs = observe(js.name, js.position, js.velocity, latest, 1.0)
        np.testing.assert_allclose(obs, task.observe(state), atol=1e-6)
        assert all(m.header.frame_id == 'world' for m in got.values())


def test_sim_node_refuses_a_state_rate_that_does_not_split_a_control_step(ros_probe, tmp_path):
    _, _, procs = ros_probe
    log = tmp_path / 'sim.log'
    proc = procs.start(sim_node_cmd(), 'sim', log_path=log,
                       params={'task': TASK, 'mode': 'realtime', 'state_rate': 75.0})
    assert proc.wait(60) == 2
    assert 'parameter state_rate: 75 Hz does not split a control step of goal_reach' in \
        log.read_text() and 'possible: 50, 100, 250, 500 Hz' in log.read_text()


@pytest.mark.slow
def test_record_then_rebuild_the_task_state_from_the_input_topics(ros_probe, reach, bundle,
                                                                   tmp_path, capsys):
    node, executor, procs = ros_probe
    full = Collector(node, Float64MultiArray, protocol.FULL_STATE)
    set_goal = node.create_publisher(PointStamped, '/sim/goal', 10)
    bag = tmp_path / 'bag'
    procs.start(sim_node_cmd(), 'sim', log_path=tmp_path / 'sim.log',
                params={'task': TASK, 'mode': 'realtime', 'state_rate': 100.0, 'set': LONG})
    recorder = procs.start(rosutil.executable('recorder_node', 'apex_ros.ros.nodes.recorder_node'),
                           'recorder', log_path=tmp_path / 'rec.log',
                           params={'output': str(bag), 'bundle': bundle, 'sim': True})

    def recording(topic):
        return any(i.node_name == 'recorder' for i in node.get_subscriptions_info_by_topic(topic))
    assert wait_for(lambda: all(map(recording, ['/goal', '/object0/pose',
                                                protocol.JOINT_STATES])), 30.0, executor)
    full.clear()
    assert full.wait(10, spin=executor)
    assert rosutil.wait_for_subscribers(set_goal, spin=executor)
    msg = fill_message(goal_tasks.GOAL_INPUT, PointStamped(), [0.15, 0.05, 0.0])
    msg.header.frame_id = 'world'
    set_goal.publish(msg)
    goal_of = lambda m: list(protocol.unpack_full_state(    # noqa: E731
        m.data, reach.layout.size, reach.model.nv).state[reach.layout.extra['goal']])
    assert wait_for(lambda: full.msgs and goal_of(full.msgs[-1]) == [0.15, 0.05, 0.0], 10.0,
                    executor)
    n = len(full.msgs)
    assert full.wait(n + 10, spin=executor)
    assert rosutil.stop_node(recorder, signal.SIGINT) == 0

    reader = BagReader(bag)
    assert {'/goal', '/object0/pose', protocol.JOINT_STATES} <= set(reader.topics())
    episodes, notes = load_episodes(reader, reach, 'joint_states')
    states = np.concatenate([e.states for e in episodes])
    goals = {tuple(g) for g in states[:, reach.layout.extra['goal']]}
    first = tuple(goal_of(full.msgs[0]))
    assert goals == {first, (0.15, 0.05, 0.0)}, notes
    assert tuple(states[-1, reach.layout.extra['goal']]) == (0.15, 0.05, 0.0)
    object_qpos = protocol.unpack_full_state(full.msgs[0].data, reach.layout.size,
                                             reach.model.nv).state[reach.layout.qpos][2:9]
    np.testing.assert_array_equal(states[:, reach.layout.qpos][:, 2:9],
                                  np.broadcast_to(object_qpos, (len(states), 7)))
    assert any("velocities of ['object0:joint'] are not recorded" in n for n in notes)

    # `apex-ros relabel`: the expert's labels for the rebuilt states, whose observations carry
    # the recorded goals; a remapped input topic the bag lacks is named
    config = small_apex_config(tmp_path, task={'name': TASK, 'episode_steps': 20})
    shard = tmp_path / 'shard.npz'
    argv = ['relabel', str(bag), '--config', str(config), '--policy', bundle, '--out',
            str(shard), '--workers', '1', '--quiet', '--source', 'joint_states']
    assert cli.main(argv) == 0, capsys.readouterr()
    obs = np.concatenate([r.obs for r in Dataset.load(shard).rollouts])
    assert len(obs) >= 20
    assert {tuple(o) for o in obs[:, GOAL_SLOT:GOAL_SLOT + 3]} == {
        tuple(np.float32(first)), tuple(np.float32([0.15, 0.05, 0.0]))}
    assert cli.main(argv + ['--input-topic', 'goal=/elsewhere']) == 2
    assert re.search(r'lacks topic.*/elsewhere \(task goal_reach needs it to rebuild its state '
                     r'\(input goal\)', capsys.readouterr().err)

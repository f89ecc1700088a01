"""The robot-side policy executor over real DDS (loopback) with real onnxruntime bundles.

The executor node runs in-process, spun together with a probe node that publishes
/joint_states and collects commands and /rosout; the last test runs it as a subprocess through
its console script. Bundles are linear policies (action = W obs + b) so every command is known.
"""
import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import rclpy
import rosutil  # noqa: I100 (first: isolates the ROS domain before rclpy.init)
import torch
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rosutil import Collector, LogCollector, NodeProcesses, call, wait_for
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import SetBool

from apex_ros.deploy.bundle import PolicyBundle
from apex_ros.deploy.export import export_bundle
from apex_ros.deploy.observation import JointObservation
from apex_ros.learning.student import MLPPolicy
from apex_ros.ros import protocol, qos
from apex_ros.ros.nodes.policy_executor import PolicyExecutor

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
NAMES = ['slider', 'hinge']
COMMANDS = protocol.command_topic(protocol.DEFAULT_CONTROLLER)
# One executor name per test: rclpy's lifecycle Node.destroy_node() leaves the rcl node (and its
# /rosout publisher) alive until garbage collection, so a reused name would mix up /rosout.
NAMES_IN_USE = (f'policy_executor_{i}' for i in itertools.count())


def linear_bundle(task, path, weight, bias):
    model = MLPPolicy(task.obs_dim, task.nu, hidden=())
    with torch.no_grad():
        model.mlp[0].weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        model.mlp[0].bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    export_bundle(model, task, path, iteration=1)
    return str(path)


@pytest.fixture(scope='module')
def bundles(tmp_path_factory, cartpole, halfcheetah):
    d = tmp_path_factory.mktemp('bundles')
    one_hot = [[1.0, 0, 0, 0, 0]]  # slider position
    corrupt = d / 'corrupt.onnx'
    corrupt.write_bytes(b'not an onnx file')
    return {
        'gain': linear_bundle(cartpole, d / 'gain.onnx', np.multiply(5, one_hot), [0.3]),
        'other': linear_bundle(cartpole, d / 'other.onnx', np.multiply(-2, one_hot), [-0.2]),
        'nan': linear_bundle(cartpole, d / 'nan.onnx', one_hot, [math.nan]),
        'cheetah': linear_bundle(halfcheetah, d / 'cheetah.onnx', np.zeros((6, 17)),
                                 [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]),
        'corrupt': str(corrupt),
    }


def gain(slider):
    """The 'gain' bundle's command (onnxruntime computes in float32)."""
    return [pytest.approx(np.clip(5 * slider + 0.3, -1, 1), rel=1e-6)]


class Rig:
    """A probe node publishing `state` (names, positions, velocities) at 200 Hz while it is not
    None, collecting commands and the executor's /rosout records; `spin` spins both nodes.
    `name` is the executor's node name."""

    def __init__(self, context):
        self.context, self.name = context, next(NAMES_IN_USE)
        self.spin = SingleThreadedExecutor(context=context)
        self.probe = rclpy.create_node('probe', context=context)
        self.spin.add_node(self.probe)
        self.state, self.published, self.node = None, 0, None
        self.state_pub = self.probe.create_publisher(JointState, protocol.JOINT_STATES, 10)
        self.bundle_pub = self.probe.create_publisher(String, protocol.POLICY_BUNDLE, qos.BUNDLE)
        self.commands = Collector(self.probe, Float64MultiArray, COMMANDS)
        self.logs = LogCollector(self.probe, self.name)
        self.probe.create_timer(0.005, self._publish_state)

    def _publish_state(self):
        if self.state is not None:
            names, pos, vel = self.state
            self.state_pub.publish(JointState(name=names, position=pos, velocity=vel))
            self.published += 1

    def start(self, activate=True, **params):
        """Create, configure (and activate) the executor; wait for its endpoints to match."""
        self.node = self.create(**params)
        assert self.node.trigger_configure() == SUCCESS
        assert rosutil.wait_for_subscribers(self.state_pub, spin=self.spin)
        assert rosutil.wait_for_publishers(self.commands.sub, spin=self.spin)
        if activate:
            assert self.node.trigger_activate() == SUCCESS
        return self.node

    def create(self, **params):
        self.node = PolicyExecutor(self.name, context=self.context, parameter_overrides=[
            Parameter(k, value=v) for k, v in params.items()])
        self.spin.add_node(self.node)
        self.spin.add_node(self.node.control_node)  # the control loop's lean node
        return self.node

    def destroy(self):
        self.spin.remove_node(self.node.control_node)
        self.spin.remove_node(self.node)
        self.node.destroy_node()
        self.node = None

    def wait(self, predicate, timeout=5.0):
        return wait_for(predicate, timeout, self.spin)

    def values(self, start=0):
        return [list(m.data) for m in self.commands.msgs[start:]]

    def wait_command(self, expected, timeout=5.0):
        """Wait for a command equal to `expected` that arrives from now on."""
        start = len(self.commands.items)
        return self.wait(lambda: expected in self.values(start), timeout)

    def next_commands(self, count, timeout=5.0):
        """The next `count` commands."""
        start = len(self.commands.items)
        assert self.wait(lambda: len(self.commands.items) >= start + count, timeout)
        return self.values(start)

    def close(self):
        if self.node is not None:
            self.node.trigger_shutdown()
            self.destroy()
        self.spin.shutdown()
        self.probe.destroy_node()


@pytest.fixture
def rig(context):
    r = Rig(context)
    yield r
    r.close()


def valid(slider=0.1, hinge=math.pi):
    return NAMES, [slider, hinge], [0.0, 0.0]


def test_commands_clamped_policy_actions_on_fresh_state(rig, bundles):
    rig.start(bundle=bundles['gain'])  # the bundle's own 20 Hz, timer trigger
    # Activated before any state: it holds and says why.
    assert rig.wait_command([0.0])
    assert rig.logs.wait_text('holding', 'no joint state', spin=rig.spin)
    reference = PolicyBundle(bundles['gain'])
    observe = JointObservation(reference.obs_terms)
    for slider, vel in ((0.1, 0.5), (0.5, -1.0), (-0.5, 2.0)):  # in range, clamped high, low
        state = NAMES, [slider, 3.0], [vel, -vel]
        rig.state = state
        expected = reference.act(observe(*state)).tolist()
        assert expected == gain(slider)
        assert rig.wait_command(expected), (expected, rig.values()[-5:])
    assert rig.logs.wait_text('resuming policy commands', spin=rig.spin)


def test_command_joints_reorder_and_must_match(rig, bundles, halfcheetah):
    joints = halfcheetah.actuated_joints()
    names = ['rootx', 'rootz', 'rooty'] + joints
    rig.state = names, [0.0] * 9, [0.0] * 9
    rig.start(bundle=bundles['cheetah'], rate_hz=100.0, command_joints=joints[::-1])
    assert rig.wait_command(pytest.approx([0.6, 0.5, 0.4, 0.3, 0.2, 0.1], rel=1e-6))
    rig.node.trigger_shutdown()
    rig.destroy()
    bad = rig.create(bundle=bundles['cheetah'], command_joints=joints[:5] + ['rootx'])
    assert bad.trigger_configure() == FAILURE
    assert rig.logs.wait_text('cannot configure', 'the controller takes', spin=rig.spin)


@pytest.mark.slow
def test_holds_on_stale_nonfinite_or_missized_state_and_resumes(rig, bundles):
    rig.state = valid()
    rig.start(bundle=bundles['gain'], rate_hz=100.0, state_timeout=0.1)
    assert rig.wait_command(gain(0.1))
    bad_states = [
        (None, 'ms old'),                                            # stale
        ((NAMES, [0.1, math.nan], [0.0, 0.0]), 'non-finite'),
        ((NAMES, [0.1, math.pi], [0.0, math.inf]), 'non-finite'),
        ((NAMES, [0.1], [0.0, 0.0]), '2 names, 1 positions'),
        ((NAMES, [0.1, math.pi], [0.0]), '2 names, 2 positions, 1 velocities'),
    ]
    for state, why in bad_states:
        rig.state = state
        assert rig.wait_command([0.0]), why
        assert rig.logs.wait_text('holding', why, spin=rig.spin), (why, rig.logs.texts())
        rig.state = valid(0.05)
        assert rig.wait_command(gain(0.05)), why
        rig.state = valid()
        assert rig.wait_command(gain(0.1)), why


@pytest.mark.parametrize('hold', ['zero', 'position'])
def test_estop_latches_and_clears(rig, bundles, hold):
    rig.state = valid(0.1)
    rig.start(bundle=bundles['gain'], rate_hz=100.0, hold=hold)
    held = [0.0] if hold == 'zero' else [0.1]
    assert rig.wait_command(gain(0.1))
    estop = rig.probe.create_client(SetBool, f'/{rig.name}/estop')
    assert call(estop, SetBool.Request(data=True), spin=rig.spin).success
    assert rig.wait_command(held)
    assert rig.next_commands(30) == [held] * 30  # state stays fresh: still held
    assert rig.logs.wait_text('holding', 'e-stop', spin=rig.spin)
    assert call(estop, SetBool.Request(data=False), spin=rig.spin).success
    assert rig.wait_command(gain(0.1))


def test_deactivate_sends_hold_first(rig, bundles):
    rig.state = valid()
    rig.start(bundle=bundles['gain'], rate_hz=100.0)
    assert rig.wait_command(gain(0.1))
    change = rig.probe.create_client(ChangeState, f'/{rig.name}/change_state')
    start = len(rig.commands.items)
    request = ChangeState.Request(transition=Transition(id=Transition.TRANSITION_DEACTIVATE))
    assert call(change, request, spin=rig.spin).success
    assert rig.wait(lambda: [0.0] in rig.values(start))
    # Nothing after the hold, though fresh states keep coming.
    after_hold = rig.published + 20
    assert rig.wait(lambda: rig.published >= after_hold)
    after = rig.values(start)
    assert after[after.index([0.0]):] == [[0.0]]
    assert after[:-1] == [gain(0.1)] * (len(after) - 1)
    assert rig.logs.wait_text('deactivating: sent hold command', spin=rig.spin)
    # Reactivation resumes on fresh state.
    assert rig.node.trigger_activate() == SUCCESS
    assert rig.wait_command(gain(0.1))


def test_refuses_bundle_whose_joints_the_robot_lacks(rig, bundles):
    node = rig.create(bundle=bundles['gain'], robot_joints=['slider'])
    assert node.trigger_configure() == FAILURE
    assert rig.logs.wait_text("the robot lacks joints ['hinge']", spin=rig.spin)
    rig.destroy()
    # Without robot_joints, the first joint state tells.
    rig.state = ['slider'], [0.1], [0.0]
    rig.start(bundle=bundles['gain'], rate_hz=100.0)
    assert rig.logs.wait_text("refused bundle", "the robot lacks joints ['hinge']",
                              spin=rig.spin)
    assert rig.wait_command([0.0])
    rig.state = valid()
    assert set(map(tuple, rig.next_commands(20))) == {(0.0,)}


def test_hot_swap_validates_before_swapping(rig, bundles):
    rig.state = valid(0.1)
    node = rig.start(bundle=bundles['gain'], rate_hz=100.0)
    assert rig.wait_command(gain(0.1))
    assert rosutil.wait_for_subscribers(rig.bundle_pub, spin=rig.spin)
    other = -2 * 0.1 - 0.2
    rig.bundle_pub.publish(String(data=bundles['other']))
    assert rig.wait_command([pytest.approx(other)])
    assert rig.logs.wait_text('now running', bundles['other'], spin=rig.spin)
    for bad, why in (('cheetah', "task 'halfcheetah_run'"), ('corrupt', 'cannot load ONNX')):
        rig.bundle_pub.publish(String(data=bundles[bad]))
        assert rig.logs.wait_text('refused bundle', why, f'keeping {bundles["other"]}',
                                  spin=rig.spin), rig.logs.texts()
        assert rig.next_commands(10) == [[pytest.approx(other)]] * 10
    # The same validation through the `bundle` parameter.
    result, = node.set_parameters([Parameter('bundle', value=bundles['cheetah'])])
    assert not result.successful and 'halfcheetah_run' in result.reason
    assert rig.next_commands(5) == [[pytest.approx(other)]] * 5
    result, = node.set_parameters([Parameter('bundle', value=bundles['gain'])])
    assert result.successful
    assert rig.wait_command(gain(0.1))


def test_never_publishes_non_finite_even_if_the_network_does(rig, bundles):
    rig.state = valid()
    rig.start(bundle=bundles['nan'], rate_hz=100.0)
    commands = rig.next_commands(30)
    assert commands == [[0.0]] * 30
    assert rig.logs.wait_text('holding', 'policy output is not finite', spin=rig.spin)


HEAVY = ('torch', 'mujoco')
CLEAN_PROBE = f"""
import json, sys
import rclpy
from apex_ros.ros.nodes.policy_executor import PolicyExecutor, SUCCESS
from rclpy.parameter import Parameter
rclpy.init()
node = PolicyExecutor(parameter_overrides=[Parameter('bundle', value=sys.argv[1])])
ok = node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS
print(json.dumps([ok, [m for m in {HEAVY!r} if m in sys.modules]]))
"""


@pytest.mark.parametrize('executor', ['events', 'single'])  # single: main()'s ControlLoop
def test_subprocess_is_light_and_sends_hold_on_sigterm(rig, bundles, tmp_path, executor):
    # A clean interpreter: import, configure and activate pull in neither torch nor mujoco.
    out = subprocess.run([sys.executable, '-c', CLEAN_PROBE, bundles['gain']], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    assert json.loads(out.splitlines()[-1]) == [True, []]
    # The console script, state-triggered, autostarted.
    procs, log = NodeProcesses(), tmp_path / 'executor.log'
    try:
        proc = procs.start(rosutil.executable('policy_executor',
                                              'apex_ros.ros.nodes.policy_executor'),
                           rig.name, log_path=log, params={
                               'bundle': bundles['gain'], 'trigger': 'state',
                               'executor': executor, 'autostart': True})
        assert rosutil.wait_for_publishers(rig.commands.sub, spin=rig.spin)
        assert rosutil.wait_for_subscribers(rig.state_pub, spin=rig.spin)
        rig.state = valid(0.1)
        assert rig.wait_command(gain(0.1))
        get_state = rig.probe.create_client(GetState, f'/{rig.name}/get_state')
        response = call(get_state, GetState.Request(), spin=rig.spin)
        assert response.current_state.id == State.PRIMARY_STATE_ACTIVE
        maps = open(f'/proc/{proc.pid}/maps').read()
        assert not [m for m in HEAVY if m in maps]
        estop = rig.probe.create_client(SetBool, f'/{rig.name}/estop')  # served by main()
        assert call(estop, SetBool.Request(data=True), spin=rig.spin).success
        assert rig.wait_command([0.0])
        assert call(estop, SetBool.Request(data=False), spin=rig.spin).success
        assert rig.wait_command(gain(0.1))
        rig.state = None  # no more state: the watchdog holds
        assert rig.wait_command([0.0])
        start = len(rig.commands.items)
        assert rosutil.stop_node(proc) == 0
        assert rig.wait(lambda: [0.0] in rig.values(start))  # sent before exiting ...
        assert rig.values()[-1] == [0.0]  # ... last, after commands still in flight
        assert 'shutting down: sent hold command [0.0]' in log.read_text()
    finally:
        procs.stop_all()

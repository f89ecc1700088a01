"""The policy executor's safety watchdog, command interfaces and diagnostics, over real DDS
(loopback) with real onnxruntime bundles (the rig of test_policy_executor)."""
import json
import math
import time

import numpy as np
import onnx
import pytest
import rclpy
import rosutil
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped, TwistStamped
from rosutil import Collector
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool
from test_policy_executor import (
    FAILURE,
    SUCCESS,
    Rig,
    call,
    gain,
    linear_bundle,
    valid,
)

from apex_ros.deploy import command as interfaces
from apex_ros.deploy.bundle import BundleError, PolicyBundle
from apex_ros.deploy.export import task_signature
from apex_ros.errors import ApexError
from apex_ros.ros import protocol
from apex_ros.ros.nodes.control_loop import ControlLoop

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR

# Two hinges with position servos: j1 limited to +-0.5 rad (ctrlrange +-1), j2 unlimited.
SERVO_ARM = """
<mujoco>
  <compiler angle="radian"/>
  <option timestep="0.01"/>
  <worldbody>
    <body name="link1">
      <joint name="j1" type="hinge" axis="0 0 1" range="-0.5 0.5"/>
      <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.03"/>
      <body name="link2" pos="0.3 0 0">
        <joint name="j2" type="hinge" axis="0 0 1"/>
        <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.03"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <position joint="j1" kp="20" ctrlrange="-1 1"/>
    <position joint="j2" kp="20" ctrlrange="-2 2"/>
  </actuator>
</mujoco>
"""
# A point end effector on three slides: the policy's action is its displacement.
POINT_EE = """
<mujoco>
  <worldbody>
    <body name="tool">
      <joint name="x" type="slide" axis="1 0 0"/>
      <joint name="y" type="slide" axis="0 1 0"/>
      <joint name="z" type="slide" axis="0 0 1"/>
      <geom type="sphere" size="0.05"/>
    </body>
  </worldbody>
  <actuator>
    <motor joint="x" ctrlrange="-1 1"/>
    <motor joint="y" ctrlrange="-1 1"/>
    <motor joint="z" ctrlrange="-1 1"/>
  </actuator>
</mujoco>
"""
ARM_JOINTS = ['j1', 'j2']


@pytest.fixture
def rig(context):  # noqa: F811 (the module-scoped context fixture imported above)
    r = Rig(context)
    yield r
    r.close()


@pytest.fixture(scope='module')
def gain_bundle(tmp_path_factory, cartpole):
    return linear_bundle(cartpole, tmp_path_factory.mktemp('b') / 'gain.onnx',
                         [[5.0, 0, 0, 0, 0]], [0.3])


def start_on(rig, collector, **params):
    """Rig.start for an executor commanding `collector`'s topic (not the default one)."""
    node = rig.create(**params)
    assert node.trigger_configure() == SUCCESS
    assert rosutil.wait_for_publishers(collector.sub, spin=rig.spin)
    assert rosutil.wait_for_subscribers(rig.state_pub, spin=rig.spin)
    assert node.trigger_activate() == SUCCESS


def arm_state(j1=0.1, j2=0.2):
    return ARM_JOINTS, [j1, j2], [0.0, 0.0]


def servo_bundle(model_task, tmp_path, bias):
    task = model_task(SERVO_ARM)
    return task, linear_bundle(task, tmp_path / 'servo.onnx', np.zeros((2, task.obs_dim)), bias)


def cartesian_bundle(model_task, tmp_path, message, axes, bias):
    task = model_task(POINT_EE, command_interface={
        'interface': 'cartesian', 'message': message, 'frame': 'tool', 'axes': axes,
        'scale': 0.05})
    return task, linear_bundle(task, tmp_path / 'cartesian.onnx',
                               np.zeros((3, task.obs_dim)), bias)


# --- the state watchdog -------------------------------------------------------------------

@pytest.mark.parametrize('trigger', ['state', 'timer'])
def test_stopped_stream_is_answered_by_a_hold_within_state_timeout(rig, gain_bundle, trigger):
    timeout = 0.2
    rig.state = valid(0.1)
    rig.start(bundle=gain_bundle, trigger=trigger, rate_hz=100.0, state_timeout=timeout)
    assert rig.wait_command(gain(0.1))
    rig.state = None  # the stream stops
    stopped = time.monotonic()
    assert rig.wait(lambda: [0.0] in rig.values(), timeout=5.0)
    held_at = next(t for t, m in rig.commands.items if list(m.data) == [0.0])
    # Not before the state is stale; at most one watchdog period (timeout / 4) after, plus
    # slack for a loaded machine.
    assert timeout - 0.01 <= held_at - stopped <= 1.25 * timeout + 0.3, held_at - stopped
    assert rig.logs.wait_text('holding', 'ms old', spin=rig.spin)
    rig.state = valid(0.05)
    assert rig.wait_command(gain(0.05))  # and it resumes on fresh state


def test_lockstep_has_no_watchdog(rig, gain_bundle):
    timeout = 0.1
    rig.state = valid(0.1)
    rig.start(bundle=gain_bundle, trigger='state', state_watchdog=False, state_timeout=timeout)
    assert rig.wait_command(gain(0.1))
    rig.state = None
    start = len(rig.commands.items)
    quiet_until = time.monotonic() + 5 * timeout
    rig.wait(lambda: time.monotonic() > quiet_until)
    # The state source is the clock: it waits, without a hold that would step the sim.
    assert [0.0] not in rig.values(start)
    rig.state = valid(0.05)
    assert rig.wait_command(gain(0.05))


def test_control_loop_waits_on_nothing_and_runs_what_is_ready(context):  # noqa: F811
    node = rclpy.create_node('control_loop_probe', context=context)
    try:
        loop = ControlLoop(node)
        start = time.monotonic()
        loop.spin_once(0.05)  # no entity yet (an executor before configure): just waits
        assert time.monotonic() - start >= 0.05
        ticks, got = [], []
        node.create_timer(0.01, lambda: ticks.append(1))
        node.create_subscription(Float64MultiArray, '/control_loop_probe', got.append, 1)
        pub = node.create_publisher(Float64MultiArray, '/control_loop_probe', 1)
        assert rosutil.wait_for(lambda: pub.get_subscription_count() == 1, 10.0)
        pub.publish(Float64MultiArray(data=[1.5]))
        assert _spin_until(loop, lambda: ticks and got)
        assert list(got[0].data) == [1.5]
    finally:
        node.destroy_node()


def _spin_until(loop, predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        loop.spin_once(0.01)
    return bool(predicate())


# --- command interfaces -------------------------------------------------------------------

def test_export_derives_the_interface_and_joint_limits(model_task, cartpole):
    servo = task_signature(model_task(SERVO_ARM))['command']
    assert servo == {'interface': 'position', 'message': 'std_msgs/Float64MultiArray',
                     'controller': 'forward_position_controller', 'low': [-0.5, -2.0],
                     'high': [0.5, 2.0]}
    assert task_signature(cartpole)['command']['interface'] == 'effort'
    with pytest.raises(Exception, match='one distinct axis'):
        task_signature(model_task(POINT_EE, command_interface={
            'interface': 'cartesian', 'message': 'geometry_msgs/TwistStamped',
            'frame': 'tool', 'axes': ['x', 'x', 'z']}))


def test_position_interface_clamps_to_joint_limits_and_holds_measured_positions(
        rig, model_task, tmp_path):
    _, bundle = servo_bundle(model_task, tmp_path, [0.9, -1.5])  # j1 0.9 is beyond its 0.5
    commands = Collector(rig.probe, Float64MultiArray, '/forward_position_controller/commands')
    rig.state = arm_state()
    start_on(rig, commands, bundle=bundle, rate_hz=100.0, state_timeout=0.1)
    assert commands.wait(5, spin=rig.spin)
    assert list(commands.msgs[-1].data) == pytest.approx([0.5, -1.5])
    assert rig.logs.wait_text('hold=position', 'position (std_msgs/Float64MultiArray to '
                              'forward_position_controller)', spin=rig.spin)
    rig.state = None  # stale: hold at the last measured positions
    assert rig.wait(lambda: list(commands.msgs[-1].data) == pytest.approx([0.1, 0.2]))


def test_position_interface_refuses_a_zero_hold(rig, model_task, tmp_path):
    _, bundle = servo_bundle(model_task, tmp_path, [0.0, 0.0])
    assert rig.create(bundle=bundle, hold='zero').trigger_configure() == FAILURE
    assert rig.logs.wait_text('hold=zero does not fit', 'position', spin=rig.spin)


def test_interface_mismatch_is_refused_naming_both(rig, model_task, tmp_path, gain_bundle):
    _, bundle = servo_bundle(model_task, tmp_path, [0.0, 0.0])
    node = rig.create(bundle=bundle, command_interface='effort', controller='arm_controller')
    assert node.trigger_configure() == FAILURE
    assert rig.logs.wait_text(
        'position (std_msgs/Float64MultiArray to forward_position_controller)',
        'configured for effort on /arm_controller/commands', spin=rig.spin), rig.logs.texts()
    rig.destroy()
    # A hot swap to another interface is refused too.
    rig.state = valid(0.1)
    rig.start(bundle=gain_bundle, rate_hz=100.0)
    assert rig.wait_command(gain(0.1))
    rig.bundle_pub.publish(rig.bundle_pub.msg_type(data=bundle))
    assert rig.logs.wait_text('refused bundle', 'it commands position', 'running effort',
                              spin=rig.spin), rig.logs.texts()
    assert rig.next_commands(5) == [gain(0.1)] * 5


@pytest.mark.parametrize('message', ['geometry_msgs/TwistStamped', 'geometry_msgs/PoseStamped'])
def test_cartesian_interface_message_and_hold(rig, model_task, tmp_path, message):
    axes = ['x', 'y', 'z'] if message.endswith('Twist' + 'Stamped') else ['x', 'y', 'rz']
    task, bundle = cartesian_bundle(model_task, tmp_path, message, axes, [0.2, -0.4, 2.0])
    msg_type = TwistStamped if 'Twist' in message else PoseStamped
    targets = Collector(rig.probe, msg_type, '/cartesian_controller/commands')
    rig.state = ['x', 'y', 'z'], [0.0] * 3, [0.0] * 3
    start_on(rig, targets, bundle=bundle, rate_hz=50.0, state_timeout=0.1)
    assert targets.wait(3, spin=rig.spin)
    last = targets.msgs[-1]
    assert last.header.frame_id == 'tool'
    # action clamped to its bounds (2.0 -> 1.0), times 0.05 m (rad) per unit
    displacement = [0.01, -0.02, 0.05]
    if msg_type is TwistStamped:
        rate = 1.0 / task.dt  # per control step of the task
        v = last.twist.linear
        assert [v.x, v.y, v.z] == pytest.approx(np.multiply(displacement, rate).tolist())

        def hold(m):
            return [m.twist.linear.x, m.twist.linear.y, m.twist.linear.z] == [0, 0, 0]
    else:
        p, q = last.pose.position, last.pose.orientation
        assert [p.x, p.y, p.z] == pytest.approx([0.01, -0.02, 0.0])
        assert [q.x, q.y, q.z, q.w] == pytest.approx([0, 0, math.sin(0.025), math.cos(0.025)])

        def hold(m):
            return [m.pose.position.x, m.pose.position.y, m.pose.orientation.w] == [0, 0, 1]
    rig.state = None
    assert rig.wait(lambda: hold(targets.msgs[-1]))


def test_format_1_bundles_load_as_effort_and_format_2_needs_the_interface(
        gain_bundle, tmp_path):
    proto = onnx.load(gain_bundle)
    entry = next(p for p in proto.metadata_props if p.key == 'apex_ros')
    meta = json.loads(entry.value)
    del meta['command']
    entry.value = json.dumps({**meta, 'format_version': 1})
    legacy = PolicyBundle(proto.SerializeToString())
    assert (legacy.command.interface, legacy.command.controller) == ('effort',
                                                                      'effort_controller')
    assert legacy.command.high.tolist() == [1.0]
    entry.value = json.dumps(meta)
    with pytest.raises(BundleError, match="lacks field 'command'"):
        PolicyBundle(proto.SerializeToString())


# --- diagnostics --------------------------------------------------------------------------

def statuses(array_msg, name):
    """{short status name: DiagnosticStatus} of one report of executor `name`."""
    return {s.name.removeprefix(f'{name}: '): s for s in array_msg.status
            if s.hardware_id == name}


def wait_report(rig, diagnostics, predicate, timeout=10.0):
    """Wait for a report of the executor for which predicate({name: status}) holds."""
    def seen():
        return any(predicate(statuses(m, rig.name)) for m in diagnostics.msgs)
    return rig.wait(seen, timeout)


def test_diagnostics_levels_fresh_stale_and_estop(rig, gain_bundle):
    diagnostics = Collector(rig.probe, DiagnosticArray, '/diagnostics')
    rig.state = valid(0.1)
    rig.start(bundle=gain_bundle, rate_hz=50.0, state_timeout=0.1, diagnostics_period=0.5)
    assert rig.wait_command(gain(0.1))
    state_entry = f'joint states ({protocol.JOINT_STATES})'

    def all_ok(s):
        return set(s) == {'command rate', state_entry, 'hold', 'bundle', 'command topic'} and \
            all(x.level == OK for x in s.values())
    assert wait_report(rig, diagnostics, all_ok), [
        [(x.name, x.level, x.message) for x in m.status] for m in diagnostics.msgs[-2:]]
    report = next(statuses(m, rig.name) for m in diagnostics.msgs
                  if all_ok(statuses(m, rig.name)))
    bundle = {v.key: v.value for v in report['bundle'].values}
    assert bundle['path'] == gain_bundle and bundle['task'] == 'cartpole_swingup'
    assert report['command rate'].message == 'Desired frequency met'
    rate = {v.key: v.value for v in report['command rate'].values}
    assert float(rate['target frequency Hz']) == 50.0

    rig.state = None  # stale: the state ERROR, the hold ERROR with the reason
    diagnostics.clear()
    assert wait_report(rig, diagnostics, lambda s: s[state_entry].level == ERROR
                       and 'stale' in s[state_entry].message and s['hold'].level == ERROR
                       and 'ms old' in s['hold'].message)
    rig.state = valid(0.1)
    assert wait_report(rig, diagnostics, all_ok)
    estop = rig.probe.create_client(SetBool, f'/{rig.name}/estop')
    assert call(estop, SetBool.Request(data=True), spin=rig.spin).success
    diagnostics.clear()
    assert wait_report(rig, diagnostics, lambda s: s['hold'].level == WARN
                       and 'e-stop' in s['hold'].message)


def test_no_subscriber_on_the_command_topic_warns(rig, gain_bundle):
    diagnostics = Collector(rig.probe, DiagnosticArray, '/diagnostics')
    rig.state = valid(0.1)
    node = rig.create(bundle=gain_bundle, rate_hz=50.0, controller='nobody_listens',
                      diagnostics_period=0.3)
    assert node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS
    assert rig.logs.wait_text('no subscriber on the command topic /nobody_listens/commands',
                              spin=rig.spin), rig.logs.texts()
    assert wait_report(rig, diagnostics, lambda s: s['command topic'].level == WARN
                       and 'no subscriber' in s['command topic'].message)
    Collector(rig.probe, Float64MultiArray, '/nobody_listens/commands')
    assert rig.logs.wait_text('/nobody_listens/commands has 1 subscriber', spin=rig.spin)
    diagnostics.clear()
    assert wait_report(rig, diagnostics, lambda s: s['command topic'].level == OK)


def test_cartesian_interface_with_a_gripper_publishes_both_clamped_and_holds_both(
        rig, model_task, tmp_path):
    task, bundle = cartesian_bundle(model_task, tmp_path, 'geometry_msgs/TwistStamped',
                                    ['x', 'gripper', 'z'], [0.2, 2.0, -0.4])
    twists = Collector(rig.probe, TwistStamped, '/cartesian_controller/commands')
    grippers = Collector(rig.probe, Float64MultiArray, '/gripper_controller/commands')
    rig.state = ['x', 'y', 'z'], [0.0] * 3, [0.0] * 3
    start_on(rig, grippers, bundle=bundle, rate_hz=50.0, state_timeout=0.1)
    assert twists.wait(3, spin=rig.spin) and grippers.wait(3, spin=rig.spin)
    assert rig.logs.wait_text('gripper std_msgs/Float64MultiArray to gripper_controller',
                              'gripper on /gripper_controller/commands', spin=rig.spin)
    v, rate = twists.msgs[-1].twist.linear, 1.0 / task.dt
    assert [v.x, v.y, v.z] == pytest.approx([0.01 * rate, 0.0, -0.02 * rate])
    assert list(grippers.msgs[-1].data) == [1.0]   # 2.0 clamped to the action bound
    rig.state = None   # stale: both held, no displacement and no gripper change
    assert rig.wait(lambda: [twists.msgs[-1].twist.linear.x, twists.msgs[-1].twist.linear.z]
                    == [0, 0] and list(grippers.msgs[-1].data) == [0.0])


def test_cartesian_gripper_metadata_is_validated_and_hot_swaps_compare_it(
        rig, model_task, tmp_path):
    interface = {'interface': 'cartesian', 'message': 'geometry_msgs/TwistStamped',
                 'frame': 'tool', 'low': [-1] * 3, 'high': [1] * 3}
    for fields, why in (({'axes': ['gripper', 'x', 'gripper']}, 'one distinct axis'),
                        ({'axes': ['x', 'y', 'z'], 'gripper_controller': 'g'},
                         "without a 'gripper' axis"),
                        ({'axes': ['x', 'y', 'gripper'], 'gripper_controller': ''},
                         'name of the gripper'),
                        ({'axes': ['x', 'y', 'gripper'], 'controller': 'c',
                          'gripper_controller': 'c'}, 'need their own topics'),
                        ({'axes': ['x', 'y', 'gripper'], 'scale': -1}, 'finite number > 0')):
        with pytest.raises(ApexError, match=why):
            interfaces.from_meta({**interface, **fields}, 3, 'b.onnx')
    with pytest.raises(ApexError, match='besides'):
        interfaces.from_meta({**interface, 'axes': ['gripper'], 'low': [-1], 'high': [1]}, 1,
                             'b.onnx')
    _, with_gripper = cartesian_bundle(model_task, tmp_path, 'geometry_msgs/TwistStamped',
                                       ['x', 'y', 'gripper'], [0.0, 0.0, 0.0])
    other = tmp_path / 'other'
    other.mkdir()
    _, without = cartesian_bundle(model_task, other, 'geometry_msgs/TwistStamped',
                                  ['x', 'y', 'z'], [0.0, 0.0, 0.0])
    twists = Collector(rig.probe, TwistStamped, '/cartesian_controller/commands')
    rig.state = ['x', 'y', 'z'], [0.0] * 3, [0.0] * 3
    start_on(rig, twists, bundle=with_gripper, rate_hz=50.0)
    rig.bundle_pub.publish(rig.bundle_pub.msg_type(data=without))
    assert rig.logs.wait_text('refused bundle', "axes ['x', 'y', 'z']", 'gripper_controller',
                              spin=rig.spin), rig.logs.texts()

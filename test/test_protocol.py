"""The graph's contract without a graph: message layouts round trip and refuse wrong sizes
naming the topic; the reset reply; typed launch arguments; the ONNX session factory's errors;
the observation-term parser; bags that are not MCAP."""
import re
import subprocess
import sys

import numpy as np
import pytest

from apex_ros.bags.reader import BagReader
from apex_ros.bags.writer import BagError
from apex_ros.deploy.bundle import BundleError, PolicyBundle
from apex_ros.deploy.observation import JointObservation, ObsTerm, parse_term
from apex_ros.deploy.onnx_session import make_session
from apex_ros.errors import ApexError
from apex_ros.ros import protocol
from apex_ros.ros.launcher import parse_launch_arguments
from apex_ros.sim.observation import JointStates, Observation

RNG = np.random.default_rng(0)


# --- layouts ------------------------------------------------------------------------------------

def test_full_state_round_trip_with_labelled_segments():
    sent = protocol.FullState(7, 12, RNG.normal(size=5), RNG.normal(size=2))
    packed = protocol.pack_full_state(sent)
    assert packed.dims == (('header', 2), ('state', 5), ('warmstart', 2))
    assert all(isinstance(x, float) for x in packed.data)
    got = protocol.unpack_full_state(packed.data, 5, 2)
    assert (got.episode, got.step) == (7, 12)
    np.testing.assert_array_equal(got.state, sent.state)
    np.testing.assert_array_equal(got.warmstart, sent.warmstart)


def test_demonstration_round_trip():
    sent = protocol.Demonstration(3, 0, RNG.normal(size=4).astype(np.float32), np.array([0.5]))
    packed = protocol.pack_demonstration(sent)
    assert packed.dims == (('header', 2), ('observation', 4), ('action', 1))
    got = protocol.unpack_demonstration(packed.data, 4, 1)
    assert (got.episode, got.step) == (3, 0)
    np.testing.assert_array_equal(got.observation, sent.observation)   # float32 is exact
    np.testing.assert_array_equal(got.action, sent.action)


@pytest.mark.parametrize('unpack, topic', [
    (lambda data: protocol.unpack_full_state(data, 5, 2), protocol.FULL_STATE),
    (lambda data: protocol.unpack_demonstration(data, 5, 2), protocol.DEMONSTRATIONS),
])
def test_wrong_sizes_are_refused_naming_the_topic(unpack, topic):
    for data in ([1.0] * 8, [1.0] * 10, []):
        with pytest.raises(protocol.ProtocolError, match=f'^{topic}: {len(data)} values, '
                                                         r'expected 9 \(2 header \+ '):
            unpack(data)


def test_commands_are_checked_for_size_and_finiteness():
    packed = protocol.pack_command(np.array([0.25, -1.0]))
    assert packed.dims == ()   # forward controllers read data only
    topic = protocol.command_topic('effort_controller')
    np.testing.assert_array_equal(protocol.unpack_command(packed.data, ['a', 'b'], topic),
                                  [0.25, -1.0])
    with pytest.raises(protocol.ProtocolError,
                       match=rf"^{topic}: expected 1 values \['a'\], got 2"):
        protocol.unpack_command(packed.data, ['a'], topic)
    with pytest.raises(protocol.ProtocolError, match='non-finite'):
        protocol.unpack_command([np.inf, 0.0], ['a', 'b'], topic)


def test_reset_reply_round_trip_and_refusal():
    reply = protocol.ResetReply(episode=4, seed=104)
    assert protocol.unpack_reset_reply(protocol.pack_reset_reply(reply)) == reply
    for bad in ('episode 4 (seed 104)', '{"episode": "x", "seed": 1}', '{"seed": 1}', ''):
        with pytest.raises(protocol.ProtocolError, match='^/sim/reset: reply'):
            protocol.unpack_reset_reply(bad)


def test_names_and_bundle_announcements():
    assert protocol.service(protocol.SIM_NODE, protocol.RESET) == '/sim/reset'
    assert protocol.service('planner', protocol.SET_ACTIVE) == '/planner/set_active'
    assert protocol.unpack_bundle_announcement(
        protocol.pack_bundle_announcement('/runs/p.onnx')) == '/runs/p.onnx'
    with pytest.raises(protocol.ProtocolError, match=protocol.POLICY_BUNDLE):
        protocol.unpack_bundle_announcement('')


def test_protocol_imports_nothing_of_ros():
    code = ('import sys, apex_ros.ros.protocol; '
            'print([m for m in sys.modules if m.split(".")[0] in '
            '("rclpy", "std_msgs", "mujoco", "torch")])')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == '[]'


# --- launch arguments ---------------------------------------------------------------------------

@pytest.mark.parametrize('item, expected', [
    ('iterations:=abc', 'launch argument iterations:=abc: expected int'),
    ('iterations:=1.5', 'launch argument iterations:=1.5: expected int'),
    ('iterations:=', "launch argument iterations:='': expected int"),
    ('resume:=1', r'launch argument resume:=1: expected bool \(true or false\)'),
])
def test_mistyped_launch_arguments_are_refused(item, expected):
    with pytest.raises(ApexError, match=expected):
        parse_launch_arguments('sim_apex', [item])


def test_typed_launch_arguments_pass_through():
    values = parse_launch_arguments('sim_apex', ['iterations:=3', 'resume:=true',
                                                 'out_dir:=runs/x'])
    assert (values['iterations'], values['resume'], values['out_dir']) == ('3', 'true',
                                                                           'runs/x')


def test_cli_launch_refuses_a_mistyped_argument_before_starting_nodes():
    out = subprocess.run([sys.executable, '-m', 'apex_ros.cli', 'launch', 'sim_apex',
                          'iterations:=abc'], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert 'launch argument iterations:=abc: expected int' in out.stderr
    assert 'started' not in out.stdout and 'Traceback' not in out.stderr


# --- the ONNX session factory -------------------------------------------------------------------

def test_session_factory_names_the_file_and_the_problem(tmp_path):
    with pytest.raises(ApexError, match=f'^{tmp_path}: is a directory, expected an .onnx file'):
        make_session(tmp_path)
    missing = tmp_path / 'missing.onnx'
    with pytest.raises(ApexError, match=f'^{missing}: no such file'):
        make_session(missing)
    junk = tmp_path / 'junk.onnx'
    junk.write_bytes(b'not an onnx file')
    with pytest.raises(ApexError, match=f'^{junk}: cannot load ONNX model: not an ONNX model'):
        make_session(junk)
    with pytest.raises(ApexError, match='^<memory>: cannot load value: not an ONNX model'):
        make_session(b'junk', what='value')


def test_session_factory_loads_a_bundle(tmp_path, cartpole):
    from apex_ros.deploy.export import bundle_bytes
    from apex_ros.learning.student import MLPPolicy
    data = bundle_bytes(MLPPolicy(cartpole.obs_dim, cartpole.nu), cartpole, 0)
    session = make_session(data, threads=2)
    assert session.get_inputs()[0].shape[-1] == cartpole.obs_dim
    path = tmp_path / 'p.onnx'
    path.write_bytes(data)
    bundle = PolicyBundle(path)
    assert bundle.act(np.zeros(cartpole.obs_dim)).shape == (cartpole.nu,)
    assert bundle.required_joints() == ['slider', 'hinge']


def test_bundle_of_a_directory_is_a_bundle_error(tmp_path):
    with pytest.raises(BundleError, match='is a directory, expected an .onnx file'):
        PolicyBundle(tmp_path)


def test_eval_of_a_directory_says_so(tmp_path, capsys):
    from apex_ros import cli
    assert cli.main(['eval', '--task', 'cartpole_swingup', '--policy', str(tmp_path)]) == 2
    assert f'{tmp_path}: is a directory, expected an .onnx file' in capsys.readouterr().err


# --- the observation-term parser ----------------------------------------------------------------

def test_parse_term():
    assert parse_term('cos:hinge') == ObsTerm('cos', 'hinge', None)
    assert parse_term('qvel:root[5]') == ObsTerm('qvel', 'root', 5)
    assert parse_term('qpos:link/a.b-c_1') == ObsTerm('qpos', 'link/a.b-c_1', None)
    with pytest.raises(ApexError, match=r"'acc:slider': unknown kind 'acc'; expected qpos"):
        parse_term('acc:slider')
    for bad in ('qpos', 'qpos:', 'qpos:a[x]', 'qpos:a[1', 'qpos:a b', 'qpos:a[-1]'):
        with pytest.raises(ApexError, match=re.escape(f'observation term {bad!r}: expected qpos')):
            parse_term(bad)
    assert parse_term('site:robot0:grip[2]') == ObsTerm('site', 'robot0:grip', 2)
    assert parse_term('offset:S_handle>S_grasp[0]') == ObsTerm('offset', 'S_handle>S_grasp', 0)
    for bad in ('site:palm', 'site:palm[3]', 'offset:a>b'):
        with pytest.raises(ApexError, match=r'is one coordinate of a position: \w+:NAME\[i\] '
                                            r'with i in 0\.\.2'):
            parse_term(bad)
    for bad in ('qpos:a>b', 'offset:ab[0]', 'offset:a>b>c[0]', 'offset:>b[0]'):
        with pytest.raises(ApexError, match="'>' belongs in offset terms only, once"):
            parse_term(bad)


def test_the_three_users_agree_on_the_terms(cartpole, humanoid):
    terms = cartpole.observation.terms
    assert JointObservation(terms).joints == list(dict.fromkeys(parse_term(t).joint
                                                                for t in terms))
    with pytest.raises(ApexError, match='multi-coordinate joint'):
        JointObservation(['qpos:root[0]'])
    assert Observation(humanoid.model, ['qpos:root[2]']).size == 1
    with pytest.raises(ApexError, match="unknown kind 'acc'"):
        Observation(cartpole.model, ['acc:slider'])


def test_joint_states_rebuild_the_observation(cartpole):
    """State -> JointState (by name) -> JointObservation equals the task's observation."""
    from apex_ros.sim.simulation import Simulation
    sim = Simulation(cartpole)
    sim.reset(3)
    sim.step(np.array([0.7]))
    joints = JointStates(cartpole.model)
    positions, velocities, _ = joints.read(sim.data)
    expected = cartpole.observe(sim.state()[None])[0]
    got = JointObservation(cartpole.observation.terms)(joints.names, positions, velocities)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    state = joints.to_state(joints.names[::-1], positions[::-1], velocities[::-1])
    np.testing.assert_allclose(cartpole.observe(state[None])[0], expected, rtol=1e-6)


# --- bags ---------------------------------------------------------------------------------------

def test_a_file_that_is_not_mcap_is_named(tmp_path):
    notes = tmp_path / 'notes.txt'
    notes.write_text('hello')
    with pytest.raises(BagError, match=f'^{notes}: not an MCAP file \\(or rosbag2 directory\\)'):
        BagReader(notes)
    empty = tmp_path / 'empty.mcap'
    empty.write_bytes(b'')
    with pytest.raises(BagError, match='not an MCAP file'):
        BagReader(empty)


def test_cli_relabel_of_a_non_mcap_file(tmp_path, capsys, cartpole):
    from apex_ros import cli
    from apex_ros.deploy.export import export_bundle
    from apex_ros.learning.student import MLPPolicy
    policy = tmp_path / 'p.onnx'
    export_bundle(MLPPolicy(cartpole.obs_dim, cartpole.nu), cartpole, policy, 0)
    notes = tmp_path / 'notes.txt'
    notes.write_text('hello')
    argv = ['relabel', str(notes), '--task', 'cartpole_swingup', '--policy', str(policy),
            '--out', str(tmp_path / 'shard.npz'), '--quiet']
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f'{notes}: not an MCAP file (or rosbag2 directory)' in err
    assert 'lacks' not in err


def test_plan_round_trip_and_refusal():
    qpos = np.arange(31 * 2, dtype=float).reshape(31, 2)
    plan = protocol.Plan(3, 7, 0.042, np.array([0.5, 0.0]), qpos)
    packed = protocol.pack_plan(plan)
    assert packed.dims == (('header', 2), ('timing', 1), ('lambdas', 2), ('qpos', 62))
    back = protocol.unpack_plan(packed.data, nq=2, n_lambdas=2)
    assert (back.episode, back.step, back.plan_seconds) == (3, 7, 0.042)
    np.testing.assert_array_equal(back.qpos, qpos)
    np.testing.assert_array_equal(back.lambdas, [0.5, 0.0])
    with pytest.raises(protocol.ProtocolError, match='/apex/plan: 67 values.*nq=4'):
        protocol.unpack_plan(packed.data[:-1] + [0.0], nq=4, n_lambdas=2)
    with pytest.raises(protocol.ProtocolError, match='/apex/plan'):
        protocol.unpack_plan(packed.data[:5], nq=2, n_lambdas=2)


def test_status_round_trip_and_refusal():
    status = protocol.Status(2, 10, 'dagger', 'executor', 812.5, 640.0)
    assert protocol.unpack_status(protocol.pack_status(status)) == status
    fresh = protocol.Status(0, 10, 'expert', 'none')
    assert protocol.unpack_status(protocol.pack_status(fresh)) == fresh
    with pytest.raises(protocol.ProtocolError, match='/apex/status: .*not a status'):
        protocol.unpack_status('{"iteration": 1}')
    with pytest.raises(protocol.ProtocolError, match="driver 'robot' not in"):
        protocol.unpack_status(protocol.pack_status(protocol.Status(1, 2, 'expert', 'robot')))


@pytest.mark.parametrize('graph,items', [
    ('sim_apex', []), ('policy', ['bundle:=p.onnx'])])
def test_the_viz_node_is_optional_in_both_graphs(graph, items):
    from apex_ros.ros.graph import GRAPHS
    make, _ = GRAPHS[graph]
    without = [s.executable for s in make(parse_launch_arguments(graph, items))]
    assert 'viz_node' not in without
    with_viz = make(parse_launch_arguments(graph, items + ['viz:=true', 'viz_port:=8123']))
    viz = [s for s in with_viz if s.executable == 'viz_node']
    assert len(viz) == 1 and ('port', '8123') in viz[0].params
    assert [s.executable for s in with_viz if s.executable != 'viz_node'] == without


def test_message_class_takes_an_inputs_and_a_bags_type_name_and_names_a_bad_one():
    from geometry_msgs.msg import PoseStamped
    assert protocol.message_class('geometry_msgs/PoseStamped') is PoseStamped
    assert protocol.message_class('geometry_msgs/msg/PoseStamped') is PoseStamped
    for bad, why in (('geometry_msgs/srv/PoseStamped', 'expected'), ('PoseStamped', 'expected'),
                     ('geometry_msgs/NoSuchMsg', 'not importable'),
                     ('no_such_msgs/Pose', 'not importable')):
        with pytest.raises(ApexError, match=f"message type '{bad}': {why}"):
            protocol.message_class(bad)

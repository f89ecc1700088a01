"""The arm deployment loop on ur5e_reach, as a deployment runs it: a sim node in real time
(500 Hz joint states, forward_position_controller) standing in for the robot, the executor
from `apex-ros launch policy` with the position interface, goals sent on /sim/goal (the sim
republishes /goal, which the executor reads), a bag from `apex-ros record --bundle`, relabeled
with `--input-topic goal=/goal`, retrained, and the new bundle hot-swapped in. Also the sim
node's hold for position servos (the measured positions, not the zero pose)."""
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rosutil  # noqa: I100 (first: isolates the ROS domain before rclpy.init)
import yaml
from geometry_msgs.msg import PointStamped
from rosutil import Collector, wait_for
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from test_graph import launch

from apex_ros import cli
from apex_ros.bags.reader import BagReader
from apex_ros.deploy.bundle import PolicyBundle
from apex_ros.learning.dataset import Dataset
from apex_ros.ros import protocol, qos
from apex_ros.tasks import make_task
from apex_ros.tasks.ur5e_reach import HOME, tool_position

CONTROLLER = 'forward_position_controller'
COMMANDS = protocol.command_topic(CONTROLLER)
REPO = Path(__file__).resolve().parents[1]
# the 20-iteration APEX policy of experiments/ur5e_reach (success 0.25 in simulation)
TRAINED = REPO / 'experiments' / 'ur5e_reach' / 'apex_run' / 'policy.onnx'
GOAL = [-0.45, 0.15, 0.3]     # in the goal region, ~0.2 m from the home pose's tool


@pytest.fixture
def probe():
    with rosutil.probe_node('arm_loop_probe') as probe:
        yield probe


def start_sim(procs, log_path, **params):
    return procs.start(rosutil.executable('sim_node', 'apex_ros.ros.nodes.sim_node'), 'sim',
                       log_path=log_path,
                       params={'task': 'ur5e_reach', 'mode': 'realtime', 'state_rate': 500.0,
                               'controller': CONTROLLER, 'set': 'task.episode_steps=100000',
                               **params})


def arm_positions(msg, joints) -> np.ndarray:
    """(6,) the arm's positions from a JointState, in the task's joint order."""
    by_name = dict(zip(msg.name, msg.position))
    return np.array([by_name[j] for j in joints])


@pytest.mark.slow
def test_realtime_hold_of_position_servos_keeps_the_measured_positions(probe, tmp_path):
    node, executor, procs = probe
    arm = make_task('ur5e_reach')
    states = Collector(node, JointState, protocol.JOINT_STATES, 10)
    commands = node.create_publisher(Float64MultiArray, COMMANDS, qos.COMMAND)
    log = tmp_path / 'sim.log'
    start_sim(procs, log, command_timeout=0.2)
    # no command yet: the servos hold the reset pose (near HOME), not the zero pose
    assert states.wait(200, timeout=60.0, spin=executor), log.read_text()
    q = arm_positions(states.msgs[-1], arm.joints)
    assert np.abs(q - HOME).max() < 0.1, q

    target = HOME + np.array([0.4, 0.2, -0.2, 0.0, 0.0, 0.0])
    assert rosutil.wait_for_subscribers(commands, spin=executor)

    def reached():
        commands.publish(Float64MultiArray(data=target.tolist()))
        return np.abs(arm_positions(states.msgs[-1], arm.joints) - target).max() < 0.02
    assert wait_for(reached, 30.0, executor, period=0.05), arm_positions(states.msgs[-1],
                                                                          arm.joints)
    # commands stop: after command_timeout the hold keeps where the arm is
    assert wait_for(lambda: 'command timeout' in log.read_text(), 10.0, executor)
    states.clear()
    assert states.wait(250, timeout=30.0, spin=executor)
    held = np.array([arm_positions(m, arm.joints) for m in states.msgs])
    assert np.abs(held - target).max() < 0.03, np.abs(held - target).max(axis=0)


@pytest.mark.slow
def test_deploy_record_relabel_retrain_redeploy_the_arm(probe, tmp_path):
    node, executor, procs = probe
    arm = make_task('ur5e_reach')
    bundle = PolicyBundle(TRAINED)
    low, high = bundle.command.low, bundle.command.high
    states = Collector(node, JointState, protocol.JOINT_STATES, 10)
    goals = Collector(node, PointStamped, '/goal', 10)
    commands = Collector(node, Float64MultiArray, COMMANDS, 10)
    set_goal = node.create_publisher(PointStamped, protocol.sim_input_topic('/goal'), 10)
    announce = node.create_publisher(String, protocol.POLICY_BUNDLE, qos.BUNDLE)
    spinner = threading.Thread(target=executor.spin, daemon=True)

    # the robot: the sim node in real time; the bag; the executor as on a robot
    start_sim(procs, tmp_path / 'sim.log')
    bag = tmp_path / 'bag'
    with open(tmp_path / 'record.log', 'wb') as out:
        recorder = subprocess.Popen(
            [sys.executable, '-m', 'apex_ros.cli', 'record', '-o', str(bag), '--controller',
             CONTROLLER, '--bundle', str(TRAINED)], stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    procs.procs.append(recorder)
    executor_log = tmp_path / 'executor.log'
    procs.procs.append(launch(['policy', 'params_file:=policy_executor_ur5e.yaml',
                               f'bundle:={TRAINED}'], executor_log))

    def recording(topic):
        return any(i.node_name == 'recorder' for i in node.get_subscriptions_info_by_topic(topic))
    assert wait_for(lambda: all(map(recording, ['/goal', protocol.JOINT_STATES, COMMANDS])),
                    90.0, executor), (tmp_path / 'record.log').read_text()
    assert commands.wait(25, timeout=60.0, spin=executor), executor_log.read_text()[-3000:]
    # each subscription matches on its own: the commands' may come before the states'
    assert states.wait(1, timeout=30.0, spin=executor), (tmp_path / 'sim.log').read_text()
    spinner.start()

    # a goal on /sim/goal: republished on /goal, read by the executor; the tool goes toward it
    start = tool_position(arm_positions(states.msgs[-1], arm.joints))
    assert np.linalg.norm(start - GOAL) > 0.15
    msg = PointStamped()
    msg.header.frame_id = 'base_link'
    msg.point.x, msg.point.y, msg.point.z = GOAL
    assert rosutil.wait_for_subscribers(set_goal)
    set_goal.publish(msg)
    assert wait_for(lambda: goals.msgs and [goals.msgs[-1].point.x, goals.msgs[-1].point.y,
                                            goals.msgs[-1].point.z] == GOAL, 10.0)

    def distance():
        return np.linalg.norm(tool_position(arm_positions(states.msgs[-1], arm.joints)) - GOAL)
    assert wait_for(lambda: distance() < 0.05, 30.0), distance()
    sent = np.array([m.data for m in commands.msgs])
    assert sent.shape[1] == 6 and np.all((sent >= low) & (sent <= high))
    assert rosutil.stop_node(recorder, signal.SIGINT) == 0

    # the bag: joint states, the goal, the commands
    reader = BagReader(bag)
    assert {'/goal', protocol.JOINT_STATES, COMMANDS} <= set(reader.topics())

    # relabel with the goal from /goal: the rebuilt states carry the sent goal
    config = tmp_path / 'tiny.yaml'
    config.write_text(yaml.safe_dump({
        'task': {'name': 'ur5e_reach', 'episode_steps': 20},
        'planner': {'horizon': 8, 'budget': 60},
        'rollout': {'threads': 1},
        'apex': {'iterations': 1, 'eval_episodes': 1, 'expert_rollouts': 1,
                 'dagger_rollouts': 1},
        'train': {'steps': 100, 'batch_size': 64, 'threads': 1}}))
    shard = tmp_path / 'shard.npz'
    assert cli.main(['relabel', str(bag), '--task', 'ur5e_reach', '--config', str(config),
                     '--policy', str(TRAINED), '--out', str(shard), '--workers', '1',
                     '--source', 'joint_states', '--input-topic', 'goal=/goal', '--quiet']) == 0
    obs = np.concatenate([r.obs for r in Dataset.load(shard).rollouts])
    goal_columns = slice(arm.obs_dim - 3, arm.obs_dim)
    assert len(obs) >= 20
    assert np.any(np.all(obs[:, goal_columns] == np.float32(GOAL), axis=1))

    # retrain with the shard, redeploy by hot swap: accepted, commanding
    run = tmp_path / 'run'
    assert cli.main(['train', '--config', str(config), '--out', str(run), '--dataset',
                     str(shard), '--quiet']) == 0
    retrained = run / 'policy.onnx'
    assert PolicyBundle(retrained).meta['inputs'] == bundle.meta['inputs']
    announce.publish(String(data=str(retrained)))
    assert wait_for(lambda: str(retrained) in executor_log.read_text(), 60.0), \
        executor_log.read_text()[-3000:]
    assert 'refused' not in executor_log.read_text()
    swapped = time.monotonic()
    assert wait_for(lambda: len([t for t, _ in commands.items if t > swapped]) >= 25, 30.0)
    executor.shutdown()

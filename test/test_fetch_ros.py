"""Fetch Pick&Place through ROS: the sim node takes its Cartesian interface (a twist and a
gripper value, as the executor and the planner command it) back into the task's action, and
the sim_apex graph runs APEX on it end to end. Real DDS on loopback (test.rosutil)."""
import math
import re

import numpy as np
import pytest
import rosutil  # noqa: I100 (first: isolates the ROS domain before rclpy.init)
import yaml
from geometry_msgs.msg import PointStamped, Twist, TwistStamped, Vector3
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, Header
from test_graph import launch

from apex_ros.deploy.bundle import PolicyBundle
from apex_ros.deploy.inputs import fill_message
from apex_ros.ros import protocol
from apex_ros.sim.observation import JointStates
from apex_ros.sim.simulation import Simulation
from apex_ros.tasks import make_task
from apex_ros.tasks.fetch_pick_and_place import MOCAP_STEP

TASK = 'fetch_pick_and_place'


@pytest.fixture(scope='module')
def fetch():
    return make_task(TASK)


@pytest.fixture
def probe():
    with rosutil.probe_node('fetch_probe') as probe:
        yield probe


def twist(displacement, rate, frame='base_link'):
    v = np.asarray(displacement) * rate
    return TwistStamped(header=Header(frame_id=frame), twist=Twist(
        linear=Vector3(x=v[0], y=v[1], z=v[2]), angular=Vector3()))


def test_sim_node_turns_the_twist_and_gripper_back_into_the_action(probe, fetch, tmp_path):
    node, executor, procs = probe
    lay, rate = fetch.layout, 1.0 / fetch.dt
    full = rosutil.Collector(node, Float64MultiArray, protocol.FULL_STATE)
    goals = rosutil.Collector(node, PointStamped, '/goal')
    twists = node.create_publisher(TwistStamped, protocol.command_topic('effort_controller'),
                                   10)
    grippers = node.create_publisher(Float64MultiArray,
                                     protocol.command_topic('gripper_controller'), 10)
    log = tmp_path / 'sim.log'
    procs.start(rosutil.executable('sim_node', 'apex_ros.ros.nodes.sim_node'), 'sim',
                {'task': TASK, 'mode': 'lockstep', 'state_republish': 0.2}, log_path=log)

    def latest():
        return protocol.unpack_full_state(full.msgs[-1].data, lay.size, fetch.model.nv)
    assert full.wait(1, timeout=60, spin=executor), log.read_text()
    assert rosutil.wait_for_subscribers(twists, spin=executor)
    assert rosutil.wait_for_subscribers(grippers, spin=executor)
    start = latest().state
    # the goal is published as an input, in the task's world frame
    assert goals.wait(1, spin=executor)
    assert goals.msgs[-1].header.frame_id == 'world'
    assert goals.msgs[-1].point.x == pytest.approx(start[lay.extra['goal']][0])
    twists.publish(twist([0.01, 0.0, 0.0], rate, frame='map'))    # not the interface's frame
    assert rosutil.wait_for(lambda: "frame_id 'map'" in log.read_text(), 10, spin=executor)
    grippers.publish(Float64MultiArray(data=[math.nan]))
    assert rosutil.wait_for(lambda: 'non-finite' in log.read_text(), 10, spin=executor)
    # one complete command, twist then gripper: exactly one control step with that action
    twists.publish(twist([0.02, -0.01, 0.03], rate))
    grippers.publish(Float64MultiArray(data=[1.0]))
    assert rosutil.wait_for(lambda: latest().step == 1, 20, spin=executor), log.read_text()
    state = latest().state
    action = np.append(np.array([0.02, -0.01, 0.03]) / MOCAP_STEP, 1.0)
    expected = Simulation(fetch)     # that action, stepped here from the same state
    expected.reset(state=start)
    assert state == pytest.approx(expected.advance(action), abs=1e-9)
    fingers = state[lay.qpos][fetch.finger_qpos]
    assert np.all(fingers > start[lay.qpos][fetch.finger_qpos] + 1e-3)   # the gripper opens


def test_planner_on_a_robot_builds_the_state_from_joint_states_and_inputs(probe, fetch,
                                                                          tmp_path):
    """state_source joint_states: the planner takes the goal and the box's pose and twist from
    their input topics; it does not plan, naming the input, while one is missing,
    and plans from the state they fill once all are there (its demonstration's observation
    holds the goal sent)."""
    node, executor, procs = probe
    lay = fetch.layout
    sim = Simulation(fetch)
    state = sim.reset(4)
    joints = JointStates.of(fetch)
    joint_state = JointState(name=joints.names,
                             position=state[lay.qpos][joints.qpos].tolist(),
                             velocity=state[lay.qvel][joints.dofs].tolist())
    goal = [1.3, 0.7, 0.6]
    values = {'goal': goal, 'object0': state[lay.qpos][fetch.box_qpos],
              'object0_twist': np.zeros(6)}
    publishers = {spec.name: (spec, node.create_publisher(
        protocol.message_class(spec.type), spec.topic, 10)) for spec in fetch.inputs()}
    states = node.create_publisher(JointState, protocol.JOINT_STATES, 10)
    demos = rosutil.Collector(node, Float64MultiArray, protocol.DEMONSTRATIONS)
    log = tmp_path / 'planner.log'
    procs.start(rosutil.executable('planner_node', 'apex_ros.ros.nodes.planner_node'),
                'planner', {'task': TASK, 'state_source': 'joint_states', 'active': True,
                            'threads': 1, 'controller': 'cartesian_controller',
                            'set': 'planner.budget=20,planner.iterations=1,planner.horizon=3'},
                log_path=log)
    assert rosutil.wait_for_subscribers(states, spin=executor, timeout=30)
    assert rosutil.wait_for(lambda: states.publish(joint_state) or
                            'not planning: input goal (/goal): no geometry_msgs/PointStamped'
                            in log.read_text(), 20, spin=executor, period=0.1), log.read_text()
    assert not demos.msgs
    for spec, pub in publishers.values():
        assert rosutil.wait_for_subscribers(pub, spin=executor)

    def send_all():
        for spec, pub in publishers.values():
            msg = fill_message(spec, protocol.message_class(spec.type)(), values[spec.name])
            msg.header.frame_id = spec.frame
            pub.publish(msg)
        states.publish(joint_state)
        return bool(demos.msgs)
    assert rosutil.wait_for(send_all, 30, spin=executor, period=0.1), log.read_text()
    demo = protocol.unpack_demonstration(demos.msgs[-1].data, fetch.obs_dim, fetch.nu)
    terms = fetch.observation.terms
    observed = [demo.observation[terms.index(f'extra:goal[{i}]')] for i in range(3)]
    assert observed == pytest.approx(goal)
    box = [demo.observation[terms.index(f'qpos:object0:joint[{i}]')] for i in range(3)]
    assert box == pytest.approx(values['object0'][:3])


@pytest.mark.slow
def test_sim_apex_graph_runs_apex_on_fetch_and_ends_with_a_bundle(probe, fetch, tmp_path):
    node, executor, _ = probe
    config = tmp_path / 'tiny.yaml'
    config.write_text(yaml.safe_dump({
        'task': {'name': TASK, 'episode_steps': 3},
        'planner': {'name': 'icem', 'horizon': 5, 'budget': 60},
        'rollout': {'threads': 1},
        'apex': {'iterations': 1, 'eval_episodes': 1, 'expert_rollouts': 1,
                 'dagger_rollouts': 1},
        'train': {'steps': 20, 'batch_size': 8, 'threads': 1}}))
    log, run = tmp_path / 'apex.log', tmp_path / 'run'
    proc = launch(['sim_apex', f'task:={TASK}', f'config:={config}', f'out_dir:={run}',
                   'iterations:=1'], log)
    assert rosutil.wait_for(lambda: proc.poll() is not None, 400, spin=executor)
    text = log.read_text()
    assert proc.returncode == 0, text[-4000:]
    assert re.search(r'expert return (\S+) vs policy return (\S+) \(executor driving', text)
    bundle = PolicyBundle(run / 'policy.onnx')
    assert bundle.meta['apex_iteration'] == 1
    assert bundle.command.axes == ('x', 'y', 'z', 'gripper')

"""The UR5e arm (models/ur5e.xml) and its reach task: published kinematics, limits and servos,
the task's forward kinematics against MuJoCo, the goal as extra state, reward and success; then
the planner reaching, APEX through the ROS graph at small scale."""
import math
import re

import mujoco
import numpy as np
import pytest
import yaml

from apex_ros.deploy.bundle import PolicyBundle
from apex_ros.sim.episodes import planner_actor, run_episode
from apex_ros.sim.simulation import Simulation
from apex_ros.tasks import make_task
from apex_ros.tasks.ur5e_reach import DH_A, DH_D, HOME, tool_position

UR_JOINTS = ['shoulder_pan_joint', 'shoulder_lift_joint', 'elbow_joint', 'wrist_1_joint',
             'wrist_2_joint', 'wrist_3_joint']


@pytest.fixture(scope='module')
def arm():
    return make_task('ur5e_reach')


def test_forward_kinematics_is_the_model_tool_site(arm):
    m, d = arm.model, mujoco.MjData(arm.model)
    qs = np.random.default_rng(0).uniform(-2 * math.pi, 2 * math.pi, (40, 6))
    for q in qs:
        d.qpos[:] = q
        mujoco.mj_forward(m, d)
        np.testing.assert_allclose(tool_position(q), d.site('tool').xpos, atol=1e-12)
    np.testing.assert_allclose(tool_position(qs), [tool_position(q) for q in qs], atol=1e-15)
    # zero pose, from the DH table alone: arm stretched along -x, wrist offsets along -y
    np.testing.assert_allclose(tool_position(np.zeros(6)), [
        DH_A[1] + DH_A[2], -(DH_D[3] + DH_D[5]), DH_D[0] - DH_D[4]], atol=1e-15)
    np.testing.assert_allclose(tool_position(np.zeros(6)), [-0.8172, -0.2329, 0.0628])


def test_model_has_the_ur5e_joints_limits_servos_and_masses(arm):
    m = arm.model
    assert arm.actuated_joints() == UR_JOINTS
    limits = np.array([2 * math.pi, 2 * math.pi, math.pi, 2 * math.pi, 2 * math.pi, 2 * math.pi])
    np.testing.assert_allclose(m.jnt_range, np.stack([-limits, limits], 1), rtol=1e-7)
    np.testing.assert_array_equal(m.actuator_ctrlrange, m.jnt_range)   # targets within limits
    np.testing.assert_allclose(m.actuator_forcerange[:, 1], [150, 150, 150, 28, 28, 28])
    masses = [m.body(name).mass[0] for name in ('shoulder_link', 'upper_arm_link',
              'forearm_link', 'wrist_1_link', 'wrist_2_link', 'wrist_3_link')]
    np.testing.assert_allclose(masses, [3.761, 8.058, 2.846, 1.37, 1.3, 0.365])
    assert arm.dt == pytest.approx(0.02) and m.opt.timestep == pytest.approx(0.002)


def test_servos_hold_and_reach_a_joint_target_against_gravity(arm):
    sim = Simulation(arm)
    state = sim.reset(3)
    for _ in range(50):                      # 1 s holding the reset pose
        state, = sim.step(arm.nominal_action(state))[1:]
    np.testing.assert_allclose(arm.qpos(state), arm.qpos(sim.reset(3)), atol=1e-3)
    target = HOME + [0.3, -0.2, 0.3, 0.2, -0.2, 0.5]
    for _ in range(50):
        _, state = sim.step(target)
    np.testing.assert_allclose(arm.qpos(state), target, atol=2e-3)


def test_reset_draws_a_goal_in_the_region_and_observes_it(arm):
    sim = Simulation(arm)
    p = arm.params
    goals = []
    for seed in range(30):
        state = sim.reset(seed)
        goal = arm.extra(state, 'goal')
        radius, azimuth = np.hypot(goal[0], goal[1]), np.arctan2(goal[1], goal[0]) % (2 * np.pi)
        assert p.goal_radius[0] <= radius <= p.goal_radius[1]
        assert p.goal_azimuth[0] <= azimuth <= p.goal_azimuth[1]
        assert p.goal_height[0] <= goal[2] <= p.goal_height[1]
        assert np.all(np.abs(arm.qpos(state) - HOME) <= p.reset_noise)
        np.testing.assert_array_equal(arm.observe(state)[-3:], goal.astype(np.float32))
        goals.append(goal)
    assert np.array_equal(arm.extra(sim.reset(4), 'goal'), goals[4])
    assert len({tuple(g) for g in goals}) == 30
    np.testing.assert_array_equal(arm.nominal_action(state), arm.qpos(state))


def at_goal(arm, qpos, offset=(0.0, 0.0, 0.0), qvel=np.zeros(6)):
    """A state at `qpos` whose goal is the tool point + offset."""
    state = np.zeros(arm.layout.size)
    state[arm.layout.qpos], state[arm.layout.qvel] = qpos, qvel
    state[arm.layout.extra['goal']] = tool_position(qpos) + offset
    return state


def test_reward_prefers_near_and_still_and_success_needs_both(arm):
    q = HOME + 0.1
    near, far = at_goal(arm, q), at_goal(arm, q, (0.1, 0.0, 0.0))
    moving = at_goal(arm, q, qvel=np.full(6, 0.5))
    states = np.stack([np.stack([near, s]) for s in (near, far, moving)])    # (3, 2, nstate)
    actions = np.tile(q, (3, 1, 1))
    r = arm.reward(states, actions)
    assert r.shape == (3, 1) and r[0, 0] == 0.0 and r[1, 0] == pytest.approx(-0.1)
    assert r[2, 0] < r[0, 0]                                  # moving near the goal costs
    assert arm.reward(states, actions + 0.1)[0, 0] < r[0, 0]    # servo effort costs
    window = round(arm.params.success_window / arm.dt) + 1         # states in the window
    assert arm.success(np.stack([far] + [near] * window))
    assert not arm.success(np.stack([near] * window + [at_goal(arm, q, (0.025, 0, 0))]))
    # arriving at the goal but still moving over the window
    goal = near[arm.layout.extra['goal']]
    arriving = np.stack([at_goal(arm, q - 0.05 * (1 - t)) for t in np.linspace(0, 1, window)])
    arriving[:, arm.layout.extra['goal']] = goal
    assert arm.goal_distance(arriving[-1]) == 0.0
    moved = np.linalg.norm(tool_position(q) - tool_position(q - 0.05))
    assert moved / arm.params.success_window > arm.params.success_speed
    assert not arm.success(arriving)


@pytest.mark.slow
def test_the_planner_brings_the_tool_to_the_goal(arm):
    from apex_ros.config.run import load_run_config
    cfg = load_run_config('ur5e_reach', sets=['rollout.threads=1'])
    planner = cfg.make_planner(arm)
    ep = run_episode(arm, planner_actor(planner, 0), seed=0, steps=40)
    planner.rollouts.close()
    distance = arm.goal_distance(ep.states)
    assert distance[0] > 0.15 and distance[-1] < 0.03, distance[::5]


@pytest.mark.slow
def test_apex_through_the_graph_trains_an_arm_policy(tmp_path):
    """`apex-ros launch sim_apex task:=ur5e_reach` at small scale: the graph's expert and
    DAgger rollouts on the arm, a bundle with its joints and goal, the executor driving."""
    from test_graph import launch

    pytest.importorskip('apex_ros.deploy.inputs', reason='the executor has no goal input yet '
                        '(declared bundle inputs: branch deploy)')
    config = tmp_path / 'tiny.yaml'
    config.write_text(yaml.safe_dump({
        'task': {'name': 'ur5e_reach', 'episode_steps': 20},
        'planner': {'horizon': 10, 'budget': 60, 'sigma': 0.05, 'act': 'mean'},
        'rollout': {'threads': 1},
        'apex': {'iterations': 1, 'eval_episodes': 1, 'action_norm_c': 0.0},
        'train': {'steps': 100, 'batch_size': 64, 'threads': 1}}))
    log, run = tmp_path / 'arm.log', tmp_path / 'run'
    proc = launch(['sim_apex', 'task:=ur5e_reach', f'config:={config}', f'out_dir:={run}',
                   'iterations:=1'], log)
    assert proc.wait(400) == 0, log.read_text()[-4000:]
    assert re.search(r'expert return \S+ vs policy return \S+ \(executor driving',
                     log.read_text())
    bundle = PolicyBundle(run / 'policy.onnx')
    assert bundle.meta['task'] == 'ur5e_reach'
    assert bundle.meta['action']['joints'] == UR_JOINTS
    assert bundle.meta['obs']['terms'][-3:] == ['extra:goal[0]', 'extra:goal[1]', 'extra:goal[2]']

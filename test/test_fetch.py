"""Fetch Pick&Place: the gymnasium-robotics setup reproduced, the reset distribution, reward and
success, the goal through set -> rollout -> stepping, the task's action (relative to the
gripper's current pose, rolled out one control step per call) against the env's own code path,
and the expert's Fig. 3 effect.
"""
import mujoco
import numpy as np
import pytest

from apex_ros.errors import ApexError
from apex_ros.planners import make_planner
from apex_ros.sim.episodes import planner_actor, run_episode
from apex_ros.sim.models import resolve_model_file
from apex_ros.sim.rollout import OpenLoopRollouts
from apex_ros.sim.simulation import Simulation
from apex_ros.tasks import make_task
from apex_ros.tasks.fetch_pick_and_place import GymnasiumStepped, ReachOnlyPolicy, SteppedRollouts


@pytest.fixture(scope='module')
def fetch():
    return make_task('fetch_pick_and_place')


def played(task, sim, seed, steps):
    """`sim` reset from `seed` and driven `steps` steps by smooth random actions."""
    rng = np.random.default_rng(seed)
    sim.reset(seed)
    actions = np.clip(np.cumsum(rng.normal(0, 0.4, (steps, 4)), axis=0), -1, 1)
    for a in actions:
        sim.advance(a)
    return sim


def test_setup_reproduces_the_env(fetch):
    m = fetch.model
    assert resolve_model_file(fetch.model_file).name == 'pick_and_place.xml'
    assert (m.nq, m.nv, m.nu, m.nmocap) == (22, 21, 2, 1)
    assert fetch.dt == pytest.approx(0.04) and fetch.episode_steps == 50 and fetch.nu == 4
    np.testing.assert_array_equal(m.eq_data[0, :10], [0, 0, 0, 0, 0, 0, 1, 0, 0, 0])
    # gymnasium-robotics' FetchPickAndPlace initial_gripper_xpos and height_offset
    np.testing.assert_allclose(fetch.initial_gripper_xpos, [1.3419, 0.7491, 0.5347], atol=1e-3)
    assert fetch.table_height == pytest.approx(0.4249, abs=1e-3)
    with pytest.raises(ApexError, match='model file not found'):
        resolve_model_file('gymnasium_robotics:fetch/no_such.xml')


def test_reset_distribution(fetch):
    data = mujoco.MjData(fetch.model)
    start = fetch.initial_gripper_xpos
    boxes, goals = [], []
    for seed in range(200):
        extra = fetch.reset(data, np.random.default_rng(seed))
        boxes.append(data.qpos[fetch.box_qpos][:3].copy())
        assert extra.shape == (3,)
        goals.append(extra)
    boxes, goals = np.array(boxes), np.array(goals)
    offset = boxes[:, :2] - start[:2]
    assert np.all(np.abs(offset) <= 0.15)
    assert np.all(np.linalg.norm(offset, axis=1) >= 0.1)
    np.testing.assert_allclose(boxes[:, 2], fetch.table_height, atol=1e-9)
    assert np.all(np.abs(goals[:, :2] - start[:2]) <= 0.15)
    lift = goals[:, 2] - fetch.table_height
    assert np.all((lift >= 0) & (lift <= 0.45))
    in_air = np.mean(lift > 0)
    assert 0.38 < in_air < 0.62          # half of the time (binomial sd 0.035 over 200)
    assert lift.max() > 0.35 and np.abs(offset).max() > 0.14   # the ranges are used


def test_reward_and_success_on_hand_made_states(fetch):
    state = Simulation(fetch).reset(0)
    lay = fetch.layout
    box = lay.qpos.start + fetch.box_qpos.start
    goal = state[box:box + 3] + [0.0, 0.0, 0.2]
    state[lay.extra['goal']] = goal
    near, far, beyond = state.copy(), state.copy(), state.copy()
    near[box:box + 3] = goal + [0.03, 0.0, 0.0]
    far[box:box + 3] = goal + [0.0, 0.04, 0.03]
    beyond[box:box + 3] = goal + [0.0, 0.04, 0.031]
    states = np.stack([np.stack([state, near]), np.stack([state, far])])
    reward = fetch.reward(states, np.zeros((2, 1, 4)))
    np.testing.assert_allclose(reward, [[-0.03], [-0.05]])
    assert fetch.success(np.stack([state, near]))
    assert fetch.success(np.stack([beyond, near]))          # the final state counts
    assert not fetch.success(np.stack([near, beyond]))


@pytest.mark.parametrize('threads', [1, 2])
def test_state_round_trip_with_extra_state(fetch, threads):
    """set -> rollout (one batched call per control step) gives bitwise what stepping the
    Simulation gives, the goal included; the action moves the mocap from the gripper's
    current pose."""
    sim = played(fetch, Simulation(fetch), 3, 4)
    state0, warmstart = sim.plan_inputs()
    rng = np.random.default_rng(1)
    actions = rng.uniform(-1, 1, (3, 5, 4))
    actions[0, :, 2] = -1     # down to the table
    rollouts = OpenLoopRollouts(fetch, threads=threads)
    try:
        states, ok = rollouts.run(state0, actions, warmstart)
    finally:
        rollouts.close()
    assert ok.all()
    for b in range(3):
        replay = Simulation(fetch)
        replay.reset(state=state0, warmstart=warmstart)
        for t in range(5):
            assert np.array_equal(replay.advance(actions[b, t]), states[b, t + 1]), (b, t)
            # the mocap went to the gripper's pose at the step's start + 0.05 a
            start_pos, _ = fetch.gripper_pose(states[b, t][None, fetch.layout.qpos])
            np.testing.assert_allclose(replay.data.mocap_pos[0],
                                       start_pos[0] + 0.05 * actions[b, t, :3])
    lay = fetch.layout
    assert np.all(states[:, :, lay.extra['goal']] == state0[lay.extra['goal']])
    # the goal is state: another goal, another reward for the same motion
    moved = states.copy()
    moved[..., lay.extra['goal']] += 0.1
    assert not np.allclose(fetch.reward(states, actions), fetch.reward(moved, actions))


# qpos (m, rad) after PARITY_STEPS steps of the task's action and of the env's own code path
# from the same state: they differ only in the solver's warm start (zeroed each control step
# here, carried over there) and the normalization of the orientation target; measured worst
# 4e-11
PARITY_STEPS = 10
PARITY_TOLERANCE = 1e-8


def test_action_matches_the_envs_own_code_path(fetch):
    """From the same state, PARITY_STEPS steps of the task's action and of GymnasiumStepped
    (the env's mocap_set_action / ctrl_set_action, forward pass after each step) move robot
    and box alike within PARITY_TOLERANCE."""
    rng = np.random.default_rng(2)
    worst = 0.0
    for seed in range(3):
        env = played(fetch, GymnasiumStepped(fetch), seed, 6)
        state, warmstart = env.plan_inputs()
        ours = Simulation(fetch)
        ours.reset(state=state, warmstart=warmstart)
        for _ in range(PARITY_STEPS):
            a = rng.uniform(-1, 1, 4)
            env.advance(a)
            ours.advance(a)
            worst = max(worst, np.abs(env.data.qpos - ours.data.qpos).max())
    assert worst < PARITY_TOLERANCE, worst
    assert worst > 0     # two code paths, not one compared with itself


def test_stepped_rollouts_continue_the_stepped_env_exactly(fetch):
    """SteppedRollouts, the planner's model of the env's own action in the parity benchmark,
    started from a mid-episode state of a stepped env, gives bitwise what that env gives when
    it goes on: the state vector holds all the stepped action reads."""
    env = played(fetch, GymnasiumStepped(fetch), 3, 5)
    state, warmstart = env.plan_inputs()
    actions = np.random.default_rng(0).uniform(-1, 1, (2, 4, 4))
    rollouts = SteppedRollouts(fetch)
    states, ok = rollouts.run(state, actions, warmstart)
    assert ok.all() and rollouts.sim_seconds > 0
    np.testing.assert_array_equal(states[:, 0], np.stack([state, state]))
    for t in range(4):
        np.testing.assert_array_equal(states[0, t + 1], env.advance(actions[0, t]))
    assert not np.array_equal(states[0], states[1])


def test_action_picks_and_places(fetch):
    """The action can grasp and lift: a scripted controller moving the gripper (above the box,
    open, down, close, to the goal) ends within 2 cm of in-air goals."""
    lay = fetch.layout
    for seed in (1000, 1001):
        sim = Simulation(fetch)
        state = sim.reset(seed)
        goal = state[lay.extra['goal']]
        assert goal[2] > fetch.table_height + 0.05        # in the air

        def go(where, grip, steps):
            for _ in range(steps):
                gripper, _ = fetch.gripper_pose(sim.state()[None, lay.qpos])
                delta = (where - gripper[0]) / 0.05
                sim.advance(np.append(np.clip(delta, -1, 1), grip))
        box = state[lay.qpos.start + fetch.box_qpos.start:][:3]
        # the gripper body 2 cm above the grip site (the box's centre once grasped); pulled
        # lower, the fingertips press on the table and cannot close
        grasp = [0, 0, 0.02]
        go(box + [0, 0, 0.1], 1.0, 12)
        go(box + grasp, 1.0, 8)
        go(box + grasp, -1.0, 4)
        go(goal + grasp, -1.0, 20)
        assert fetch.box_to_goal(sim.state()) < 0.02


def test_wrong_length_state_names_task_and_layout(fetch):
    with pytest.raises(ApexError, match=r'task fetch_pick_and_place: reset state: a state has 47 '
                       r'columns, got 44 columns; layout: 47 = \[time, qpos 22, qvel 21, act 0\] '
                       r'\+ goal 3'):
        Simulation(fetch).reset(state=np.zeros(44))


@pytest.mark.parametrize('stepped', [False, True])
def test_short_mpc_episode(fetch, stepped):
    planner = make_planner(fetch, 'icem', {'budget': 45, 'iterations': 2, 'horizon': 4},
                           rollouts=SteppedRollouts(fetch) if stepped else None)
    try:
        ep = run_episode(fetch, planner_actor(planner), seed=1, steps=3,
                         sim=GymnasiumStepped(fetch) if stepped else None)
    finally:
        planner.rollouts.close()
    assert ep.states.shape == (4, fetch.layout.size) and np.isfinite(ep.states).all()
    assert ep.actions.shape == (3, 4) and np.all(np.abs(ep.actions) <= 1)
    np.testing.assert_allclose(ep.rewards, -fetch.box_to_goal(ep.states[1:]))
    assert isinstance(ep.success, bool)


def test_fixed_lambda_collapses_to_a_weak_guide_adaptive_does_not(fetch):
    """The mechanism of the paper's Fig. 3 on a cheap setting: guided by a policy that never
    grasps, the fixed-lambda expert executes the policy's own action, the adaptive-lambda
    expert its own search's (benchmarks/fetch_expert.py --guide reach measures the success)."""
    policy = ReachOnlyPolicy(fetch)
    gaps = {}
    for mode in ('fixed', 'adaptive'):
        planner = make_planner(fetch, 'icem', {'budget': 45, 'iterations': 2, 'horizon': 5,
                                               'beta': 3.0, 'lambda_mode': mode},
                               policy=policy, seed=0)
        sim = Simulation(fetch)
        sim.reset(0)
        gap = []
        try:
            for _ in range(2):
                state, warmstart = sim.plan_inputs()
                action = planner.plan(state, warmstart).action
                gap.append(np.linalg.norm(action - policy(fetch.observe(state[None]))[0]))
                sim.step(action)
        finally:
            planner.rollouts.close()
        gaps[mode] = max(gap)
    assert gaps['fixed'] < 0.05 and gaps['adaptive'] > 0.2, gaps

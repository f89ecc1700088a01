"""Adroit Door: the DAPG door as the APEX paper uses it (model gains, action mapping, the door
position as extra state, reward, success), and Humanoid Standup's paper horizon."""
import copy

import mujoco
import numpy as np
import pytest

from apex_ros.config.run import load_run_config
from apex_ros.errors import ApexError, ConfigError
from apex_ros.planners import make_planner
from apex_ros.sim.episodes import run_mpc
from apex_ros.sim.models import resolve_model_file
from apex_ros.sim.rollout import OpenLoopRollouts
from apex_ros.sim.simulation import Simulation
from apex_ros.sim.state import set_state
from apex_ros.tasks import make_task


@pytest.fixture(scope='module')
def door():
    return make_task('adroit_door')


def door_state(task, hinge=0.0, qvel=None, door_pos=(-0.25, 0.3, 0.3)):
    """A hand-made state: everything at rest at qpos0 but the door hinge and the velocities."""
    lay = task.layout
    state = np.zeros(lay.size)
    state[task.hinge_column] = hinge
    if qvel is not None:
        state[lay.qvel] = qvel
    state[lay.extra['door_pos']] = door_pos
    return state


def test_model_is_dapgs(door):
    m = door.model
    assert (m.nq, m.nv, m.nu, door.nu, door.dt) == (30, 30, 28, 28, pytest.approx(0.01))
    assert door.episode_steps == 200 and door.layout.size == 61 + 3
    assert resolve_model_file(door.model_file).name == 'adroit_door.xml'
    wrist = [m.actuator(n).id for n in ('A_WRJ1', 'A_WRJ0')]
    fingers = list(range(m.actuator('A_FFJ3').id, m.actuator('A_THJ0').id + 1))
    arm = [m.actuator(n).id for n in ('A_ARTz', 'A_ARRx', 'A_ARRy', 'A_ARRz')]
    assert len(fingers) == 22
    np.testing.assert_array_equal(m.actuator_gainprm[wrist, 0], 10)
    np.testing.assert_array_equal(m.actuator_biasprm[wrist, 1], -10)
    np.testing.assert_array_equal(m.actuator_gainprm[fingers, 0], 1)
    np.testing.assert_array_equal(m.actuator_biasprm[fingers, 1], -1)
    raw = mujoco.MjModel.from_xml_path(str(resolve_model_file(door.model_file)))
    np.testing.assert_array_equal(m.actuator_gainprm[arm], raw.actuator_gainprm[arm])


def test_action_is_the_control_and_the_search_is_icems(door):
    """Action bounds = ctrlrange (the APEX authors' Door env); the Door config's iCEM starts
    each step with std 0.5 x half each joint's range, as their iCEM (init_std, relative)."""
    low, high = door.model.actuator_ctrlrange.T
    np.testing.assert_array_equal(door.action_low, low)
    np.testing.assert_array_equal(door.action_high, high)
    assert not door.drives_targets and len(door.actuated_joints()) == 28
    cfg = load_run_config('adroit_door', sets=['rollout.threads=1'])
    planner = make_planner(door, cfg.planner_name, cfg.planner, threads=1, seed=0)
    try:
        search = planner.begin(np.zeros((30, 28)), None, True)
    finally:
        planner.rollouts.close()
    np.testing.assert_allclose(search.std, np.broadcast_to(0.25 * (high - low), (30, 28)))
    assert search.std[0, 3] == pytest.approx(0.75)      # ARRz: -1..2 rad


def ctrl_of(task, normalized):
    """DAPG's normalized action [-1, 1] -> the control."""
    low, high = task.model.actuator_ctrlrange.T
    return (low + high) / 2 + normalized * (high - low) / 2


def test_reset_distribution(door):
    """Door x, y, z uniform in DAPG's ranges, written into the simulator's model only; the
    hand starts at rest at qpos0."""
    sim = Simulation(door)
    frame = door.model.body('frame').id
    default = door.model.body_pos[frame].copy()
    positions = []
    for seed in range(200):
        state = sim.reset(seed)
        pos = state[door.layout.extra['door_pos']]
        positions.append(pos)
        np.testing.assert_array_equal(sim.model.body_pos[frame], pos)
        assert not state[door.layout.qpos].any() and not state[door.layout.qvel].any()
    positions = np.array(positions)
    low, high = np.array(door.door_low), np.array(door.door_high)
    assert (positions >= low).all() and (positions <= high).all()
    span = high - low
    np.testing.assert_array_less(positions.min(0), low + 0.05 * span)
    np.testing.assert_array_less(high - 0.05 * span, positions.max(0))
    np.testing.assert_allclose(positions.mean(0), (low + high) / 2, atol=0.1 * span.max())
    np.testing.assert_array_equal(door.model.body_pos[frame], default)
    assert not np.array_equal(Simulation(door).reset(0), Simulation(door).reset(1))


@pytest.mark.parametrize('hinge, expected', [
    (0.0, -0.1 * 1.57 ** 2),
    (0.5, -0.1 * 1.07 ** 2 + 2),
    (1.2, -0.1 * 0.37 ** 2 + 2 + 8),
    (1.5, -0.1 * 0.07 ** 2 + 2 + 8 + 10),
])
def test_reward_opening_and_bounties(door, hinge, expected):
    """The reward reads the state after the step; no hand-to-handle term (the hand is far
    from the handle at qpos0 and it costs nothing)."""
    before = door_state(door, hinge=0.0)
    after = door_state(door, hinge=hinge)
    states = np.stack([before, after])[None]
    reward = door.reward(states, np.zeros((1, 1, 28)))
    assert reward[0, 0] == pytest.approx(expected)


def test_reward_velocity_penalty(door):
    qvel = np.zeros(30)
    qvel[[0, 10, 28]] = [1.0, 2.0, 3.0]
    still = door_state(door, hinge=0.5)
    moving = door_state(door, hinge=0.5, qvel=qvel)
    states = np.stack([np.stack([still, still]), np.stack([still, moving])])
    reward = door.reward(states, np.zeros((2, 1, 28)))
    assert reward[0, 0] - reward[1, 0] == pytest.approx(1e-5 * 14)
    # the planner does not pay it (the APEX authors' planner cost did not either)
    planning = door.planning_reward(states, np.zeros((2, 1, 28)))
    assert planning[0, 0] == planning[1, 0] == pytest.approx(reward[0, 0])
    charged = make_task('adroit_door', {'planning_velocity_weight': 1e-5})
    np.testing.assert_allclose(charged.planning_reward(states, np.zeros((2, 1, 28))), reward)


@pytest.mark.parametrize('open_steps, success', [(25, False), (26, True), (200, True)])
def test_success_is_door_open_more_than_25_steps(door, open_steps, success):
    """DAPG's evaluate_success: goal_achieved (hinge >= 1.35) after more than 25 steps; the
    start state is not a step."""
    hinge = np.zeros(201)
    hinge[0] = 1.5                         # the start state does not count
    hinge[1:1 + open_steps] = 1.35
    hinge[1 + open_steps:1 + open_steps + 10] = 1.3499
    states = np.stack([door_state(door, hinge=h) for h in hinge])
    assert door.success(states) is success


def test_state_round_trip_with_the_door_position(door):
    """set -> rollout gives what stepping an MjData does on a model whose door body sits at
    the state's door position (set by hand here, not through the task); another door position
    gives another result (the hand reaches the door)."""
    rng = np.random.default_rng(5)
    sim = Simulation(door)
    sim.reset(11)
    for _ in range(3):
        sim.step(ctrl_of(door, rng.uniform(-1, 1, 28)))
    state0, warmstart = sim.plan_inputs()
    normalized = np.zeros((2, 40, 28))
    normalized[..., 0] = 1.0               # the arm towards the door
    normalized[1, :, 1] = 0.5
    actions = ctrl_of(door, normalized)
    rollouts = OpenLoopRollouts(door)
    try:
        states, ok = rollouts.run(state0, actions, warmstart)
        moved = state0.copy()
        moved[door.layout.extra['door_pos']] = [-0.3, 0.35, 0.252]
        states_moved, _ = rollouts.run(moved, actions, warmstart)
    finally:
        rollouts.close()
    assert ok.all()
    model = copy.copy(door.model)
    model.body_pos[model.body('frame').id] = state0[door.layout.extra['door_pos']]
    data = mujoco.MjData(model)
    set_state(model, data, state0)
    data.qacc_warmstart[:] = warmstart
    for t in range(40):
        data.ctrl[:] = actions[0, t]
        mujoco.mj_step(model, data, nstep=door.frame_skip)
        np.testing.assert_array_equal(states[0, t + 1, 1:31], data.qpos)
        np.testing.assert_array_equal(states[0, t + 1, 31:61], data.qvel)
    np.testing.assert_array_equal(states[:, :, door.layout.extra['door_pos']],
                                  np.broadcast_to(state0[61:], (2, 41, 3)))
    assert np.abs(states_moved[0, -1, 1:31] - states[0, -1, 1:31]).max() > 1e-3
    replay = Simulation(door)
    replay.reset(state=state0, warmstart=warmstart)
    for t in range(40):
        assert np.array_equal(replay.advance(actions[1, t]), states[1, t + 1]), t


def test_observation_holds_hand_door_and_handle(door):
    """DAPG's observation: joint positions (the door's hinge and latch among them), the palm,
    the handle and the palm's offset from it, no velocities; the handle follows the door's
    position (extra state) and the hinge as forward kinematics of the prepared model give it."""
    terms = list(door.obs_terms())
    assert door.obs_dim == 39 and not any(t.startswith('qvel') for t in terms)
    for term in ('qpos:ARTz', 'qpos:THJ0', 'qpos:door_hinge', 'qpos:latch'):
        assert term in terms
    palm = [terms.index(f'site:S_grasp[{i}]') for i in range(3)]
    handle = [terms.index(f'site:S_handle[{i}]') for i in range(3)]
    offset = [terms.index(f'offset:S_handle>S_grasp[{i}]') for i in range(3)]
    states = np.stack([door_state(door, hinge=h, door_pos=p) for h, p in
                       ((0.0, (-0.25, 0.3, 0.3)), (0.7, (-0.21, 0.26, 0.34)))])
    states[1, door.layout.qpos.start] = 0.1      # the arm's slide moves the palm
    obs = door.observe(states)
    for state, row in zip(states, obs):
        model = copy.copy(door.model)
        door.prepare(model, state)
        data = mujoco.MjData(model)
        set_state(model, data, state)
        mujoco.mj_forward(model, data)
        np.testing.assert_allclose(row[palm], data.site('S_grasp').xpos, atol=1e-6)
        np.testing.assert_allclose(row[handle], data.site('S_handle').xpos, atol=1e-6)
        np.testing.assert_allclose(row[offset], row[palm] - row[handle], atol=1e-6)
        assert row[terms.index('qpos:door_hinge')] == pytest.approx(state[door.hinge_column])
    # the door moved 4 cm in x and swung open: the handle moved, the observation saw it
    assert np.linalg.norm(obs[1, handle] - obs[0, handle]) > 0.05
    assert np.linalg.norm(obs[1, palm] - obs[0, palm]) > 0.05


def test_wrong_length_state_names_task_and_layout(door):
    with pytest.raises(ApexError, match=r'task adroit_door: reset state: a state has 64 '
                       r'columns, got 61 columns; layout: 64 = \[time, qpos 30, qvel 30, '
                       r'act 0\] \+ door_pos 3'):
        Simulation(door).reset(state=np.zeros(61))


def test_short_mpc_episode_at_the_paper_budget(door):
    """The Door config's planner (budget 45 = 2 iterations of 25 + 20 samples) runs a few
    steps; the door position stays what the reset drew."""
    cfg = load_run_config('adroit_door', sets=['planner.horizon=4', 'rollout.threads=1'])
    assert cfg.planner.budget == 45 and list(cfg.planner.populations) == [25, 20]
    planner = make_planner(door, cfg.planner_name, cfg.planner, threads=1, seed=0)
    try:
        ep = run_mpc(door, planner, seed=2, steps=3)
    finally:
        planner.rollouts.close()
    assert ep.states.shape == (4, 64) and np.isfinite(ep.rewards).all()
    np.testing.assert_array_equal(ep.states[:, 61:], np.broadcast_to(ep.states[0, 61:], (4, 3)))
    assert ep.success is False


def test_budget_45_needs_two_iterations():
    """k = 10 elites and 3 iterations need at least 60 samples; the paper's budget 45 is two
    iterations (the error says so)."""
    with pytest.raises(ConfigError, match=r'planner.budget: 45 is below the minimum 60 .*'
                       r'planner.iterations=2'):
        load_run_config('humanoid_standup', sets=['planner.budget=45'])
    cfg = load_run_config('humanoid_standup',
                          sets=['planner.budget=45', 'planner.iterations=2'])
    assert list(cfg.planner.populations) == [25, 20]


def test_humanoid_standup_runs_the_papers_500_steps():
    assert make_task('humanoid_standup').episode_steps == 500
    assert load_run_config('humanoid_standup').make_task().episode_steps == 500


@pytest.mark.filterwarnings('ignore')
def test_matches_gymnasium_robotics_door_env(door):
    """gymnasium-robotics' AdroitHandDoor-v1 (DAPG's door ported to the mujoco bindings), the
    same door position and actions (normalized there, the control here): bitwise the same
    joints for 60 steps; the same reward but for its hand-to-handle term (which that env adds
    with a + sign, the DAPG code with -)."""
    gym = pytest.importorskip('gymnasium')
    gymnasium_robotics = pytest.importorskip('gymnasium_robotics')
    gym.register_envs(gymnasium_robotics)
    env = gym.make('AdroitHandDoor-v1').unwrapped
    try:
        env.reset(seed=3)
        door_pos = env.get_env_state()['door_body_pos']
        sim = Simulation(door)
        sim.reset(state=door_state(door, door_pos=door_pos))
        rng = np.random.default_rng(4)
        for t in range(60):
            action = rng.uniform(-1, 1, 28)
            action[0] = 1.0                    # towards the door
            _, reward_env, *_ = env.step(action)
            reward, state = sim.step(ctrl_of(door, action))
            np.testing.assert_array_equal(state[door.layout.qpos], env.data.qpos)
            np.testing.assert_array_equal(state[door.layout.qvel], env.data.qvel)
            handle = env.data.site('S_handle').xpos - env.data.site('S_grasp').xpos
            assert reward == pytest.approx(reward_env - 0.1 * np.linalg.norm(handle), abs=1e-9)
    finally:
        env.close()


def test_mppi_perturbations_scale_with_the_range_when_relative(door):
    low, high = door.model.actuator_ctrlrange.T
    planner = make_planner(door, 'mppi', {'budget': 8, 'horizon': 2, 'beta': 0.0,
                                          'sigma_relative': True}, threads=1, seed=0)
    try:
        search = planner.begin(np.tile((low + high) / 2, (2, 1)), None, True)
        samples = planner.sample(0, 2000, search)
    finally:
        planner.rollouts.close()
    spread = samples[1:].std(axis=(0, 1)) / (high - low)   # row 0 is the mean itself
    np.testing.assert_allclose(spread, spread.mean(), rtol=0.1)
    assert (high - low).max() / (high - low).min() > 5


def test_bundle_exports_as_position_interface(door, tmp_path):
    """Door's 28 servos (DAPG's arm: kp 500 against a bias of 200; wrist and fingers as
    overridden) are all position-style: its bundle commands joint targets within the joints'
    ranges, which is what the APEX run exports every iteration."""
    from apex_ros.deploy.export import export_bundle
    from apex_ros.learning.student import MLPPolicy
    bundle = export_bundle(MLPPolicy(door.obs_dim, door.nu, (8,)), door, tmp_path / 'd.onnx', 1)
    assert bundle.command.interface == 'position'
    j = door.model.actuator_trnid[:, 0]
    np.testing.assert_allclose(bundle.command.low, np.maximum(door.action_low,
                                                              door.model.jnt_range[j, 0]))
    assert bundle.act(np.zeros(door.obs_dim)).shape == (28,)

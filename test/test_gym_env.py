"""apex_ros tasks as gymnasium Envs (apex_ros/gym.py): the env API, the same episodes as
`apex-ros eval`, and gymnasium's own HalfCheetah-v5 agreeing with ours
(experiments/gymnasium_crosscheck/crosscheck.py)."""
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from test_rollout import target_task  # noqa: F401  (the fixture: a task using every hook)

import apex_ros.gym
from apex_ros import tasks
from apex_ros.deploy.bundle import PolicyBundle
from apex_ros.errors import ConfigError
from apex_ros.sim.episodes import policy_actor, run_episode
from apex_ros.sim.simulation import Simulation

ROOT = Path(__file__).resolve().parents[1]
# observations are unbounded, as in gymnasium's own MuJoCo envs; the checker warns about it
pytestmark = pytest.mark.filterwarnings('ignore:.*Box observation space m:UserWarning')
CHEETAH_BUNDLE = ROOT / 'experiments/halfcheetah/run_160/policy.onnx'


def _crosscheck():
    path = ROOT / 'experiments/gymnasium_crosscheck/crosscheck.py'
    spec = importlib.util.spec_from_file_location('gymnasium_crosscheck', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('name', tasks.known_tasks())
def test_every_task_is_a_registered_env_that_passes_gymnasiums_checker(name):
    env = gymnasium.make(f'apex_ros/{name}-v0')
    task = env.unwrapped.task
    assert env.observation_space.shape == (task.obs_dim,)
    assert env.action_space.shape == (task.nu,)
    np.testing.assert_allclose(env.action_space.low, task.action_low, rtol=1e-6)
    np.testing.assert_allclose(env.action_space.high, task.action_high, rtol=1e-6)
    check_env(env.unwrapped, skip_render_check=True)   # rendering: test_rgb_array_render
    env.close()


def test_an_entry_point_task_is_registered_too(monkeypatch):
    entry = importlib.metadata.EntryPoint(name='other_cartpole', group=tasks.ENTRY_POINT_GROUP,
                                          value='apex_ros.tasks.cartpole:CartpoleSwingup')
    monkeypatch.setattr(tasks, '_entry_points', lambda: {entry.name: entry})
    monkeypatch.setattr(apex_ros.gym, 'known_tasks', tasks.known_tasks)
    apex_ros.gym.register_all()
    try:
        env = gymnasium.make('apex_ros/other_cartpole-v0', episode_steps=3)
        assert env.unwrapped.task.name == 'cartpole_swingup'
        env.reset(seed=0)
        assert [env.step(env.action_space.sample())[3] for _ in range(3)] == [False, False, True]
    finally:
        del gymnasium.registry['apex_ros/other_cartpole-v0']


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match='no_such_weight'):
        gymnasium.make('apex_ros/halfcheetah_run-v0', params={'no_such_weight': 1.0})


def test_an_episode_is_apex_ros_eval_episode_with_the_same_seed():
    """Same seed, same policy: the env's rewards and observations are run_episode's, its
    truncation at episode_steps, failure in info."""
    steps, seed = 150, 7919
    env = gymnasium.make('apex_ros/halfcheetah_run-v0', episode_steps=steps)
    task, policy = env.unwrapped.task, PolicyBundle(CHEETAH_BUNDLE)
    ours = run_episode(task, policy_actor(task, policy), seed)
    obs, info = env.reset(seed=seed)
    observations, rewards, truncations = [obs], [], []
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(policy(obs[None])[0])
        assert terminated is False and info['failed'] is False
        observations.append(obs)
        rewards.append(reward)
        truncations.append(truncated)
    assert truncations == [False] * (steps - 1) + [True]
    np.testing.assert_array_equal(rewards, ours.rewards)
    np.testing.assert_array_equal(observations, task.observe(ours.states))
    assert sum(rewards) == pytest.approx(ours.ret, rel=1e-12)
    assert ours.ret > 0.5 * steps                  # the policy runs: a real check of the above


def test_reset_without_seed_is_reproducible_from_the_first_seed():
    env = gymnasium.make('apex_ros/cartpole_swingup-v0')
    first = [env.reset(seed=5)[0], env.reset()[0], env.reset()[0]]
    again = [env.reset(seed=5)[0], env.reset()[0], env.reset()[0]]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first[1], first[2])


def test_success_is_in_info_where_the_task_defines_it():
    env = gymnasium.make('apex_ros/cartpole_swingup-v0', episode_steps=5)
    _, info = env.reset(seed=0)
    task = env.unwrapped.task
    states = [env.unwrapped.sim.state()]
    assert info['is_success'] is bool(task.success(np.array(states)))
    for _ in range(5):
        _, _, _, _, info = env.step(np.zeros(task.nu))
        states.append(env.unwrapped.sim.state())
    assert info['is_success'] is bool(task.success(np.array(states)))
    assert 'failed' not in info                     # cartpole defines no failure


def test_rgb_array_render():
    """In a child process: MUJOCO_GL is read when mujoco is imported (egl: no display)."""
    code = (
        'import gymnasium, numpy as np, apex_ros.gym\n'
        'from gymnasium.utils.env_checker import check_env\n'
        "env = gymnasium.make('apex_ros/halfcheetah_run-v0', render_mode='rgb_array', "
        'width=64, height=48)\n'
        'check_env(env.unwrapped)\n'
        'env.reset(seed=0); first = env.render()\n'
        'for _ in range(10): env.step(env.action_space.high)\n'
        'second = env.render()\n'
        'assert first.shape == (48, 64, 3) and first.dtype == np.uint8, first.shape\n'
        'assert first.std() > 10 and not np.array_equal(first, second)\n'
        "print('ok')\n")
    result = subprocess.run([sys.executable, '-W', 'ignore', '-c', code],
                            env={**os.environ, 'MUJOCO_GL': 'egl', 'PYTHONPATH': str(ROOT)},
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == 'ok', result.stderr[-2000:]


@pytest.mark.slow
def test_halfcheetah_bundle_in_gymnasiums_env_returns_what_apex_ros_eval_reports():
    """gymnasium's HalfCheetah-v5 (its reset, reward and stepping), driven by our bundle on
    our observation of its MjData: same return as `apex-ros eval`'s episode of that seed
    within 1e-6 relative (same model, same reset draws: the trajectories are identical)."""
    result = _crosscheck().compare('halfcheetah_run', episodes=1, steps=None, progress=False)
    row = result['per_episode'][0]
    assert result['episode_steps'] == 1000 and row['gymnasium_steps'] == 1000
    assert row['reset_equal'] and row['observation_prefix_max_abs_diff'] < 1e-4
    assert row['gymnasium'] == pytest.approx(row['apex_ros'], rel=1e-6)
    assert row['apex_ros'] > 3000


def test_humanoid_in_gymnasiums_env_differs_by_the_contact_impact_term_only():
    """HumanoidStandup-v5 from the same seed: the same trajectory (same model and reset
    noise), so its return is ours plus its contact-impact term, which ours leaves out."""
    result = _crosscheck().compare('humanoid_standup', episodes=1, steps=60, progress=False)
    row = result['per_episode'][0]
    assert row['first_step_apart'] is None and row['gymnasium_steps'] == 60
    assert row['left_out_terms'] < 0
    assert row['gymnasium'] == pytest.approx(row['apex_ros'] + row['left_out_terms'], rel=1e-9)


def test_a_task_with_extra_state_and_a_mapped_action(target_task):  # noqa: F811
    """A goal, a per-episode model parameter and a mocap target driven by the action (the
    hooks of test_rollout's tiny task): the env is the Simulation, extra state included."""
    env = apex_ros.gym.ApexEnv(target_task)
    check_env(env, skip_render_check=True)
    assert env.action_space.shape == (2,) and target_task.model.nu == 1
    sim = Simulation(target_task)
    obs, _ = env.reset(seed=4)
    np.testing.assert_array_equal(obs, target_task.observe(sim.reset(4)[None])[0])
    for action in ([0.5, 1.0], [-1.0, 0.3], [2.0, -5.0]):
        obs, reward, *_ = env.step(np.array(action))
        expected_reward, state = sim.step(action)
        assert reward == expected_reward
        np.testing.assert_array_equal(obs, target_task.observe(state[None])[0])

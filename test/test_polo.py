"""MPPI and POLO: weights, determinism, the terminal-value hook, the value ensemble (priors,
aggregate, ONNX export), the training loop, config errors, and MPPI vs random shooting."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import mpc_actions

from apex_ros.deploy.bundle import BundleError
from apex_ros.errors import ConfigError
from apex_ros.learning.value import (
    FORMAT,
    TerminalValue,
    ValueBundle,
    ValueConfig,
    ValueEnsemble,
    aggregate,
)
from apex_ros.planners import make_planner, planner_config
from apex_ros.planners.mppi import mppi_weights
from apex_ros.sim.episodes import run_mpc
from apex_ros.sim.rollout import OpenLoopRollouts
from apex_ros.sim.simulation import Simulation

SMALL = {'horizon': 10, 'budget': 30}


@pytest.fixture(autouse=True, scope='module')
def _one_torch_thread():
    """The machines are shared: one intra-op thread is much faster than two under load."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fitted_ensemble(obs_dim, seed=0, steps=300, **settings):
    rng = np.random.default_rng(seed)
    obs = rng.standard_normal((400, obs_dim)).astype(np.float32)
    targets = 30.0 + 10.0 * np.sin(obs[:, 0]) + obs[:, 1] ** 2
    ens = ValueEnsemble(obs_dim, ValueConfig(**settings), seed=seed)
    ens.fit(obs, targets, steps)
    return ens, obs


# --- MPPI weights -------------------------------------------------------------------------------

@pytest.mark.parametrize('costs', [
    np.array([3.0, 1.0, 2.0, 1.0]),
    np.array([1e300, -1e300, 0.0]),                       # no overflow from huge spreads
    np.array([np.inf, 2.0, np.nan, -np.inf, 5.0, np.inf]),  # failed samples
    np.array([np.inf, np.nan]),                           # all failed: uniform
])
@pytest.mark.parametrize('temperature', [1e-6, 0.2, 1e6])
def test_mppi_weights_are_finite_and_sum_to_one(costs, temperature):
    w = mppi_weights(costs, temperature)
    assert np.all(np.isfinite(w)) and np.all(w >= 0)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    finite = np.isfinite(costs)
    if finite.any():
        assert np.all(w[~finite] == 0)
        assert np.argmax(w) == np.flatnonzero(finite)[np.argmin(costs[finite])]


def test_mppi_weights_follow_the_softmax():
    costs = np.array([0.0, 1.0, 2.0])
    expected = np.exp(-costs / 0.5) / np.exp(-costs / 0.5).sum()
    assert np.allclose(mppi_weights(costs + 1000.0, 0.5), expected)


class FailingRollouts(OpenLoopRollouts):
    """Marks every other sample (or all) as diverged, as a MuJoCo instability would."""

    def __init__(self, task, fail_all=False):
        super().__init__(task)
        self.fail_all = fail_all

    def run(self, state0, actions, warmstart=None):
        states, ok = super().run(state0, actions, warmstart)
        ok = ok.copy()
        if self.fail_all:
            ok[:] = False
        elif len(ok) > 1:
            ok[1::2] = False
            states[1::2, -1] = np.nan
        return states, ok


def test_plan_with_failed_samples_stays_finite(cartpole, closing):
    planner = make_planner(cartpole, 'mppi', SMALL, rollouts=closing(FailingRollouts(cartpole)))
    result = planner.plan(*Simulation(cartpole).plan_inputs())
    assert np.all(np.isfinite(result.sequence)) and np.isfinite(result.cost)
    assert result.info['weights_ess'] >= 1.0 and not result.info['all_failed']
    assert np.all(np.abs(result.sequence) <= 1.0)


def test_plan_with_every_sample_failed_keeps_the_mean(cartpole, closing):
    planner = make_planner(cartpole, 'mppi', SMALL,
                           rollouts=closing(FailingRollouts(cartpole, fail_all=True)))
    result = planner.plan(*Simulation(cartpole).plan_inputs())
    assert result.info['all_failed'] and result.cost == np.inf
    assert np.array_equal(result.sequence, np.zeros((SMALL['horizon'], 1)))


# --- determinism and the plan ------------------------------------------------------------------

@pytest.mark.parametrize('beta', [0.0, 2.0])
def test_same_seed_same_actions_different_seed_different_actions(cartpole, closing, beta):
    runs = {}
    for label, seed in (('a', 0), ('b', 0), ('c', 1)):
        planner = closing(make_planner(cartpole, 'mppi', {**SMALL, 'beta': beta}, seed=seed))
        runs[label] = mpc_actions(cartpole, planner, 6)
    assert np.array_equal(runs['a'], runs['b'])
    assert not np.array_equal(runs['a'], runs['c'])


def test_one_step_horizon_with_colored_noise(cartpole, closing):
    planner = closing(make_planner(cartpole, 'mppi', {'horizon': 1, 'budget': 8, 'beta': 2.0}))
    assert planner.plan(*Simulation(cartpole).plan_inputs()).sequence.shape == (1, 1)


def test_reset_restores_the_seeded_sequence(cartpole, closing):
    planner = closing(make_planner(cartpole, 'mppi', SMALL, seed=3))
    first = mpc_actions(cartpole, planner, 4)
    planner.reset(3)
    assert np.array_equal(mpc_actions(cartpole, planner, 4), first)


def test_plan_result_describes_the_executed_sequence(cartpole, closing):
    """The action is the mean's first; main_cost is minus the simulated return of the mean."""
    planner = closing(make_planner(cartpole, 'mppi', SMALL, seed=0))
    sim = Simulation(cartpole)
    sim.reset(0)
    result = planner.plan(*sim.plan_inputs())
    assert np.array_equal(result.action, result.sequence[0])
    assert planner.samples_per_step == SMALL['budget'] + 1
    ret = sum(sim.step(a)[0] for a in result.sequence)
    assert result.main_cost == pytest.approx(-ret, rel=1e-9, abs=1e-9)
    assert result.info['plan_rewards'].sum() == pytest.approx(ret, rel=1e-9)


@pytest.mark.parametrize('name,settings', [
    ('mppi', SMALL), ('polo', SMALL), ('icem', {'horizon': SMALL['horizon'], 'budget': 60}),
    ('random_shooting', {'horizon': SMALL['horizon'], 'budget': 60}),
    ('cem_gd', {'horizon': SMALL['horizon'], 'budget': 30, 'initial_budget': 60})])
def test_terminal_value_steers_the_plan(cartpole, closing, name, settings):
    """A terminal value rewarding the cart's final position drives the cart that way, for
    any planner that honours terminal values."""
    finals = {}
    for sign in (1.0, -1.0):
        def value_fn(obs, sign=sign):
            return sign * 100.0 * obs[:, 0]
        planner = closing(make_planner(cartpole, name, settings, seed=0))
        planner.set_terminal_value(TerminalValue(cartpole, value_fn))
        sim = Simulation(cartpole)
        sim.reset(0)
        for _ in range(15):
            result = planner.plan(*sim.plan_inputs())
            sim.step(result.action)
        finals[sign] = sim.state()[1]
    assert finals[1.0] > 0.2 and finals[-1.0] < -0.2, finals


def test_terminal_value_reward_is_discounted_by_the_horizon(cartpole):
    tv = TerminalValue(cartpole, lambda obs: np.full(len(obs), 10.0), discount=0.9)
    states = np.zeros((4, 6, cartpole.layout.size))
    assert np.allclose(tv.reward(states), 10.0 * 0.9 ** 5)
    assert tv(states[:, -1]).shape == (4,)


# --- the value ensemble -------------------------------------------------------------------------

def test_disagreement_grows_away_from_the_data():
    ens, obs = fitted_ensemble(5)
    on_data = ens.members(obs).std(axis=0).mean()
    off_data = ens.members(obs + 6.0).std(axis=0).mean()
    assert off_data > 2.0 * on_data, (on_data, off_data)


@pytest.mark.slow
def test_fit_learns_the_targets():
    ens, obs = fitted_ensemble(5)
    targets = 30.0 + 10.0 * np.sin(obs[:, 0]) + obs[:, 1] ** 2
    assert np.sqrt(np.mean((ens(obs) - targets) ** 2)) < 0.3 * targets.std()


def test_aggregate_lies_between_mean_and_max_and_matches_torch():
    ens, obs = fitted_ensemble(5, steps=20)
    members = ens.members(obs[:50])
    v = ens(obs[:50])
    assert np.allclose(v, aggregate(members, ens.cfg.kappa), atol=1e-4)
    assert np.all(v >= members.mean(axis=0) - 1e-4) and np.all(v <= members.max(axis=0) + 1e-4)
    assert np.allclose(aggregate(members, 1e-6), members.mean(axis=0), atol=1e-3)
    assert np.allclose(aggregate(members, 1e3), members.max(axis=0), atol=1e-2)


def test_onnx_export_matches_torch(cartpole, tmp_path):
    ens, _ = fitted_ensemble(cartpole.obs_dim)
    path = tmp_path / 'value.onnx'
    bundle = ens.export(cartpole, path, extra={'note': 'test'})
    obs = np.random.default_rng(1).standard_normal((64, cartpole.obs_dim)).astype(np.float32)
    obs *= 3.0  # on and off the training data
    assert np.max(np.abs(bundle(obs) - ens(obs))) < 1e-5
    assert np.max(np.abs(bundle.members(obs) - ens.members(obs).T)) < 1e-5
    meta = bundle.meta
    assert meta['format'] == FORMAT and meta['task'] == cartpole.name
    assert meta['members'] == 6 and meta['kappa'] == ens.cfg.kappa
    assert meta['obs']['terms'] == list(cartpole.observation.terms)
    assert meta['extra'] == {'note': 'test'}
    assert not list(tmp_path.glob('.*.tmp'))  # atomic write left no temp file
    states = np.zeros((3, cartpole.layout.size))
    as_exported = TerminalValue.load(path, cartpole)
    assert np.allclose(as_exported(states), ens(cartpole.observe(states)), atol=1e-5)
    near_mean = TerminalValue.load(path, cartpole, kappa=1e-6)
    assert np.allclose(near_mean(states), ens.members(cartpole.observe(states)).mean(axis=0),
                       atol=1e-3)


def test_onnx_bundle_runs_with_onnxruntime_and_numpy_only(cartpole, tmp_path):
    ens, _ = fitted_ensemble(cartpole.obs_dim, steps=20)
    path = tmp_path / 'value.onnx'
    ens.export(cartpole, path)
    obs = np.random.default_rng(2).standard_normal((8, cartpole.obs_dim)).astype(np.float32)
    np.save(tmp_path / 'obs.npy', obs)
    script = textwrap.dedent(f"""
        import json, sys
        sys.modules['torch'] = None          # importing torch would now fail
        import numpy as np, onnxruntime as ort
        obs = np.load({str(tmp_path / 'obs.npy')!r})
        session = ort.InferenceSession({str(path)!r}, providers=['CPUExecutionProvider'])
        raw = session.run(None, {{'obs': obs}})[0]
        meta = json.loads(session.get_modelmeta().custom_metadata_map['apex_ros'])
        from apex_ros.learning.value import ValueBundle
        ours = ValueBundle({str(path)!r})(obs)
        print(json.dumps({{'raw': raw.tolist(), 'ours': ours.tolist(), 'K': meta['members'],
                          'mujoco': 'mujoco' in sys.modules}}))
    """)
    out = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                         check=True)
    got = json.loads(out.stdout)
    assert np.allclose(got['raw'], ens(obs), atol=1e-5)
    assert np.allclose(got['ours'], got['raw'])
    assert got['K'] == 6 and got['mujoco'] is False


def test_value_bundle_for_another_task_is_refused(cartpole, halfcheetah, tmp_path):
    ens, _ = fitted_ensemble(cartpole.obs_dim, steps=5)
    path = ens.export(cartpole, tmp_path / 'value.onnx').path
    with pytest.raises(BundleError, match='task.*halfcheetah_run'):
        TerminalValue.load(path, halfcheetah)


def test_value_bundle_rejects_a_policy_bundle(tmp_path):
    with pytest.raises(BundleError, match='cannot load'):
        ValueBundle(b'not an onnx file')


# --- POLO ---------------------------------------------------------------------------------------

def test_polo_planner_loads_its_value_model_from_the_config(cartpole, tmp_path, closing):
    ens, _ = fitted_ensemble(cartpole.obs_dim, steps=5)
    path = tmp_path / 'value.onnx'
    ens.export(cartpole, path)
    polo = closing(make_planner(cartpole, 'polo', {**SMALL, 'value_model': str(path)}))
    assert polo.terminal_value is not None and polo.terminal_value.source == str(path)
    result = polo.plan(*Simulation(cartpole).plan_inputs())
    assert result.info['terminal_reward'] != 0.0 and np.isfinite(result.cost)
    mppi = closing(make_planner(cartpole, 'mppi', SMALL))
    assert mppi.terminal_value is None
    icem = closing(make_planner(cartpole, 'icem', {'horizon': 10, 'budget': 60,
                                                   'value_model': str(path)}))
    assert icem.terminal_value is not None and icem.terminal_value.source == str(path)


def test_icem_missing_value_model_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r'planner\.value_model: file not found'):
        planner_config('icem', {'value_model': str(tmp_path / 'nope.onnx')})


def test_run_polo_trains_and_exports(cartpole, tmp_path):
    from apex_ros.learning.polo import run_polo
    from apex_ros.tasks import make_task
    task = make_task('cartpole_swingup', episode_steps=24)
    value_cfg = ValueConfig(target_steps=4, update_every=8, gradient_steps=5, hidden=[16])
    run = run_polo(task, {'horizon': 6, 'budget': 12}, value_cfg, steps=40, seed=0)
    assert run.steps == 40 and len(run.returns) == 2       # 24 + 16 steps
    assert len(run.losses) == 5 and np.all(np.isfinite(run.losses))
    bundle = run.ensemble.export(task, tmp_path / 'value.onnx')
    obs = task.observe(Simulation(task).reset(0)[None])
    assert np.allclose(bundle(obs), run.ensemble(obs), atol=1e-5)


def test_run_polo_needs_targets_within_the_horizon(cartpole):
    from apex_ros.learning.polo import run_polo
    with pytest.raises(ConfigError, match='value.target_steps'):
        run_polo(cartpole, {'horizon': 5, 'budget': 8}, ValueConfig(target_steps=6), steps=1)


# --- config errors ------------------------------------------------------------------------------

@pytest.mark.parametrize('name', ['mppi', 'polo'])
@pytest.mark.parametrize('settings, key', [
    ({'temperature': -1.0}, 'temperature'),
    ({'temperature': 0.0}, 'temperature'),
    ({'horizon': 0}, 'horizon'),
    ({'budget': 0}, 'budget'),
    ({'sigma': -0.1}, 'sigma'),
    ({'lambda_samples': 1}, 'lambda_samples'),
])
def test_planner_config_errors_name_the_key(name, settings, key):
    with pytest.raises(ConfigError, match=rf'planner\.{key}: must be'):
        planner_config(name, settings)


def test_missing_value_model_names_the_key_and_path(tmp_path):
    with pytest.raises(ConfigError, match=r'planner\.value_model: file not found: .*nope\.onnx'):
        planner_config('polo', {'value_model': str(tmp_path / 'nope.onnx')})


@pytest.mark.parametrize('settings, key', [
    ({'kappa': 0.0}, 'kappa'),
    ({'kappa': -1.0}, 'kappa'),
    ({'members': 0}, 'members'),
    ({'discount': 1.5}, 'discount'),
    ({'hidden': []}, 'hidden'),
    ({'target_steps': 0}, 'target_steps'),
])
def test_value_config_errors_name_the_key(settings, key):
    from apex_ros.config import from_dict
    with pytest.raises(ConfigError, match=rf'value\.{key}: '):
        from_dict(ValueConfig, settings, 'value')


# --- performance ------------------------------------------------------------------------------

@pytest.mark.slow
def test_mppi_beats_random_shooting_on_cartpole_swingup(cartpole, closing):
    """Equal simulated sequences per step (MPPI's budget + its mean's rollout), two seeds."""
    mppi_returns, rs_returns, successes = [], [], []
    for seed in (0, 1):
        mppi = closing(make_planner(cartpole, 'mppi', {'horizon': 25, 'budget': 25}, seed=seed))
        rs = closing(make_planner(cartpole, 'random_shooting',
                                  {'horizon': 25, 'budget': mppi.samples_per_step}, seed=seed))
        ep = run_mpc(cartpole, mppi, seed=seed)
        mppi_returns.append(ep.ret)
        successes.append(ep.success)
        rs_returns.append(run_mpc(cartpole, rs, seed=seed).ret)
    assert all(successes)
    assert np.mean(mppi_returns) > np.mean(rs_returns) + 10.0, (mppi_returns, rs_returns)


@pytest.mark.parametrize('name', ['icem', 'cem_gd', 'mppi', 'polo', 'random_shooting'])
def test_every_planner_takes_a_value_model(cartpole, tmp_path, closing, name):
    with pytest.raises(ConfigError, match=r'planner\.value_model: file not found'):
        planner_config(name, {'value_model': str(tmp_path / 'nope.onnx')})
    ens, _ = fitted_ensemble(cartpole.obs_dim, steps=5)
    path = tmp_path / 'value.onnx'
    ens.export(cartpole, path)
    planner = closing(make_planner(cartpole, name, {'horizon': 6, 'budget': 60,
                                                    'value_model': str(path)}))
    assert planner.terminal_value.source == str(path)

"""iCEM / iCEM_pi planner: determinism, performance vs random shooting, adaptive auxiliary
weights, the optimal-policy fixed point, config validation and policy adapters."""
import warnings

import numpy as np
import pytest
from conftest import mpc_actions

from apex_ros.deploy.policy import OnnxPolicy, TorchPolicy, as_policy
from apex_ros.errors import ApexError, ConfigError
from apex_ros.planners import ICEMConfig, make_planner, planner_config
from apex_ros.planners.costs import adaptive_lambdas, total_cost
from apex_ros.sim.episodes import run_mpc
from apex_ros.sim.simulation import Simulation
from apex_ros.tasks.cartpole import CartpoleSwingup

SMALL = {'horizon': 12, 'budget': 60}


# --- (a) determinism ---------------------------------------------------------------------------

def test_same_seed_same_actions_different_seed_different_actions(cartpole, closing):
    runs = {}
    for label, seed in (('a', 0), ('b', 0), ('c', 1)):
        planner = closing(make_planner(cartpole, 'icem', SMALL, seed=seed))
        runs[label] = mpc_actions(cartpole, planner, 10)
    assert np.array_equal(runs['a'], runs['b'])
    assert not np.array_equal(runs['a'], runs['c'])


def test_reset_restores_the_seeded_sequence(cartpole, closing):
    """reset(seed) forgets the shifted mean and elites and re-seeds: replaying gives the
    same actions, on a single planner instance."""
    planner = closing(make_planner(cartpole, 'icem', SMALL, seed=3))
    first = mpc_actions(cartpole, planner, 5)
    planner.reset(3)
    assert np.array_equal(mpc_actions(cartpole, planner, 5), first)


def test_threads_do_not_change_the_plan(cartpole, closing):
    one = closing(make_planner(cartpole, 'icem', SMALL, seed=2, threads=1))
    two = closing(make_planner(cartpole, 'icem', SMALL, seed=2, threads=2))
    assert np.array_equal(mpc_actions(cartpole, one, 4), mpc_actions(cartpole, two, 4))


def test_plan_result_is_consistent(cartpole, closing):
    """The returned action is the first of the returned sequence, within bounds, and
    main_cost is the negative return of that sequence when simulated."""
    planner = closing(make_planner(cartpole, 'icem', SMALL, seed=0))
    sim = Simulation(cartpole)
    sim.reset(0)
    result = planner.plan(*sim.plan_inputs())
    assert result.sequence.shape == (SMALL['horizon'], cartpole.nu)
    assert np.array_equal(result.action, result.sequence[0])
    assert np.all(result.sequence >= cartpole.action_low)
    assert np.all(result.sequence <= cartpole.action_high)
    ret = 0.0
    for a in result.sequence:
        r, _ = sim.step(a)
        ret += r
    assert result.main_cost == pytest.approx(-ret, rel=1e-9, abs=1e-9)
    assert result.cost == result.main_cost        # no policy: no auxiliary cost


def test_act_mean_executes_the_final_mean(cartpole, closing):
    """act: mean returns the first action of the updated mean (the CEM choice); the default
    returns the best sequence's first action, and both plan identically otherwise."""
    results = {}
    for act in ('best', 'mean'):
        planner = closing(make_planner(cartpole, 'icem', {**SMALL, 'act': act}, seed=0))
        sim = Simulation(cartpole)
        sim.reset(0)
        results[act] = planner.plan(*sim.plan_inputs()), planner.mean.copy()
    (best, mean_best), (mean, mean_mean) = results['best'], results['mean']
    np.testing.assert_array_equal(mean_best, mean_mean)
    np.testing.assert_array_equal(best.sequence, mean.sequence)
    np.testing.assert_array_equal(mean.action, np.clip(mean_mean[0], cartpole.action_low,
                                                       cartpole.action_high))
    assert not np.array_equal(best.action, mean.action)


# --- (b) iCEM beats random shooting at equal budget ---------------------------------------------

@pytest.mark.slow
def test_icem_beats_random_shooting_on_cartpole_swingup(cartpole, closing):
    # A small budget keeps the two 200-step episodes at ~2 s each. Random shooting gets as
    # many simulated sequences per step as iCEM simulates (fresh samples + shifted elites).
    icem = closing(make_planner(cartpole, 'icem', {'horizon': 25, 'budget': 40, 'elites': 5}))
    cfg = icem.cfg
    simulated = cfg.populations.sum() + int(cfg.keep_fraction * cfg.elites)
    assert cfg.populations.sum() <= 40
    rs = closing(make_planner(cartpole, 'random_shooting',
                              {'horizon': 25, 'budget': int(simulated)}))
    ep_icem = run_mpc(cartpole, icem, seed=0)
    ep_rs = run_mpc(cartpole, rs, seed=0)
    assert len(ep_icem.rewards) == len(ep_rs.rewards) == cartpole.episode_steps == 200
    # rewards are in [0, 1] per step; iCEM swings up and balances, clearly better
    assert ep_icem.success is True
    assert ep_icem.ret > ep_rs.ret + 10.0, (ep_icem.ret, ep_rs.ret)


# --- (c) adaptive auxiliary weights -----------------------------------------------------------

def test_adaptive_lambdas_zero_when_elites_share_main_cost():
    rng = np.random.default_rng(0)
    k = 5
    J = np.concatenate([np.full(k, 3.25), 3.25 + rng.uniform(0.5, 2.0, 20)])
    rng.shuffle(J)
    C = rng.uniform(0, 10, (len(J), 2))
    lam = adaptive_lambdas(J, C, k, c=[0.025, 0.5], eps=1e-6)
    assert np.array_equal(lam, [0.0, 0.0])


def test_adaptive_lambdas_zero_with_fewer_than_two_finite_samples():
    J = np.array([np.inf, 1.0, np.inf])
    C = np.ones((3, 2))
    assert np.array_equal(adaptive_lambdas(J, C, 2, [1.0, 1.0], 1e-6), [0.0, 0.0])


@pytest.mark.parametrize('seed', range(8))
def test_adaptive_lambdas_bound_the_aux_cost_spread(seed):
    """Over the preliminary elites (k best finite J), range(lambda_j C_j) <= c_j R(J): the
    auxiliary costs can re-rank the elites by at most a fraction c_j of the J spread."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    k = int(rng.integers(2, n + 1))
    J = rng.normal(0, 10 ** rng.uniform(-3, 3), n)
    J[rng.random(n) < 0.1] = np.inf                  # some diverged samples
    C = rng.uniform(0, 10 ** rng.uniform(-3, 3), (n, 2)) * rng.random((n, 1))
    c = rng.uniform(0, 1, 2)
    lam = adaptive_lambdas(J, C, k, c, eps=1e-6)
    assert np.all(lam >= 0)
    finite = np.flatnonzero(np.isfinite(J))
    if finite.size < 2:
        assert np.all(lam == 0)
        return
    elite = finite[np.argsort(J[finite])[:min(k, finite.size)]]
    range_j = J[elite].max() - J[elite].min()
    for j in range(2):
        weighted = lam[j] * C[elite, j]
        spread = weighted.max() - weighted.min()
        assert spread <= c[j] * range_j * (1 + 1e-12) + 1e-12
        # and the bound is nearly attained when C_j varies (eps is tiny)
        if np.ptp(C[elite, j]) > 1e-3:
            assert spread == pytest.approx(c[j] * range_j, rel=1e-2)


def test_total_cost_infinite_for_failed_samples():
    J = np.array([1.0, np.inf, 2.0])
    C = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 3.0]])
    f = total_cost(J, C, np.array([0.5, 2.0]))
    np.testing.assert_array_equal(f, [1.5, np.inf, 8.0])


# --- (d) iCEM_pi keeps an already-optimal policy's action --------------------------------------

A_STAR = 0.3125


class TrackConstant(CartpoleSwingup):
    """Reward -|a - a*|^2: the constant policy a* is optimal over any horizon (return 0)."""
    name = 'track_constant'

    def reward(self, states, actions):
        return -np.sum((actions - A_STAR) ** 2, axis=-1)


class ConstantPolicy:
    obs_dim, act_dim = 5, 1

    def __call__(self, obs):
        return np.full((len(obs), 1), A_STAR)


@pytest.fixture(scope='module')
def track_task():
    return TrackConstant()


def test_icem_pi_with_optimal_policy_returns_its_action(track_task, closing):
    planner = closing(make_planner(track_task, 'icem',
                                   {'horizon': 10, 'budget': 60, 'action_norm_c': 0.0},
                                   policy=ConstantPolicy(), seed=0))
    sim = Simulation(track_task)
    sim.reset(0)
    for _ in range(3):                      # the first step and the shifted steps after it
        result = planner.plan(*sim.plan_inputs())
        np.testing.assert_array_equal(result.action, [A_STAR])
        np.testing.assert_array_equal(result.sequence, np.full((10, 1), A_STAR))
        assert result.main_cost == 0.0
        sim.step(result.action)


def test_icem_without_policy_does_not_hit_the_optimum_exactly(track_task, closing):
    planner = closing(make_planner(track_task, 'icem',
                                   {'horizon': 10, 'budget': 60, 'action_norm_c': 0.0}, seed=0))
    result = planner.plan(Simulation(track_task).reset(0))
    assert result.action[0] != A_STAR
    assert result.main_cost > 0.0
    # ... though it gets close
    assert abs(result.action[0] - A_STAR) < 0.5


# --- (e) config errors name the key -----------------------------------------------------------

@pytest.mark.parametrize('settings, key', [
    ({'elites': 50, 'budget': 100}, 'budget'),
    ({'horizon': 0}, 'horizon'),
    ({'sigma': -0.1}, 'sigma'),
    ({'beta': -1.0}, 'beta'),
    ({'iterations': 0}, 'iterations'),
    ({'alpha': 1.0}, 'alpha'),
    ({'gamma': 0.5}, 'gamma'),
    ({'keep_fraction': 1.5}, 'keep_fraction'),
    ({'lambda_mode': 'magic'}, 'lambda_mode'),
    ({'guidance_c': -1.0}, 'guidance_c'),
    ({'epsilon': 0.0}, 'epsilon'),
    ({'budget': 'abc'}, 'budget'),
    ({'add_mean': 1}, 'add_mean'),
    ({'act': 'median'}, 'act'),
])
def test_icem_config_errors_name_the_key(cartpole, settings, key):
    with pytest.raises(ConfigError, match=rf'planner\.{key}\b'):
        planner_config('icem', settings)
    with pytest.raises(ConfigError, match=rf'planner\.{key}\b'):
        make_planner(cartpole, 'icem', settings)


def test_budget_minimum_error_explains_elites():
    with pytest.raises(ConfigError) as err:
        planner_config('icem', {'elites': 50, 'budget': 100})
    msg = str(err.value)
    assert 'planner.budget' in msg and 'elites' in msg
    assert '100' in msg and '300' in msg      # 3 iterations x 2 x 50 elites


def test_budget_minimum_is_exact():
    """budget == 3 iterations x 2 elites is accepted, one less is not."""
    cfg = planner_config('icem', {'elites': 10, 'budget': 60})
    np.testing.assert_array_equal(cfg.populations, [20, 20, 20])
    with pytest.raises(ConfigError, match='budget'):
        planner_config('icem', {'elites': 10, 'budget': 59})


@pytest.mark.parametrize('budget', [60, 100, 257])
def test_populations_use_the_budget(budget):
    cfg = planner_config('icem', {'budget': budget})
    pops = cfg.populations
    assert pops.sum() <= budget
    assert np.all(pops >= 2 * cfg.elites)
    assert np.all(np.diff(pops) <= 0)                    # decaying by gamma
    # the largest first population that fits: one more sample would overflow the budget
    bigger = [max(2 * cfg.elites, int((cfg.num_samples + 1) * cfg.gamma ** -i))
              for i in range(cfg.iterations)]
    assert sum(bigger) > budget


def test_unknown_key_named_with_known_keys():
    with pytest.raises(ConfigError, match=r'planner: unknown key\(s\) nope') as err:
        planner_config('icem', {'nope': 1})
    assert 'horizon' in str(err.value)


def test_unknown_planner_lists_known_ones(cartpole):
    with pytest.raises(ApexError, match='icem.*random_shooting'):
        make_planner(cartpole, 'nope')


def test_random_shooting_config_errors():
    with pytest.raises(ConfigError, match=r'planner\.budget'):
        planner_config('random_shooting', {'budget': 0})
    with pytest.raises(ConfigError, match=r'planner\.horizon'):
        planner_config('random_shooting', {'horizon': 0})


def test_config_object_accepted_as_is(cartpole, closing):
    cfg = ICEMConfig(horizon=7, budget=60)
    planner = closing(make_planner(cartpole, 'icem', cfg))
    assert planner.cfg is cfg
    assert planner.plan(Simulation(cartpole).reset(0)).sequence.shape == (7, 1)


class SizedPolicy:
    def __init__(self, obs_dim, act_dim):
        self.obs_dim, self.act_dim = obs_dim, act_dim

    def __call__(self, obs):
        return np.zeros((len(obs), self.act_dim))


def test_policy_obs_size_mismatch_names_both_sizes(cartpole):
    with pytest.raises(ApexError, match=r'size 4.*produces 5'):
        as_policy(SizedPolicy(4, 1), cartpole)
    with pytest.raises(ApexError, match=r'size 4.*produces 5'):
        make_planner(cartpole, 'icem', SMALL, policy=SizedPolicy(4, 1))


def test_policy_act_size_mismatch_names_both_sizes(cartpole):
    with pytest.raises(ApexError, match=r'size 2.*1 actuators'):
        as_policy(SizedPolicy(5, 2), cartpole)


def test_not_a_policy(cartpole):
    with pytest.raises(ApexError, match='not a policy'):
        as_policy(object(), cartpole)


# --- (f) policy adapters: torch module and its ONNX export agree ------------------------------

@pytest.fixture(scope='module')
def torch_and_onnx(tmp_path_factory):
    torch = pytest.importorskip('torch')
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 32), torch.nn.Tanh(),
                              torch.nn.Linear(32, 1), torch.nn.Tanh())
    path = tmp_path_factory.mktemp('onnx') / 'policy.onnx'
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)   # the legacy exporter, on purpose
        torch.onnx.export(net, (torch.zeros(2, 5),), str(path), dynamo=False,
                          input_names=['obs'], output_names=['act'],
                          dynamic_axes={'obs': {0: 'batch'}, 'act': {0: 'batch'}})
    return net, path


def test_torch_and_onnx_policies_agree(cartpole, torch_and_onnx):
    import onnxruntime as ort
    net, path = torch_and_onnx
    tp = as_policy(net, cartpole)
    assert isinstance(tp, TorchPolicy) and (tp.obs_dim, tp.act_dim) == (5, 1)
    for source in (path, str(path), ort.InferenceSession(str(path))):
        op = as_policy(source, cartpole)
        assert isinstance(op, OnnxPolicy) and (op.obs_dim, op.act_dim) == (5, 1)
        obs = np.random.default_rng(0).standard_normal((300, 5)).astype(np.float32)
        out_t, out_o = tp(obs), op(obs)
        assert out_t.shape == out_o.shape == (300, 1)
        assert out_t.dtype == out_o.dtype == np.float64
        np.testing.assert_allclose(out_o, out_t, atol=1e-5)
        assert np.ptp(out_t) > 0.1          # a non-trivial function of the observation


def test_torch_and_onnx_give_the_same_plan(cartpole, torch_and_onnx, closing):
    net, path = torch_and_onnx
    sim = Simulation(cartpole)
    sim.reset(0)
    inputs = sim.plan_inputs()
    results = []
    for policy in (net, path):
        planner = closing(make_planner(cartpole, 'icem', {'horizon': 10, 'budget': 60},
                                       policy=policy, seed=3))
        results.append([planner.plan(*inputs) for _ in range(2)])
    for r_torch, r_onnx in zip(*results):
        np.testing.assert_allclose(r_onnx.action, r_torch.action, atol=1e-4)
        np.testing.assert_allclose(r_onnx.sequence, r_torch.sequence, atol=1e-4)
        assert r_onnx.cost == pytest.approx(r_torch.cost, rel=1e-4, abs=1e-6)
    # the guidance weight is active (a policy is used) in both
    assert results[0][0].info['lambdas'][0] > 0


def test_missing_onnx_file_names_the_path(tmp_path):
    missing = tmp_path / 'nope.onnx'
    with pytest.raises(ApexError, match='nope.onnx'):
        as_policy(str(missing))


class ShapedOnlyInPlanning(TrackConstant):
    """The return rewards a = -a*, the planner's shaping a = a*: planners must follow the
    shaping (Task.planning_reward), episodes count the reward."""
    name = 'shaped_only_in_planning'

    def reward(self, states, actions):
        return -np.sum((actions + A_STAR) ** 2, axis=-1)

    def planning_reward(self, states, actions):
        return -np.sum((actions - A_STAR) ** 2, axis=-1)


@pytest.mark.parametrize('name', ['icem', 'random_shooting', 'mppi', 'cem_gd'])
def test_planners_maximize_planning_reward(name, closing):
    task = ShapedOnlyInPlanning()
    planner = closing(make_planner(task, name, {'horizon': 5, 'budget': 60}, seed=0))
    sim = Simulation(task)
    result = planner.plan(sim.reset(0))
    assert abs(result.action[0] - A_STAR) < 0.25
    # the planning cost of the plan; following the reward instead would cost 5 (2 a*)^2 = 1.95
    assert result.main_cost < 1.0
    reward, _ = sim.step(result.action)
    assert reward == pytest.approx(-(result.action[0] + A_STAR) ** 2)


# --- (g) APEX ablations and the action-norm cost are planner capabilities -----------------------

def test_ablations_are_declared_capabilities():
    """Every declared ablation applies to the planner's own config; the CEM planners support
    all three planner ablations, the others only fixed_lambda."""
    from apex_ros.learning.apex import ABLATIONS
    from apex_ros.planners import PLANNERS
    for name, cls in PLANNERS.items():
        assert set(cls.ablations) <= set(ABLATIONS), name
        for ablation, changes in cls.ablations.items():
            cfg = cls.with_ablation(planner_config(name), ablation, 'apex')
            assert {k: getattr(cfg, k) for k in changes} == changes, (name, ablation)
    icem = planner_config('icem')
    assert icem.lambda_mode == 'adaptive' and icem.warm_start and icem.policy_samples
    assert PLANNERS['icem'].with_ablation(icem, 'fixed_lambda', 'apex').lambda_mode == 'fixed'
    assert not PLANNERS['cem_gd'].with_ablation(planner_config('cem_gd'), 'no_warm_start',
                                                'apex').warm_start
    assert not PLANNERS['icem'].with_ablation(icem, 'no_policy_samples', 'apex').policy_samples
    assert icem.warm_start and icem.policy_samples      # the given config is left alone
    for name in ('mppi', 'polo', 'random_shooting'):
        assert list(PLANNERS[name].ablations) == ['fixed_lambda'], name


@pytest.mark.parametrize('name', ['mppi', 'polo', 'random_shooting'])
def test_unsupported_ablation_is_refused_by_name(name):
    from apex_ros.planners import planner_class
    with pytest.raises(ConfigError) as err:
        planner_class(name).with_ablation(planner_config(name), 'no_warm_start',
                                          'run.yaml: apex')
    assert str(err.value) == (f"run.yaml: apex: planner {name} does not support ablation "
                              "'no_warm_start' (supports: fixed_lambda)")


@pytest.mark.parametrize('name', ['icem', 'cem_gd', 'mppi', 'polo', 'random_shooting'])
def test_with_action_norm_sets_the_cost_weight(name):
    from apex_ros.planners import planner_class
    cfg = planner_config(name)
    changed = planner_class(name).with_action_norm(cfg, 0.05)
    assert changed.action_norm_c == 0.05 and cfg.action_norm_c == 0.0
    with pytest.raises(ConfigError, match=r'apex: .*action_norm_c: must be >= 0'):
        planner_class(name).with_action_norm(cfg, -1.0, 'apex: planner')


@pytest.mark.parametrize('name, settings', [
    ('icem', {}), ('cem_gd', {'budget': 30, 'initial_budget': 30}), ('mppi', {}),
    ('polo', {}), ('random_shooting', {'guidance_c': 0.025})])
def test_every_planner_weighs_the_guidance_cost(cartpole, closing, linear_policy, name,
                                                settings):
    """With a policy, every planner's adaptive guidance weight is active; without, zero."""
    policy = linear_policy(cartpole.obs_dim, cartpole.nu, seed=1, scale=0.5)
    inputs = Simulation(cartpole).plan_inputs()
    settings = {'horizon': 8, 'budget': 60, **settings}
    guided = closing(make_planner(cartpole, name, settings, policy=policy, seed=0))
    assert guided.plan(*inputs).info['lambdas'][0] > 0
    unguided = closing(make_planner(cartpole, name, settings, seed=0))
    assert unguided.plan(*inputs).info['lambdas'][0] == 0

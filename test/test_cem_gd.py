"""CEM-GD planner: adjoint gradients against finite differences of the rollout return, the
line search's monotonicity, the sample schedule, seeding, config errors, and performance
against random shooting at equal samples."""
import json

import mujoco
import numpy as np
import pytest

from apex_ros import cli
from apex_ros.errors import ConfigError
from apex_ros.planners import cem_gd, make_planner, planner_config
from apex_ros.planners.costs import main_cost
from apex_ros.planners.derivatives import perturbed_states, return_gradient, reward_gradients
from apex_ros.sim.episodes import run_mpc
from apex_ros.sim.rollout import OpenLoopRollouts
from apex_ros.sim.simulation import Simulation

SMALL = {'horizon': 12, 'budget': 24, 'initial_budget': 60, 'iterations': 2, 'elites': 4}


def start_inputs(task, seed=0, random_steps=0):
    """(state, warmstart) after `random_steps` random actions from a seeded reset."""
    sim = Simulation(task)
    sim.reset(seed)
    rng = np.random.default_rng(seed)
    for _ in range(random_steps):
        sim.step(rng.uniform(task.action_low, task.action_high))
    return sim.plan_inputs()


def finite_difference_gradient(task, rollouts, inputs, actions, h, terminal=None):
    """Central differences of the rollout return (OpenLoopRollouts), plus terminal(states)
    when given, w.r.t. every action."""
    horizon, nu = actions.shape
    batch = np.repeat(actions[None], 2 * horizon * nu, axis=0)
    for k in range(horizon * nu):
        t, j = divmod(k, nu)
        batch[2 * k, t, j] += h
        batch[2 * k + 1, t, j] -= h
    states, ok = rollouts.run(inputs[0], batch, inputs[1])
    assert ok.all()
    returns = -main_cost(task, states, batch)
    if terminal is not None:
        returns = returns + terminal(states)
    return ((returns[0::2] - returns[1::2]) / (2 * h)).reshape(horizon, nu)


def relative_error(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


# --- gradients -------------------------------------------------------------------------------

@pytest.mark.parametrize('centered', [False, True])
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_adjoint_gradient_matches_finite_differences_on_cartpole(
        cartpole, closing, centered, seed):
    """Adjoint dR/da over H = 10 (50 physics substeps) vs central differences of the return
    simulated by OpenLoopRollouts. Tolerance 1e-4 relative: the forward-difference Jacobians
    (eps 1e-6) are off by O(eps |f''|) ~ 1e-6 relative and the reference (h = 1e-5) by
    O(h^2) plus roundoff ~ 1e-11 / h; measured 2e-8 (forward) and 2e-9 (centered). A sign,
    transpose or off-by-one-step error gives O(1)."""
    inputs = start_inputs(cartpole, seed)
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-0.8, 0.8, (10, cartpole.nu))   # inside the bounds: no clamping
    data = mujoco.MjData(cartpole.model)
    ret, grad = return_gradient(cartpole, data, inputs[0], actions, inputs[1],
                                eps=1e-6, centered=centered)
    rollouts = closing(OpenLoopRollouts(cartpole))
    reference = finite_difference_gradient(cartpole, rollouts, inputs, actions, h=1e-5)
    assert relative_error(grad, reference) < 1e-4
    states, _ = rollouts.run(inputs[0], actions[None], inputs[1])
    assert ret == -main_cost(cartpole, states, actions[None])[0]   # same trajectory, bitwise


def test_adjoint_gradient_with_contacts_and_a_reward_on_both_states(halfcheetah, closing):
    """HalfCheetah: contacts, and a reward using x_t and x_{t+1}. Smooth enough over H = 5
    for central differences (measured 2e-7 at H = 10); tolerance 1e-3."""
    inputs = start_inputs(halfcheetah, 1, random_steps=20)
    actions = np.random.default_rng(1).uniform(-0.8, 0.8, (5, halfcheetah.nu))
    data = mujoco.MjData(halfcheetah.model)
    _, grad = return_gradient(halfcheetah, data, inputs[0], actions, inputs[1],
                              eps=1e-6, centered=True)
    rollouts = closing(OpenLoopRollouts(halfcheetah))
    reference = finite_difference_gradient(halfcheetah, rollouts, inputs, actions, h=1e-6)
    assert relative_error(grad, reference) < 1e-3


def test_adjoint_gradient_with_a_free_joint_and_rk4(humanoid, closing):
    """Humanoid: a quaternion root, and RK4, which mjd_transitionFD rejects, so the Jacobians
    come from differences of mj_step over the control step. Measured 6e-7 at eps 1e-7;
    tolerance 1e-4 (contacts make eps 1e-6 give ~1e-3)."""
    inputs = start_inputs(humanoid, 0)
    actions = np.random.default_rng(0).uniform(0.8 * humanoid.action_low,
                                               0.8 * humanoid.action_high, (2, humanoid.nu))
    data = mujoco.MjData(humanoid.model)
    _, grad = return_gradient(humanoid, data, inputs[0], actions, inputs[1],
                              eps=1e-7, centered=True)
    rollouts = closing(OpenLoopRollouts(humanoid))
    reference = finite_difference_gradient(humanoid, rollouts, inputs, actions, h=1e-6)
    assert relative_error(grad, reference) < 1e-4


def test_adjoint_gradient_includes_a_terminal_value(cartpole, closing):
    """R = return + terminal(s_H): the adjoint pass starts from d terminal / dx_H. Checked
    against central differences of that objective; the terminal term moves the gradient by
    far more than the tolerance. (A float64 function of the state: TerminalValue's float32
    observations would need a coarse step, hence CEM-GD's value_eps 1e-3.)"""
    slider = cartpole.layout.qpos.start

    def terminal(states):
        final = states[:, -1]
        return 2.0 * 0.9 ** 10 * (20.0 * final[:, slider] + 5.0 * np.sin(final[:, slider + 1]))

    inputs = start_inputs(cartpole, 0)
    actions = np.random.default_rng(0).uniform(-0.8, 0.8, (10, cartpole.nu))
    data = mujoco.MjData(cartpole.model)
    ret, grad = return_gradient(cartpole, data, inputs[0], actions, inputs[1],
                                eps=1e-6, centered=True, terminal=terminal, terminal_eps=1e-6)
    _, without = return_gradient(cartpole, data, inputs[0], actions, inputs[1],
                                 eps=1e-6, centered=True)
    rollouts = closing(OpenLoopRollouts(cartpole))
    reference = finite_difference_gradient(cartpole, rollouts, inputs, actions, 1e-5, terminal)
    assert relative_error(grad, reference) < 1e-4
    assert relative_error(without, reference) > 1e-2
    states, _ = rollouts.run(inputs[0], actions[None], inputs[1])
    expected = -main_cost(cartpole, states, actions[None])[0] + terminal(states)[0]
    assert ret == pytest.approx(expected, rel=1e-12)


def test_reward_gradients_match_the_analytic_halfcheetah_terms(halfcheetah):
    """forward = w (x_{t+1} - x_t) / dt, ctrl = -c |a|^2: both states and the action."""
    rng = np.random.default_rng(0)
    inputs = start_inputs(halfcheetah, 0, random_steps=5)
    states = np.repeat(inputs[0][None, None], 4, axis=1)        # (1, 4, nstate)
    states[..., 1:10] += 0.05 * rng.standard_normal((1, 4, 9))
    actions = rng.uniform(-1, 1, (1, 3, halfcheetah.nu))
    d_now, d_next, d_action = reward_gradients(halfcheetah, states, actions)
    p = halfcheetah.params
    rootx = 0   # tangent index of qpos:rootx
    assert np.allclose(d_now[..., rootx], -p.forward_weight / halfcheetah.dt, rtol=1e-6)
    assert np.allclose(d_next[..., rootx], p.forward_weight / halfcheetah.dt, rtol=1e-6)
    assert np.allclose(np.delete(d_now, rootx, axis=-1), 0, atol=1e-6)
    assert np.allclose(d_action, -2 * p.ctrl_cost_weight * actions, atol=1e-6)


def test_reward_gradients_through_the_humanoid_free_joint(humanoid):
    """uph = z / timestep: d/d(root z) = 1 / timestep; rotations of the root do not change
    the reward; rotated states keep unit quaternions."""
    inputs = start_inputs(humanoid, 0)
    states = np.repeat(inputs[0][None, None], 3, axis=1)
    actions = np.full((1, 2, humanoid.nu), 0.1)
    d_now, d_next, d_action = reward_gradients(humanoid, states, actions)
    assert np.allclose(d_next[..., 2], 1 / humanoid.model.opt.timestep, rtol=1e-6)
    assert np.allclose(d_next[..., 3:6], 0, atol=1e-6)
    assert np.allclose(d_now, 0, atol=1e-6)
    assert np.allclose(d_action, -0.2 * actions, atol=1e-6)
    plus, minus = perturbed_states(humanoid.model, humanoid.layout, states[0], 1e-3)
    quat = humanoid.layout.qpos.start + 3
    assert np.allclose(np.linalg.norm(plus[:, 3:6, quat:quat + 4], axis=-1), 1)
    assert not np.allclose(plus[:, 3:6, quat:quat + 4], minus[:, 3:6, quat:quat + 4])


# --- line search ----------------------------------------------------------------------------

def plan_steps(task, planner, steps, seed=0):
    sim = Simulation(task)
    sim.reset(seed)
    results = []
    for _ in range(steps):
        results.append(planner.plan(*sim.plan_inputs()))
        sim.step(results[-1].action)
    return results


@pytest.mark.parametrize('eta_init', [0.05, 5.0])
def test_line_search_accepts_only_improvements(cartpole, closing, eta_init):
    """Every accepted step raises the return; a huge first step size is backtracked."""
    settings = {**SMALL, 'eta_init': eta_init, 'grad_updates': 3, 'refine': 3}
    planner = closing(make_planner(cartpole, 'cem_gd', settings, seed=0))
    accepted = []
    for result in plan_steps(cartpole, planner, 6):
        for history, steps in zip(result.info['refine_returns'], result.info['refine_steps']):
            assert np.all(np.diff(history) > 0)
            assert len(steps) == len(history) - 1
            accepted += steps
        assert -result.main_cost >= result.info['cem_best_return']
    assert accepted
    if eta_init > 1:
        assert min(accepted) < eta_init


def test_line_search_rejects_a_descent_direction(cartpole, closing, monkeypatch):
    """With the gradient's sign flipped no trial improves: nothing is accepted and the plan is
    CEM's best sample."""
    def wrong_way(*args, **kwargs):
        ret, grad = return_gradient(*args, **kwargs)
        return ret, -grad
    monkeypatch.setattr(cem_gd, 'return_gradient', wrong_way)
    planner = closing(make_planner(cartpole, 'cem_gd', SMALL, seed=0))
    for result in plan_steps(cartpole, planner, 3):
        assert all(len(h) == 1 for h in result.info['refine_returns'])
        assert not any(result.info['refine_steps'])
        assert -result.main_cost == result.info['cem_best_return']


# --- interface, schedule, seeding ------------------------------------------------------------

def test_sample_schedule_and_plan_result(cartpole, closing):
    planner = closing(make_planner(cartpole, 'cem_gd', SMALL, seed=0))
    assert planner.samples_per_step == SMALL['budget']
    first, second = plan_steps(cartpole, planner, 2)
    assert first.info['samples'] == SMALL['initial_budget']
    assert second.info['samples'] == SMALL['budget']
    planner.reset()
    assert planner.plan(*start_inputs(cartpole)).info['samples'] == SMALL['initial_budget']
    for key in ('sim_seconds', 'grad_seconds', 'plan_seconds', 'lambdas', 'rollouts'):
        assert key in second.info
    assert second.info['grad_seconds'] > 0 and second.info['sim_seconds'] > 0
    assert np.array_equal(second.action, second.sequence[0])
    assert np.all(second.sequence <= cartpole.action_high)
    assert np.all(second.sequence >= cartpole.action_low)
    # A budget above initial_budget: the first step never samples fewer than budget.
    big = closing(make_planner(cartpole, 'cem_gd', {**SMALL, 'budget': 80}, seed=0))
    assert big.plan(*start_inputs(cartpole)).info['samples'] == 80


def test_main_cost_is_the_simulated_return_of_the_sequence(cartpole, closing):
    planner = closing(make_planner(cartpole, 'cem_gd', SMALL, seed=0))
    inputs = start_inputs(cartpole)
    result = planner.plan(*inputs)
    states, _ = planner.rollouts.run(inputs[0], result.sequence[None], inputs[1])
    assert result.main_cost == main_cost(cartpole, states, result.sequence[None])[0]
    assert result.cost == result.main_cost     # no policy, no action-norm cost


def test_seeding(cartpole, closing):
    runs = {}
    for label, seed in (('a', 0), ('b', 0), ('c', 1)):
        planner = closing(make_planner(cartpole, 'cem_gd', SMALL, seed=seed))
        runs[label] = np.array([r.action for r in plan_steps(cartpole, planner, 4)])
    assert np.array_equal(runs['a'], runs['b'])
    assert not np.array_equal(runs['a'], runs['c'])
    planner = closing(make_planner(cartpole, 'cem_gd', SMALL, seed=0))
    plan_steps(cartpole, planner, 2)
    planner.reset(0)
    assert np.array_equal([r.action for r in plan_steps(cartpole, planner, 4)], runs['a'])


def test_policy_warm_start_and_sample(cartpole, closing, linear_policy):
    """sigma 0 and no gradient steps: every sample is the policy's own closed-loop sequence
    (warm-started mean), so the plan is exactly the policy's action."""
    policy = linear_policy(cartpole.obs_dim, cartpole.nu, seed=3, scale=0.3)
    settings = {**SMALL, 'sigma': 0.0, 'grad_updates': 0}
    planner = closing(make_planner(cartpole, 'cem_gd', settings, policy=policy, seed=0))
    state, warmstart = start_inputs(cartpole)
    result = planner.plan(state, warmstart)
    expected = np.clip(policy(cartpole.observe(state[None])), -1, 1)[0]
    assert np.allclose(result.action, expected)
    guided = closing(make_planner(cartpole, 'cem_gd', SMALL, policy=policy, seed=0))
    lambdas = guided.plan(state, warmstart).info['lambdas']
    assert lambdas.shape == (2,) and lambdas[0] > 0 and lambdas[1] == 0


# --- config ---------------------------------------------------------------------------------

@pytest.mark.parametrize('settings, key', [
    ({'budget': 5, 'iterations': 3, 'elites': 2}, 'planner.budget'),
    ({'refine': 60}, 'planner.refine'),
    ({'rho': 1.0}, 'planner.rho'),
    ({'eta_init': 0.0}, 'planner.eta_init'),
    ({'line_search_trials': 0}, 'planner.line_search_trials'),
    ({'grad_updates': -1}, 'planner.grad_updates'),
    ({'initial_budget': 0}, 'planner.initial_budget'),
    ({'fd_eps': 0.0}, 'planner.fd_eps'),
    ({'beta': -1.0}, 'planner.beta'),
    ({'lambda_mode': 'sometimes'}, 'planner.lambda_mode'),
    ({'horizon': 'long'}, 'planner.horizon'),
    ({'k': 2}, 'k'),
])
def test_bad_settings_name_the_key(settings, key):
    with pytest.raises(ConfigError, match=key.replace('.', r'\.')):
        planner_config('cem_gd', settings)


# --- performance and benchmark entry point ----------------------------------------------------

@pytest.mark.slow
def test_beats_random_shooting_and_plain_cem_at_equal_samples_on_cartpole(cartpole, closing):
    """A 3 s swing-up with 50 samples at every step (measured, seeds 0/1: CEM-GD 34.5/33.8,
    the same without gradient steps 30.2/30.9, random shooting 27.7/28.4)."""
    steps, same = 60, {'budget': 50, 'initial_budget': 50}
    returns = {}
    for label, name, settings in (('cem_gd', 'cem_gd', same),
                                  ('cem_only', 'cem_gd', {**same, 'grad_updates': 0}),
                                  ('random_shooting', 'random_shooting', {'budget': 50})):
        planner = closing(make_planner(cartpole, name, settings, seed=0))
        returns[label] = run_mpc(cartpole, planner, seed=0, steps=steps).ret
    assert returns['cem_gd'] > returns['random_shooting'] + 2, returns
    assert returns['cem_gd'] > returns['cem_only'] + 1, returns


def test_bench_planner_cli_runs_cem_gd(tmp_path):
    out = tmp_path / 'bench.json'
    code = cli.main(['bench', 'planner', '--planner', 'cem_gd', '--task', 'cartpole_swingup',
                     '--budget', '20', '--steps', '2', '--quiet', '--json', str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result['planner'] == 'cem_gd' and result['samples_per_step'] == 20

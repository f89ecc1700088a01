"""CEM-GD (Huang et al., CEM with gradient descent, Alg. 1) on the true MuJoCo model.

Per control step (the loop and the nominal's shift are base.Planner's):
  mean <- mid-range actions at the first step of an episode (the policy's closed-loop sequence
          with warm_start and a policy), else last step's executed sequence shifted left with
          its last action repeated; std <- sigma.
  CEM:    max(initial_budget, budget) samples at the first step after reset(), `budget`
          afterwards, split evenly over `iterations`. Samples clip(mean + noise * std) with
          colored noise (beta, 0 = white); iteration 0 replaces one sample by the mean (the
          shifted optimum) and, with a policy, one by the policy's sequence. Every iteration
          refits mean and std to the `elites` best of all samples so far (momentum alpha).
  GD:     the `refine` best samples are refined by up to `grad_updates` projected gradient
          ascent steps on the horizon return R. Each step tries eta_init * rho^j, j < J =
          line_search_trials, and accepts the first trial that strictly increases R (all
          trials are simulated in one batch); if none does, that sequence stops.
  act:    the first action of the refined sequence with the highest R.

Gradients. dR/da by an adjoint pass over the horizon through MuJoCo's transition Jacobians
(derivatives.py: mjd_transitionFD chained over frame_skip, or differences of mj_step for RK4;
reward derivatives by central differences).

Terminal value. With one set (value_model or set_terminal_value), R and J include
value_weight * discount^H V(s_H) in both stages: the CEM ranking, the line search and the
final choice compare that objective, and the adjoint pass starts from its derivative at the
final state, lambda_H = value_weight discount^H dV/dx_H, by central differences of step
value_eps (the value nets run in float32, so a step much below 1e-3 is noise).

Step size. With normalize_gradient (default) a step moves the action that changes most by
eta * (high - low) / 2, so eta_init means the same on every task; without it the step is
eta * dR/da as in the paper (whose eta_init 0.01 suits returns of order one per step).

Policy and auxiliary costs. The CEM stage ranks samples by f = J + sum_j lambda_j C_j
(evaluate.py) as iCEM does (guidance and action-norm costs, adaptive or fixed lambdas), and a
policy adds warm start (first step) and a policy sample (every step). The gradient stage and
the final choice optimize the return (with the terminal value) only: the guidance cost is not
differentiated (that would need the policy's input gradient). PlanResult.cost reports f of the
chosen sequence.

"Budget" (samples_per_step) counts CEM samples; the line search's rollouts are extra and
reported in info['rollouts']. info['sim_seconds'] is rollout physics; info['grad_seconds'] is
the gradient computation (nominal mj_step, Jacobians, reward derivatives, adjoint pass);
info['refine_returns'] / ['refine_steps'] list, per refined sequence, its return after each
accepted step and the accepted step sizes.
"""
import dataclasses
import time

import mujoco
import numpy as np

from ..config import require
from ..errors import ApexError
from .base import PlanResult
from .cem import CEMConfig, CEMPlanner, CEMSearch
from .costs import total_cost
from .derivatives import return_gradient


@dataclasses.dataclass
class CEMGDConfig(CEMConfig):
    budget: int = 50             # N_r: CEM samples per step after the first
    elites: int = 5              # samples the CEM mean and std are fitted to
    initial_budget: int = 500    # N_init: CEM samples at the first step (never below budget)
    refine: int = 2              # k: sequences refined by gradient ascent
    grad_updates: int = 2        # G: gradient steps per refined sequence
    line_search_trials: int = 4  # J: step sizes tried per gradient step
    eta_init: float = 0.3        # first step size tried
    rho: float = 0.3             # step size shrink factor: 4 trials span 0.3 ... 0.008
    normalize_gradient: bool = True  # eta in units of the action half-range (see docstring)
    fd_eps: float = 1e-6         # finite-difference step of the dynamics Jacobians
    fd_centered: bool = False    # centered differences: ~2x the Jacobian cost
    reward_eps: float = 1e-6     # finite-difference step of the reward derivatives
    value_eps: float = 1e-3      # finite-difference step of the terminal value's derivative

    def validate(self, where='planner'):
        super().validate(where)
        for key in ('initial_budget', 'refine', 'line_search_trials'):
            value = getattr(self, key)
            require(value >= 1, f'{where}.{key}', f'must be >= 1, got {value}')
        require(self.grad_updates >= 0, f'{where}.grad_updates',
                f'must be >= 0, got {self.grad_updates}')
        require(self.budget >= self.iterations * self.elites, f'{where}.budget',
                f'{self.budget} is below iterations x elites = {self.iterations} x '
                f'{self.elites}; raise the budget or lower iterations/elites')
        require(self.refine <= self.budget, f'{where}.refine',
                f'{self.refine} refined sequences > budget {self.budget} samples')
        require(self.eta_init > 0, f'{where}.eta_init', f'must be > 0, got {self.eta_init}')
        require(0 < self.rho < 1, f'{where}.rho', f'must be in (0, 1), got {self.rho}')
        for key in ('fd_eps', 'reward_eps', 'value_eps'):
            require(getattr(self, key) > 0, f'{where}.{key}', f'must be > 0, got '
                    f'{getattr(self, key)}')


@dataclasses.dataclass
class CEMGDSearch(CEMSearch):
    samples: int = 0             # CEM samples this step
    pool: np.ndarray = None      # (N, H, nu) every CEM sample so far
    J: np.ndarray = None         # (N,)
    C: np.ndarray = None         # (N, n_aux)
    order: np.ndarray = None     # pool indices by total cost, best first


class CEMGD(CEMPlanner):
    """CEM-GD: few CEM samples seed projected gradient ascent with a backtracking line search."""
    name = 'cem_gd'
    Config = CEMGDConfig
    Search = CEMGDSearch

    def __init__(self, task, config, rollouts, policy=None, seed: int = 0):
        if task.layout.extra_size:
            raise ApexError(f'planner cem_gd: its gradients cover the physics state only, and '
                            f'task {task.name} has extra state ({", ".join(task.layout.extra)});'
                            ' use icem or mppi')
        if task.drives_targets:
            raise ApexError(f'planner cem_gd: its gradients take the action as the control, '
                            f'and task {task.name} maps its action (actuate or '
                            'actuate_feedback); use icem or mppi')
        self._data = mujoco.MjData(task.model)
        super().__init__(task, config, rollouts, policy=policy, seed=seed)

    @property
    def samples_per_step(self) -> int:
        return self.cfg.budget

    # -- CEM stage --
    def begin(self, mean, policy_sequence, first_step):
        search = super().begin(mean, policy_sequence, first_step)
        cfg = self.cfg
        search.samples = max(cfg.initial_budget, cfg.budget) if first_step else cfg.budget
        return search

    def populations(self, search):
        iterations = self.cfg.iterations
        sizes = np.full(iterations, search.samples // iterations)
        sizes[:search.samples % iterations] += 1
        return sizes

    def sample(self, i, n, search):
        cfg, task = self.cfg, self.task
        samples = self.perturbed(n, search)
        if i == 0:
            extra = ([np.clip(search.mean, task.action_low, task.action_high)]
                     if cfg.add_mean else []) + (
                [search.policy_sequence]
                if search.policy_sequence is not None and cfg.policy_samples else [])
            samples[:len(extra)] = extra[:n]
        return samples

    def update(self, i, search, samples, evaluation):
        """Every iteration refits to the elites of all samples so far."""
        if i == 0:
            search.pool, search.J, search.C = samples, evaluation.J, evaluation.C
        else:
            search.pool = np.concatenate([search.pool, samples])
            search.J = np.concatenate([search.J, evaluation.J])
            search.C = np.concatenate([search.C, evaluation.C])
        _, search.order = self.rank(search, search.J, search.C)
        self.refit(search, search.pool[search.order[:self.cfg.elites]])

    # -- gradient stage --
    def _ascent_direction(self, seq, grad):
        """Projected gradient, scaled per the config; None if it cannot move the sequence."""
        task = self.task
        if not np.all(np.isfinite(grad)):
            return None
        outward = (((seq >= task.action_high) & (grad > 0))
                   | ((seq <= task.action_low) & (grad < 0)))
        grad = np.where(outward, 0.0, grad)
        largest = np.max(np.abs(grad))
        if largest == 0:
            return None
        if not self.cfg.normalize_gradient:
            return grad
        return grad / largest * (task.action_high - task.action_low) / 2

    def _terminal(self):
        """The objective's terminal term as a function of trajectories, or None."""
        value, weight = self.terminal_value, self.cfg.value_weight
        if value is None or weight == 0:
            return None
        return lambda states: weight * value.reward(states)

    def _refine(self, start, seqs, returns):
        """Up to G line-searched gradient steps per sequence. Returns the refined sequences,
        their returns, per sequence the returns after each accepted step and the accepted
        step sizes, the line search's rollout count and the gradient time."""
        cfg, task = self.cfg, self.task
        seqs, returns = seqs.copy(), returns.copy()
        history = [[float(r)] for r in returns]
        accepted = [[] for _ in returns]
        etas = cfg.eta_init * cfg.rho ** np.arange(cfg.line_search_trials)
        active = list(np.flatnonzero(np.isfinite(returns)))
        terminal = self._terminal()
        rollouts, grad_seconds = 0, 0.0
        for _ in range(cfg.grad_updates):
            trials, owners = [], []
            for i in active:
                t0 = time.perf_counter()
                _, grad = return_gradient(task, self._data, start.state, seqs[i],
                                          start.warmstart, cfg.fd_eps,
                                          cfg.fd_centered, cfg.reward_eps, terminal,
                                          cfg.value_eps)
                grad_seconds += time.perf_counter() - t0
                direction = self._ascent_direction(seqs[i], grad)
                if direction is None:
                    continue
                trials.append(np.clip(seqs[i] + etas[:, None, None] * direction,
                                      task.action_low, task.action_high))
                owners.append(i)
            if not owners:
                break
            J = self.evaluate(start, np.concatenate(trials)).J
            rollouts += len(J)
            trial_returns = -J.reshape(len(owners), len(etas))
            active = []
            for i, candidates, R in zip(owners, trials, trial_returns):
                better = np.flatnonzero(R > returns[i])
                if better.size == 0:
                    continue            # no step size improved: this sequence is done
                seqs[i], returns[i] = candidates[better[0]], R[better[0]]
                history[i].append(float(returns[i]))
                accepted[i].append(float(etas[better[0]]))
                active.append(i)
        return seqs, returns, history, accepted, rollouts, grad_seconds

    def act(self, start, search):
        top = search.order[:self.cfg.refine]
        seqs, returns, history, steps, ls_rollouts, grad_seconds = self._refine(
            start, search.pool[top], -search.J[top])
        chosen = seqs[int(np.argmax(returns))]
        final = self.evaluate(start, chosen[None])
        search.mean = chosen.copy()
        return PlanResult(
            action=chosen[0].copy(), sequence=chosen.copy(),
            cost=float(total_cost(final.J, final.C, search.lambdas)[0]),
            main_cost=float(final.J[0]),
            info={'lambdas': search.lambdas.copy(),
                  'samples': search.samples,
                  'rollouts': search.samples + ls_rollouts + 1,
                  'refine_returns': history,
                  'refine_steps': steps,
                  'cem_best_return': float(-search.J.min()),
                  'grad_seconds': grad_seconds,
                  'all_failed': not np.isfinite(final.J[0])})

"""iCEM (Pinneri et al. 2020) and iCEM_pi (APEX Alg. 1) with adaptive auxiliary costs.

Per control step:
  mean <- policy rollout (first step, warm start) or the previous mean shifted left, its last
          action from the policy at the predicted horizon end (or repeated without a policy);
  std  <- sigma everywhere.
  for i in 0..iterations-1:
      N_i = max(2k, int(N / gamma^i)) colored-noise samples clip(mean + noise * std)
      i == 0: the best fraction zeta of last step's elites, shifted by one step with a
              freshly sampled last action, are simulated too;
      i >  0: the best fraction zeta of the previous iteration's elites are re-added with
              their known costs (no re-simulation);
      last i: the mean and the policy's own closed-loop sequence replace one sample each;
      score f = J + sum lambda_j C_j (adaptive or fixed lambda), elites = k best by f;
      mean, std <- (1 - alpha) * elite fit + alpha * old.
  execute the first action of the best sequence (the best so far is carried through the
  iterations and re-scored with the current lambdas), or with act: mean that of the final mean.
"Budget" is the number of freshly sampled sequences per step, sum_i N_i.
"""
import dataclasses
import time
from pathlib import Path

import numpy as np

from ..config import require
from ..errors import ConfigError
from ..sim.rollout import closed_loop_rollout
from .base import Planner, PlanResult
from .costs import adaptive_lambdas, aux_costs, main_cost, total_cost
from .noise import colored_noise


@dataclasses.dataclass
class ICEMConfig:
    horizon: int = 30            # h
    budget: int = 100            # sampled sequences per step, over all iterations
    iterations: int = 3
    elites: int = 10             # k
    sigma: float = 0.5           # initial std
    alpha: float = 0.1           # momentum
    gamma: float = 1.25          # population decay
    keep_fraction: float = 0.3   # zeta: fraction of elites kept between iterations/steps
    beta: float = 2.0            # colored-noise exponent
    add_mean: bool = True        # add the mean as a sample in the last iteration
    act: str = 'best'            # first action of the 'best' sequence (iCEM, APEX Alg. 1) or
    #                              of the final 'mean' (as CEM does; less noisy labels)
    warm_start: bool = True      # iCEM_pi: mean from the policy (needs a policy)
    policy_samples: bool = True  # iCEM_pi: add the policy's sequence (needs a policy)
    lambda_mode: str = 'adaptive'  # 'adaptive' (APEX Eq. 4) or 'fixed' (ablation)
    guidance_c: float = 0.025    # c_j of the guidance cost (adaptive mode)
    action_norm_c: float = 0.0   # c_j of the action-norm cost (adaptive mode)
    guidance_lambda: float = 1.0     # lambda_j in fixed mode
    action_norm_lambda: float = 0.0  # lambda_j in fixed mode
    epsilon: float = 1e-6
    value_model: str = ''        # exported value ensemble (apex-ros polo): terminal value

    def validate(self, where='planner'):
        require(self.horizon >= 1, f'{where}.horizon', f'must be >= 1, got {self.horizon}')
        require(self.iterations >= 1, f'{where}.iterations',
                f'must be >= 1, got {self.iterations}')
        require(self.elites >= 1, f'{where}.elites', f'must be >= 1, got {self.elites}')
        require(self.sigma >= 0, f'{where}.sigma', f'must be >= 0, got {self.sigma}')
        require(self.beta >= 0, f'{where}.beta', f'must be >= 0, got {self.beta}')
        require(0 <= self.alpha < 1, f'{where}.alpha', f'must be in [0, 1), got {self.alpha}')
        require(self.gamma >= 1, f'{where}.gamma', f'must be >= 1, got {self.gamma}')
        require(0 <= self.keep_fraction <= 1, f'{where}.keep_fraction',
                f'must be in [0, 1], got {self.keep_fraction}')
        require(self.act in ('best', 'mean'), f'{where}.act',
                f"must be 'best' or 'mean', got {self.act!r}")
        require(self.lambda_mode in ('adaptive', 'fixed'), f'{where}.lambda_mode',
                f"must be 'adaptive' or 'fixed', got {self.lambda_mode!r}")
        for key in ('guidance_c', 'action_norm_c', 'guidance_lambda', 'action_norm_lambda'):
            require(getattr(self, key) >= 0, f'{where}.{key}', 'must be >= 0')
        require(self.epsilon > 0, f'{where}.epsilon', 'must be > 0')
        require(not self.value_model or Path(self.value_model).is_file(),
                f'{where}.value_model', f'file not found: {self.value_model}')
        minimum = population_sizes(self.elites, self.iterations, self.gamma, 0).sum()
        if self.budget < minimum:
            raise ConfigError(
                f'{where}.budget: {self.budget} is below the minimum {minimum} '
                f'(each of the {self.iterations} iterations samples at least 2 x elites = '
                f'{2 * self.elites}); raise the budget or lower elites/iterations')

    @property
    def num_samples(self) -> int:
        """N, the first iteration's population: the largest N with sum_i N_i <= budget."""
        def total(n):
            return population_sizes(self.elites, self.iterations, self.gamma, n).sum()

        n = 2 * self.elites
        while total(n + 1) <= self.budget:
            n += 1
        return n

    @property
    def populations(self) -> np.ndarray:
        return population_sizes(self.elites, self.iterations, self.gamma, self.num_samples)


def population_sizes(elites, iterations, gamma, n):
    return np.array([max(2 * elites, int(n * gamma ** -i)) for i in range(iterations)])


class _Candidates:
    """Evaluated sequences with their costs; `uid` identifies a sequence across iterations."""

    def __init__(self, actions, J, C, end, uid):
        self.actions, self.J, self.C, self.end, self.uid = actions, J, C, end, uid

    def take(self, idx):
        return _Candidates(self.actions[idx], self.J[idx], self.C[idx], self.end[idx],
                           self.uid[idx])

    @staticmethod
    def concat(parts):
        parts = [p for p in parts if p is not None and len(p.J)]
        return _Candidates(*(np.concatenate([getattr(p, f) for p in parts])
                             for f in ('actions', 'J', 'C', 'end', 'uid')))


class ICEM(Planner):
    """iCEM; with a policy, iCEM_pi (warm start, policy samples, guidance cost)."""
    name = 'icem'
    Config = ICEMConfig

    def reset(self, seed=None):
        super().reset(seed)
        self.mean = None        # (H, nu) shifted between steps
        self.memory = None      # last step's elites (_Candidates, sorted best first)
        self.best_end = None    # predicted state at the end of the last best sequence
        self._uid = 0

    @property
    def samples_per_step(self) -> int:
        return int(self.cfg.populations.sum())

    def _initial_mean(self, policy_seq):
        cfg, task = self.cfg, self.task
        use_policy = self.policy is not None and cfg.warm_start
        if self.mean is None:
            if use_policy:
                return policy_seq.copy()
            return np.tile((task.action_low + task.action_high) / 2, (cfg.horizon, 1))
        mean = np.empty_like(self.mean)
        mean[:-1] = self.mean[1:]
        if use_policy:
            obs = task.observe(self.best_end[None])
            mean[-1] = np.clip(self.policy(obs)[0], task.action_low, task.action_high)
        else:
            mean[-1] = self.mean[-1]
        return mean

    def _evaluate(self, state, warmstart, mocap, actions):
        cfg = self.cfg
        states, ok = self.rollouts.run(state, actions, warmstart, mocap)
        J = main_cost(self.task, states, actions)
        if self.terminal_value is not None:
            J = J - self.terminal_value.reward(states)
        use_guidance = self.policy is not None and (
            cfg.guidance_c > 0 if cfg.lambda_mode == 'adaptive' else cfg.guidance_lambda > 0)
        use_norm = (cfg.action_norm_c > 0 if cfg.lambda_mode == 'adaptive'
                    else cfg.action_norm_lambda > 0)
        C = aux_costs(self.task, self.policy, states, actions, use_guidance, use_norm)
        bad = ~ok | ~np.isfinite(J) | ~np.isfinite(C).all(axis=1)
        J[bad] = np.inf
        C[bad] = 0.0
        uid = np.arange(self._uid, self._uid + len(J))
        self._uid += len(J)
        return _Candidates(actions, J, C, states[:, -1], uid)

    def _lambdas(self, cand):
        cfg = self.cfg
        if cfg.lambda_mode == 'fixed':
            return np.array([cfg.guidance_lambda if self.policy is not None else 0.0,
                             cfg.action_norm_lambda])
        c = np.array([cfg.guidance_c if self.policy is not None else 0.0, cfg.action_norm_c])
        return adaptive_lambdas(cand.J, cand.C, cfg.elites, c, cfg.epsilon)

    def plan(self, state, warmstart=None, mocap=None) -> PlanResult:
        cfg, task, rng = self.cfg, self.task, self.rng
        sim_before = self.rollouts.sim_seconds
        t_start = time.perf_counter()
        H, nu = cfg.horizon, task.nu
        low, high = task.action_low, task.action_high
        n_keep = int(cfg.keep_fraction * cfg.elites)

        policy_seq = None
        first_step = self.mean is None
        if self.policy is not None and (cfg.policy_samples or (cfg.warm_start and first_step)):
            policy_seq = closed_loop_rollout(task, self.policy, state, H, warmstart, mocap)[1][0]

        mean = self._initial_mean(policy_seq)
        std = np.full((H, nu), cfg.sigma)
        kept = None          # elites carried into the next iteration
        best = None          # best sequence so far (one-row _Candidates)
        last = cfg.iterations - 1
        for i, n_i in enumerate(cfg.populations):
            noise = colored_noise(cfg.beta, (n_i, nu, H), rng).transpose(0, 2, 1)
            samples = np.clip(mean + noise * std, low, high)
            if i == last:
                row = 0
                if cfg.add_mean:
                    samples[row] = np.clip(mean, low, high)
                    row += 1
                if policy_seq is not None and cfg.policy_samples:
                    samples[row] = policy_seq
            if i == 0 and self.memory is not None and n_keep > 0:
                shifted = np.empty((n_keep, H, nu))
                shifted[:, :-1] = self.memory.actions[:n_keep, 1:]
                shifted[:, -1] = np.clip(mean[-1] + std[-1] * rng.standard_normal((n_keep, nu)),
                                         low, high)
                samples = np.concatenate([samples, shifted])
            fresh = self._evaluate(state, warmstart, mocap, samples)
            parts = [fresh, kept]
            if best is not None and (kept is None or best.uid[0] not in kept.uid):
                parts.append(best)
            cand = _Candidates.concat(parts)
            lambdas = self._lambdas(cand)
            f = total_cost(cand.J, cand.C, lambdas)
            order = np.argsort(f, kind='stable')
            best = cand.take(order[:1])
            best_f = f[order[0]]
            elites = cand.take(order[:cfg.elites])
            kept = elites.take(slice(0, n_keep)) if n_keep > 0 else None
            fit_mean = elites.actions.mean(axis=0)
            fit_std = elites.actions.std(axis=0)
            mean = (1 - cfg.alpha) * fit_mean + cfg.alpha * mean
            std = (1 - cfg.alpha) * fit_std + cfg.alpha * std

        self.mean = mean
        self.memory = elites
        self.best_end = best.end[0]
        action = best.actions[0, 0] if cfg.act == 'best' else np.clip(mean[0], low, high)
        return PlanResult(
            action=action.copy(), sequence=best.actions[0].copy(),
            cost=float(best_f), main_cost=float(best.J[0]),
            info={'lambdas': lambdas.copy(),
                  'sim_seconds': self.rollouts.sim_seconds - sim_before,
                  'plan_seconds': time.perf_counter() - t_start,
                  'all_failed': not np.isfinite(best.J[0])})

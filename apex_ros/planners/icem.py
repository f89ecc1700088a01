"""iCEM (Pinneri et al. 2020) and iCEM_pi (APEX Alg. 1) with adaptive auxiliary costs.

Per control step (the loop and the nominal's shift are base.Planner's):
  mean <- policy rollout (first step, warm start) or the previous mean shifted left, its last
          action from the policy at the predicted end of last step's best sequence (or
          repeated without a policy);
  std  <- sigma everywhere (sigma_relative: sigma x half each action's range).
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
"Budget" is the number of freshly sampled sequences per step, sum_i N_i (as the iCEM
paper and its code count it). With k = 10 and gamma = 1.25 the APEX paper's budgets are
100 = 3 iterations (N = 41: 41 + 32 + 26; the iCEM code's N = 40 gives 97) and 45 = 2
iterations (25 + 20): three iterations need at least 3 x 2k = 60.
"""
import dataclasses

import numpy as np

from ..config import require
from ..errors import ConfigError
from .base import PlanResult
from .cem import CEMConfig, CEMPlanner, CEMSearch


@dataclasses.dataclass
class ICEMConfig(CEMConfig):
    beta: float = 2.0            # colored-noise exponent
    gamma: float = 1.25          # population decay
    keep_fraction: float = 0.3   # zeta: fraction of elites kept between iterations/steps
    act: str = 'best'            # first action of the 'best' sequence (iCEM, APEX Alg. 1) or
    #                              of the final 'mean' (as CEM does; less noisy labels)

    def validate(self, where='planner'):
        super().validate(where)
        require(self.gamma >= 1, f'{where}.gamma', f'must be >= 1, got {self.gamma}')
        require(0 <= self.keep_fraction <= 1, f'{where}.keep_fraction',
                f'must be in [0, 1], got {self.keep_fraction}')
        require(self.act in ('best', 'mean'), f'{where}.act',
                f"must be 'best' or 'mean', got {self.act!r}")
        minimum = population_sizes(self.elites, self.iterations, self.gamma, 0).sum()
        if self.budget < minimum:
            raise ConfigError(
                f'{where}.budget: {self.budget} is below the minimum {minimum} '
                f'(each of the {self.iterations} iterations samples at least 2 x elites = '
                f'{2 * self.elites}); raise the budget or lower iterations/elites (the '
                f'paper\'s budget 45 with 10 elites: --set planner.iterations=2, README '
                f'"The paper\'s budgets")')

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


@dataclasses.dataclass
class ICEMSearch(CEMSearch):
    kept: _Candidates = None     # elites carried into the next iteration
    best: _Candidates = None     # best sequence so far (one row)
    best_f: float = np.inf       # its total cost
    elites: _Candidates = None   # the latest iteration's elites, best first


class ICEM(CEMPlanner):
    """iCEM; with a policy, iCEM_pi (warm start, policy samples, guidance cost)."""
    name = 'icem'
    Config = ICEMConfig
    Search = ICEMSearch

    def reset(self, seed=None):
        super().reset(seed)
        self.memory = None      # last step's elites (_Candidates, sorted best first)
        self._uid = 0

    @property
    def samples_per_step(self) -> int:
        return int(self.cfg.populations.sum())

    def populations(self, search):
        return self.cfg.populations

    def sample(self, i, n, search):
        cfg, task = self.cfg, self.task
        low, high = task.action_low, task.action_high
        samples = self.perturbed(n, search)
        if i == cfg.iterations - 1:
            row = 0
            if cfg.add_mean:
                samples[row] = np.clip(search.mean, low, high)
                row += 1
            if search.policy_sequence is not None and cfg.policy_samples:
                samples[row] = search.policy_sequence
        n_keep = int(cfg.keep_fraction * cfg.elites)
        if i == 0 and self.memory is not None and n_keep > 0:
            shifted = np.empty((n_keep, cfg.horizon, task.nu))
            shifted[:, :-1] = self.memory.actions[:n_keep, 1:]
            shifted[:, -1] = np.clip(
                search.mean[-1] + search.std[-1] * self.rng.standard_normal((n_keep, task.nu)),
                low, high)
            samples = np.concatenate([samples, shifted])
        return samples

    def update(self, i, search, samples, evaluation):
        cfg = self.cfg
        uid = np.arange(self._uid, self._uid + len(samples))
        self._uid += len(samples)
        fresh = _Candidates(samples, evaluation.J, evaluation.C, evaluation.states[:, -1], uid)
        parts = [fresh, search.kept]
        best = search.best
        if best is not None and (search.kept is None or best.uid[0] not in search.kept.uid):
            parts.append(best)
        cand = _Candidates.concat(parts)
        f, order = self.rank(search, cand.J, cand.C)
        search.best = cand.take(order[:1])
        search.best_f = f[order[0]]
        search.elites = cand.take(order[:cfg.elites])
        n_keep = int(cfg.keep_fraction * cfg.elites)
        search.kept = search.elites.take(slice(0, n_keep)) if n_keep > 0 else None
        self.refit(search, search.elites.actions)

    def act(self, start, search):
        task, best = self.task, search.best
        self.memory = search.elites
        self.nominal_end = best.end[0]
        action = (best.actions[0, 0] if self.cfg.act == 'best'
                  else np.clip(search.mean[0], task.action_low, task.action_high))
        return PlanResult(
            action=action.copy(), sequence=best.actions[0].copy(),
            cost=float(search.best_f), main_cost=float(best.J[0]),
            info={'lambdas': search.lambdas.copy(), 'all_failed': not np.isfinite(best.J[0])})

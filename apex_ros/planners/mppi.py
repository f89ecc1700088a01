"""MPPI (Williams et al. 2016), and POLO's planner: MPPI with a value-ensemble terminal value.

Per control step (the loop and the nominal's shift are base.Planner's):
  mean    <- the previous mean shifted left, its last action repeated (first step: the middle
             of the action bounds);
  samples  = clip(mean + sigma * noise), `budget` of them; noise is white (beta = 0) or
             colored along time; sample 0 is the mean itself;
  cost     = J - value_weight * discount^H V(s_H)          (objective; J = negative return)
             + sum_j lambda_j C_j                          (APEX auxiliary costs; lambda_j
                                                            over the lambda_samples best)
  weights  = softmax(-(cost - min cost) / temperature), zero for failed (diverged) samples;
  mean    <- sum_i w_i samples_i;  execute mean[0].
The updated mean is rolled out once more: its cost, predicted states and rewards go into the
PlanResult (POLO builds its value targets from them), so a step simulates budget + 1 sequences.
"""
import dataclasses

import numpy as np

from ..config import require
from .base import Planner, PlanResult, SamplingConfig, Search, perturbation_std
from .costs import total_cost
from .noise import perturbed_sequences


@dataclasses.dataclass
class MPPIConfig(SamplingConfig):
    temperature: float = 0.2     # in cost units (negative return); lower = greedier
    lambda_samples: int = 10     # k: spread of the k best samples by objective sets lambda_j

    def validate(self, where='planner'):
        super().validate(where)
        require(self.temperature > 0, f'{where}.temperature',
                f'must be > 0, got {self.temperature}')
        require(self.lambda_samples >= 2, f'{where}.lambda_samples',
                f'must be >= 2 (a spread needs two samples), got {self.lambda_samples}')


def mppi_weights(costs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(-cost / temperature) over the finite costs, zero elsewhere; sums to 1.
    With no finite cost at all the weights are uniform (the caller keeps its mean then)."""
    finite = np.isfinite(costs)
    if not finite.any():
        return np.full(len(costs), 1.0 / len(costs))
    z = np.full(len(costs), -np.inf)
    z[finite] = -(costs[finite] - costs[finite].min()) / temperature  # max exponent 0
    w = np.exp(z)
    return w / w.sum()


@dataclasses.dataclass
class MPPISearch(Search):
    lambdas: np.ndarray = None   # (n_aux,)
    cost: np.ndarray = None      # (budget,) total cost of the samples
    weights: np.ndarray = None   # (budget,)


class MPPI(Planner):
    name = 'mppi'
    Config = MPPIConfig

    @property
    def samples_per_step(self) -> int:
        return self.cfg.budget + 1

    def begin(self, mean, policy_sequence, first_step):
        return MPPISearch(mean, policy_sequence, first_step)

    def populations(self, search):
        return [self.cfg.budget]

    def sample(self, i, n, search):
        cfg, task = self.cfg, self.task
        samples = perturbed_sequences(search.mean, perturbation_std(cfg, task), cfg.beta, n,
                                      self.rng,
                                      task.action_low, task.action_high)
        samples[0] = np.clip(search.mean, task.action_low, task.action_high)
        return samples

    def update(self, i, search, samples, evaluation):
        search.lambdas = self.lambdas(evaluation.J, evaluation.C, self.cfg.lambda_samples)
        search.cost = total_cost(evaluation.J, evaluation.C, search.lambdas)
        search.weights = mppi_weights(search.cost, self.cfg.temperature)
        if np.isfinite(search.cost).any():
            # a convex combination of clipped samples stays within the action bounds
            search.mean = np.tensordot(search.weights, samples, axes=1)

    def act(self, start, search):
        mean = search.mean
        plan = self.evaluate(start, mean[None])
        return PlanResult(
            action=mean[0].copy(), sequence=mean.copy(),
            cost=float(total_cost(plan.J, plan.C, search.lambdas)[0]),
            main_cost=float(-plan.rewards[0].sum()),
            info={'lambdas': search.lambdas,
                  'weights_ess': float(1.0 / np.sum(search.weights ** 2)),
                  'best_sample_cost': float(search.cost.min()),
                  'terminal_reward': float(plan.terminal[0]),
                  'plan_states': plan.states[0], 'plan_rewards': plan.rewards[0],
                  'plan_ok': bool(np.isfinite(plan.J[0])),
                  'all_failed': not np.isfinite(search.cost).any()})


class POLO(MPPI):
    """POLO's planner (Lowrey et al. 2019): MPPI whose terminal reward is a value ensemble,
    loaded from `value_model` or set by the POLO training loop (apex_ros.learning.polo) with
    `set_terminal_value`."""
    name = 'polo'

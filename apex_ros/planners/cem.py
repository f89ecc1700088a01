"""What the cross-entropy planners (iCEM, CEM-GD) share: elites, momentum, and the policy as
a prior (warm start, policy samples; APEX Alg. 1).

Per iteration: samples clip(mean + noise * std), colored noise; rank by
f = J + sum_j lambda_j C_j with lambda_j over the `elites` best by J; refit
    mean <- (1 - alpha) mean(elites) + alpha mean,   std <- (1 - alpha) std(elites) + alpha std.
"""
import dataclasses

import numpy as np

from ..config import require
from .base import Planner, SamplingConfig, Search, perturbation_std
from .costs import total_cost
from .noise import perturbed_sequences


@dataclasses.dataclass
class CEMConfig(SamplingConfig):
    iterations: int = 3
    elites: int = 10             # k: the mean and std are fitted to them; Eq. 4's elite set
    alpha: float = 0.1           # momentum: weight of the old mean and std
    add_mean: bool = True        # sample the mean itself
    warm_start: bool = True      # first step's mean from the policy (needs a policy)
    policy_samples: bool = True  # add the policy's closed-loop sequence (needs a policy)

    def validate(self, where='planner'):
        super().validate(where)
        for key in ('iterations', 'elites'):
            require(getattr(self, key) >= 1, f'{where}.{key}',
                    f'must be >= 1, got {getattr(self, key)}')
        require(0 <= self.alpha < 1, f'{where}.alpha', f'must be in [0, 1), got {self.alpha}')


@dataclasses.dataclass
class CEMSearch(Search):
    std: np.ndarray = None       # (H, nu)
    lambdas: np.ndarray = None   # (n_aux,) of the latest ranking


class CEMPlanner(Planner):
    Config = CEMConfig
    Search = CEMSearch
    ablations = {**Planner.ablations,
                 'no_warm_start': {'warm_start': False},
                 'no_policy_samples': {'policy_samples': False}}

    @property
    def warm_start(self) -> bool:
        return self.policy is not None and self.cfg.warm_start

    @property
    def policy_samples(self) -> bool:
        return self.policy is not None and self.cfg.policy_samples

    def begin(self, mean, policy_sequence, first_step):
        return self.Search(mean, policy_sequence, first_step,
                           std=np.broadcast_to(perturbation_std(self.cfg, self.task),
                                               mean.shape).copy())

    def perturbed(self, n: int, search: CEMSearch) -> np.ndarray:
        """n samples (n, H, nu) around the search's mean with its std."""
        task, cfg = self.task, self.cfg
        return perturbed_sequences(search.mean, search.std, cfg.beta, n, self.rng,
                                   task.action_low, task.action_high)

    def rank(self, search: CEMSearch, J, C) -> tuple:
        """(f, order): total costs with the lambdas of (J, C), and the stable order by f."""
        search.lambdas = self.lambdas(J, C, self.cfg.elites)
        f = total_cost(J, C, search.lambdas)
        return f, np.argsort(f, kind='stable')

    def refit(self, search: CEMSearch, elites):
        """Move mean and std towards the elite sequences (k, H, nu), with momentum alpha."""
        alpha = self.cfg.alpha
        search.mean = (1 - alpha) * elites.mean(axis=0) + alpha * search.mean
        search.std = (1 - alpha) * elites.std(axis=0) + alpha * search.std

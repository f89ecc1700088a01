"""Random shooting: `budget` uniform action sequences, execute the first action of the one
with the lowest cost f = J + sum_j lambda_j C_j (evaluate.py; no auxiliary cost by default).
The baseline iCEM has to beat at equal budget."""
import dataclasses

import numpy as np

from ..config import require
from .base import Planner, PlannerConfig, PlanResult, Search
from .costs import total_cost


@dataclasses.dataclass
class RandomShootingConfig(PlannerConfig):
    guidance_c: float = 0.0      # unguided unless asked for: uniform samples ignore the policy
    guidance_lambda: float = 0.0
    lambda_samples: int = 10     # k: spread of the k best samples by J sets lambda_j

    def validate(self, where='planner'):
        super().validate(where)
        require(self.lambda_samples >= 2, f'{where}.lambda_samples',
                f'must be >= 2 (a spread needs two samples), got {self.lambda_samples}')


@dataclasses.dataclass
class RandomShootingSearch(Search):
    samples: np.ndarray = None   # (budget, H, nu)
    J: np.ndarray = None         # (budget,)
    f: np.ndarray = None         # (budget,) total costs
    lambdas: np.ndarray = None


class RandomShooting(Planner):
    name = 'random_shooting'
    Config = RandomShootingConfig

    @property
    def samples_per_step(self):
        return self.cfg.budget

    def begin(self, mean, policy_sequence, first_step):
        return RandomShootingSearch(mean, policy_sequence, first_step)

    def populations(self, search):
        return [self.cfg.budget]

    def sample(self, i, n, search):
        task = self.task
        return self.rng.uniform(task.action_low, task.action_high, (n, self.cfg.horizon, task.nu))

    def update(self, i, search, samples, evaluation):
        search.samples, search.J = samples, evaluation.J
        search.lambdas = self.lambdas(evaluation.J, evaluation.C, self.cfg.lambda_samples)
        search.f = total_cost(evaluation.J, evaluation.C, search.lambdas)

    def act(self, start, search):
        b = int(np.argmin(search.f))
        return PlanResult(action=search.samples[b, 0].copy(), sequence=search.samples[b].copy(),
                          cost=float(search.f[b]), main_cost=float(search.J[b]),
                          info={'lambdas': search.lambdas,
                                'all_failed': not np.isfinite(search.J[b])})

"""Random shooting: `budget` uniform action sequences, execute the best one's first action.
The baseline iCEM has to beat at equal budget."""
import dataclasses

import numpy as np

from ..config import require
from .base import Planner, PlanResult
from .costs import main_cost


@dataclasses.dataclass
class RandomShootingConfig:
    horizon: int = 30
    budget: int = 100

    def validate(self, where='planner'):
        require(self.horizon >= 1, f'{where}.horizon', f'must be >= 1, got {self.horizon}')
        require(self.budget >= 1, f'{where}.budget', f'must be >= 1, got {self.budget}')


class RandomShooting(Planner):
    name = 'random_shooting'
    Config = RandomShootingConfig

    @property
    def samples_per_step(self):
        return self.cfg.budget

    def plan(self, state, warmstart=None, mocap=None):
        task, cfg = self.task, self.cfg
        sim_before = self.rollouts.sim_seconds
        actions = self.rng.uniform(task.action_low, task.action_high,
                                   (cfg.budget, cfg.horizon, task.nu))
        states, ok = self.rollouts.run(state, actions, warmstart, mocap)
        J = main_cost(task, states, actions)
        J[~ok | ~np.isfinite(J)] = np.inf
        b = int(np.argmin(J))
        return PlanResult(action=actions[b, 0].copy(), sequence=actions[b].copy(),
                          cost=float(J[b]), main_cost=float(J[b]),
                          info={'sim_seconds': self.rollouts.sim_seconds - sim_before})

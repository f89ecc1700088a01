"""Planner registry: every planner is a base.Planner (the loop) with its own sample/update/act
and a Config extending base.PlannerConfig."""
from ..config import from_dict
from ..errors import ApexError
from ..sim.rollout import OpenLoopRollouts
from .base import Planner, PlannerConfig, PlanResult
from .cem_gd import CEMGD
from .icem import ICEM, ICEMConfig
from .mppi import MPPI, POLO
from .random_shooting import RandomShooting

PLANNERS = {cls.name: cls for cls in (
    ICEM,
    RandomShooting,
    CEMGD,
    MPPI,
    POLO,
)}


def planner_class(name: str) -> type:
    if name not in PLANNERS:
        raise ApexError(f'unknown planner {name!r}; known planners: {", ".join(sorted(PLANNERS))}')
    return PLANNERS[name]


def planner_config(name: str, settings: dict | None = None, where: str = 'planner'):
    """Typed, validated config of planner `name` from a mapping of its settings."""
    return from_dict(planner_class(name).Config, settings or {}, where)


def make_planner(task, name: str = 'icem', settings: dict | None = None, threads: int = 1,
                 policy=None, seed: int = 0, rollouts=None) -> Planner:
    cls = planner_class(name)
    cfg = settings if isinstance(settings, cls.Config) else planner_config(name, settings)
    rollouts = rollouts or OpenLoopRollouts(task, threads)
    return cls(task, cfg, rollouts, policy=policy, seed=seed)


__all__ = ['PLANNERS', 'Planner', 'PlannerConfig', 'PlanResult', 'ICEM', 'ICEMConfig',
           'make_planner', 'planner_class', 'planner_config']

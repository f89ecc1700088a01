"""A run's configuration: config/<task>.yaml (or a user file) -> task, planner, rollout.

    task:     {name, episode_steps, params: {reward weights ...}}
    planner:  {name: icem, horizon, budget, beta, ...}   (keys of the planner's Config)
    planners: {cem_gd: {...}, mppi: {...}}   optional settings of other planners, used when
              one is selected instead (`--planner`); horizon and budget carry over
    rollout:  {threads}
    seed:    0
Later sections (apex, ...) are read by the code that needs them from `RunConfig.extra`.
"""
import dataclasses
from pathlib import Path

from ..errors import ApexError
from ..planners import make_planner, planner_class, planner_config
from ..resources import config_path
from ..tasks import task_class
from . import ConfigError, from_dict, load_yaml


@dataclasses.dataclass
class TaskSection:
    name: str
    episode_steps: int | None = None
    params: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class RolloutSection:
    threads: int = 1

    def validate(self, where):
        if self.threads < 1:
            raise ConfigError(f'{where}.threads: must be >= 1, got {self.threads}')


@dataclasses.dataclass
class RunConfig:
    path: Path
    task: TaskSection
    planner_name: str
    planner: object
    rollout: RolloutSection
    seed: int
    extra: dict

    def make_task(self):
        where = f'{self.path}: task.params'
        return task_class(self.task.name)(self.task.params, self.task.episode_steps, where=where)

    def make_planner(self, task, policy=None, seed=None, threads=None):
        return make_planner(task, self.planner_name, self.planner,
                            threads=threads or self.rollout.threads, policy=policy,
                            seed=self.seed if seed is None else seed)

    # SHIM (apex branch): the typed sections the config helper adds, read from `extra`
    @property
    def apex(self):
        from ..learning.apex.config import ApexConfig
        return from_dict(ApexConfig, self.extra.get('apex'), f'{self.path}: apex')

    @property
    def train(self):
        from ..learning.student import TrainConfig
        return from_dict(TrainConfig, self.extra.get('train'), f'{self.path}: train')

    @property
    def value(self):
        from ..learning.value import ValueConfig
        return from_dict(ValueConfig, self.extra.get('value'), f'{self.path}: value')

    schedule = ()

    def to_dict(self) -> dict:
        return {'task': dataclasses.asdict(self.task),
                'planner': {'name': self.planner_name, **dataclasses.asdict(self.planner)},
                'rollout': dataclasses.asdict(self.rollout), 'seed': self.seed,
                'apex': dataclasses.asdict(self.apex), 'train': dataclasses.asdict(self.train),
                'value': dataclasses.asdict(self.value)}

    def at_iteration(self, iteration: int):
        return self


KNOWN_SECTIONS = ('task', 'planner', 'planners', 'rollout', 'seed')
SHARED_PLANNER_KEYS = ('horizon', 'budget')
EXTRA_SECTIONS = ('apex', 'train', 'value')


def _registered(lookup, name, where):
    try:
        return lookup(name)
    except ApexError as e:
        raise ConfigError(f'{where}: {e}') from None


def default_config_path(task_name: str) -> Path:
    task_class(task_name)  # unknown task -> error listing the known ones
    return config_path(f'{task_name}.yaml')


def load_run_config(task_name: str | None = None, path=None, overrides: dict | None = None,
                    planner: str | None = None):
    """Read `path` (default config/<task>.yaml). `overrides` = {'planner': {...}, ...} are
    applied on top of the file, as the CLI's flags do. `planner` selects another planner than
    the file's `planner.name` (its settings: `planners.<name>` plus horizon and budget)."""
    if path is None:
        if task_name is None:
            raise ConfigError('give a task name or a config file')
        path = default_config_path(task_name)
    path = Path(path)
    data = load_yaml(path)
    for section, values in (overrides or {}).items():
        if isinstance(values, dict):
            data.setdefault(section, {})
            data[section] = {**(data[section] or {}), **values}
        else:
            data[section] = values
    unknown = sorted(set(data) - set(KNOWN_SECTIONS) - set(EXTRA_SECTIONS))
    if unknown:
        raise ConfigError(f'{path}: unknown section(s) {", ".join(unknown)}; known: '
                          f'{", ".join(KNOWN_SECTIONS + EXTRA_SECTIONS)}')
    if 'task' not in data:
        raise ConfigError(f'{path}: task: required section is missing')
    task = from_dict(TaskSection, data['task'], f'{path}: task')
    if task_name is not None and task.name != task_name:
        raise ConfigError(f'{path}: task.name is {task.name!r} but the command asked for '
                          f'{task_name!r}')
    cls = _registered(task_class, task.name, f'{path}: task.name')
    if task.episode_steps is not None and task.episode_steps < 1:
        raise ConfigError(f'{path}: task.episode_steps: must be >= 1, got {task.episode_steps}')
    from_dict(cls.Params, task.params, f'{path}: task.params')  # reject bad weights now
    planner_settings = dict(data.get('planner') or {})
    planner_name = planner_settings.pop('name', 'icem')
    if not isinstance(planner_name, str):
        raise ConfigError(f'{path}: planner.name: expected a string, got {planner_name!r}')
    where = f'{path}: planner'
    _registered(planner_class, planner_name, f'{where}.name')
    if planner is not None and planner != planner_name:
        others = data.get('planners') or {}
        if not isinstance(others, dict):
            raise ConfigError(f'{path}: planners: expected a mapping of planner name to settings')
        fields = {f.name for f in dataclasses.fields(planner_class(planner).Config)}
        shared = {k: v for k, v in planner_settings.items()
                  if k in SHARED_PLANNER_KEYS and k in fields}
        own = overrides.get('planner', {}) if overrides else {}
        planner_settings = {**shared, **(others.get(planner) or {}),
                            **{k: v for k, v in own.items() if k in fields}}
        planner_name, where = planner, f'{path}: planners.{planner}'
    planner_cfg = planner_config(planner_name, planner_settings, where)
    rollout = from_dict(RolloutSection, data.get('rollout'), f'{path}: rollout')
    seed = data.get('seed', 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f'{path}: seed: expected an integer, got {seed!r}')
    extra = {k: data[k] for k in EXTRA_SECTIONS if k in data}
    return RunConfig(path, task, planner_name, planner_cfg, rollout, seed, extra)

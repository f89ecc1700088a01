"""A run's configuration: config/<task>.yaml (or a user file) -> typed sections.

    base:     other.yaml     optional: start from that file (config/layers.py)
    task:     {name, episode_steps, params: {...}}    params: the task's Params
    planner:  {name: icem, horizon, budget, ...}      the keys of that planner's Config
    planners: {cem_gd: {...}, mppi: {...}}   settings of other planners, used when one is
              selected instead (`--planner`); horizon and budget carry over from planner:
    rollout:  {threads}
    workers:  WorkersConfig (workers/config.py): where episodes run, local or on Ray
    apex:     ApexConfig (learning/apex/config.py)
    train:    TrainConfig (learning/train_config.py)
    value:    ValueConfig (learning/value.py)
    seed:     0
    schedule: settings that change at given APEX iterations (config/schedule.py)

Defaults live in the dataclasses; a file holds only what differs from them. Every section is
checked when the file is loaded, whatever the command: an unknown key or a wrong value fails
naming `file: section.key` (or `--set section.key` for a command-line setting).
A new section is one row of SECTIONS plus its field on RunConfig.
"""
import copy
import dataclasses
import importlib
from pathlib import Path
from typing import Any

from ..errors import ApexError
from ..planners import make_planner, planner_class, planner_config
from ..resources import config_path
from ..tasks import TASKS, task_class, task_config_file
from . import ConfigError, check_value, from_dict
from .layers import deep_merge, load_chain, parse_set, set_dotted
from .schedule import ScheduleEntry, parse_schedule


@dataclasses.dataclass
class TaskSection:
    name: str
    episode_steps: int | None = None   # None: the task's own; resolved to it at load
    params: Any = None                 # a mapping in the file; the task's Params once loaded


@dataclasses.dataclass
class RolloutSection:
    threads: int = 1

    def validate(self, where):
        if self.threads < 1:
            raise ConfigError(f'{where}.threads: must be >= 1, got {self.threads}')


# section -> its dataclass, as 'module:Class' (imported when a config is loaded)
SECTIONS = {
    'rollout': 'apex_ros.config.run:RolloutSection',
    'workers': 'apex_ros.workers.config:WorkersConfig',
    'apex': 'apex_ros.learning.apex:ApexConfig',
    'train': 'apex_ros.learning.train_config:TrainConfig',
    'value': 'apex_ros.learning.value:ValueConfig',
}
ALL_SECTIONS = ('task', 'planner', 'planners', *SECTIONS, 'seed', 'schedule')
SHARED_PLANNER_KEYS = ('horizon', 'budget')


def section_class(name: str) -> type:
    module, _, cls = SECTIONS[name].partition(':')
    return getattr(importlib.import_module(module), cls)


@dataclasses.dataclass
class RunConfig:
    path: Path
    task: TaskSection
    planner_name: str
    planner: object                 # the selected planner's Config
    planners: dict                  # name -> Config of the other planners given
    rollout: RolloutSection
    workers: object                 # WorkersConfig
    apex: object                    # ApexConfig
    train: object                   # TrainConfig
    value: object                   # ValueConfig
    seed: int
    schedule: tuple = ()            # (ScheduleEntry, ...), in increasing from_iteration
    unscheduled: dict = dataclasses.field(default=None, repr=False, compare=False)
    entries_applied: int = dataclasses.field(default=0, repr=False, compare=False)

    def make_task(self):
        where = f'{self.path}: task.params'
        return task_class(self.task.name)(dataclasses.asdict(self.task.params),
                                          self.task.episode_steps, where=where)

    def make_planner(self, task, policy=None, seed=None, threads=None):
        return make_planner(task, self.planner_name, self.planner,
                            threads=threads or self.rollout.threads, policy=policy,
                            seed=self.seed if seed is None else seed)

    def to_dict(self) -> dict:
        """The resolved config as plain data, in section order; loading it gives this config."""
        return {
            'task': {'name': self.task.name, 'episode_steps': self.task.episode_steps,
                     'params': dataclasses.asdict(self.task.params)},
            'planner': {'name': self.planner_name, **dataclasses.asdict(self.planner)},
            'planners': {n: dataclasses.asdict(c) for n, c in self.planners.items()},
            **{name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS},
            'seed': self.seed,
            'schedule': [{'from_iteration': e.from_iteration, 'set': dict(e.set)}
                         for e in self.schedule],
        }

    def at_iteration(self, iteration: int) -> 'RunConfig':
        """The config of 1-based APEX iteration `iteration`: every schedule entry with
        from_iteration <= iteration applied, in order."""
        entries = [e for e in self.schedule if e.from_iteration <= iteration]
        if len(entries) == self.entries_applied:
            return self
        data = copy.deepcopy(self.unscheduled)
        for entry in entries:
            for key, value in entry.set.items():
                set_dotted(data, key, value, f'{self.path}: schedule')
        cfg = _resolve(self.path, data, f'{self.path}: schedule ')
        cfg.schedule, cfg.unscheduled = self.schedule, self.unscheduled
        cfg.entries_applied = len(entries)
        return cfg


def _registered(lookup, name, where):
    try:
        return lookup(name)
    except ApexError as e:
        raise ConfigError(f'{where}: {e}') from None


def _mapping(value, where) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f'{where}: expected a mapping, got {value!r}')
    return value


def _resolve(path, data: dict, prefix: str, select: str | None = None) -> RunConfig:
    """Typed RunConfig of merged data; errors start with `prefix` ('file.yaml: ', '--set ').
    `select`: a planner to use instead of planner.name (its settings: planners.<select>)."""
    unknown = [str(k) for k in data if k not in ALL_SECTIONS]
    if unknown:
        raise ConfigError(f'{prefix}unknown section(s) {", ".join(unknown)}; known: '
                          f'{", ".join(ALL_SECTIONS)}')
    if 'task' not in data:
        raise ConfigError(f'{prefix}task: required section is missing')
    task = from_dict(TaskSection, data['task'], f'{prefix}task')
    cls = _registered(task_class, task.name, f'{prefix}task.name')
    if task.episode_steps is not None and task.episode_steps < 1:
        raise ConfigError(f'{prefix}task.episode_steps: must be >= 1, got {task.episode_steps}')
    task = TaskSection(task.name, task.episode_steps or cls.episode_steps,
                       from_dict(cls.Params, task.params, f'{prefix}task.params'))

    settings = dict(_mapping(data.get('planner'), f'{prefix}planner'))
    name = settings.pop('name', 'icem')
    if not isinstance(name, str):
        raise ConfigError(f'{prefix}planner.name: expected a string, got {name!r}')
    _registered(planner_class, name, f'{prefix}planner.name')
    planner = planner_config(name, settings, f'{prefix}planner')
    others = _mapping(data.get('planners'), f'{prefix}planners')
    if name in others:
        raise ConfigError(f'{prefix}planners.{name}: the settings of planner.name ({name}) '
                          'belong in the planner section')
    shared = {k: v for k, v in settings.items() if k in SHARED_PLANNER_KEYS}
    planners = {}
    for other, values in others.items():
        where = f'{prefix}planners.{other}'
        fields = {f.name for f in dataclasses.fields(_registered(planner_class, other, where)
                                                     .Config)}
        planners[other] = planner_config(
            other, {**{k: v for k, v in shared.items() if k in fields},
                    **_mapping(values, where)}, where)
    if select is not None and select != name:
        where = f'{prefix}planners.{select}'
        fields = {f.name for f in dataclasses.fields(_registered(planner_class, select,
                                                                 '--planner').Config)}
        chosen = planners.pop(select, None) or planner_config(
            select, {k: v for k, v in shared.items() if k in fields}, where)
        planners = {name: planner, **planners}
        name, planner = select, chosen

    sections = {s: from_dict(section_class(s), data.get(s), f'{prefix}{s}') for s in SECTIONS}
    seed = check_value(data.get('seed', 0), int, f'{prefix}seed')
    schedule = parse_schedule(data.get('schedule'), f'{prefix}schedule')
    return RunConfig(Path(path), task, name, planner, planners, seed=seed, schedule=schedule,
                     **sections)


def _known_keys(parts: list, data: dict) -> tuple:
    """(the mapping key path that parts[-1] is looked up in, its known keys), or None when
    the key cannot be checked here (a registry name that _resolve reports)."""
    section, depth = parts[0], len(parts)
    if section in ('seed', 'schedule'):
        return section, ()
    if section == 'task':
        if depth == 2:
            return 'task', [f.name for f in dataclasses.fields(TaskSection)]
        if parts[1] != 'params' or depth > 3:
            return '.'.join(parts[:-1]), ()
        name = _mapping(data.get('task'), 'task').get('name')
        try:
            return 'task.params', [f.name for f in dataclasses.fields(task_class(name).Params)]
        except ApexError:
            return None
    if section == 'planner':
        if depth > 2:
            return '.'.join(parts[:-1]), ()
        name = _mapping(data.get('planner'), 'planner').get('name', 'icem')
        try:
            return 'planner', ['name'] + [f.name for f in dataclasses.fields(
                planner_class(name).Config)]
        except ApexError:
            return None
    if section == 'planners':
        if depth == 2:
            return None   # a planner name: checked against the registry when resolved
        if depth > 3:
            return '.'.join(parts[:-1]), ()
        try:
            return f'planners.{parts[1]}', [f.name for f in dataclasses.fields(
                planner_class(parts[1]).Config)]
        except ApexError:
            return None
    if depth > 2:
        return '.'.join(parts[:-1]), ()
    return section, [f.name for f in dataclasses.fields(section_class(section))]


def check_key(key: str, data: dict, where: str):
    """Refuse dotted `key` unless it names a setting of the config `data`; the error
    starts with `where` + key ('--set apex.iteratons: unknown key; ...')."""
    parts = key.split('.')
    if parts[0] not in ALL_SECTIONS:
        raise ConfigError(f'{where}{key}: unknown section {parts[0]!r}; known: '
                          f'{", ".join(ALL_SECTIONS)}')
    if len(parts) == 1:
        return
    known = _known_keys(parts, data)
    if known is None:
        return
    parent, keys = known
    if not keys:
        raise ConfigError(f'{where}{key}: {parent} has no keys below it')
    if parts[-1] not in keys:
        raise ConfigError(f'{where}{key}: unknown key; known keys of {parent}: '
                          f'{", ".join(keys)}')


def apply_settings(data: dict, items, where: str, select: str | None = None) -> dict:
    """`data` with (dotted key, value) pairs set, each key checked first. With another planner
    selected (`select`), planner.* keys set that planner's settings (planners.<select>.*)."""
    data = copy.deepcopy(data)
    for key, value in items:
        name = _mapping(data.get('planner'), 'planner').get('name', 'icem')
        if select is not None and select != name and key.startswith('planner.') \
                and key != 'planner.name':
            key = f'planners.{select}.{key[len("planner."):]}'
        check_key(key, data, where)
        set_dotted(data, key, value, f'{where}{key}')
    return data


def _flatten(overrides: dict, prefix='') -> list:
    out = []
    for key, value in overrides.items():
        dotted = f'{prefix}{key}'
        if isinstance(value, dict) and value:
            out += _flatten(value, dotted + '.')
        else:
            out.append((dotted, value))
    return out


def _with_schedule_checked(cfg: RunConfig, prefix: str) -> RunConfig:
    """Apply the schedule's entries cumulatively, each checked; `prefix` names its file."""
    cfg.unscheduled = cfg.to_dict()
    del cfg.unscheduled['schedule']
    data = copy.deepcopy(cfg.unscheduled)
    for i, entry in enumerate(cfg.schedule):
        where = f'{prefix}schedule[{i}].set.'
        data = apply_settings(data, entry.set.items(), where)
        _resolve(cfg.path, data, where)
    return cfg


def default_config_path(task_name: str) -> Path | None:
    """config/<task>.yaml for a built-in task; a task from another package: the file its class
    names (`config_file`), or None (the defaults)."""
    if task_name in TASKS:
        return config_path(f'{task_name}.yaml')
    return task_config_file(task_name)   # unknown task -> error listing the known ones


def as_resolved_now(data: dict, where: str) -> dict:
    """A resolved config stored earlier (a checkpoint's) as this code resolves it: settings
    added since it was stored take their defaults, so a field added later at its default is no
    difference. Data this code no longer accepts (a setting since removed) is returned as
    stored, so that the difference shows."""
    try:
        return _resolve(Path(where), copy.deepcopy(data), f'{where}: ').to_dict()
    except ConfigError:
        return data


def load_run_config(task_name: str | None = None, path=None, overrides: dict | None = None,
                    planner: str | None = None, sets=()) -> RunConfig:
    """Read `path` (default config/<task>.yaml) with its `base:` chain, then `overrides`
    ({'planner': {'budget': 60}, 'seed': 3}, nested mappings set key by key) and `sets`
    (['planner.budget=60', ...], as --set gives them). `planner` selects another planner
    than the file's planner.name (its settings: `planners.<name>` plus horizon and budget;
    planner.* overrides and sets then apply to it). Each layer is checked as it is applied, so
    an error names the file, or the --set, that caused it."""
    if path is None:
        if task_name is None:
            raise ConfigError('give a task name or a config file')
        path = default_config_path(task_name)
    if path is None:  # a task without a config file: its defaults
        path, chain = Path(f'<defaults of {task_name}>'), [(None, {'task': {'name': task_name}})]
    else:
        path = Path(path)
        chain = load_chain(path)
    data, schedule_prefix = {}, f'{path}: '
    for file, layer in chain[:-1]:
        data = deep_merge(data, layer)
        schedule_prefix = f'{file}: ' if 'schedule' in layer else schedule_prefix
        if 'task' in data:
            _resolve(file, data, f'{file}: ')
    data = deep_merge(data, chain[-1][1])
    schedule_prefix = f'{path}: ' if 'schedule' in chain[-1][1] else schedule_prefix
    cfg = _resolve(path, data, f'{path}: ')
    if overrides or planner is not None:
        data = apply_settings(data, _flatten(overrides or {}), f'{path}: ', planner)
        cfg = _resolve(path, data, f'{path}: ', planner)
    if sets:
        items = [parse_set(item) for item in sets]
        data = apply_settings(data, items, '--set ', planner)
        cfg = _resolve(path, data, '--set ', planner)
        if any(key == 'schedule' for key, _ in items):
            schedule_prefix = '--set '
    if task_name is not None and cfg.task.name != task_name:
        raise ConfigError(f'{path}: task.name is {cfg.task.name!r} but the command asked for '
                          f'{task_name!r}')
    return _with_schedule_checked(cfg, schedule_prefix)


__all__ = ['RunConfig', 'ScheduleEntry', 'TaskSection', 'RolloutSection', 'SECTIONS',
           'as_resolved_now', 'load_run_config', 'default_config_path', 'check_key',
           'apply_settings']

"""Settings that change at given APEX iterations (the `schedule:` section).

    schedule:
      - from_iteration: 51        # 1-based APEX iteration from which these apply (inclusive)
        set: {planner.sigma: 0.2, apex.expert_action_noise: 0.15}
      - from_iteration: 76
        set: {train.reinit: false}

Keys are written as for `--set`; entries apply cumulatively, in increasing from_iteration.
Only the expert (planner), the loop (apex, except its iteration count) and the training
(train) may change during a run. Here the entries' form is checked; their keys and values
are checked by applying them (config/run.py).
"""
import dataclasses

from ..errors import ConfigError

SCHEDULED_SECTIONS = ('planner', 'apex', 'train')
FIXED_KEYS = ('apex.iterations', 'planner.name')


@dataclasses.dataclass(frozen=True)
class ScheduleEntry:
    from_iteration: int   # 1-based APEX iteration
    set: dict             # dotted key ('planner.sigma') -> value


def parse_schedule(entries, where: str) -> tuple:
    """The `schedule:` value -> (ScheduleEntry, ...); `where` is e.g. 'run.yaml: schedule'."""
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise ConfigError(f'{where}: expected a list of {{from_iteration, set}} entries, '
                          f'got {entries!r}')
    out = []
    for i, entry in enumerate(entries):
        at = f'{where}[{i}]'
        if not isinstance(entry, dict):
            raise ConfigError(f'{at}: expected a mapping {{from_iteration, set}}, got {entry!r}')
        unknown = sorted(set(entry) - {'from_iteration', 'set'})
        if unknown:
            raise ConfigError(f'{at}: unknown key(s) {", ".join(map(str, unknown))}; '
                              'known keys: from_iteration, set')
        first = entry.get('from_iteration')
        if isinstance(first, bool) or not isinstance(first, int) or first < 1:
            raise ConfigError(f'{at}.from_iteration: expected an APEX iteration >= 1 '
                              f'(1-based), got {first!r}')
        if out and first <= out[-1].from_iteration:
            raise ConfigError(f'{at}.from_iteration: entries must be in increasing '
                              f'from_iteration order, got {first} after '
                              f'{out[-1].from_iteration}')
        settings = entry.get('set')
        if not isinstance(settings, dict) or not settings:
            raise ConfigError(f'{at}.set: expected a mapping of section.key: value, '
                              f'got {settings!r}')
        for key in settings:
            section = str(key).split('.')[0]
            if not isinstance(key, str) or '.' not in key:
                raise ConfigError(f'{at}.set.{key}: write section.key (e.g. planner.sigma)')
            if section not in SCHEDULED_SECTIONS:
                raise ConfigError(f'{at}.set.{key}: only {", ".join(SCHEDULED_SECTIONS)} '
                                  'settings can change during a run')
            if key in FIXED_KEYS:
                raise ConfigError(f'{at}.set.{key}: cannot change during a run')
        out.append(ScheduleEntry(first, dict(settings)))
    return tuple(out)

"""What differs between two resolved configs (RunConfig.to_dict()), one line per key."""

ABSENT = '(absent)'


def _leaves(data, prefix=''):
    """{'planner.sigma': 0.5, ...}: dotted key -> value of every non-mapping value."""
    if not isinstance(data, dict) or (prefix and not data):
        return {prefix: data}
    out = {}
    for key, value in data.items():
        out.update(_leaves(value, f'{prefix}.{key}' if prefix else str(key)))
    return out


def config_differences(old: dict, new: dict) -> list:
    """['planner.sigma: 0.5 -> 0.2', 'train.reinit: (absent) -> true', ...] for every dotted
    key whose value differs, in `new`'s key order, then keys only `old` has. [] if equal."""
    before, after = _leaves(old), _leaves(new)
    keys = list(after) + [k for k in before if k not in after]
    return [f'{k}: {_show(before.get(k, ABSENT))} -> {_show(after.get(k, ABSENT))}'
            for k in keys if k not in before or k not in after or before[k] != after[k]]


def _show(value) -> str:
    if value is ABSENT:
        return ABSENT
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return repr(value) if isinstance(value, str) else str(value)

"""Config layers: a file with its `base:` chain, and `--set section.key=value` items.

A file may start from another one and hold only its differences:

    base: halfcheetah_run.yaml      # path relative to this file; the base may have a base
    planner:
      sigma: 0.2

Mappings merge key by key (deepest wins); lists and scalars are replaced. A file that names
another planner than its base (`planner.name`) replaces the base's planner section, whose
other keys belong to the base's planner.
"""
import copy
from pathlib import Path

import yaml

from ..errors import ConfigError
from . import load_yaml


def load_chain(path) -> list:
    """[(path, data)] from the root of `path`'s base chain to `path` itself; `data` without
    its `base` key."""
    chain, seen = [], []
    path = Path(path)
    while True:
        resolved = path.resolve()
        if resolved in seen:
            cycle = ' -> '.join(str(p) for p in [*seen[seen.index(resolved):], resolved])
            raise ConfigError(f'{chain[-1][0]}: base: cycle {cycle}')
        seen.append(resolved)
        if chain and not path.is_file():
            raise ConfigError(f'{chain[-1][0]}: base: file not found: {path}')
        data = load_yaml(path)
        base = data.pop('base', None)
        chain.append((path, data))
        if base is None:
            return chain[::-1]
        if not isinstance(base, str) or not base:
            raise ConfigError(f'{path}: base: expected a file name, got {base!r}')
        path = path.parent / base


def deep_merge(base: dict, changes: dict) -> dict:
    """`base` with `changes` on top (neither is modified)."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not (
                key == 'planner' and value.get('name', out[key].get('name'))
                != out[key].get('name')):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_set(item: str) -> tuple:
    """'section.key=value' -> ('section.key', value parsed as YAML: 3, 0.5, true, [64, 64])."""
    key, sep, text = item.partition('=')
    key = key.strip()
    if not sep or not key or any(not part for part in key.split('.')):
        raise ConfigError(f'--set {item}: write section.key=value')
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f'--set {key}: value {text!r} is not valid YAML: '
                          f'{str(e).splitlines()[0]}') from None
    return key, value


def split_sets(text: str) -> list:
    """A launch argument 'apex.iterations=3,planner.budget=60' (',' or ';' between items)
    -> ['apex.iterations=3', 'planner.budget=60']. A list value keeps its commas."""
    items, depth, current = [], 0, ''
    for ch in text:
        depth += ch in '[{'
        depth -= ch in ']}'
        if ch in ',;' and depth == 0:
            items.append(current)
            current = ''
        else:
            current += ch
    items.append(current)
    return [item.strip() for item in items if item.strip() not in ('', "''")]


def set_dotted(data: dict, key: str, value, where: str):
    """data[a][b][c] = value for key 'a.b.c' (missing mappings are created)."""
    *parents, last = key.split('.')
    node = data
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f'{where}: {".".join(parents[:i + 1])} is not a mapping')
        node = child
    node[last] = copy.deepcopy(value)

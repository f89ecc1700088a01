"""YAML config files -> typed dataclasses, with errors that name the file and the key.

A config file has one section per concern (task, planner, rollout, ...). Each section is a
dataclass; `from_dict` rejects unknown keys, missing required keys and wrongly typed values,
naming them as `file: section.key`.
"""
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError


def load_yaml(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f'{path}: config file not found')
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f'{path}: malformed YAML: {e}') from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: top level must be a mapping, got {type(data).__name__}')
    return data


def check_value(value, annotation, where: str):
    """`value` checked against type `annotation` (int, float, bool, str, list[X], dict,
    X | None, a dataclass); ints are accepted as floats. Errors name `where`."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f'{where}: expected a number, got {value!r}')
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f'{where}: expected an integer, got {value!r}')
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f'{where}: expected true or false, got {value!r}')
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f'{where}: expected a string, got {value!r}')
        return value
    if origin is list or annotation is list:
        if not isinstance(value, list):
            raise ConfigError(f'{where}: expected a list, got {value!r}')
        inner = typing.get_args(annotation)
        return [check_value(v, inner[0], f'{where}[{i}]') if inner else v
                for i, v in enumerate(value)]
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise ConfigError(f'{where}: expected a mapping, got {value!r}')
        return dict(value)
    if origin is typing.Union or origin is types.UnionType:  # Optional[X], X | None
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None:
            return None
        return check_value(value, args[0], where)
    if dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value, where)
    return value


def from_dict(cls, data, where: str):
    """Build dataclass `cls` from mapping `data`; `where` prefixes error messages."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f'{where}: expected a mapping, got {data!r}')
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f'{where}: unknown key(s) {", ".join(unknown)}; '
                          f'known keys: {", ".join(fields)}')
    kwargs = {}
    for name, f in fields.items():
        key = f'{where}.{name}'
        if name in data:
            kwargs[name] = check_value(data[name], hints[name], key)
        elif (f.default is dataclasses.MISSING
              and f.default_factory is dataclasses.MISSING):
            raise ConfigError(f'{key}: required key is missing')
    obj = cls(**kwargs)
    check = getattr(obj, 'validate', None)
    if check is not None:
        check(where)
    return obj


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def require(cond: bool, where: str, message: str):
    """Raise ConfigError(`where: message`) unless `cond`."""
    if not cond:
        raise ConfigError(f'{where}: {message}')

"""Configurations <-> JSON dicts: frozen dataclasses round-tripped through plain dicts.

`config_to_dict` gives nested dicts of JSON types (tuples become lists);
`config_from_dict(cls, data)` builds `cls` from a possibly partial dict, so missing fields keep
their defaults, nested sections are dicts, and lists become the tuples the fields declare.
Unknown keys and values of the wrong type raise ConfigError naming the key's path;
`read_config_file` reads such a dict from JSON or YAML.
"""

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from cad_perception.model.errors import ConfigError

T = TypeVar("T")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A (nested) dataclass instance -> a dict of JSON types."""
    return _to_json(dataclasses.asdict(config))


def config_from_dict(cls: type[T], data: Any, where: str = "config") -> T:
    """Build dataclass `cls` from `data` (a dict overriding its defaults); ConfigError if an
    entry is unknown or of the wrong type, or the dataclass rejects a value."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    fields = {field.name: field for field in dataclasses.fields(cls) if field.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(f'{where}.{key}' for key in unknown)}; "
            f"known: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    values = {name: _convert(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from err


def _convert(hint: Any, value: Any, where: str) -> Any:
    """`value` converted to the type `hint` (dataclass, tuple, scalar or optional scalar)."""
    if dataclasses.is_dataclass(hint):
        return config_from_dict(hint, value, where)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (hint,) = [arg for arg in args if arg is not type(None)]
        return _convert(hint, value, where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], item, f"{where}[{i}]") for i, item in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where} must have {len(args)} entries, got {len(value)}")
        return tuple(
            _convert(arg, item, f"{where}[{i}]")
            for i, (arg, item) in enumerate(zip(args, value, strict=True))
        )
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (
        not isinstance(value, hint) or (hint is int and isinstance(value, bool))
    ):
        raise ConfigError(f"{where} must be {hint.__name__}, got {value!r}")
    return value


def _to_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(item) for item in value]
    return value


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a JSON file, or a YAML file (suffix .yaml / .yml); ConfigError if it
    cannot be parsed or is not a mapping (FileNotFoundError if absent)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: cannot parse: {err}") from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the configuration must be a mapping")
    return data

"""Build frozen dataclasses from plain dicts (YAML) with one clear message per bad field.

Rules checked here: unknown keys (with the closest valid key), types (``int``, ``float``, ``str``,
``bool``, ``X | None``, ``tuple[X, ...]``, ``dict``, nested dataclasses). Value rules live in each
dataclass's ``__post_init__``; their messages are prefixed with the field path when needed.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Union


class ConfigError(ValueError):
    """A config value breaks a rule; the message names the field, the rule and the value."""


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _convert(option, value, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0]) if len(errors) == 1 else ConfigError(
            f"field '{path}' must be one of the types {[getattr(o, '__name__', str(o)) for o in options]}"
            f", got {_describe(value)}")
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"field '{path}' must be a list, got {_describe(value)}")
        item_type = args[0] if args else Any
        return tuple(_convert(item_type, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"field '{path}' must be a mapping, got {_describe(value)}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"field '{path}' must be true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"field '{path}' must be an integer, got {_describe(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"field '{path}' must be a number, got {_describe(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"field '{path}' must be a string, got {_describe(value)}")
        return value
    return value


def from_dict(cls: type, data: Any, path: str = "") -> Any:
    """Instantiate dataclass ``cls`` from ``data``, validating every field."""
    where = path or "config"
    if hasattr(cls, "from_config_value"):
        return cls.from_config_value(data, where)
    if not isinstance(data, dict):
        raise ConfigError(f"field '{where}' must be a mapping, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        child = f"{path}.{key}" if path else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; valid keys: {sorted(fields)}"
            raise ConfigError(f"unknown key '{child}'{hint}")
        if isinstance(value, dict):   # a section given in part: the rest as the config's default
            value = {**section_defaults(fields[key]), **value}
        kwargs[key] = _convert(hints[key], value, child)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        message = str(exc)
        if path and not message.startswith(path) and f"{path}." not in message:
            message = f"{path}: {message}"
        raise ConfigError(message) from exc


def section_defaults(field: dataclasses.Field) -> dict[str, Any]:
    """The values where a section's default in the config differs from its class's defaults
    (``dense:`` is ``TrainSettings(epochs=40, lr=2e-3, weight_decay=1e-4)``): a section given in
    part keeps those, as the configuration reference shows them, instead of the class's."""
    if field.default_factory is dataclasses.MISSING:
        return {}
    base = field.default_factory()
    if not dataclasses.is_dataclass(base):
        return {}
    try:
        plain = type(base)()
    except TypeError:
        return {}
    return {f.name: to_dict(getattr(base, f.name)) for f in dataclasses.fields(base)
            if f.init and getattr(base, f.name) != getattr(plain, f.name)}


def to_dict(obj: Any) -> Any:
    """Plain dicts / lists (YAML- and JSON-able) from a dataclass tree."""
    if hasattr(obj, "to_config_value"):
        return obj.to_config_value()
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj

"""Declared options: a type, a default, a range or choices and a help line per key. Config sections and data
sources declare theirs with `Option`; `validate` checks a section against them."""
import copy
import difflib
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .errors import UserError


class ConfigError(UserError, ValueError):
    """A config key or value that is not allowed; the message names the key and what would be."""


@dataclass(frozen=True)
class Option:
    """One key: its accepted type(s), default, help and constraints.

    Args:
        type: a type or tuple of types the value must have (an int is accepted where float is).
        default: used when the key is absent; None with nullable=True means "not set".
        help: one line for `aurora-bench list` and error messages.
        required: the key must be given a non-null value.
        choices: the allowed values.
        check: value -> an error text, or None when the value is fine (ranges, shapes).
        nullable: None is an allowed value.
    """
    type: Any
    default: Any = None
    help: str = ""
    required: bool = False
    choices: Optional[tuple] = None
    check: Optional[Callable[[Any], Optional[str]]] = None
    nullable: bool = True


def closest(key: str, known) -> str:
    match = difflib.get_close_matches(key, list(known), n=1, cutoff=0.5)
    return f"; did you mean {match[0]!r}?" if match else ""


def _type_ok(value, expected) -> bool:
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in types:
        return False  # True is an int to Python, not to a config
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


def _type_name(expected) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(t.__name__ for t in types)


def check_value(where: str, value, option: Option) -> None:
    if value is None:
        if option.required:
            raise ConfigError(f"{where} must be set ({option.help})" if option.help else f"{where} must be set")
        if option.nullable:
            return
    if not _type_ok(value, option.type):
        raise ConfigError(f"{where} must be {_type_name(option.type)}, got {value!r} ({type(value).__name__})")
    if option.choices is not None and value not in option.choices:
        raise ConfigError(f"{where} must be one of {', '.join(map(repr, option.choices))}, got {value!r}")
    problem = option.check(value) if option.check else None
    if problem:
        raise ConfigError(f"{where} {problem}, got {value!r}")


def validate(section: str, values: dict, options: dict) -> dict:
    """`values` checked against `options` and completed with their defaults; unknown keys are errors that
    name the closest valid key."""
    if not isinstance(values, dict):
        raise ConfigError(f"{section} must be a mapping of keys to values, got {values!r}")
    for key in values:
        if key not in options:
            raise ConfigError(f"unknown key {section}.{key}{closest(str(key), options)} "
                              f"(valid: {', '.join(sorted(options))})")
    out = {}
    for key, option in options.items():
        value = values[key] if key in values else copy.deepcopy(option.default)
        check_value(f"{section}.{key}", value, option)
        out[key] = value
    return out

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
        aliases: names users reach for (other codebases' spellings); an unknown key that is one of them
            is answered with this key.
    """
    type: Any
    default: Any = None
    help: str = ""
    required: bool = False
    choices: Optional[tuple] = None
    check: Optional[Callable[[Any], Optional[str]]] = None
    nullable: bool = True
    aliases: tuple = ()


def closest(key: str, known) -> str:
    """'; did you mean X?' for the known key nearest to `key` (an alias counts as exact), or ''."""
    for name, option in (known.items() if isinstance(known, dict) else ()):
        if key in getattr(option, "aliases", ()):
            return f"; did you mean {name!r}?"
    match = difflib.get_close_matches(key, [str(k) for k in known], n=1, cutoff=0.5)
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
        expected = _type_name(option.type)
        if option.type is list and isinstance(value, (str, int, float)):  # a string is not split into characters
            expected = f"a list such as [{value}]"
        raise ConfigError(f"{where} must be {expected}, got {value!r} ({type(value).__name__})")
    if option.choices is not None and value not in option.choices:
        raise ConfigError(f"{where} must be one of {', '.join(map(repr, option.choices))}, got {value!r}")
    problem = option.check(value) if option.check else None
    if problem:
        raise ConfigError(f"{where} {problem}, got {value!r}")


def _where(section: str, key) -> str:
    return f"{section}.{key}" if section else str(key)  # section '': the top level


def check_keys(section: str, values: dict, options: dict) -> None:
    """`values` is a mapping whose keys `options` all declare; an unknown key names the closest valid one."""
    if not isinstance(values, dict):
        raise ConfigError(f"{section or 'a config'} must be a mapping of keys to values, got {values!r}")
    for key in values:
        if key not in options:
            raise ConfigError(f"unknown key {_where(section, key)}{closest(str(key), options)} "
                              f"(valid: {', '.join(sorted(options))})")


def check_given(section: str, values: dict, options: dict) -> None:
    """The keys `values` gives, checked against `options` (an override: what it leaves out comes from below)."""
    check_keys(section, values, options)
    for key, value in values.items():
        check_value(_where(section, key), value, options[key])


def validate(section: str, values: dict, options: dict) -> dict:
    """`values` checked against `options` and completed with their defaults; unknown keys are errors that
    name the closest valid key."""
    check_keys(section, values, options)
    out = {}
    for key, option in options.items():
        value = values[key] if key in values else copy.deepcopy(option.default)
        check_value(_where(section, key), value, option)
        out[key] = value
    return out


# Checks for Option(check=...): value -> None when fine, else what it must be.

def at_least(low):
    return lambda v: None if v >= low else f"must be >= {low}"


def positive(v):
    return None if v > 0 else "must be > 0"


def list_of(item_type, distinct: bool = True, nonempty: bool = True, item_check=None):
    """A list check: every item an `item_type` (a string is not a list of its characters), no repeats."""
    def check(values):
        if nonempty and not values:
            return "must list at least one entry"
        for v in values:
            if not _type_ok(v, item_type):
                return f"must hold {_type_name(item_type)} entries only ({v!r} is {type(v).__name__})"
            problem = item_check(v) if item_check else None
            if problem:
                return f"entries {problem} ({v!r} is not)"
        repeated = sorted({v for v in values if values.count(v) > 1}, key=str)
        if distinct and repeated:
            return f"must not repeat entries (repeated: {', '.join(map(str, repeated))})"
        return None
    return check

"""Command-line overrides for frozen dataclass configs: every field is a flag.

`--steps 100`, `--head.num_layers 4` or `--head.num-layers=4`: nested dataclasses are reached with dots, dashes
and underscores are interchangeable, and an unknown flag fails with the closest valid name. A tuple or list field
takes several values (`--cameras left wrist`) or one comma-separated value (`--cameras left,wrist`).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from typing import Any

from contract.lookup import did_you_mean


class ConfigError(ValueError):
    """A command-line value that does not fit the config."""


def flag_names(cls_or_obj: Any, prefix: str = "") -> dict[str, type]:
    """Every settable dotted field name of a dataclass, mapped to its type."""
    names: dict[str, type] = {}
    hints = typing.get_type_hints(cls_or_obj if isinstance(cls_or_obj, type) else type(cls_or_obj))
    for field in dataclasses.fields(cls_or_obj):
        hint = hints[field.name]
        name = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(hint):
            names.update(flag_names(hint, prefix=f"{name}."))
        else:
            names[name] = hint
    return names


def parse_overrides(argv: list[str]) -> dict[str, str | list[str]]:
    """`['--a.b', '1', '--c=x', '--flag', '--d', 'p', 'q']` -> {'a.b': '1', 'c': 'x', 'flag': 'true', 'd': ['p', 'q']}.

    A flag followed by several values maps to their list; whether the field takes a list is checked on applying.
    """
    out: dict[str, str | list[str]] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument {arg!r}; options look like --name value or --name=value")
        key = arg[2:]
        values = []
        while i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            values.append(argv[i + 1])
            i += 1
        if "=" in key:
            key, value = key.split("=", 1)
            values.insert(0, value)
        out[key.replace("-", "_")] = values[0] if len(values) == 1 else values or "true"
        i += 1
    return out


def _convert(name: str, text: str | list[str], hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if isinstance(text, str) and text.lower() in ("none", "null") and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(text, list) and origin not in (tuple, list):
        raise ConfigError(f"--{name} takes one value; got {len(text)}: {' '.join(text)}")
    try:
        if hint is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if hint in (int, float, str):
            return hint(text)
        if origin is typing.Literal:
            if text not in args:
                raise ConfigError(f"--{name} must be one of {', '.join(map(str, args))}; got {text!r}")
            return text
        if origin in (tuple, list):
            if isinstance(text, list):
                items = text
            else:
                items = json.loads(text) if text.startswith("[") else [t for t in text.split(",") if t]
            item_hint = args[0] if args else str
            items = [_convert(name, str(t), item_hint) for t in items]
            return tuple(items) if origin is tuple else items
    except ConfigError:
        raise
    except (ValueError, json.JSONDecodeError):
        raise ConfigError(f"--{name} expects {getattr(hint, '__name__', hint)}; got {text!r}") from None
    return text


def apply_overrides(config: Any, overrides: dict[str, str]) -> Any:
    """A copy of a frozen dataclass config with dotted-name overrides applied (values parsed by field type)."""
    valid = flag_names(config)
    for name in overrides:
        if name not in valid:
            raise ConfigError(f"unknown option --{name}{did_you_mean(name, valid)}")
    return _apply(config, overrides, valid, prefix="")


def _apply(config: Any, overrides: dict[str, str], valid: dict[str, type], prefix: str) -> Any:
    changes = {}
    for field in dataclasses.fields(config):
        name = f"{prefix}{field.name}"
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            if any(k.startswith(name + ".") for k in overrides):
                changes[field.name] = _apply(value, overrides, valid, prefix=f"{name}.")
        elif name in overrides:
            changes[field.name] = _convert(name, overrides[name], valid[name])
    return dataclasses.replace(config, **changes) if changes else config


def describe(config: Any) -> str:
    """Every flag with its current value, one per line, for --help."""
    lines = []
    for name in flag_names(config):
        value: Any = config
        for part in name.split("."):
            value = getattr(value, part)
        lines.append(f"  --{name.replace('_', '-')} {value!r}")
    return "\n".join(lines)


def parse_config_or_exit(config: Any, argv: list[str], usage: str = "") -> Any:
    """`config` with argv applied; --help prints usage and every flag, a bad flag exits 2 with one line."""
    if any(a in ("-h", "--help") for a in argv):
        print(f"{usage.strip()}\n\nevery option (current value):\n{describe(config)}" if usage else describe(config))
        raise SystemExit(0)
    try:
        return apply_overrides(config, parse_overrides(argv))
    except (ConfigError, ValueError) as err:  # ValueError: a config's own __post_init__ check
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None

"""Look a name up in a registry; an unknown name fails in one line with the closest match and the valid names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")


def did_you_mean(name: str, choices) -> str:
    """' (did you mean X?)' when a close match exists, else ''."""
    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_name(name: str, choices: Iterable[str], what: str) -> str:
    """`name` when it is one of `choices`; else ValueError("unknown {what} 'x' (did you mean 'y'?); valid: a, b")."""
    choices = list(choices)
    if name not in choices:
        raise ValueError(f"unknown {what} {name!r}{did_you_mean(name, choices)}; valid: {', '.join(choices)}")
    return name


def check_fields(data: Mapping, names: Iterable[str], what: str) -> None:
    """Every key of `data` is one of `names`; else ValueError("unknown {what} field 'x' (did you mean 'y'?); valid: ...")."""
    names = sorted(names)
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"unknown {what} field {unknown[0]!r}{did_you_mean(unknown[0], names)}; valid: {', '.join(names)}")


def lookup(registry: Mapping[str, T], name: str, what: str) -> T:
    """registry[name], or check_name's one-line error."""
    return registry[check_name(name, registry, what)]

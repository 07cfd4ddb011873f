"""Feature `names` are part of the dataset contract: state and action columns are matched to the embodiment's layout
by name (our own names, or a known foreign layout such as GR00T's RoboCasa order), never read by position."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from contract.embodiments import ACTION_KEY, STATE_KEY, Embodiment, get_embodiment

WHICH = {STATE_KEY: "state", ACTION_KEY: "action"}


@dataclass(frozen=True)
class ColumnOrder:
    """How one stored vector maps onto the embodiment's layout.

    `index[i]` is the stored column holding our dimension i; None when the data is already in our order.
    """

    key: str
    layout: str
    index: tuple[int, ...] | None = None

    def apply(self, values):
        """Stored (..., D) values -> our order (numpy or torch)."""
        return values if self.index is None else values[..., list(self.index)]


def feature_names(feature: dict) -> list[str] | None:
    """A feature's per-dimension names; LeRobot also writes {"motors": [...]}-style dicts with one list."""
    names = feature.get("names")
    if isinstance(names, dict) and len(names) == 1:
        names = next(iter(names.values()))
    if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names):
        return list(names)
    return None


def _short(names: list[str], limit: int = 16) -> str:
    return "[" + ", ".join(names[:limit]) + (", ..." if len(names) > limit else "") + "]"


def match_names(key: str, found: list[str] | None, robot: Embodiment, where: str = "dataset") -> ColumnOrder:
    """The ColumnOrder that reads `found` as `robot`'s layout; a one-line ValueError when no known layout fits."""
    which = WHICH[key]
    ours = robot.dim_names(which)
    if found is None:
        raise ValueError(f"{where}: key {key!r} has no per-dimension feature names; expected {len(ours)} names "
                         f"{_short(ours)} (channels are matched by name, never by position)")
    if found == ours:
        return ColumnOrder(key, robot.name)
    layouts = [(robot.name, {n: n for n in ours})]
    layouts += [(f.name, getattr(f, which)) for f in robot.foreign_layouts]
    for layout, to_ours in layouts:
        if len(found) == len(set(found)) and set(found) == set(to_ours):
            column = {to_ours[name]: i for i, name in enumerate(found)}
            return ColumnOrder(key, layout, tuple(column[name] for name in ours))
    known = set(ours).union(*(getattr(f, which) for f in robot.foreign_layouts))
    unknown = [n for n in found if n not in known]
    missing = [n for n in ours if n not in found]
    detail = f"unknown {_short(unknown, 6)}" if unknown else f"missing {_short(missing, 6)}"
    others = ", ".join(f.name for f in robot.foreign_layouts)
    raise ValueError(
        f"{where}: key {key!r} names fit no known layout of {robot.name} ({detail}); expected {_short(ours)}"
        f"{f' or the {others} names' if others else ''}; found {_short(found)}"
    )


def column_orders(info: dict, embodiment: str | Embodiment, where: str = "dataset") -> dict[str, ColumnOrder]:
    """ColumnOrder of state and action from an info.json's features."""
    robot = get_embodiment(embodiment) if isinstance(embodiment, str) else embodiment
    features = info.get("features", {})
    return {key: match_names(key, feature_names(features.get(key, {})), robot, where) for key in WHICH}


def dataset_column_orders(root: str | Path, embodiment: str | Embodiment) -> dict[str, ColumnOrder]:
    """ColumnOrder of state and action of the dataset at `root`."""
    info = json.loads((Path(root) / "meta" / "info.json").read_text())
    return column_orders(info, embodiment, where=str(root))


def reorder_note(orders: dict[str, ColumnOrder], robot_name: str, where: str = "dataset") -> str | None:
    """One line saying which keys are read in another order, or None when all are in ours."""
    moved = [o for o in orders.values() if o.index is not None]
    if not moved:
        return None
    parts = ", ".join(f"{o.key} ({o.layout} names)" for o in moved)
    return f"{where}: {parts} stored in another order than {robot_name}'s layout; reordered by name"

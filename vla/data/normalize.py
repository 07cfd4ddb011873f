"""Per-part normalization of state and action (embodiment modes), invertible, JSON-serializable, numpy or torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from contract.embodiments import ACTION_KEY, STATE_KEY, Embodiment, get_embodiment
from contract.files import atomic_write_json
from vla.data.names import dataset_column_orders
from vla.data.stats import load_norm_stats

MODES = ("identity", "mean_std", "min_max", "q01_q99", "binary", "quat_sign")
_EPS = 1e-8
_FORMAT = 1


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


class _Part:
    """One slice of a vector with its mode and the two numbers that define its affine map (or none)."""

    def __init__(self, name: str, start: int, stop: int, mode: str, stats: dict):
        if mode not in MODES:
            raise ValueError(f"unknown normalization mode {mode!r} for part {name!r}; valid: {', '.join(MODES)}")
        self.name, self.start, self.stop, self.mode = name, start, stop, mode
        sl = slice(start, stop)
        if mode == "mean_std":
            self.center = np.asarray(stats["mean"][sl], dtype=np.float64)
            self.scale = np.asarray(stats["std"][sl], dtype=np.float64)
        elif mode in ("min_max", "q01_q99"):
            lo_key, hi_key = ("min", "max") if mode == "min_max" else ("q01", "q99")
            lo = np.asarray(stats[lo_key][sl], dtype=np.float64)
            hi = np.asarray(stats[hi_key][sl], dtype=np.float64)
            self.center, self.scale = (hi + lo) / 2, (hi - lo) / 2
        else:
            self.center = self.scale = None
        # quat_sign: a unit quaternion and its negation are one rotation. robosuite's w >= 0 rule flips the sign at
        # random for a gripper pointing down (w near 0): 236 of the 300 built-in demos flip mid-episode. So the sign
        # is set by the component that is largest in the data (by its 1st and 99th percentiles), continuous wherever
        # that component stays away from 0 (|x| >= 0.86 in those demos).
        self.sign_axis = None
        if mode == "quat_sign":
            if stop - start != 4:
                raise ValueError(f"part {name!r}: quat_sign needs a 4-D quaternion, got {stop - start} dims")
            reach = np.maximum(np.abs(stats["q01"][start:stop]), np.abs(stats["q99"][start:stop]))
            self.sign_axis = start + int(np.argmax(reach))
        if self.scale is not None:
            # A constant dimension (e.g. the unused base in demos) maps to 0 and back to its value.
            self.scale = np.where(self.scale < _EPS, 0.0, self.scale)


class _VectorNorm:
    """Normalization of one key (state or action) as a list of parts."""

    def __init__(self, parts: list[_Part], dim: int):
        self.parts, self.dim = parts, dim
        center, scale = np.zeros(dim), np.ones(dim)
        clip, binary = np.zeros(dim, bool), np.zeros(dim, bool)
        for p in parts:
            sl = slice(p.start, p.stop)
            if p.center is not None:
                center[sl], scale[sl] = p.center, p.scale
            clip[sl] = p.mode in ("min_max", "q01_q99")
            binary[sl] = p.mode == "binary"
        self.center, self.scale, self.clip, self.binary = center, scale, clip, binary
        self.const = scale == 0.0
        self.quats = [(p.start, p.stop, p.sign_axis) for p in parts if p.sign_axis is not None]

    def _arrays(self, x):
        if _is_torch(x):
            import torch  # lazy: numpy callers need no torch

            def t(a, dtype=x.dtype):
                return torch.as_tensor(a, dtype=dtype, device=x.device)

            return t(self.center), t(self.scale), t(self.clip, torch.bool), t(self.binary, torch.bool), t(
                self.const, torch.bool
            )
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
        return (self.center.astype(dtype), self.scale.astype(dtype), self.clip, self.binary, self.const)

    def _check(self, x):
        if x.shape[-1] != self.dim:
            raise ValueError(f"expected last dimension {self.dim}, got shape {tuple(x.shape)}")

    def forward(self, x):
        self._check(x)
        center, scale, clip, binary, const = self._arrays(x)
        where = _where(x)
        safe = where(const, scale * 0 + 1, scale)
        y = where(const, x * 0, (x - center) / safe)
        y = where(clip, _clip(y), y)
        y = where(binary, where(x > 0, x * 0 + 1, x * 0 - 1), y)
        for start, stop, axis in self.quats:  # the same rotation, one sign (the inverse keeps it: still that rotation)
            y[..., start:stop] = where(x[..., axis:axis + 1] < 0, -x[..., start:stop], x[..., start:stop])
        return y

    def inverse(self, y):
        self._check(y)
        center, scale, clip, binary, const = self._arrays(y)
        where = _where(y)
        x = where(clip, _clip(y), y) * scale + center
        return where(binary, where(y > 0, y * 0 + 1, y * 0 - 1), x)


def _where(x):
    if _is_torch(x):
        import torch

        return torch.where
    return np.where


def _clip(y):
    return y.clamp(-1.0, 1.0) if _is_torch(y) else np.clip(y, -1.0, 1.0)


class Normalizer:
    """Maps raw state/action to the model's normalized space and back, per the embodiment's part modes.

    min_max and q01_q99 map to [-1, 1] (clipped), mean_std to zero mean / unit std, binary thresholds at 0 to
    -1/+1, quat_sign gives a quaternion one sign, identity passes through. Works on numpy arrays and torch tensors with
    any leading dimensions. `modes` (state and action, part -> mode) default to the embodiment's; a checkpoint passes
    the ones it was trained with.
    """

    def __init__(self, embodiment: str | Embodiment, stats: dict, modes: dict | None = None):
        robot = get_embodiment(embodiment) if isinstance(embodiment, str) else embodiment
        self.embodiment = robot
        self.modes = {STATE_KEY: dict(robot.state_normalization), ACTION_KEY: dict(robot.action_normalization)}
        for key, layout in ((STATE_KEY, robot.state_layout), (ACTION_KEY, robot.action_layout)):
            if modes is not None and key in modes:
                if unknown := sorted(set(modes[key]) - {p.name for p in layout}):
                    raise ValueError(f"normalizer modes name {key} parts {unknown} that {robot.name} does not have")
                self.modes[key] = dict(modes[key])
        self.stats = {k: {s: list(v) if s != "count" else v for s, v in stats[k].items()} for k in (STATE_KEY, ACTION_KEY)}
        for key, dim in ((STATE_KEY, robot.state_dim), (ACTION_KEY, robot.action_dim)):
            for name, values in self.stats[key].items():
                if name != "count" and len(values) != dim:
                    raise ValueError(f"stats[{key!r}][{name!r}] has {len(values)} values, expected {dim} for {robot.name}")
        self._state = self._build(robot.state_layout, self.modes[STATE_KEY], self.stats[STATE_KEY], robot.state_dim)
        self._action = self._build(robot.action_layout, self.modes[ACTION_KEY], self.stats[ACTION_KEY],
                                   robot.action_dim)

    @staticmethod
    def _build(layout, modes, stats, dim) -> _VectorNorm:
        return _VectorNorm([_Part(p.name, p.start, p.stop, modes.get(p.name, "identity"), stats) for p in layout], dim)

    def normalize_state(self, x):
        """Raw state (..., state_dim) -> normalized."""
        return self._state.forward(x)

    def unnormalize_state(self, y):
        """Normalized state -> raw."""
        return self._state.inverse(y)

    def normalize_action(self, x):
        """Raw action (..., action_dim) -> normalized."""
        return self._action.forward(x)

    def unnormalize_action(self, y):
        """Normalized action (e.g. a predicted chunk) -> raw action for the robot."""
        return self._action.inverse(y)

    def varying_action_dims(self) -> np.ndarray:
        """Boolean mask of the action dims that vary in the data (constant ones, e.g. an unused base, map to 0)."""
        return ~self._action.const

    def to_dict(self) -> dict:
        """JSON-ready description: embodiment, modes per part and the statistics."""
        robot = self.embodiment
        return {
            "format": _FORMAT,
            "embodiment": robot.name,
            "modes": {key: dict(modes) for key, modes in self.modes.items()},
            "stats": self.stats,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Normalizer":
        """Rebuild from `to_dict` output, with the modes it was saved with (a checkpoint keeps the normalization it
        was trained with when the embodiment's defaults change later)."""
        for field in ("embodiment", "stats"):
            if field not in data:
                raise ValueError(f"normalizer JSON lacks {field!r}; expected keys format, embodiment, modes, stats")
        return cls(get_embodiment(data["embodiment"]), data["stats"], data.get("modes"))

    def save(self, path: str | Path) -> None:
        """Write normalizer.json."""
        atomic_write_json(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "Normalizer":
        """Read normalizer.json."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no normalizer at {path}")
        return cls.from_dict(json.loads(path.read_text()))

    @classmethod
    def from_dataset(cls, root: str | Path, embodiment: str = "robocasa_panda_omron") -> "Normalizer":
        """Normalizer fitted to a dataset's state and action (read by feature name; nothing is written there)."""
        root = Path(root)
        info = json.loads((root / "meta" / "info.json").read_text())
        orders = dataset_column_orders(root, embodiment)
        return cls(embodiment, load_norm_stats(root, info.get("total_frames"), orders))

"""The observation spec: what a policy sees and emits, as one value that envs, datasets, checkpoints and policies pass.

The image size and the chunk length used to be re-derived in each package (and checked three ways); now an env is
built from a spec, a dataset's spec is read from its meta files, a checkpoint records the spec it was trained
with, and a policy compares its spec with the env's in one line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

from contract.embodiments import (
    ACTION_HORIZON,
    CAMERA_NAMES,
    FPS,
    IMAGE_SIZE,
    ROBOCASA_PANDA_OMRON,
    Embodiment,
    get_embodiment,
)
from contract.lookup import check_fields, check_name

# Smaller views carry too little for the backbone (which resizes them anyway); the tests render at 16.
MIN_IMAGE_SIZE = 16


def check_image_size(image_size) -> int:
    """The one check of an image size: a whole number of pixels, at least MIN_IMAGE_SIZE (views are square)."""
    if isinstance(image_size, bool) or int(image_size) != image_size or int(image_size) < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be a whole number of pixels >= {MIN_IMAGE_SIZE}; got {image_size}")
    return int(image_size)


def check_cameras(cameras) -> tuple[str, ...]:
    """Cameras as a non-empty tuple of known camera names, or a one-line ValueError."""
    cameras = (cameras,) if isinstance(cameras, str) else tuple(cameras)
    for camera in cameras:
        check_name(camera, CAMERA_NAMES, "camera")
    return cameras


@dataclass(frozen=True)
class ObservationSpec:
    """Cameras and their square image size, the state/action layout (the embodiment), chunk length and control rate.

    `action_horizon` is the chunk a policy predicts per observation; an env or a dataset has none of its own and
    carries the contract's default.
    """

    embodiment: str = ROBOCASA_PANDA_OMRON.name
    cameras: tuple[str, ...] = CAMERA_NAMES
    image_size: int = IMAGE_SIZE
    action_horizon: int = ACTION_HORIZON
    fps: int = FPS

    def __post_init__(self):
        get_embodiment(self.embodiment)
        object.__setattr__(self, "cameras", check_cameras(self.cameras))
        object.__setattr__(self, "image_size", check_image_size(self.image_size))
        if int(self.action_horizon) < 1 or int(self.fps) < 1:
            raise ValueError(f"action_horizon and fps must be >= 1; got {self.action_horizon} and {self.fps}")
        object.__setattr__(self, "action_horizon", int(self.action_horizon))
        object.__setattr__(self, "fps", int(self.fps))

    @property
    def robot(self) -> Embodiment:
        return get_embodiment(self.embodiment)

    @property
    def image_keys(self) -> tuple[str, ...]:
        return tuple(f"observation.images.{camera}" for camera in self.cameras)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, 3)

    def replace(self, **changes) -> ObservationSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-able: what a checkpoint's config.json records under "observation"."""
        return {**dataclasses.asdict(self), "cameras": list(self.cameras)}

    @classmethod
    def from_dict(cls, data: dict) -> ObservationSpec:
        """Inverse of to_dict; an unknown key is a one-line error."""
        check_fields(data, (f.name for f in fields(cls)), "observation spec")
        return cls(**{**data, "cameras": tuple(data.get("cameras", CAMERA_NAMES))})

    def mismatch(self, env: ObservationSpec, what: str = "policy") -> str | None:
        """One line naming the first way an env with spec `env` cannot feed this policy's spec, or None.

        The env may render more cameras than the policy reads; the chunk length is the policy's own.
        """
        if self.embodiment != env.embodiment:
            return f"{what} is for embodiment {self.embodiment!r}; the env is {env.embodiment!r}"
        if not set(self.cameras) <= set(env.cameras):
            return f"{what} needs cameras {', '.join(self.cameras)}; the env has {', '.join(env.cameras)}"
        if self.image_size != env.image_size:
            return f"{what} was trained on {self.image_size}px images; the env renders {env.image_size}px"
        if self.fps != env.fps:
            return f"{what} was trained at {self.fps} Hz; the env runs at {env.fps} Hz"
        return None


def spec_from_checkpoint_config(config: dict) -> ObservationSpec:
    """The spec a checkpoint's config.json records; older checkpoints kept its parts as separate top-level keys."""
    if "observation" in config:
        return ObservationSpec.from_dict(config["observation"])
    horizon = config.get("action_horizon") or config.get("model", {}).get("head", {}).get("action_horizon")
    return ObservationSpec(embodiment=config.get("embodiment") or ROBOCASA_PANDA_OMRON.name,
                           cameras=tuple(config.get("cameras") or CAMERA_NAMES),
                           image_size=config.get("image_size") or IMAGE_SIZE,
                           action_horizon=horizon or ACTION_HORIZON)

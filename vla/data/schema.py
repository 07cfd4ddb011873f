"""The dataset contract as LeRobot features, a dataset's observation spec, and checks that a dataset on disk matches
the contract (no torch import)."""

from __future__ import annotations

import json
from pathlib import Path

from contract.embodiments import ACTION_KEY, CAMERA_NAMES, EMBODIMENTS, IMAGE_KEYS, STATE_KEY, Embodiment
from contract.lookup import did_you_mean
from contract.spec import ObservationSpec
from envs.registry import TASKS

# Task names and their v0.2 instructions (REFERENCE.md section 2); PnPCabToCounter's names its object.
# The env registry is the one list of tasks (pure data: importing it loads no simulator).
TASK_INSTRUCTIONS = {name: spec.instruction for name, spec in TASKS.items()}
KNOWN_TASKS = tuple(TASK_INSTRUCTIONS)

# Our own sidecar beside LeRobot's meta files: embodiment, source and per-episode task names / seeds.
SIDECAR_PATH = "meta/vla.json"
# Exact per-key statistics for state and action (LeRobot's stats.json averages per-episode quantiles).
NORM_STATS_PATH = "meta/norm_stats.json"
DEFAULT_REPO_ID = "local/vla-demos"


def dim_names(robot: Embodiment, which: str) -> list[str]:
    """Per-dimension names ('eef_delta_pos.0', ...) from the embodiment layout."""
    return robot.dim_names(which)


def lerobot_features(spec: ObservationSpec) -> dict:
    """LeRobot feature dict for the contract: three images, state and action."""
    robot = spec.robot
    side = spec.image_size
    features = {
        key: {"dtype": "image", "shape": (side, side, 3), "names": ["height", "width", "channels"]}
        for key in IMAGE_KEYS
    }
    features[STATE_KEY] = {"dtype": "float32", "shape": (robot.state_dim,), "names": dim_names(robot, "state")}
    features[ACTION_KEY] = {"dtype": "float32", "shape": (robot.action_dim,), "names": dim_names(robot, "action")}
    return features


def check_task_names(names, available) -> None:
    """Fail with the valid names when a requested task name is not in `available`."""
    available = list(available)
    for name in names:
        if name not in available:
            raise ValueError(
                f"unknown task {name!r}{did_you_mean(name, available)}; valid: {', '.join(available) or '(none)'}"
            )


def task_list(task: str) -> tuple[str, ...]:
    """The tasks named by --task ('all' = the three benchmark tasks)."""
    if task == "all":
        return KNOWN_TASKS
    check_task_names([task], [*KNOWN_TASKS, "all"])
    return (task,)


def image_shape(feature: dict) -> tuple[int, int, int]:
    """(H, W, 3) of an image feature whether LeRobot stored it HWC or CHW."""
    shape = tuple(feature["shape"])
    if len(shape) == 3 and shape[-1] == 3:
        return shape
    if len(shape) == 3 and shape[0] == 3:
        return (shape[1], shape[2], 3)
    return shape


def validate_info(info: dict, spec: ObservationSpec, where: str = "dataset") -> None:
    """Check info.json against the contract; the error names the key and what was expected."""
    robot = spec.robot
    if info.get("fps") != spec.fps:
        raise ValueError(f"{where}: fps is {info.get('fps')}, expected {spec.fps}")
    features = info.get("features", {})
    for key in IMAGE_KEYS:
        if key not in features:
            raise ValueError(f"{where}: missing key {key!r}; expected an image HxWx3 (keys: {', '.join(IMAGE_KEYS)})")
        ft = features[key]
        if ft.get("dtype") not in ("image", "video"):
            raise ValueError(f"{where}: key {key!r} has dtype {ft.get('dtype')!r}, expected 'image' or 'video'")
        shape = image_shape(ft)
        if len(shape) != 3 or shape[-1] != 3:
            raise ValueError(f"{where}: key {key!r} has shape {tuple(ft['shape'])}, expected (H, W, 3)")
    sizes = {image_shape(features[k])[:2] for k in IMAGE_KEYS}
    if len(sizes) != 1:
        raise ValueError(f"{where}: cameras differ in size {sorted(sizes)}, expected one size for {IMAGE_KEYS}")
    for key, dim in ((STATE_KEY, robot.state_dim), (ACTION_KEY, robot.action_dim)):
        if key not in features:
            raise ValueError(f"{where}: missing key {key!r}; expected float32 ({dim},) for {robot.name}")
        ft = features[key]
        if ft.get("dtype") != "float32" or tuple(ft.get("shape", ())) != (dim,):
            raise ValueError(
                f"{where}: key {key!r} is {ft.get('dtype')} {tuple(ft.get('shape', ()))}, "
                f"expected float32 ({dim},) for {robot.name}"
            )


def read_sidecar(root: Path) -> dict:
    """Our meta/vla.json, or an empty record when the dataset came from elsewhere."""
    path = Path(root) / SIDECAR_PATH
    if not path.exists():
        return {"episodes": {}, "rejected": []}
    return json.loads(path.read_text())


def read_spec(root: str | Path) -> ObservationSpec:
    """The observation spec a dataset was written with, read from meta/info.json (and our sidecar when present).

    LeRobot's info.json already holds it: the image features' shape, robot_type and fps; datasets record no chunk
    length (the trainer picks it), so the spec carries the contract's default.
    """
    info = json.loads((Path(root) / "meta" / "info.json").read_text())
    features = info.get("features", {})
    cameras = tuple(c for c, key in zip(CAMERA_NAMES, IMAGE_KEYS) if key in features)
    robot_type = info.get("robot_type")  # another tool's name for the robot is not one of our embodiments
    embodiment = read_sidecar(Path(root)).get("embodiment") or (robot_type if robot_type in EMBODIMENTS else None)
    size = image_shape(features[IMAGE_KEYS[0]])[0]
    return ObservationSpec(**({"embodiment": embodiment} if embodiment else {}), cameras=cameras, image_size=size,
                           fps=info["fps"])

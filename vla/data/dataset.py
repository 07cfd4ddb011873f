"""Open a dataset with validation, and the training view: per-sample dicts with a normalized 16-step action chunk."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image

from contract.embodiments import ACTION_KEY, FPS, IMAGE_KEYS, STATE_KEY, get_embodiment
from contract.spec import ObservationSpec
from vla.data.names import column_orders, dataset_column_orders
from vla.data.normalize import Normalizer
from vla.data.schema import DEFAULT_REPO_ID, check_task_names, image_shape, read_sidecar, read_spec, validate_info
from vla.data.stats import data_files, numeric_table_columns, read_parquet
from vla.data.transforms import ImageAugConfig, ImageTransform


def _episode_task_names(root: Path, info: dict) -> dict[int, str]:
    """Task name per episode: from our sidecar when present, else the episode's instruction itself."""
    sidecar = read_sidecar(root)
    names = {int(k): v["task_name"] for k, v in sidecar.get("episodes", {}).items() if v.get("task_name")}
    if len(names) == info.get("total_episodes"):
        return names
    out = {}
    for path in sorted((root / "meta" / "episodes").glob("*/*.parquet")):
        for row in pq.read_table(path, columns=["episode_index", "tasks"]).to_pylist():
            out[row["episode_index"]] = row["tasks"][0]
    return out


def validate_dataset(root: str | Path, embodiment: str = "robocasa_panda_omron", fps: int = FPS) -> dict:
    """Check a dataset folder against the contract; returns its info.json. Errors name the file or key and the
    expectation: feature names, readable data files, declared image sizes, finite state/action, episodes 0..N-1."""
    root = Path(root)
    info_path = root / "meta" / "info.json"
    if not info_path.exists():
        raise ValueError(f"{root}: not a LeRobot v3.0 dataset (missing meta/info.json)")
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{info_path}: not valid JSON ({e})") from None
    if info.get("codebase_version") != "v3.0":
        raise ValueError(f"{info_path}: codebase_version is {info.get('codebase_version')!r}, expected 'v3.0'")
    validate_info(info, ObservationSpec(embodiment=embodiment, fps=fps), where=str(root))
    column_orders(info, embodiment, where=str(info_path))  # names must map onto the layout
    if info.get("total_episodes", 0) == 0:
        raise ValueError(f"{root}: dataset has no episodes")
    episodes_by_file = {}
    for path in data_files(root):
        table = read_parquet(path, [STATE_KEY, ACTION_KEY, "episode_index", "frame_index"])
        _check_finite(path, numeric_table_columns(table))
        _check_image_size(path, info)
        episodes_by_file[path] = np.unique(np.asarray(table.column("episode_index")))
    _check_episode_indices(episodes_by_file, info, root / "data")
    meta_files = sorted((root / "meta" / "episodes").glob("*/*.parquet"))
    _check_episode_indices({p: np.asarray(read_parquet(p, ["episode_index"]).column("episode_index"))
                            for p in meta_files}, info, root / "meta" / "episodes")
    return info


def _check_finite(path: Path, cols: dict) -> None:
    for key in (STATE_KEY, ACTION_KEY):
        bad = ~np.isfinite(cols[key])
        if bad.any():
            row = int(np.argwhere(bad.any(1))[0, 0])
            raise ValueError(
                f"{path}: key {key!r} has NaN/inf (first at episode {int(cols['episode_index'][row])}, "
                f"frame {int(cols['frame_index'][row])}); expected finite float32"
            )


def _check_image_size(path: Path, info: dict) -> None:
    """The first stored image of each camera in a data file has the size info.json declares (PNG header only)."""
    keys = [k for k in IMAGE_KEYS if info["features"][k]["dtype"] == "image"]
    if not keys:
        return
    first = next(pq.ParquetFile(path).iter_batches(batch_size=1, columns=keys), None)
    if first is None:
        return
    for key in keys:
        cell = first.column(key)[0].as_py()
        data = cell.get("bytes") if isinstance(cell, dict) else None
        if not data:
            continue  # stored as a path to a file; lerobot checks those when it reads them
        try:
            width, height = Image.open(io.BytesIO(data)).size
        except Exception as err:  # noqa: BLE001 - PIL raises many types for a bad image
            raise ValueError(f"{path}: {key!r} holds an unreadable image ({type(err).__name__})") from None
        want = image_shape(info["features"][key])[:2]
        if (height, width) != tuple(want):
            raise ValueError(f"{path}: {key!r} images are {height}x{width}, but meta/info.json declares "
                             f"{want[0]}x{want[1]}; rewrite the dataset with one image size")


def _check_episode_indices(indices_by_file: dict, info: dict, where: Path) -> None:
    """Episodes are numbered 0..total_episodes-1 without a gap (lerobot indexes them by position)."""
    total = int(info["total_episodes"])
    expected = 0
    for path in sorted(indices_by_file, key=lambda p: int(np.min(indices_by_file[p], initial=1 << 62))):
        for index in np.unique(indices_by_file[path]).tolist():
            if index != expected:
                missing = f"episode {expected} missing" if index > expected else f"episode {index} repeated"
                raise ValueError(f"{path}: episode_index jumps to {index} ({missing}); expected episodes "
                                 f"0..{total - 1} without gaps as meta/info.json declares {total}")
            expected += 1
    if expected != total:
        raise ValueError(f"{where}: holds {expected} episodes, but meta/info.json declares {total}")


def select_episodes(root: str | Path, info: dict, tasks=None, per_task: int = 0) -> list[int] | None:
    """Episode indices of `tasks` (all tasks when None), the first `per_task` of each task (0: all); None = every one."""
    if tasks is None and per_task <= 0:
        return None
    names = _episode_task_names(Path(root), info)
    if tasks is not None:
        tasks = [tasks] if isinstance(tasks, str) else list(tasks)
        check_task_names(tasks, sorted(set(names.values())))
    chosen, taken = [], {}
    for index in sorted(names):
        task = names[index]
        if tasks is not None and task not in tasks:
            continue
        if per_task > 0 and taken.get(task, 0) >= per_task:
            continue
        taken[task] = taken.get(task, 0) + 1
        chosen.append(index)
    return chosen


def episode_seeds(root: str | Path, episodes: list[int] | None) -> dict[str, list[int]]:
    """Simulator seeds of the chosen episodes per task (from our sidecar; empty for data made elsewhere)."""
    sidecar = read_sidecar(Path(root)).get("episodes", {})
    out: dict[str, list[int]] = {}
    for key, meta in sidecar.items():
        if (episodes is None or int(key) in episodes) and meta.get("seed") is not None:
            out.setdefault(meta["task_name"], []).append(int(meta["seed"]))
    return {task: sorted(seeds) for task, seeds in sorted(out.items())}


def training_demo_seeds(root: str | Path, tasks=None, per_task: int = 0) -> dict[str, list[int]]:
    """Simulator seeds, per task, of the episodes a run on `root` trains on (its task filter and per-task cap)."""
    info = json.loads((Path(root) / "meta" / "info.json").read_text())
    return episode_seeds(root, select_episodes(root, info, tasks, per_task))


def sample_task_names(root: str | Path, episode_index: np.ndarray) -> np.ndarray:
    """The task name of every sample, from its episode (for drawing each task equally often)."""
    root = Path(root)
    names = _episode_task_names(root, json.loads((root / "meta" / "info.json").read_text()))
    return np.array([names[int(e)] for e in episode_index])


def canonical_order(root: str | Path, episode_index: np.ndarray, frame_index: np.ndarray) -> np.ndarray:
    """Sample positions sorted by (task, simulator seed, frame): the order training draws from.

    Parallel collection stores episodes in the order they finish, so two collections of the same demos differ in
    storage order; drawing batches in this order instead makes the training run a function of the demos and the
    seed alone. Episodes without a recorded seed (data made elsewhere) keep their stored order after the rest.
    """
    sidecar = read_sidecar(Path(root)).get("episodes", {})
    meta = {int(k): (m.get("task_name") or "", m.get("seed")) for k, m in sidecar.items()}

    def sort_key(episode: int):
        task, seed = meta.get(episode, ("", None))
        return (0, task, seed, episode) if seed is not None else (1, "", 0, episode)

    episode_index, frame_index = np.asarray(episode_index, np.int64), np.asarray(frame_index, np.int64)
    ranked = sorted((int(e) for e in np.unique(episode_index)), key=sort_key)
    rank = np.zeros(int(episode_index.max()) + 1, dtype=np.int64)
    rank[ranked] = np.arange(len(ranked))
    return np.lexsort((frame_index, rank[episode_index]))


def open_dataset(root: str | Path, *, embodiment: str = "robocasa_panda_omron", tasks=None, episodes_per_task: int = 0,
                 delta_timestamps: dict | None = None, repo_id: str = DEFAULT_REPO_ID):
    """Validate a local dataset and return it as lerobot's LeRobotDataset (optionally only some tasks / episodes),
    with state and action in the embodiment's order whatever order their feature names are stored in."""
    from vla.data.lerobot_view import ByNameDataset  # lazy: imports lerobot (see there)

    root = Path(root)
    info = validate_dataset(root, embodiment)
    episodes = select_episodes(root, info, tasks, episodes_per_task)
    dataset = ByNameDataset(repo_id, root=root, episodes=episodes, delta_timestamps=delta_timestamps)
    dataset.column_orders = dataset_column_orders(root, embodiment)
    return dataset


@dataclass(frozen=True)
class DataConfig:
    """Where the data is and how the trainer sees it."""

    root: str = "data/demos"
    embodiment: str = "robocasa_panda_omron"
    tasks: tuple[str, ...] | None = None
    episodes_per_task: int = 0  # train on the first N demos of each task (0: all)
    # Draw every task equally often instead of in proportion to its frames (like the sampling weights of GR00T's
    # dataset mixture, all equal): the button tasks' demos are half as long as pick-and-place's.
    balance_tasks: bool = False
    augment: ImageAugConfig = field(default_factory=ImageAugConfig)


class TrainingDataset(torch.utils.data.Dataset):
    """Samples for the trainer: images uint8 (V,H,W,3), instruction, normalized state and action chunk, pad mask.

    `spec` is the model's observation spec: its chunk length sets the action chunks, and its image size must be
    the one the dataset holds. Without one, the dataset's own spec (read from its meta files) with the contract's
    chunk length.
    """

    def __init__(self, config: DataConfig, normalizer: Normalizer | None = None, train: bool = True,
                 in_memory_chunks: bool = True, spec: ObservationSpec | None = None):
        self.config = config
        self.robot = get_embodiment(config.embodiment)
        recorded = read_spec(config.root).replace(embodiment=config.embodiment)
        if spec is not None and spec.image_size != recorded.image_size:
            raise ValueError(f"{config.root} holds {recorded.image_size}px images; the spec asks for {spec.image_size}px")
        self.spec = recorded.replace(action_horizon=spec.action_horizon) if spec is not None else recorded
        horizon = [i / self.spec.fps for i in range(self.spec.action_horizon)]
        self.lerobot = open_dataset(config.root, embodiment=config.embodiment, tasks=config.tasks,
                                    episodes_per_task=config.episodes_per_task, delta_timestamps={ACTION_KEY: horizon})
        # What a held-out evaluation must avoid: the simulator seeds of the demos trained on.
        self.episode_seeds = episode_seeds(config.root, self.lerobot.episodes)
        if in_memory_chunks:
            _answer_chunk_queries_from_memory(self.lerobot)
        self.normalizer = normalizer or Normalizer.from_dataset(config.root, config.embodiment)
        self.transform = ImageTransform(config.augment, train=train)

    @property
    def image_size(self) -> int:
        return self.spec.image_size

    def sample_keys(self) -> tuple[np.ndarray, np.ndarray]:
        """(episode_index, frame_index) of every sample, in index order."""
        columns = self.lerobot.hf_dataset.select_columns(["episode_index", "frame_index"]).with_format("numpy")
        return np.asarray(columns["episode_index"], np.int64), np.asarray(columns["frame_index"], np.int64)

    def __len__(self) -> int:
        return len(self.lerobot)

    def __getitem__(self, idx: int) -> dict:
        item = self.lerobot[idx]
        # lerobot decodes PNGs to float CHW in [0, 1]; k/255 round-trips exactly back to uint8.
        views = torch.stack([(item[k] * 255).round().to(torch.uint8).permute(1, 2, 0) for k in IMAGE_KEYS])
        return {
            "images": self.transform(views),
            "instruction": item["task"],
            "state": torch.as_tensor(self.normalizer.normalize_state(item[STATE_KEY].float()), dtype=torch.float32),
            "action": torch.as_tensor(self.normalizer.normalize_action(item[ACTION_KEY].float()), dtype=torch.float32),
            "action_is_pad": item[f"{ACTION_KEY}_is_pad"].bool(),
            "episode_index": item["episode_index"].long(),
            "frame_index": item["frame_index"].long(),
            "embodiment_id": torch.tensor(self.robot.id, dtype=torch.long),
        }


def _answer_chunk_queries_from_memory(lerobot) -> None:
    """Serve lerobot's action-chunk lookups from an in-memory copy of the numeric columns.

    lerobot 0.4.4 answers the 16-step query with `hf_dataset[key][rows]`; under datasets 4.x that raises and it
    falls back to `hf_dataset[rows][key]`, which decodes every image column of all 16 future rows (51 PNG decodes
    per sample instead of 3). The samples are identical (tests/test_data.py checks); only the cost differs.
    """
    lerobot._ensure_hf_dataset_loaded()
    delta_keys = list((lerobot.delta_indices or {}).keys())
    if not delta_keys:
        return
    numeric = lerobot.hf_dataset.select_columns(delta_keys).with_format("numpy")
    columns = {key: torch.from_numpy(np.asarray(numeric[key], dtype=np.float32)) for key in delta_keys}

    def query(query_indices: dict[str, list[int]]) -> dict:
        out = {}
        for key, rows in query_indices.items():
            if key in lerobot.meta.video_keys:
                continue
            if lerobot._absolute_to_relative_idx is not None:
                rows = [lerobot._absolute_to_relative_idx[i] for i in rows]
            out[key] = columns[key][rows]
        return out

    lerobot._query_hf_dataset = query


def collate(samples: list[dict]) -> dict:
    """Stack tensors along a new batch dimension; strings become lists."""
    out = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        out[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else list(values)
    return out

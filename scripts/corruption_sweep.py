"""Damage one input at a time and check the command that reads it refuses it properly.

    python scripts/corruption_sweep.py

Each case copies a small valid set of inputs (a dataset, a checkpoint, a rollout log, a Qwen3-VL directory), damages
one file, runs the command that reads it (train_vla.py or rollout.py, in-process) and checks: one line naming the
file and the problem, exit code 2, and every file in the case folder unchanged (SHA-256 of each before and after).
Prints the table; exit code 0 when every case passes. tests/test_corruption_sweep.py runs the same cases.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vla.data.normalize import Normalizer  # noqa: E402

DATASET, CHECKPOINT, ROLLOUT_LOG, BACKBONE = "dataset", "run/checkpoint-000002", "rollout-log", "qwen3-vl"


@dataclass(frozen=True)
class Case:
    """One damaged input: what the table calls it, how to damage it, which command reads it, what the line says."""

    name: str
    damage: Callable[[Path], None]
    command: str  # "train" (dataset or backbone), "resume" (train_vla.py --resume) or "rollout"
    expect: tuple[str, ...]  # fragments of the printed line: the file and the problem


@dataclass(frozen=True)
class Row:
    """What happened in one case."""

    name: str
    command: str
    line: str
    exit_code: int
    unchanged: bool

    def passed(self, case: Case) -> bool:
        one_line = self.line.startswith("error: ") and "\n" not in self.line and "Traceback" not in self.line
        return one_line and self.exit_code == 2 and self.unchanged and all(f in self.line for f in case.expect)


# -- the valid inputs ------------------------------------------------------------------------------------------------

def make_inputs(root: Path) -> Path:
    """A 3-episode dataset, a resumable checkpoint, a rollout log and a complete Qwen3-VL directory under root."""
    # lazy, as the commands below: huggingface_hub reads HF_HUB_OFFLINE when imported, and main() sets it first
    from checkpoints.format import CheckpointContents, save_checkpoint
    from vla.data.synthetic import write_synthetic_dataset

    dataset = write_synthetic_dataset(root / DATASET, num_episodes=3, length=6, image_size=16)
    save_checkpoint(root / CHECKPOINT, CheckpointContents(
        config={"model": {}, "embodiment": "robocasa_panda_omron", "step": 2},
        weights={"head.weight": torch.zeros(4, 4)},
        normalizer=Normalizer.from_dataset(dataset).to_dict(),
        card="# sweep checkpoint\n",
        training_state={"state.json": {"step": 2, "seed": 0, "batch_size": 4, "world_size": 1, "loss": 1.0}},
    ))
    log = root / ROLLOUT_LOG
    log.mkdir()
    (log / "episodes.jsonl").write_text(json.dumps({"task": "TurnOffMicrowave", "seed": 0, "success": True}) + "\n")
    (log / "settings.json").write_text(json.dumps({"checkpoint": str(root / CHECKPOINT)}) + "\n")
    backbone = root / BACKBONE
    backbone.mkdir()
    (backbone / "config.json").write_text(json.dumps(
        {"model_type": "qwen3_vl", "text_config": {"hidden_size": 2048, "num_hidden_layers": 28}}))
    save_file({"w": np.zeros(2, np.float32)}, str(backbone / "model.safetensors"))
    for name in ("tokenizer.json", "tokenizer_config.json", "preprocessor_config.json", "chat_template.json"):
        (backbone / name).write_text("{}")
    return root


# -- the damage -------------------------------------------------------------------------------------------------------

def _data_file(root: Path, episode: int) -> Path:
    return sorted((root / DATASET / "data").glob("*/*.parquet"))[episode]  # the writer gives each episode a file


def _rewrite_table(path: Path, edit) -> None:
    frame = pq.read_table(path).to_pandas()
    edit(frame)
    frame.to_parquet(path)


def truncate_weights(root: Path) -> None:
    path = root / CHECKPOINT / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-10])


def drop_normalizer(root: Path) -> None:
    (root / CHECKPOINT / "normalizer.json").unlink()


def cut_parquet(root: Path) -> None:
    path = _data_file(root, 1)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def shrink_images(root: Path) -> None:
    def smaller(cell):
        image = Image.open(io.BytesIO(cell["bytes"])).resize((8, 8))
        out = io.BytesIO()
        image.save(out, format="PNG")
        return {"bytes": out.getvalue(), "path": cell.get("path")}

    def edit(frame):
        frame["observation.images.wrist"] = [smaller(c) for c in frame["observation.images.wrist"]]

    _rewrite_table(_data_file(root, 2), edit)


def nan_action(root: Path) -> None:
    def edit(frame):
        action = np.array(frame.at[3, "action"], dtype=np.float32)
        action[0] = np.nan
        frame.at[3, "action"] = action

    _rewrite_table(_data_file(root, 1), edit)


def episode_gap(root: Path) -> None:
    """Episode 2 renumbered 3, as if episode 2 had been deleted from the middle."""
    def edit(frame):
        frame["episode_index"] = 3

    _rewrite_table(_data_file(root, 2), edit)
    meta = sorted((root / DATASET / "meta" / "episodes").glob("*/*.parquet"))[2]
    _rewrite_table(meta, edit)


def newer_config(root: Path) -> None:
    path = root / CHECKPOINT / "config.json"
    config = json.loads(path.read_text())
    config["format_version"] += 1
    path.write_text(json.dumps(config, indent=2))


def unknown_action_names(root: Path) -> None:
    path = root / DATASET / "meta" / "info.json"
    info = json.loads(path.read_text())
    info["features"]["action"]["names"][-1] = "wrist_twist"
    path.write_text(json.dumps(info, indent=4))


def backbone_without_weights(root: Path) -> None:
    (root / BACKBONE / "model.safetensors").unlink()


CASES = (
    Case("truncated model.safetensors (checkpoint)", truncate_weights, "rollout",
         ("model.safetensors is truncated", CHECKPOINT)),
    Case("checkpoint without normalizer.json", drop_normalizer, "resume", ("missing normalizer.json", CHECKPOINT)),
    Case("parquet data file cut mid-way", cut_parquet, "train", ("file-001.parquet", "unreadable parquet")),
    Case("image column of the wrong size", shrink_images, "train",
         ("file-002.parquet", "'observation.images.wrist' images are 8x8", "declares 16x16")),
    Case("NaN in an action", nan_action, "train", ("file-001.parquet", "'action' has NaN", "frame 3")),
    Case("episode index gap (0, 1, 3)", episode_gap, "train", ("file-002.parquet", "episode 2 missing")),
    Case("config.json from a newer version", newer_config, "rollout", ("config.json has format version 2", "update")),
    Case("action names of no known layout", unknown_action_names, "train",
         ("info.json", "unknown [wrist_twist]", "expected [eef_delta_pos.0")),
    Case("Qwen3-VL directory without weights", backbone_without_weights, "train",
         ("no weights (model.safetensors", BACKBONE)),
)


# -- running one case -------------------------------------------------------------------------------------------------

def digest(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under root."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def command_for(case: Case, root: Path) -> tuple[Callable[[list[str]], int], list[str]]:
    """(main function, argv) of the command that reads the damaged input."""
    if case.command == "rollout":
        from rollouts.cli import main

        return main, ["--task", "TurnOffMicrowave", "--checkpoint", str(root / CHECKPOINT), "--episodes", "1",
                      "--out-dir", str(root / ROLLOUT_LOG)]
    from vla.train.cli import main

    argv = ["--preset", "tiny", "--dataset", str(root / DATASET), "--output", str(root / "new-runs"),
            "--steps", "2", "--wandb", "false"]
    if case.command == "resume":
        argv += ["--resume", str(root / CHECKPOINT)]
    if case.name.startswith("Qwen3-VL"):
        argv += ["--backbone", str(root / BACKBONE)]
    return main, argv


def run_case(case: Case, inputs: Path, workdir: Path) -> Row:
    """Copy the inputs, damage them, run the command; what it printed, its exit code, whether anything changed."""
    root = Path(shutil.copytree(inputs, workdir / case.damage.__name__))
    case.damage(root)
    before = digest(root)
    main, argv = command_for(case, root)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    line = err.getvalue().strip().replace(str(root) + "/", "").replace(str(root), ".")
    return Row(case.name, case.command, line, code, digest(root) == before)


def table(rows: list[Row]) -> str:
    """The sweep as a markdown table."""
    lines = ["| input | command | line printed | exit | unchanged |", "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.name} | {row.command} | `{row.line}` | {row.exit_code} | "
                     f"{'yes' if row.unchanged else 'NO'} |")
    return "\n".join(lines)


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="corruption-sweep-") as tmp:
        inputs = make_inputs(Path(tmp) / "inputs")
        rows = [run_case(case, inputs, Path(tmp)) for case in CASES]
    print(table(rows))
    failed = [row.name for row, case in zip(rows, CASES) if not row.passed(case)]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

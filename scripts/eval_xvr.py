"""XVR-Eval: a backbone's per-task and overall accuracy on XVR questions, in the paper's table format.

    python scripts/eval_xvr.py --backbone checkpoints/pretrained/tiny-grounded --data data/xvr
    python scripts/eval_xvr.py --backbone Qwen/Qwen3-VL-2B-Instruct --data /path/to/XVR --image-size 448 \
        --task-map task2=...,task4=...                           # the published data (xvr_eval.jsonl)
    python scripts/eval_xvr.py --predictions preds.jsonl --data /path/to/XVR   # score a predictions file

Answers are greedy and scored by exact match after normalization ("Image 3." == "3"); overall is over samples,
as in the paper. The table shows the paper's random-chance row and its numbers for Qwen3-VL-2B-Instruct and
-XVR beside this run, plus the chance rate of this data. Predictions are appended to <out>/predictions.jsonl as
they come, so a killed run resumes; results go to <out>/results.json and <out>/table.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from contract.cli import parse_config_or_exit  # noqa: E402
from contract.files import atomic_write_json, atomic_write_text  # noqa: E402
from vla.vqa.format import VQAFormatError  # noqa: E402
from vla.xvr.data import parse_task_map, read_xvr  # noqa: E402
from vla.xvr.scoring import chance, format_table, paper_rows, read_predictions, score  # noqa: E402


@dataclasses.dataclass(frozen=True)
class EvalXVRConfig:
    """What to evaluate on which data."""

    backbone: str = "checkpoints/pretrained/tiny-grounded"
    data: str = "data/xvr"
    split: str = "eval"
    task_map: str = ""  # published task ids beyond the known ones, e.g. "task2=temporal_verification"
    predictions: str = ""  # score this predictions file (JSONL: sample_id, prediction) instead of a backbone
    out: str = ""  # default: outputs/xvr_eval/<backbone>-<data>-<split>
    max_samples: int = 0  # 0: every sample; otherwise this many, spread evenly over the split
    image_size: int = 128
    batch_size: int = 16
    max_new_tokens: int = 8
    cpu_threads: int = 2

    def __post_init__(self):
        for name in ("image_size", "batch_size", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.max_samples < 0:
            raise ValueError(f"--max-samples must be >= 0, got {self.max_samples}")


def _name(path: str) -> str:
    return Path(path.rstrip("/")).name or path


def main(argv=None) -> int:
    try:
        cfg = parse_config_or_exit(EvalXVRConfig(), sys.argv[1:] if argv is None else argv, __doc__)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        samples = read_xvr(cfg.data, cfg.split, parse_task_map(cfg.task_map))
        if cfg.max_samples and cfg.max_samples < len(samples):
            samples = samples[:: len(samples) // cfg.max_samples][: cfg.max_samples]
        if cfg.predictions:
            predictions, label = read_predictions(cfg.predictions), _name(cfg.predictions)
            out = Path(cfg.out) if cfg.out else None
        else:
            # lazy: torch and the model; scoring a --predictions file (and --help) stays torch-free
            import torch

            from checkpoints.backbones import resolve_backbone
            from vla.vqa.sft import load_vlm
            from vla.xvr.predict import predict

            resolve_backbone(cfg.backbone)  # an unknown name or missing directory fails here, in one line
            out = Path(cfg.out or f"outputs/xvr_eval/{_name(cfg.backbone)}-{_name(cfg.data)}-{cfg.split}")
            if cfg.cpu_threads > 0:
                torch.set_num_threads(cfg.cpu_threads)
            model = load_vlm(cfg.backbone, cfg.image_size)
            predictions = predict(model, samples, Path(cfg.data), cfg.image_size, out / "predictions.jsonl",
                                  cfg.batch_size, cfg.max_new_tokens)
            label = _name(cfg.backbone)
        result = score(samples, predictions)
    except (ValueError, VQAFormatError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = paper_rows()[:1] + [(f"random chance (this data)", chance(samples).row())] + paper_rows()[1:]
    rows.append((f"{label} (this run)", result.row()))
    table = format_table(rows, result.total)
    print(f"XVR-Eval accuracy (%) on {cfg.data} [{cfg.split}], {len(samples)} samples; overall is over samples.")
    print(table)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "table.md", table + "\n")
        atomic_write_json(out / "results.json", {"backbone": cfg.backbone, "predictions": cfg.predictions,
                                                 "data": cfg.data, "split": cfg.split, **result.to_json(),
                                                 "chance": chance(samples).to_json()})
        print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fine-tune a Qwen3-VL backbone on XVR multiple-choice answers (loss on the answer tokens only).

    python scripts/train_xvr.py --data data/xvr --out outputs/tiny-xvr          # the tiny base, full fine-tuning
    python scripts/train_xvr.py --lora-rank 8 --sft.tune-visual false ...       # LoRA on the LLM, frozen vision
    python scripts/train_xvr.py --backbone Qwen/Qwen3-VL-2B-Instruct --data /path/to/XVR --task-map ... \
        --sft.image-size 448 --sft.batch-size 8 --lora-rank 16                  # the published data, on a GPU

--data is a generated directory (scripts/make_xvr.py) or the published layout; train.jsonl trains, valid.jsonl
(when present) is scored during training. The result is a backbone directory `train_vla.py --backbone <out>`
accepts: the compact tiny format for tiny backbones, a Qwen3-VL directory otherwise (LoRA adapters merged in).
Training settings are the --sft.* flags (vla/vqa/sft.py); --data, --backbone and --out here override theirs.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from checkpoints.backbones import resolve_backbone  # noqa: E402
from contract.cli import parse_config_or_exit  # noqa: E402
from vla.vqa.format import VQAFormatError  # noqa: E402
from vla.vqa.sft import SFTConfig, train  # noqa: E402
from vla.xvr.data import parse_task_map, read_xvr  # noqa: E402
from vla.xvr.finetune import lora_trainable, merge_lora  # noqa: E402


@dataclasses.dataclass(frozen=True)
class TrainXVRConfig:
    """Data, starting backbone, output, and how the LLM is tuned (LoRA rank 0 = full fine-tuning)."""

    data: str = "data/xvr"
    backbone: str = "checkpoints/pretrained/tiny-grounded"
    out: str = "outputs/tiny-xvr"
    task_map: str = ""  # published task ids beyond the known ones, e.g. "task2=temporal_verification"
    lora_rank: int = 0
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    sft: SFTConfig = dataclasses.field(default_factory=lambda: SFTConfig(
        steps=1500, batch_size=16, lr=1e-3, eval_every=250, eval_samples=200, cpu_threads=2,
        notes="Qwen3-VL fine-tuned on XVR cross-view questions (scripts/train_xvr.py)"))

    def __post_init__(self):
        if self.lora_rank < 0:
            raise ValueError(f"--lora-rank must be >= 0 (0: full fine-tuning), got {self.lora_rank}")


def run(cfg: TrainXVRConfig, log=print) -> Path:
    """Read the data, fine-tune, write the backbone directory; returns it."""
    task_map = parse_task_map(cfg.task_map)
    train_rows = read_xvr(cfg.data, "train", task_map)
    try:
        valid_rows = read_xvr(cfg.data, "valid", task_map)
    except VQAFormatError as err:
        if "no valid.jsonl" not in str(err):
            raise
        valid_rows = []
    sft = dataclasses.replace(cfg.sft, data=cfg.data, backbone=cfg.backbone, out=cfg.out)
    if not valid_rows:
        sft = dataclasses.replace(sft, eval_samples=0)
    trainable = finalize = None
    if cfg.lora_rank > 0:
        trainable = lora_trainable(cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout)
        finalize = merge_lora
    log(f"{cfg.data}: {len(train_rows)} train, {len(valid_rows)} valid questions; "
        f"{'LoRA rank ' + str(cfg.lora_rank) if cfg.lora_rank else 'full'} fine-tuning of {cfg.backbone}")
    return train(sft, train_rows, valid_rows, log=log, trainable=trainable, finalize=finalize,
                 manifest_extra={"xvr": {"data": cfg.data, "lora_rank": cfg.lora_rank,
                                         "train_questions": len(train_rows)}})


def main(argv=None) -> int:
    try:
        cfg = parse_config_or_exit(TrainXVRConfig(), sys.argv[1:] if argv is None else argv, __doc__)
        resolve_backbone(cfg.backbone)
        out = run(cfg)
    except ValueError as err:  # VQAFormatError and BackboneError are ValueErrors
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"backbone: {out}  (python train_vla.py --backbone {out}; "
          f"python scripts/eval_xvr.py --backbone {out} --data {cfg.data})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

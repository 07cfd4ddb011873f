"""Pretrain the tiny Qwen3-VL on grounding questions generated from the simulator (resumable data, then SFT).

    python scripts/pretrain_backbone.py                                  # data/grounding, then the shipped backbone
    python scripts/pretrain_backbone.py --sft.steps 200 --out outputs/tiny-grounded-smoke --data.episodes 6
    python scripts/pretrain_backbone.py --sft.vision-depth 4 --sft.vision-width 128 --out <dir>   # a larger tower

Steps: (1) scripted experts play the kitchen tasks on scene seeds no demo or evaluation uses, and questions about
where the buttons, objects and the gripper are (per camera, and relative to the gripper) are answered from the
simulator's calibration (vla/vqa/grounding.py); (2) the tiny Qwen3-VL's vision tower and LLM layers are trained
on the answers (vla/vqa/sft.py; the embedding stays the seeded one); (3) the held-out scenes' questions are
answered and scored; (4) the backbone is written in the compact tiny format with a README of how it was made.
`python train_vla.py --backbone <out>` then uses it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")

from contract.cli import parse_config_or_exit  # noqa: E402
from vla.vqa.format import VQAFormatError, read_split  # noqa: E402
from vla.vqa.grounding import QUESTION_TASKS, GroundingConfig, generate, score  # noqa: E402
from vla.vqa.sft import SFTConfig, evaluate, load_vlm, spread, train  # noqa: E402

DEFAULT_OUT = "checkpoints/pretrained/tiny-grounded"


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """Data generation, fine-tuning and where the backbone goes."""

    out: str = DEFAULT_OUT
    # held-out questions answered for the final report, spread evenly over the eval split (greedy decoding of all
    # ~7,000 takes over 20 minutes on 2 cores)
    eval_questions: int = 1200
    data: GroundingConfig = dataclasses.field(default_factory=GroundingConfig)
    sft: SFTConfig = dataclasses.field(default_factory=lambda: SFTConfig(
        steps=2500, batch_size=32, lr=1e-3, eval_every=500, cpu_threads=2,
        notes="tiny Qwen3-VL pretrained on simulator grounding"))

    def __post_init__(self):
        if self.eval_questions < 1:
            raise ValueError(f"--eval-questions must be >= 1, got {self.eval_questions}")


def _report(cfg: PretrainConfig, result, wall_s: float, train_rows: int, eval_rows: int) -> str:
    lines = [
        "# tiny-grounded: the tiny Qwen3-VL pretrained on simulator grounding questions", "",
        "Made by `python scripts/pretrain_backbone.py` (this directory's `tiny_backbone.json` holds every setting).",
        f"Data: {cfg.data.episodes} expert episodes with random pushes on scene seeds {cfg.data.seed}+ "
        f"(disjoint from demo seeds 0.. and from evaluation seeds), {train_rows} questions, "
        f"{cfg.data.image_size} px views; eval: {cfg.data.eval_episodes} held-out scenes.",
        f"Training: {cfg.sft.steps} steps x batch {cfg.sft.batch_size}, lr {cfg.sft.lr}, vision tower and LLM layers "
        f"trained, embedding frozen (rebuilt from seed 0); {wall_s / 60:.0f} min on this machine.", "",
        f"Held-out answers on {sum(result.counts.values())} of the {eval_rows} eval questions (exact match per "
        "question type; pointing error in % of the image width; offset error in cm):",
        "", "| metric | value |", "|---|---|",
    ]
    lines += [f"| {k} exact | {100 * v:.1f}% (n={result.counts[k]}) |" for k, v in sorted(result.accuracy.items())]
    lines += [f"| {k} | {v:.2f} |" for k, v in sorted(result.errors.items())]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    cfg = parse_config_or_exit(PretrainConfig(), sys.argv[1:] if argv is None else argv, __doc__)
    started = time.perf_counter()
    try:
        generate(cfg.data)
        train_rows = read_split(cfg.data.out, "train", QUESTION_TASKS)
        eval_rows = read_split(cfg.data.out, "eval", QUESTION_TASKS)
    except (ValueError, VQAFormatError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    sft = dataclasses.replace(cfg.sft, data=cfg.data.out, out=cfg.out, image_size=cfg.data.image_size)
    out = train(sft, train_rows, eval_rows, scorer=score,
                manifest_extra={"grounding": dataclasses.asdict(cfg.data), "train_questions": len(train_rows),
                                "prompt_order": "instruction-first" if cfg.data.instruction_first else "views-first"})
    model = load_vlm(str(out), sft.image_size)
    result = evaluate(model, Path(cfg.data.out), spread(eval_rows, cfg.eval_questions), sft.image_size, scorer=score)
    wall = time.perf_counter() - started
    report = _report(cfg, result, wall, len(train_rows), len(eval_rows))
    (out / "README.md").write_text(report)
    (out / "eval.json").write_text(json.dumps({"accuracy": result.accuracy, "counts": result.counts,
                                               "errors": result.errors}, indent=2))
    print(report)
    print(f"backbone: {out}  (python train_vla.py --backbone {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

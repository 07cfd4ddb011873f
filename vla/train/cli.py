"""`python train_vla.py [--flag value ...]`: train a VLA policy.

With no arguments (CPU is enough): collects the built-in scripted-expert demos of the three kitchen tasks into
data/demos if they are not there yet, trains the `small` preset on the pretrained tiny backbone (about 55 minutes
in all on 2 cores), writes checkpoints under checkpoints/runs/<run-name>/ and prints the command that evaluates the
result. Rerunning the same command resumes the run from its newest checkpoint (after a kill, Ctrl-C or a crash).

Common options:
  --dataset DIR          LeRobot v3.0 dataset (default data/demos; collected when missing)
  --backbone NAME|PATH   tiny, qwen3-vl-2b, qwen3-vl-2b-xvr, a local Qwen3-VL directory or a hub id
                         (--model.backbone.name-or-path is the same choice; giving both, they must agree)
  --preset NAME          model + training preset: tiny, small (default), groot-n1.5
  --steps N  --batch-size N  --output DIR  --run-name NAME
  --resume auto|none|DIR auto (default): continue this run's newest checkpoint; none: refuse if one exists;
                         DIR: a checkpoint or run directory to continue
  --cache-features       frozen backbone: encode each sample once (no image augmentation) and train from the cache
  --model.<field> V      any model config field, e.g. --model.head.num-layers 8 --model.backbone.select-layer 16
  Every field below is a flag; dashes and underscores are interchangeable; `--name=value` works too.

Full size on GPUs (GR00T N1.5 recipe: frozen Qwen3-VL, bf16, TF32, batch 32 per GPU):
  python train_vla.py --preset groot-n1.5 --backbone qwen3-vl-2b-xvr --dataset data/robocasa
  accelerate launch --num_processes 8 train_vla.py --preset groot-n1.5 --backbone qwen3-vl-2b --dataset DIR
  torchrun --nproc_per_node 8 train_vla.py --preset groot-n1.5 --backbone qwen3-vl-2b --dataset DIR
  FSDP (backbone tuned too): accelerate launch --use_fsdp --num_processes 8 train_vla.py --preset groot-n1.5 \\
      --model.backbone.tune-llm true ...   (or pass an accelerate config file with --config_file)
"""

from __future__ import annotations

import sys
from pathlib import Path

from contract.cli import ConfigError, apply_overrides, describe, flag_names, parse_overrides
from contract.lookup import did_you_mean

# alias -> the field it sets; giving both is fine only when they name the same thing (never a silent winner)
ALIASES = {"dataset": "data.root", "model.backbone.name_or_path": "backbone"}
MODEL_PREFIX = "model."


def _same_choice(target: str, a: str, b: str) -> bool:
    """Whether two values of `target` name the same thing: equal, the same directory, or a preset and its source."""
    if a == b:
        return True
    if target == "backbone":
        from checkpoints.backbones import BACKBONES  # lazy: imports torch

        a, b = BACKBONES.get(a, a), BACKBONES.get(b, b)
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return a == b or (pa.exists() and pb.exists() and pa.resolve() == pb.resolve())


def usage() -> str:
    """The --help text: the docstring plus every flag with its default for the default preset."""
    from vla.presets import get_preset, get_train_preset  # lazy: imports torch

    train = get_train_preset("small")
    model_lines = describe(get_preset("small")).replace("  --", f"  --{MODEL_PREFIX}")
    return f"{__doc__}\nTraining flags (defaults of --preset small):\n{describe(train)}\n\nModel flags:\n{model_lines}\n"


def parse_args(argv: list[str]):
    """argv -> (TrainConfig, VLAConfig with --model.* overrides or None)."""
    from vla.presets import get_preset, get_train_preset  # lazy: imports torch

    overrides = parse_overrides(argv)
    for alias, target in ALIASES.items():
        if alias not in overrides:
            continue
        value = overrides.pop(alias)
        if target in overrides and not _same_choice(target, str(overrides[target]), str(value)):
            raise ConfigError(f"--{target.replace('_', '-')} {overrides[target]} and --{alias.replace('_', '-')} "
                              f"{value} disagree; give one of them")
        overrides.setdefault(target, value)
    preset = overrides.pop("preset", "small")
    try:
        train = get_train_preset(preset)
        model = get_preset(preset)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    model_overrides = {k[len(MODEL_PREFIX):]: v for k, v in overrides.items() if k.startswith(MODEL_PREFIX)}
    train_overrides = {k: v for k, v in overrides.items() if not k.startswith(MODEL_PREFIX)}
    valid = list(flag_names(train)) + list(ALIASES) + [MODEL_PREFIX + n for n in flag_names(model)]
    for name in overrides:
        if name not in valid:
            raise ConfigError(f"unknown option --{name}{did_you_mean(name, valid)}")
    train = apply_overrides(train, train_overrides)
    model = apply_overrides(model, model_overrides) if model_overrides else None
    return train, model


def main(argv: list[str] | None = None) -> int:
    """Entry point of train_vla.py; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(usage())
        return 0
    from vla.train.preflight import TrainSetupError, learning_warning, plan_run  # lazy: imports torch

    try:
        train, model = parse_args(argv)
        plan = plan_run(train, model)
    except (ConfigError, TrainSetupError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from vla.train.workspace import Workspace  # lazy: the model stack, loaded once the plan is valid

    workspace = Workspace(plan)
    if workspace.is_main:
        where = f"resuming from {plan.resume_from}" if plan.resume_from else "starting fresh"
        print(f"run: {plan.run_dir} ({where}); preset {train.preset}, backbone {plan.backbone.name}, "
              f"dataset {plan.dataset}, {train.steps} steps x batch {train.batch_size}", flush=True)
        warning = learning_warning(plan)
        if warning:
            print(warning, file=sys.stderr, flush=True)
    result = workspace.run()
    if not workspace.is_main:
        return 0
    if result.checkpoint is not None:
        loss = "n/a" if result.final_loss is None else f"{result.final_loss:.4f}"
        print(f"checkpoint: {result.checkpoint}  (step {result.step}, loss {loss}, {result.wall_s:.0f} s, "
              f"{result.samples_per_s:.1f} samples/s)")
        print(f"logs: {result.run_dir}/metrics.jsonl, {result.run_dir}/loss.png, tensorboard --logdir {result.run_dir}")
        print(f"evaluate: python rollout.py --task all --checkpoint {result.checkpoint}")
    if result.stopped_early and workspace._stop_signal is not None:
        print("stopped by signal; rerun the same command to resume", file=sys.stderr)
        return 128 + workspace._stop_signal
    return 0

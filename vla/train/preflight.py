"""Everything checked before training starts: configs composed, backbone, dataset and resume checkpoint validated.

Each problem is one `TrainSetupError` line naming what is wrong and what is accepted.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import hf_hub_download

from checkpoints.backbones import TINY, BackboneError, BackboneRef, resolve_backbone
from checkpoints.format import (
    CheckpointError,
    config_differences,
    list_checkpoints,
    validate_checkpoint,
)
from contract.spec import spec_from_checkpoint_config
from vla.backbone import resolve_prompt_order
from vla.config import VLAConfig
from vla.data.dataset import episode_seeds, training_demo_seeds, validate_dataset
from vla.data.names import dataset_column_orders, reorder_note
from vla.data.schema import task_list
from vla.presets import get_preset
from vla.tiny_qwen import tiny_qwen3vl_config
from vla.train.config import DEFAULT_DATASET, TrainConfig

REPO_ROOT = Path(__file__).resolve().parents[2]


class TrainSetupError(ValueError):
    """Bad input found before training starts."""


@dataclass(frozen=True)
class Plan:
    """A validated run: configs, where it writes, what it resumes from, and the demos it trains on."""

    train: TrainConfig
    model: VLAConfig
    backbone: BackboneRef
    dataset: Path
    run_dir: Path
    resume_from: Path | None
    demo_seeds: dict[str, list[int]]  # simulator seeds per task (checkpoints record them for held-out evaluation)


def backbone_dims(ref: BackboneRef) -> tuple[int, int]:
    """(text hidden size, LLM layers) of a backbone, read from its config without loading weights."""
    if ref.is_tiny:
        text = tiny_qwen3vl_config().text_config
        return text.hidden_size, text.num_hidden_layers
    path = Path(ref.source) / "config.json"
    if not path.is_file():
        try:
            path = Path(hf_hub_download(ref.source, "config.json"))
        except Exception as err:  # offline, missing repo, no auth: all mean "cannot use this backbone"
            raise TrainSetupError(f"backbone {ref.name!r}: cannot read its config.json ({type(err).__name__}: {err})") from None
    try:
        config = json.loads(path.read_text())
        text = config.get("text_config", config)
        return int(text["hidden_size"]), int(text["num_hidden_layers"])
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise TrainSetupError(f"backbone {ref.name!r}: {path} lacks a readable text_config.hidden_size / "
                              f"num_hidden_layers ({type(err).__name__}: {err})") from None


def compose_model_config(preset: str, backbone: BackboneRef, overrides: VLAConfig | None = None) -> VLAConfig:
    """The preset (with --model.* overrides) pointed at `backbone`, head width matched to the backbone's."""
    try:
        config = overrides or get_preset(preset)
    except ValueError as err:
        raise TrainSetupError(str(err)) from None
    hidden, layers = backbone_dims(backbone)
    asked = config.backbone.select_layer
    # A preset's own depth is fitted to a shallower backbone; a depth the user asked for is never changed.
    if asked > layers and overrides is not None and asked != get_preset(preset).backbone.select_layer:
        raise TrainSetupError(f"--model.backbone.select-layer {asked} exceeds backbone {backbone.name!r}'s "
                              f"{layers} LLM layers; choose 1..{layers}")
    select = min(asked, layers)
    if select != asked:
        print(f"note: preset {preset!r} select_layer {asked} > the {layers} LLM layers of backbone {backbone.name!r}; "
              f"using {layers}", flush=True)
    head = config.head
    if head.backbone_dim != hidden:
        # A preset's head was sized for its own backbone; keep its head count and re-split the width.
        if hidden % head.vl_heads:
            raise TrainSetupError(f"backbone width {hidden} is not divisible by --model.head.vl-heads {head.vl_heads}")
        head = dataclasses.replace(head, backbone_dim=hidden, vl_head_dim=hidden // head.vl_heads)
    composed = config.replace(
        backbone=dataclasses.replace(config.backbone, name_or_path=backbone.source, select_layer=select), head=head
    )
    try:
        resolve_prompt_order(composed.backbone)  # refuses an order the backbone was not pretrained with
    except ValueError as err:
        raise TrainSetupError(str(err)) from None
    return composed


def default_run_name(cfg: TrainConfig, dataset: Path) -> str:
    """<preset>-<backbone>-<dataset>-seed<seed>: the same command names the same run, so rerunning resumes."""
    backbone = Path(cfg.backbone).name or cfg.backbone
    name = f"{cfg.preset}-{backbone}-{dataset.name}-seed{cfg.seed}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def collect_default_demos(cfg: TrainConfig, root: Path) -> None:
    """Make the built-in scripted-expert demos at `root` (resumable: the collector skips finished episodes)."""
    script = REPO_ROOT / "scripts" / "collect_demos.py"
    if not script.is_file():
        raise TrainSetupError(f"dataset {root} does not exist and {script} (the demo collector) is missing")
    c = cfg.collect
    cmd = [sys.executable, str(script), "--task", c.tasks, "--episodes", str(c.episodes * len(task_list(c.tasks))),
           "--out", str(root), "--image-size", str(c.image_size), "--seed", str(c.seed), "--workers", str(c.workers)]
    print(f"collecting built-in demos ({c.episodes} per task, {c.image_size}px): {' '.join(cmd[1:])}", flush=True)
    result = subprocess.run(cmd, cwd=REPO_ROOT)
    if result.returncode != 0:
        raise TrainSetupError(f"demo collection failed (exit {result.returncode}); rerun to resume: {' '.join(cmd)}")


def _demos_short(root: Path, collect) -> bool:
    """The default dataset is missing, or holds fewer built-in demos per task than `collect` asks for (a first run
    killed while collecting); demos made elsewhere (no simulator seeds recorded) are left alone."""
    if not (root / "meta" / "info.json").exists():
        return True
    have = {task: len(seeds) for task, seeds in episode_seeds(root, None).items()}
    if not have:
        return False
    return any(have.get(task, 0) < collect.episodes for task in task_list(collect.tasks))


def check_dataset(cfg: TrainConfig) -> Path:
    """The dataset root, collected first when it is the missing default; validated against the contract."""
    root = Path(cfg.data.root)
    is_default = cfg.data.root == DEFAULT_DATASET
    if not root.is_absolute():
        root = (Path.cwd() / root) if (Path.cwd() / root).exists() or not is_default else REPO_ROOT / root
    if is_default and _demos_short(root, cfg.collect):
        collect_default_demos(cfg, root)  # the collector resumes the seed streams where they stopped
    if not root.exists():
        raise TrainSetupError(f"dataset {root} does not exist; pass --dataset DIR (a LeRobot v3.0 dataset)")
    if root.is_dir() and not any(root.iterdir()):
        raise TrainSetupError(f"dataset {root} is empty; pass --dataset DIR (a LeRobot v3.0 dataset)")
    try:
        validate_dataset(root, cfg.data.embodiment)
    except (ValueError, KeyError) as err:
        raise TrainSetupError(f"dataset: {err}".replace("\n", " ")) from None
    note = reorder_note(dataset_column_orders(root, cfg.data.embodiment), cfg.data.embodiment, str(root))
    if note:
        print(note, flush=True)
    return root


def _with_defaults(saved_model: dict | None) -> dict | None:
    """A saved model config with the fields added since it was written at their defaults (which it trained with)."""
    try:
        return VLAConfig.from_dict(saved_model).to_dict()
    except (TypeError, ValueError, AttributeError):  # not a model config this version reads: compared as it is
        return saved_model


def check_resume(cfg: TrainConfig, model: VLAConfig, run_dir: Path, demo_seeds: dict) -> Path | None:
    """The checkpoint to resume from (None for a fresh start); its model config must equal this run's, and a run
    found by --resume auto must have trained on the demos this run's dataset holds (`demo_seeds`, per task)."""
    if cfg.resume == "none":
        if list_checkpoints(run_dir):
            raise TrainSetupError(
                f"run {run_dir} already has checkpoints; pass --resume auto to continue it, or a new --run-name"
            )
        return None
    if cfg.resume == "auto":
        found = [p for p in reversed(list_checkpoints(run_dir)) if _resumable(p)]
        if not found:
            return None
        path = found[0]
    else:
        path = Path(cfg.resume)
        if path.is_dir() and not (path / "config.json").exists():
            found = [p for p in reversed(list_checkpoints(path)) if _resumable(p)]
            if not found:
                raise TrainSetupError(f"--resume {path}: no complete checkpoint with training state in it")
            path = found[0]
    try:
        saved = validate_checkpoint(path, need_training_state=True)
    except CheckpointError as err:
        raise TrainSetupError(f"--resume: {err}") from None
    diffs = config_differences(_with_defaults(saved.get("model")), model.to_dict())
    if diffs:
        shown = "; ".join(diffs[:3]) + (f"; and {len(diffs) - 3} more" if len(diffs) > 3 else "")
        raise TrainSetupError(f"--resume {path}: its model config differs from this run's ({shown})")
    training = saved.get("training") or {}
    # Switches that change what a resumed run would compute next (the weights it evaluates, the batches it draws).
    for flag, was, now in (("--ema.enabled", (training.get("ema") or {}).get("enabled", False), cfg.ema.enabled),
                           ("--data.balance-tasks", (training.get("data") or {}).get("balance_tasks", False),
                            cfg.data.balance_tasks)):
        if bool(was) != now:
            raise TrainSetupError(f"--resume {path}: it was trained with {flag} {str(bool(was)).lower()}; "
                                  "resume with the same setting, or start a new run (--run-name)")
    trained_on = (saved.get("dataset") or {}).get("episode_seeds")
    if cfg.resume == "auto" and trained_on and trained_on != demo_seeds:
        raise TrainSetupError(
            f"{path} trained on other demos than {cfg.data.root} holds now ({_demo_counts(trained_on)} per task, now "
            f"{_demo_counts(demo_seeds)}); pass --run-name NEW to train on them, or --resume {path} to continue anyway"
        )
    trained_for = spec_from_checkpoint_config(saved).embodiment
    if trained_for != cfg.data.embodiment:
        raise TrainSetupError(
            f"--resume {path}: trained for embodiment {trained_for!r}, this run uses {cfg.data.embodiment!r}"
        )
    return path


def _demo_counts(seeds: dict) -> str:
    return ", ".join(f"{task} {len(s)}" for task, s in sorted(seeds.items()))


def _resumable(path: Path) -> bool:
    try:
        validate_checkpoint(path, need_training_state=True)
    except CheckpointError:
        return False
    return True


def plan_run(cfg: TrainConfig, model_overrides: VLAConfig | None = None) -> Plan:
    """Validate every input of a run, in the order a user would fix them; collect default demos if needed."""
    try:
        backbone = resolve_backbone(cfg.backbone)
    except BackboneError as err:
        raise TrainSetupError(str(err)) from None
    model = compose_model_config(cfg.preset, backbone, model_overrides)
    if cfg.cache_features and not model.backbone.frozen:
        raise TrainSetupError("--cache-features needs a frozen backbone; drop --model.backbone.tune-* or the cache")
    # A resume path names its run; otherwise the run is <output>/<run-name>.
    explicit = cfg.resume not in ("auto", "none")
    if explicit and not Path(cfg.resume).exists():
        raise TrainSetupError(f"--resume {cfg.resume}: no such checkpoint or run directory")
    dataset = check_dataset(cfg)
    if explicit:
        resume_path = Path(cfg.resume)
        run_dir = resume_path.parent if (resume_path / "config.json").exists() else resume_path
    else:
        run_dir = Path(cfg.output) / (cfg.run_name or default_run_name(cfg, dataset))
    seeds = training_demo_seeds(dataset, cfg.data.tasks, cfg.data.episodes_per_task)
    resume_from = check_resume(cfg, model, run_dir, seeds)
    return Plan(train=cfg, model=model, backbone=backbone, dataset=dataset, run_dir=run_dir, resume_from=resume_from,
                demo_seeds=seeds)


def learning_warning(plan: Plan) -> str | None:
    """One line when the chosen mode cannot learn from the cameras: every backbone weight frozen at random init."""
    if plan.backbone.source == TINY and plan.model.backbone.frozen:
        return (f"warning: backbone {plan.backbone.name!r} is random and frozen, so the policy sees untrained image "
                "features and will mostly replay an average trajectory; use --backbone tiny-grounded "
                "(pretrained, scripts/pretrain_backbone.py) or train it (--model.backbone.tune-visual true)")
    return None

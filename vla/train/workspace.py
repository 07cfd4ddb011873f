"""The training workspace: owns the loop, data order, optimizer, checkpoints and logs; the model knows none of them.

Runs unchanged on one CPU, one GPU, or several under `accelerate launch` / `torchrun` (DDP; FSDP via an accelerate
config). Only the main process writes checkpoints and logs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from accelerate import Accelerator
from accelerate.utils import DistributedType, gather_object
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm import tqdm

from checkpoints.format import (
    CheckpointContents,
    prune_checkpoints,
    read_training_state,
    read_weights,
    remove_stale_temp_dirs,
    save_checkpoint,
    step_dir_name,
)
from vla.data.dataset import TrainingDataset, canonical_order, collate, sample_task_names
from vla.data.normalize import Normalizer
from vla.data.schema import read_spec
from vla.model import VLA
from vla.train.config import TrainConfig
from vla.train.ema import WeightAverage
from vla.train.feature_cache import collate_cached, ensure_feature_cache
from vla.train.logger import RunLogger, plot_loss
from vla.train.preflight import Plan
from vla.train.rng import capture_rng, restore_rng
from vla.train.sampling import SeededSamples, StepBatchSampler
from vla.train.schedule import make_scheduler, param_groups
from vla.weights import backbone_prefixes, find_backbone, weights_fingerprint, weights_to_save

TRAINED_WEIGHTS = "trained_weights.pt"  # in training_state/ when the checkpoint holds the EMA: the weights to resume
MODEL_KEYS = ("images", "instruction", "state", "action", "action_is_pad", "backbone_features",
              "backbone_attention_mask", "backbone_image_mask")


@dataclass
class TrainResult:
    """What a finished (or stopped) run produced."""

    run_dir: Path
    checkpoint: Path | None
    step: int
    final_loss: float | None
    wall_s: float
    samples_per_s: float
    stopped_early: bool = False
    loop_s: float = 0.0  # time inside the training loop (wall_s minus setup, cache build and final plot)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU does bf16 arithmetic in hardware (AVX512-BF16 or AMX), as oneDNN reports it."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def make_accelerator(cfg: TrainConfig):
    """An Accelerator for this machine: bf16 autocast + TF32 on CUDA, fp32 on CPU (CPU bf16: `cpu_bf16_autocast`)."""
    cuda = torch.cuda.is_available() and cfg.device != "cpu"
    precision = cfg.mixed_precision
    if precision == "auto":
        precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "no"
    if precision == "bf16" and not cuda:
        # CPU bf16 is the training step's own autocast: accelerate allows one mixed-precision setting per process,
        # and a script that trains a tiny and a small run in one process would be refused.
        precision = "no"
    if not cuda and cfg.cpu_threads > 0:
        torch.set_num_threads(cfg.cpu_threads)
    if cuda and cfg.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Accelerator(cpu=not cuda, mixed_precision=precision)


def cpu_bf16_autocast(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether the training step runs under CPU bf16 autocast: asked for, on CPU, and the CPU has native bf16
    arithmetic (emulated bf16 would be slower than fp32; then one warning line and fp32)."""
    if device.type != "cpu" or cfg.mixed_precision != "bf16":
        return False
    if not cpu_has_native_bf16():
        print("warning: this CPU has no native bf16 arithmetic; training in fp32 instead of --mixed-precision bf16",
              file=sys.stderr)
        return False
    return True


def attention_kernel(choice: str):
    """The scaled-dot-product attention kernel for one forward (its backward follows it). "math" is the plain
    matmul-softmax: at the small preset's sequence lengths (25-64 tokens) on CPU, torch's flash kernel spent a quarter
    of the head step in its backward (profiled 2026-12-05)."""
    if choice == "math":
        return sdpa_kernel(SDPBackend.MATH)
    return contextlib.nullcontext()


def has_cpp_compiler() -> bool:
    """Whether torch.compile can build its CPU kernels here: $CXX, g++ or clang++."""
    return bool(os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++"))


def compile_head_blocks(model, cfg: TrainConfig, device: torch.device) -> None:
    """With --compile, compile the head's DiT and VL self-attention in place (weights and their names unchanged).

    Only these blocks: the head's own random draws (noise, time, state dropout) stay in eager code. Dynamic shapes
    from the first step: the cached features' length varies by batch, and a resumed run must run the same kernels as
    an uninterrupted one (a first static compile could sum otherwise; not measured). On CPU, inductor builds C++;
    without a compiler: one warning line and eager training.
    """
    if not cfg.compile:
        return
    if device.type == "cpu" and not has_cpp_compiler():
        print("warning: --compile needs a C++ compiler on CPU (apt-get install g++); training without torch.compile",
              file=sys.stderr)
        return
    model.head.dit.compile(dynamic=True)
    model.head.vl_self_attention.compile(dynamic=True)


class Workspace:
    """One training run from a validated Plan."""

    def __init__(self, plan: Plan):
        self.plan, self.cfg = plan, plan.train
        self.accelerator = make_accelerator(self.cfg)
        self.cpu_bf16 = cpu_bf16_autocast(self.cfg, self.accelerator.device)
        self.is_main = self.accelerator.is_main_process
        self._stop_signal: int | None = None
        self.ema: WeightAverage | None = None  # set by run() with --ema.enabled

    # -- setup ---------------------------------------------------------------------------------------------------

    def _build_model(self):
        torch.manual_seed(self.cfg.seed)
        return VLA(self.plan.model, device=self.accelerator.device)

    def _build_dataset(self, model, normalizer):
        """The training samples: images + instruction, or cached backbone features."""
        data_cfg = self.cfg.data
        if not self.cfg.cache_features:
            return TrainingDataset(dataclasses.replace(data_cfg, root=str(self.plan.dataset)), normalizer, train=True,
                                   spec=self.spec)
        return ensure_feature_cache(
            dataset_root=self.plan.dataset, data_cfg=data_cfg, spec=self.spec, model=model, normalizer=normalizer,
            cache_dir=self.cfg.cache_dir, backbone_fp=self._backbone_fp, batch_size=self.cfg.batch_size,
            num_workers=self.cfg.num_workers, accelerator=self.accelerator,
        )

    def _collate(self):
        if self.cfg.cache_features:
            return collate_cached
        return collate

    def _loader(self, dataset, start_step: int):
        # Batches drawn in the dataset's canonical order: the same demos stored in another order train the same run.
        episode_index, frame_index = dataset.sample_keys()
        order = canonical_order(self.plan.dataset, episode_index, frame_index)
        groups = sample_task_names(self.plan.dataset, episode_index)[order] if self.cfg.data.balance_tasks else None
        sampler = StepBatchSampler(len(dataset), self.cfg.batch_size, self.cfg.seed, start_step,
                                   self.accelerator.num_processes, self.accelerator.process_index, groups=groups)
        # A private generator: creating the iterator must not draw from the global RNG (resumes must match).
        return torch.utils.data.DataLoader(
            SeededSamples(dataset, order), batch_sampler=sampler, collate_fn=self._collate(),
            num_workers=self.cfg.num_workers, generator=torch.Generator().manual_seed(self.cfg.seed),
            persistent_workers=self.cfg.num_workers > 0, pin_memory=self.accelerator.device.type == "cuda",
        ), sampler

    def _to_device(self, batch: dict) -> dict:
        device = self.accelerator.device
        out = {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
               for k, v in batch.items() if k in MODEL_KEYS}
        out["embodiment"] = self.cfg.data.embodiment
        return out

    # -- checkpoints ---------------------------------------------------------------------------------------------

    def _checkpoint_config(self, model, normalizer, step: int, dataset_len: int, includes_backbone: bool,
                           backbone_fp: str, loss: float | None) -> dict:
        return {
            "model": self.plan.model.to_dict(),
            "observation": self.spec.to_dict(),  # what the env must render for this policy, and its chunk length
            "transforms": {"image_aug": dataclasses.asdict(self.cfg.data.augment),
                           "eval": "centre crop of image_aug.crop_scale, resize to image_aug.resize, no jitter"},
            "backbone": {"name": self.plan.backbone.name, "source": self.plan.backbone.source,
                         "fingerprint": backbone_fp},
            "weights": {"includes_backbone": includes_backbone},
            "step": step,
            "total_steps": self.cfg.steps,
            "loss": loss,
            "dataset": {"root": str(self.plan.dataset), "num_samples": dataset_len,
                        "episodes_per_task": self.cfg.data.episodes_per_task, "episode_seeds": self.plan.demo_seeds},
            "training": self.cfg.to_dict(),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        }

    def _model_card(self, config: dict, path: Path) -> str:
        loss = config["loss"]
        return (
            f"# VLA checkpoint, step {config['step']} of {config['total_steps']}\n\n"
            f"- model preset: `{self.cfg.preset}`; backbone: `{config['backbone']['name']}` "
            f"(`{config['backbone']['source']}`)\n"
            f"- embodiment: `{self.spec.embodiment}`; cameras: {', '.join(self.spec.cameras)} at "
            f"{self.spec.image_size}px; action chunk: {self.spec.action_horizon} steps at {self.spec.fps} Hz\n"
            f"- trained on `{config['dataset']['root']}` ({config['dataset']['num_samples']} samples), "
            f"batch {self.cfg.batch_size} x {self.accelerator.num_processes} process(es), lr {self.cfg.optim.lr}\n"
            f"- last logged flow-matching loss: {'n/a' if loss is None else f'{loss:.4f}'}\n"
            f"- weights: {self._weights_kind()}\n\n"
            f"Evaluate: `python rollout.py --task all --checkpoint {path}`\n"
        )

    def _weights_kind(self) -> str:
        ema = self.cfg.ema
        if not ema.enabled:
            return "the trained weights"
        return (f"the exponential moving average of the trained weights (power {ema.power}, max decay "
                f"{ema.max_decay}); the trained ones are in training_state/{TRAINED_WEIGHTS}")

    def save(self, model, optimizer, scheduler, normalizer, step: int, dataset_len: int, loss: float | None) -> Path:
        """Write checkpoint-<step> (main process), with the RNG states of every process, then prune old ones."""
        acc = self.accelerator
        rng = capture_rng()
        rngs = gather_object([rng]) if acc.num_processes > 1 else [rng]
        state_dict = acc.get_state_dict(model)  # gathers full weights under FSDP; collective, so every rank calls
        optim_state = self._optimizer_state(model, optimizer)
        path = self.plan.run_dir / step_dir_name(step)
        if self.is_main:
            unwrapped = acc.unwrap_model(model)
            trained = {}
            if self.ema is not None:  # evaluate the average; keep the trained weights to resume from
                trained = {name: state_dict[name] for name in self.ema.names}
                state_dict = {**state_dict, **self.ema.state_dict()}
            weights, includes_backbone = weights_to_save(unwrapped, state_dict)
            config = self._checkpoint_config(unwrapped, normalizer, step, dataset_len, includes_backbone,
                                             self._backbone_fp, loss)
            training_state = {
                "state.json": {"step": step, "seed": self.cfg.seed, "batch_size": self.cfg.batch_size,
                               "world_size": acc.num_processes, "loss": loss},
                "optimizer.pt": optim_state,
                "scheduler.pt": scheduler.state_dict(),
                "rng.pt": {"per_process": rngs},
                **({TRAINED_WEIGHTS: trained} if trained else {}),
            }
            save_checkpoint(path, CheckpointContents(config=config, weights=weights,
                                                     normalizer=normalizer.to_dict(),
                                                     card=self._model_card(config, path),
                                                     training_state=training_state))
            prune_checkpoints(self.plan.run_dir, self.cfg.keep_last)
        acc.wait_for_everyone()
        return path

    def _optimizer_state(self, model, optimizer) -> dict:
        if self._is_fsdp():
            return FSDP.optim_state_dict(model, optimizer)
        return optimizer.state_dict()

    def _is_fsdp(self) -> bool:
        return self.accelerator.distributed_type == DistributedType.FSDP

    def restore(self, model, optimizer, scheduler) -> int:
        """Load weights, optimizer, scheduler and this process's RNG from the resume checkpoint; returns its step."""
        path = self.plan.resume_from
        state = read_training_state(path)
        weights = read_weights(path / "model.safetensors")
        if self.ema is not None:  # preflight checked that the checkpoint was trained with the average too
            self.ema.load_state_dict(weights)
            weights = {**weights, **state[TRAINED_WEIGHTS]}
        unwrapped = self.accelerator.unwrap_model(model)
        missing, unexpected = unwrapped.load_state_dict(weights, strict=False)
        prefixes = backbone_prefixes(unwrapped)
        missing = [k for k in missing if not any(k.startswith(p) for p in prefixes)]
        if missing or unexpected:
            raise RuntimeError(f"--resume {path}: weights do not fit the model ({len(missing)} missing, "
                               f"{len(unexpected)} unexpected, e.g. {(missing + unexpected)[0]})")
        optim_state = state["optimizer.pt"]
        if self._is_fsdp():
            optim_state = FSDP.optim_state_dict_to_load(model, optimizer, optim_state)
        optimizer.load_state_dict(optim_state)
        scheduler.load_state_dict(state["scheduler.pt"])
        info = state["state.json"]
        rngs = state["rng.pt"]["per_process"]
        same_layout = (info["world_size"] == self.accelerator.num_processes and info["batch_size"] == self.cfg.batch_size
                       and info["seed"] == self.cfg.seed)
        if not same_layout and self.is_main:
            print(f"warning: resuming with a different seed, batch size or process count than {path} was saved with; "
                  f"the data order from here on differs from the original run's", file=sys.stderr)
        restore_rng(rngs[self.accelerator.process_index % len(rngs)])
        return int(info["step"])

    # -- the loop ------------------------------------------------------------------------------------------------

    def _install_signal_handlers(self):
        def handler(signum, frame):
            self._stop_signal = signum

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                signal.signal(sig, handler)
            except ValueError:  # not the main thread (e.g. inside a test runner thread)
                pass

    def run(self) -> TrainResult:
        """Train until `steps` (or `stop_at_step`, or SIGINT/SIGTERM), saving every `save_every` steps and at the end."""
        cfg, acc = self.cfg, self.accelerator
        started = time.perf_counter()
        if self.is_main:
            remove_stale_temp_dirs(self.plan.run_dir)
        model = self._build_model()
        compile_head_blocks(model, cfg, acc.device)
        normalizer = Normalizer.from_dataset(self.plan.dataset, cfg.data.embodiment)
        backbone = find_backbone(model)
        self._backbone_fp = weights_fingerprint(backbone or model)
        # The data's cameras, image size and rate with the model's chunk length: what the checkpoint records.
        self.spec = read_spec(self.plan.dataset).replace(embodiment=cfg.data.embodiment,
                                                         action_horizon=self.plan.model.head.action_horizon)
        dataset = self._build_dataset(model, normalizer)
        params = [p for p in model.trainable_parameters()]
        optimizer = torch.optim.AdamW(param_groups(params, backbone, cfg.optim), lr=cfg.optim.lr,
                                      betas=tuple(cfg.optim.betas), weight_decay=cfg.optim.weight_decay,
                                      eps=cfg.optim.eps, fused=cfg.optim.fused or None)
        scheduler = make_scheduler(optimizer, cfg.steps, cfg.optim.warmup_ratio, cfg.optim.schedule)
        model, optimizer = acc.prepare(model, optimizer)
        if cfg.ema.enabled:
            if self._is_fsdp():
                raise ValueError("--ema.enabled is not supported under FSDP (sharded weights); use DDP or one process")
            self.ema = WeightAverage(acc.unwrap_model(model), cfg.ema)
        start_step = self.restore(model, optimizer, scheduler) if self.plan.resume_from else 0
        if start_step >= cfg.steps:
            if self.is_main:
                print(f"run {self.plan.run_dir} is already trained to step {start_step} (--steps {cfg.steps})")
            return TrainResult(self.plan.run_dir, self.plan.resume_from, start_step, None, 0.0, 0.0)
        loader, _ = self._loader(dataset, start_step)
        logger = RunLogger(self.plan.run_dir, {"train": cfg.to_dict(), "model": self.plan.model.to_dict()},
                           start_step, cfg.wandb, self.plan.run_dir.name) if self.is_main else None
        self._install_signal_handlers()
        end_step = min(cfg.steps, cfg.stop_at_step) if cfg.stop_at_step else cfg.steps
        global_batch = cfg.batch_size * acc.num_processes
        bar = None
        if self.is_main:
            bar = tqdm(total=cfg.steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True,
                       mininterval=1.0)
        step, window, last_loss, checkpoint = start_step, [], None, None
        window_started, window_samples = time.perf_counter(), 0
        train_started, trained_samples = time.perf_counter(), 0
        model.train()
        data = iter(loader)
        try:
            while step < end_step:
                batch = self._to_device(next(data))
                with attention_kernel(cfg.attention), torch.autocast("cpu", torch.bfloat16, enabled=self.cpu_bf16):
                    loss, _ = model(batch)
                acc.backward(loss)
                grad_norm = acc.clip_grad_norm_(params, cfg.optim.grad_clip) if cfg.optim.grad_clip > 0 else None
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                if self.ema is not None:
                    self.ema.update(step)
                window.append(loss.detach())
                window_samples += global_batch
                trained_samples += global_batch
                stopping = self._stop_signal is not None
                if step % cfg.log_every == 0 or step == end_step or stopping:
                    losses = acc.reduce(torch.stack(window), reduction="mean")
                    last_loss = float(losses[-1])
                    if not math.isfinite(last_loss):
                        raise FloatingPointError(f"loss became {last_loss} at step {step}; lower --optim.lr")
                    elapsed = time.perf_counter() - window_started
                    row = {"loss": last_loss, "loss_avg": float(losses.mean()), "lr": scheduler.get_last_lr()[0],
                           "samples_per_s": window_samples / max(elapsed, 1e-9)}
                    if grad_norm is not None:
                        row["grad_norm"] = float(grad_norm)
                    if self.is_main:
                        logger.log(step, row)
                        bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{row['lr']:.2e}",
                                        samples_s=f"{row['samples_per_s']:.1f}", refresh=False)
                    window, window_started, window_samples = [], time.perf_counter(), 0
                if bar is not None:
                    bar.update(1)
                if step % cfg.save_every == 0 or step == end_step or stopping:
                    checkpoint = self.save(model, optimizer, scheduler, normalizer, step, len(dataset), last_loss)
                if stopping:
                    break
        finally:
            if bar is not None:
                bar.close()
            if logger is not None:
                logger.close()
        self.model = acc.unwrap_model(model)  # trained weights; with --ema.enabled checkpoints hold their average
        wall = time.perf_counter() - started
        if self.is_main:
            plot_loss(self.plan.run_dir)
        loop = time.perf_counter() - train_started
        rate = trained_samples / max(loop, 1e-9)
        return TrainResult(self.plan.run_dir, checkpoint, step, last_loss, wall, rate,
                           stopped_early=step < cfg.steps, loop_s=loop)


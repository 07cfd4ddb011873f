"""Training configuration: frozen dataclasses, GR00T N1.5's fine-tuning recipe by default (named presets:
vla/presets.py)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from vla.data.dataset import DataConfig
from vla.train.ema import EmaConfig

DEFAULT_DATASET = "data/demos"


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warmup then cosine decay to zero, gradient-norm clipping (GR00T N1.5 fine-tuning)."""

    lr: float = 1e-4
    betas: tuple[float, float] = (0.95, 0.999)
    weight_decay: float = 1e-5
    eps: float = 1e-8
    warmup_ratio: float = 0.05
    schedule: str = "cosine"  # "cosine" or "constant" (after warmup)
    grad_clip: float = 1.0  # 0 turns clipping off
    fused: bool = False  # torch's fused AdamW kernel (same update, fewer kernel launches)
    backbone_lr_scale: float = 1.0  # the unfrozen backbone parts train at lr x this (the head at lr)

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError(f"optim.lr must be > 0, got {self.lr}")
        if self.backbone_lr_scale <= 0:
            raise ValueError(f"optim.backbone_lr_scale must be > 0, got {self.backbone_lr_scale}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"optim.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"unknown optim.schedule {self.schedule!r}; valid: cosine, constant")


@dataclass(frozen=True)
class CollectConfig:
    """The built-in demos made when the default dataset does not exist yet."""

    episodes: int = 50  # per task (~160 frames each); 300 episodes collected in 13 minutes with 2 workers (run XV)
    image_size: int = 128  # small views keep collection and image decoding fast on CPU
    tasks: str = "all"
    seed: int = 0
    workers: int = 2  # simulation processes

    def __post_init__(self):
        for name in ("episodes", "image_size", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"--collect.{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")


# Why cpu_threads defaults to 1: on the 2-core machine the project targets, two intra-op threads made a head step
# 5-8x slower than one whenever anything else ran (thread oversubscription); the data-loader worker uses the other
# core. Set --cpu-threads 0 on a dedicated many-core machine.
@dataclass(frozen=True)
class TrainConfig:
    """One training run. `preset` names the model preset; model fields are set with --model.<field>."""

    preset: str = "small"
    backbone: str = "tiny"  # a name from checkpoints/backbones.py, a Qwen3-VL directory or a hub id
    steps: int = 600
    batch_size: int = 16
    seed: int = 0
    output: str = "checkpoints/runs"
    run_name: str = ""  # default: <preset>-<backbone>-<dataset dir>-seed<seed>, so rerunning resumes
    resume: str = "auto"  # "auto": continue this run's newest checkpoint if any; "none"; or a checkpoint path
    stop_at_step: int = 0  # end early (as if killed) after this step, keeping the schedule of `steps`; 0 = off
    save_every: int = 200
    keep_last: int = 2
    log_every: int = 10
    num_workers: int = 1  # data-loader processes (each single-threaded); 0 = load in the training process
    cpu_threads: int = 1  # torch intra-op threads on CPU; 0 = torch's default (one per core)
    cache_features: bool = False  # frozen backbone: encode every sample once and train the head from the cache
    cache_dir: str = "outputs/feature_cache"
    mixed_precision: str = "auto"  # "auto" (bf16 on CUDA, off on CPU), "no", "bf16" (on CPU: where native), "fp16"
    attention: str = "auto"  # scaled-dot-product attention kernel while training: "auto" (torch picks) or "math"
    compile: bool = False  # torch.compile the head's transformer blocks (on CPU: needs a C++ compiler, e.g. g++)
    tf32: bool = True  # TF32 matmuls on Ampere+ GPUs
    device: str = "auto"  # "auto", "cpu" or "cuda" (under accelerate launch the launcher decides)
    wandb: bool = True  # log to Weights & Biases when it is installed and configured
    collect: CollectConfig = field(default_factory=CollectConfig)
    data: DataConfig = field(default_factory=lambda: DataConfig(root=DEFAULT_DATASET))
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)

    def __post_init__(self):
        for name in ("steps", "batch_size", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ValueError(f"--mixed-precision must be auto, no, bf16 or fp16; got {self.mixed_precision!r}")
        if self.attention not in ("auto", "math"):
            raise ValueError(f"--attention must be auto or math; got {self.attention!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"--device must be auto, cpu or cuda; got {self.device!r}")

    def to_dict(self) -> dict:
        """JSON-able nested dict."""
        return dataclasses.asdict(self)


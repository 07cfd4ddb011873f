"""Named presets: each name declares a model config and the recipe that trains it, once, in one table.

`train_vla.py --preset NAME` starts from both halves; model code and tests read the model half with get_preset.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from contract.lookup import lookup
from vla.config import TINY_BACKBONE, ActionHeadConfig, BackboneConfig, VLAConfig
from vla.data.dataset import DataConfig
from vla.data.transforms import ImageAugConfig
from vla.train.config import DEFAULT_DATASET, CollectConfig, OptimConfig, TrainConfig


@dataclass(frozen=True)
class Preset:
    """A model and its training recipe, declared together under one name (`train.preset` is that name)."""

    model: VLAConfig
    train: TrainConfig

    def to_dict(self) -> dict:
        """JSON-able nested dict."""
        return {"model": self.model.to_dict(), "train": self.train.to_dict()}


# The tiny Qwen3-VL (vla/backbone.py) has text width 128 and 4 layers; cutting at 3 exercises the truncation.
_TINY_BACKBONE = BackboneConfig(name_or_path=TINY_BACKBONE, select_layer=3, image_size=64)

# Why the CPU presets (tiny, small) leave the recipe: they must train in minutes on 2 cores. lr 1e-3 instead of 1e-4
# because a randomly initialised head gets only a few thousand steps. The `small` preset (the CPU main job) uses the
# shipped tiny backbone pretrained on simulator grounding questions (checkpoints/pretrained/tiny-grounded), frozen,
# with its features computed once (--cache-features): the head step then dominates, so two threads and no image
# augmentation (the cache holds un-augmented full frames, as the backbone saw them in pretraining); and 100 demos per
# task, not 50: the feature probe's error keeps falling with more scenes, and three seeds scored higher on all three
# tasks (not significant per task: Coffee 38% against 29%, p = 0.14). 20000 steps, not 10000: two seeds at 20000 scored
# 59 / 65 / 10% against three at 10000 38 / 46 / 16% (Coffee p = 0.001, Microwave p = 0.004). To fit them in the main
# job's hour the head step is made twice as fast (182 -> 90 ms measured in train_vla.py): no dropout (at 10000 steps
# it scored no better than 0.1: 45 against 51 of 150, p = 0.54), bf16 autocast (only where the CPU has native bf16),
# the plain "math" attention kernel and the fused AdamW.
# Every task drawn equally often (balance_tasks), not in proportion to its frames (PnP's demos are twice as long, so it
# took half of every batch): three seeds scored 72 / 59 / 15% against 59 / 66 / 14%, Coffee higher at every seed (+18,
# +4, +18 points; pooled +13 [+3, +24]), Microwave lower at two of three (-7 pooled, within noise), over the tasks 218
# against 208 of 450.
# The head's transformer blocks compiled (torch.compile, dynamic shapes): 16% faster per step, timed interleaved with
# the eager step on the same batches (100 -> 84 ms), after about 100 s of compiling on a fresh machine.
# Measurements behind these choices: docs/experiments.md (summary: README, "What the CPU main job learns").
PRESETS: dict[str, Preset] = {
    # Tests: everything small, a few hundred K head parameters.
    "tiny": Preset(
        model=VLAConfig(
            backbone=_TINY_BACKBONE,
            head=ActionHeadConfig(
                backbone_dim=128, input_embedding_dim=64, hidden_size=64, num_layers=2, num_heads=4, head_dim=16,
                vl_layers=1, vl_heads=4, vl_head_dim=32, timestep_embed_dim=32, num_future_tokens=4, max_seq_len=32,
                num_embodiments=4, dropout=0.0,
            ),
        ),
        train=TrainConfig(
            preset="tiny", steps=200, batch_size=8, save_every=100, optim=OptimConfig(lr=1e-3),
            data=DataConfig(root=DEFAULT_DATASET, augment=ImageAugConfig(resize=None)),
        ),
    ),
    # The CPU main job: the tiny Qwen3-VL at 128 px (16 tokens per view), all 4 layers (the pretrained tiny backbone
    # answers grounding questions from its last layer), and a head of a few M parameters that trains in minutes.
    "small": Preset(
        model=VLAConfig(
            backbone=dataclasses.replace(_TINY_BACKBONE, image_size=128, select_layer=4),
            head=ActionHeadConfig(
                backbone_dim=128, input_embedding_dim=256, hidden_size=256, num_layers=4, num_heads=8, head_dim=32,
                vl_layers=2, vl_heads=4, vl_head_dim=32, timestep_embed_dim=128, num_future_tokens=8, max_seq_len=64,
                num_embodiments=4, dropout=0.0,
            ),
        ),
        train=TrainConfig(
            preset="small", backbone="tiny-grounded", steps=20000, batch_size=16, save_every=2000, keep_last=10,
            cpu_threads=2, cache_features=True, mixed_precision="bf16", attention="math", compile=True,
            optim=OptimConfig(lr=1e-3, fused=True), collect=CollectConfig(episodes=100),
            data=DataConfig(root=DEFAULT_DATASET, augment=ImageAugConfig(crop_scale=1.0, resize=None),
                            balance_tasks=True),
        ),
    ),
    # Full size (REFERENCE.md sections 3-4): Qwen3-VL-2B cut at layer 12 as in N1.5, the N1.5 head; the GPU recipe:
    # batch 32 per GPU, 20k steps, images resized to 224 and jittered.
    "groot-n1.5": Preset(
        model=VLAConfig(
            backbone=BackboneConfig(name_or_path="Qwen/Qwen3-VL-2B-Instruct", select_layer=12, image_size=224),
            head=ActionHeadConfig(),
        ),
        train=TrainConfig(
            preset="groot-n1.5", backbone="qwen3-vl-2b", steps=20_000, batch_size=32, save_every=2_000,
            log_every=50, num_workers=8,
        ),
    ),
}


def get_preset(name: str) -> VLAConfig:
    """The model config of a named preset; unknown names fail with a suggestion and the valid names."""
    return lookup(PRESETS, name, "preset").model


def get_train_preset(name: str) -> TrainConfig:
    """The training recipe of a named preset; unknown names fail as in get_preset."""
    return lookup(PRESETS, name, "preset").train

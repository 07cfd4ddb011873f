"""Model configuration: frozen dataclasses for the backbone, the action head and the whole VLA (named presets:
vla/presets.py).

Torch-free so CLIs, data code and checkpoint validation can read a config without importing the model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields

from contract.embodiments import ACTION_HORIZON, MAX_ACTION_DIM, MAX_EMBODIMENTS, MAX_STATE_DIM
from contract.lookup import check_fields, check_name

TINY_BACKBONE = "tiny"
DTYPES = ("auto", "float32", "bfloat16", "float16")
# Where the instruction sits in the backbone's prompt. "views-first" (Qwen3-VL's usual order, GR00T's): the image
# tokens cannot see the instruction (the LLM is causal). "instruction-first": they can, so they may mark what the
# instruction names. "auto": what a pretrained tiny backbone was trained with (its manifest), else views-first.
PROMPT_ORDERS = ("auto", "views-first", "instruction-first")


@dataclass(frozen=True)
class BackboneConfig:
    """Which Qwen3-VL to load, where to cut it, what to train and how images enter it."""

    name_or_path: str = TINY_BACKBONE  # "tiny" (random, built offline) or a Qwen3-VL directory / hub id
    select_layer: int = 12  # keep LLM layers [0, select_layer); features = pre-final-norm output of the last kept one
    tune_llm: bool = False
    tune_visual: bool = False
    tune_top_llm_layers: int = 0  # train only the last N kept LLM layers (ignored when tune_llm)
    dtype: str = "auto"  # "auto": bfloat16 on CUDA, float32 on CPU
    # The backbone's input resolution, not the observation's (ObservationSpec.image_size, whatever the env renders):
    # views are resized to image_size^2 before the Qwen image processor, hence whole 32-pixel patch groups.
    image_size: int = 224
    seed: int = 0  # tiny backbone weights are a function of this seed only
    attn_implementation: str = "sdpa"
    prompt_order: str = "auto"  # one of PROMPT_ORDERS

    def __post_init__(self):
        check_name(self.prompt_order, PROMPT_ORDERS, "prompt_order")
        if self.select_layer < 1:
            raise ValueError(f"select_layer must be >= 1, got {self.select_layer}")
        if self.image_size % 32 or self.image_size < 32:
            raise ValueError(f"image_size must be a positive multiple of 32 (patch 16 x merge 2), got {self.image_size}")
        check_name(self.dtype, DTYPES, "dtype")
        if self.tune_top_llm_layers < 0:
            raise ValueError(f"tune_top_llm_layers must be >= 0, got {self.tune_top_llm_layers}")

    @property
    def is_tiny(self) -> bool:
        return self.name_or_path == TINY_BACKBONE

    @property
    def frozen(self) -> bool:
        return not (self.tune_llm or self.tune_visual or self.tune_top_llm_layers)


@dataclass(frozen=True)
class ActionHeadConfig:
    """GR00T-N1.5-style flow-matching DiT head (REFERENCE.md section 3); defaults are the N1.5 sizes."""

    backbone_dim: int = 2048  # width of the backbone features (the VL tokens)
    input_embedding_dim: int = 1536  # DiT width; must equal num_heads * head_dim
    hidden_size: int = 1024  # state-encoder hidden, DiT output and decoder width
    num_layers: int = 16  # DiT blocks: even ones cross-attend to VL tokens, odd ones self-attend
    num_heads: int = 32
    head_dim: int = 48
    vl_layers: int = 4  # pre-LN self-attention blocks over the VL tokens
    vl_heads: int = 32
    vl_head_dim: int = 64  # vl_heads * vl_head_dim must equal backbone_dim
    dropout: float = 0.2
    # Training only: the probability that a sample's state token is replaced by a learned mask token, so the head
    # learns to act from the images when it cannot lean on the state (GR00T N1.6's state_dropout_prob). 0 = off.
    state_dropout: float = 0.0
    timestep_embed_dim: int = 256
    num_future_tokens: int = 32
    max_seq_len: int = 1024  # learned position table for action tokens
    max_state_dim: int = MAX_STATE_DIM
    max_action_dim: int = MAX_ACTION_DIM
    action_horizon: int = ACTION_HORIZON
    num_embodiments: int = MAX_EMBODIMENTS
    num_timestep_buckets: int = 1000
    noise_beta_alpha: float = 1.5
    noise_beta_beta: float = 1.0
    noise_s: float = 0.999
    num_inference_steps: int = 4

    def __post_init__(self):
        if self.num_heads * self.head_dim != self.input_embedding_dim:
            raise ValueError(
                f"num_heads * head_dim ({self.num_heads} * {self.head_dim}) must equal "
                f"input_embedding_dim ({self.input_embedding_dim})"
            )
        if self.vl_heads * self.vl_head_dim != self.backbone_dim:
            raise ValueError(
                f"vl_heads * vl_head_dim ({self.vl_heads} * {self.vl_head_dim}) must equal backbone_dim ({self.backbone_dim})"
            )
        if not 0.0 <= self.state_dropout < 1.0:
            raise ValueError(f"state_dropout must be in [0, 1), got {self.state_dropout}")
        if self.num_layers < 1 or self.num_inference_steps < 1 or self.action_horizon < 1:
            raise ValueError("num_layers, num_inference_steps and action_horizon must be >= 1")
        if self.action_horizon > self.max_seq_len:
            raise ValueError(f"action_horizon {self.action_horizon} exceeds max_seq_len {self.max_seq_len}")


@dataclass(frozen=True)
class VLAConfig:
    """Backbone + head; the whole model is rebuilt from this (plus weights)."""

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    head: ActionHeadConfig = field(default_factory=ActionHeadConfig)

    def to_dict(self) -> dict:
        """JSON-able nested dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> VLAConfig:
        """Inverse of to_dict; unknown keys are an error (they mean a config from another version)."""
        return cls(backbone=_build(BackboneConfig, data.get("backbone", {})), head=_build(ActionHeadConfig, data.get("head", {})))

    def replace(self, **changes) -> VLAConfig:
        """Copy with top-level fields replaced (e.g. backbone=dataclasses.replace(cfg.backbone, ...))."""
        return dataclasses.replace(self, **changes)


def _build(cls, data: dict):
    check_fields(data, (f.name for f in fields(cls)), cls.__name__)
    return cls(**data)

"""Fine-tuning a Qwen3-VL on XVR answers (vla/vqa/sft.py does the work): full, or LoRA adapters merged at the end.

LoRA (peft) wraps the LLM layers' projections; the vision tower is tuned in full or frozen (`tune_visual`). The
adapters are merged into the weights before saving, so the result is a plain Qwen3-VL directory (or the compact
tiny format) that `train_vla.py --backbone` loads like any other.
"""

from __future__ import annotations

import torch

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def lora_trainable(rank: int, alpha: float, dropout: float):
    """A `trainable(model, cfg)` for vla.vqa.sft.train that adds LoRA adapters to the LLM layers."""

    def trainable(model, cfg) -> list[torch.nn.Parameter]:
        try:
            from peft import LoraConfig, inject_adapter_in_model
        except ImportError:
            raise ValueError("LoRA needs the peft package (pip install peft); --lora-rank 0 fine-tunes in full") from None
        model.requires_grad_(False)
        llm = model.trunk.language_model
        inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout,
                                           target_modules=list(LORA_TARGETS)), llm)
        params = [p for name, p in llm.named_parameters() if "lora_" in name]
        if not params:
            raise ValueError(f"no LoRA target ({', '.join(LORA_TARGETS)}) found in the backbone's LLM")
        for p in params:
            p.requires_grad_(True)
        if cfg.tune_visual:
            model.trunk.visual.requires_grad_(True)
            params += list(model.trunk.visual.parameters())
        return params

    return trainable


def merge_lora(model: torch.nn.Module) -> int:
    """Fold every LoRA adapter into its base layer and put the plain layer back; returns how many were merged."""
    from peft.tuners.lora import LoraLayer  # lazy: peft, only once LoRA is used (see lora_trainable)

    merged = 0
    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.get_base_layer())
            merged += 1
    return merged

"""Which weights a checkpoint stores: everything but a frozen backbone, which is rebuilt from its reference and
checked against a fingerprint of the weights the head was trained on."""

from __future__ import annotations

import hashlib

import torch


def find_backbone(model: torch.nn.Module) -> torch.nn.Module | None:
    """The Qwen3-VL backbone module inside the model, if any."""
    from vla.backbone import QwenVLBackbone

    return next((m for m in model.modules() if isinstance(m, QwenVLBackbone)), None)


def backbone_prefixes(model: torch.nn.Module) -> list[str]:
    """state_dict prefixes of the backbone module(s) inside the model."""
    from vla.backbone import QwenVLBackbone

    return [f"{name}." for name, module in model.named_modules() if isinstance(module, QwenVLBackbone) and name]


def weights_to_save(model: torch.nn.Module, state_dict: dict) -> tuple[dict, bool]:
    """(state dict to store, whether it includes the backbone): a frozen backbone is left out."""
    prefixes = backbone_prefixes(model)
    trainable_backbone = any(
        p.requires_grad for n, p in model.named_parameters() if any(n.startswith(x) for x in prefixes)
    )
    if trainable_backbone or not prefixes:
        return state_dict, True
    return {k: v for k, v in state_dict.items() if not any(k.startswith(x) for x in prefixes)}, False


def weights_fingerprint(module: torch.nn.Module, sample: int = 4096) -> str:
    """Hash of names, shapes, dtypes and a strided sample of every tensor: cheap even for a 2B backbone."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        flat = tensor.detach().reshape(-1)
        step = max(1, flat.numel() // sample)
        picked = flat[::step][:sample].to("cpu", torch.float32).contiguous()
        h.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        h.update(picked.numpy().tobytes())
    return h.hexdigest()[:16]

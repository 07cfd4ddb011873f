"""Which weights a saved model stores, the one rule for training checkpoints and `VLA.save_pretrained`: everything
but a frozen backbone, which is rebuilt from its reference and checked against a fingerprint of the weights the head
was trained on. Loading reads the same record back (config.json's `weights` and `backbone` sections)."""

from __future__ import annotations

import hashlib

import torch

from vla.backbone import QwenVLBackbone


def find_backbone(model: torch.nn.Module) -> torch.nn.Module | None:
    """The Qwen3-VL backbone module inside the model, if any."""
    return next((m for m in model.modules() if isinstance(m, QwenVLBackbone)), None)


def backbone_prefixes(model: torch.nn.Module) -> list[str]:
    """state_dict prefixes of the backbone module(s) inside the model."""
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


def load_saved_weights(model: torch.nn.Module, weights: dict, saved: dict, where: str) -> None:
    """Load weights stored under the rule above into a freshly built model.

    `saved` is the config.json written beside them (its `weights.includes_backbone` and `backbone.fingerprint`);
    `where` names the save in errors. Weights that do not fit the model, or a rebuilt frozen backbone whose weights
    differ from the ones the head was trained on, are one-line ValueErrors.
    """
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as err:  # size mismatches: name the first one only
        detail = next((line.strip() for line in str(err).splitlines() if "size mismatch" in line), str(err))
        raise ValueError(f"{where} does not match its model config: {detail}") from None
    includes_backbone = saved.get("weights", {}).get("includes_backbone", True)
    if not includes_backbone:
        prefixes = backbone_prefixes(model)
        missing = [k for k in missing if not any(k.startswith(p) for p in prefixes)]
    if missing or unexpected:
        example = (missing + unexpected)[0]
        raise ValueError(
            f"{where} does not match its model config: {len(missing)} missing and {len(unexpected)} "
            f"unexpected weights (e.g. {example})"
        )
    expected_fp = saved.get("backbone", {}).get("fingerprint")
    backbone = find_backbone(model)
    if expected_fp and backbone is not None and not includes_backbone:
        actual = weights_fingerprint(backbone)
        if actual != expected_fp:
            raise ValueError(
                f"{where}: backbone {saved['backbone']['source']!r} has different weights from the ones "
                f"the head was trained on (fingerprint {actual} != {expected_fp})"
            )


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

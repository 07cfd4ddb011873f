"""Image augmentation for training (GR00T recipe): random crop 0.95 -> resize -> colour jitter; centre crop at eval."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ImageAugConfig:
    """Crop fraction, output size and colour-jitter strengths; `enabled=False` passes images through untouched."""

    enabled: bool = True
    crop_scale: float = 0.95
    resize: int | None = 224
    brightness: float = 0.3
    contrast: float = 0.4
    saturation: float = 0.5
    hue: float = 0.08

    def __post_init__(self):
        if not 0.0 < self.crop_scale <= 1.0:
            raise ValueError(f"crop_scale must be in (0, 1], got {self.crop_scale}")
        if self.resize is not None and self.resize <= 0:
            raise ValueError(f"resize must be positive or None, got {self.resize}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")


class ImageTransform:
    """Applies ImageAugConfig to uint8 (V, H, W, 3) views; each view draws its own crop and jitter."""

    def __init__(self, config: ImageAugConfig = ImageAugConfig(), train: bool = True,
                 generator: torch.Generator | None = None):
        self.config, self.train, self.generator = config, train, generator

    def _uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * torch.rand((), generator=self.generator).item()

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected uint8 (V, H, W, 3) images, got {images.dtype} {tuple(images.shape)}")
        if not self.config.enabled:
            return images
        return torch.stack([self._one(view.permute(2, 0, 1)) for view in images]).permute(0, 2, 3, 1).contiguous()

    def _one(self, img: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as F  # lazy: ~1.5 s; the presets import this module

        cfg = self.config
        _, h, w = img.shape
        ch, cw = max(1, round(h * cfg.crop_scale)), max(1, round(w * cfg.crop_scale))
        if self.train:
            top = int(torch.randint(0, h - ch + 1, (), generator=self.generator))
            left = int(torch.randint(0, w - cw + 1, (), generator=self.generator))
        else:
            top, left = (h - ch) // 2, (w - cw) // 2
        img = img[:, top:top + ch, left:left + cw]
        if cfg.resize is not None:
            img = F.resize(img, [cfg.resize, cfg.resize], antialias=True)
        if self.train:
            img = self._jitter(img, F)
        return img

    def _jitter(self, img: torch.Tensor, F) -> torch.Tensor:
        cfg = self.config
        ops = []
        if cfg.brightness > 0:
            f = self._uniform(max(0.0, 1 - cfg.brightness), 1 + cfg.brightness)
            ops.append(lambda x, f=f: F.adjust_brightness(x, f))
        if cfg.contrast > 0:
            f = self._uniform(max(0.0, 1 - cfg.contrast), 1 + cfg.contrast)
            ops.append(lambda x, f=f: F.adjust_contrast(x, f))
        if cfg.saturation > 0:
            f = self._uniform(max(0.0, 1 - cfg.saturation), 1 + cfg.saturation)
            ops.append(lambda x, f=f: F.adjust_saturation(x, f))
        if cfg.hue > 0:
            f = self._uniform(-cfg.hue, cfg.hue)
            ops.append(lambda x, f=f: F.adjust_hue(x, f))
        # Random order, as torchvision's ColorJitter does.
        for i in torch.randperm(len(ops), generator=self.generator).tolist():
            img = ops[i](img)
        return img


def output_size(config: ImageAugConfig, image_size: int) -> int:
    """Side of the images the transform yields for square inputs of `image_size`."""
    if not config.enabled:
        return image_size
    return config.resize if config.resize is not None else max(1, round(image_size * config.crop_scale))



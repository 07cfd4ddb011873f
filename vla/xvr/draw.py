"""Annotations drawn on views: filled dots with a dark ring, arrows. Sizes scale with the image."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def dot_radius(size: int) -> int:
    return max(2, round(0.03 * size))


def draw_dots(image: np.ndarray, dots: list[tuple[np.ndarray, tuple[int, int, int]]]) -> np.ndarray:
    """A copy of `image` with a filled dot (dark ring) at each (uv, rgb); uv in pixel coordinates."""
    canvas = Image.fromarray(image)
    pen = ImageDraw.Draw(canvas)
    r = dot_radius(image.shape[1])
    for uv, color in dots:
        u, v = float(uv[0]), float(uv[1])
        # PIL's ellipse box is in pixel indices; pixel (i, j) covers [i, i+1) x [j, j+1) in uv.
        pen.ellipse((u - 0.5 - r, v - 0.5 - r, u - 0.5 + r, v - 0.5 + r), fill=tuple(color), outline=(0, 0, 0))
    return np.asarray(canvas).copy()


def draw_arrows(image: np.ndarray, arrows: list[tuple[np.ndarray, np.ndarray, tuple[int, int, int]]]) -> np.ndarray:
    """A copy of `image` with an arrow from start to end (uv) in each colour, a dark dot at the shared start."""
    canvas = Image.fromarray(image)
    pen = ImageDraw.Draw(canvas)
    size = image.shape[1]
    width = max(1, round(size / 64))
    head = max(3.0, 0.06 * size)
    for start, end, color in arrows:
        s, e = np.asarray(start, float) - 0.5, np.asarray(end, float) - 0.5
        pen.line((*s, *e), fill=tuple(color), width=width)
        direction = (e - s) / max(np.linalg.norm(e - s), 1e-6)
        normal = np.array([-direction[1], direction[0]])
        base = e - head * direction
        pen.polygon([tuple(e), tuple(base + 0.5 * head * normal), tuple(base - 0.5 * head * normal)], fill=tuple(color))
    for start, _, _ in arrows[:1]:
        s = np.asarray(start, float) - 0.5
        r = max(1.0, 0.015 * size)
        pen.ellipse((s[0] - r, s[1] - r, s[0] + r, s[1] + r), fill=(0, 0, 0))
    return np.asarray(canvas).copy()

"""Episode videos: the camera views side by side, the instruction on top, the outcome held at the end."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from contract.embodiments import FPS, IMAGE_KEYS

_LINE = 12  # pixels per text line of the default bitmap font
_CHAR = 6  # its approximate character width


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def compose_frame(obs: dict, lines: list[str], image_keys=IMAGE_KEYS, color=(255, 255, 255)) -> np.ndarray:
    """One video frame: views left to right under a strip of text lines. Sides rounded to even for H.264."""
    views = [np.asarray(obs[k]) for k in image_keys if k in obs]
    if not views:
        raise ValueError(f"no camera images in the observation (looked for {', '.join(image_keys)})")
    row = np.concatenate(views, axis=1)
    banner = _LINE * len(lines) + 4
    canvas = Image.new("RGB", (row.shape[1] + row.shape[1] % 2, row.shape[0] + banner + row.shape[0] % 2))
    canvas.paste(Image.fromarray(row), (0, banner))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((3, 2 + _LINE * i), line, fill=color if i == 0 else (255, 255, 255), font=_font())
    return np.asarray(canvas)


def wrap(text: str, width_px: int) -> list[str]:
    """Lines of `text` that fit `width_px` in the default font (small renders need several)."""
    return textwrap.wrap(text, max(8, (width_px - 6) // _CHAR)) or [""]


class EpisodeVideo:
    """Streams frames to an MP4 as the episode runs (constant memory); `finish` stamps the outcome and renames."""

    def __init__(self, path: str | Path, instruction: str, fps: int = FPS):
        import imageio.v2 as imageio  # ~0.15 s to import, paid only when videos are recorded

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".tmp-{os.getpid()}-{self.path.name}")
        self.instruction = instruction
        self._writer = imageio.get_writer(self._tmp, fps=fps, macro_block_size=1, ffmpeg_log_level="error")
        self._last: dict | None = None
        self._lines: list[str] | None = None  # the instruction, wrapped once so every frame has the same size
        self.fps = fps

    def add(self, obs: dict, step: int) -> None:
        self._last = obs
        if self._lines is None:
            width = sum(np.asarray(obs[k]).shape[1] for k in IMAGE_KEYS if k in obs)
            self._lines = wrap(self.instruction, width)
        self._writer.append_data(compose_frame(obs, [f"t={step}", *self._lines]))

    def finish(self, success: bool, steps: int) -> Path:
        """Hold the last frame one second with the outcome, close, and move into place."""
        if self._last is not None:
            status = f"{'SUCCESS' if success else 'FAILURE'} after {steps} steps"
            frame = compose_frame(self._last, [status, *self._lines], color=(80, 255, 80) if success else (255, 80, 80))
            for _ in range(self.fps):
                self._writer.append_data(frame)
        self._writer.close()
        os.replace(self._tmp, self.path)
        return self.path

    def discard(self) -> None:
        try:
            self._writer.close()
        finally:
            self._tmp.unlink(missing_ok=True)

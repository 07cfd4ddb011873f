"""Episode videos: the camera views side by side, the instruction on top, the outcome held at the end."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vla.embodiments import FPS, IMAGE_KEYS

_BANNER = 18  # pixels of text strip above the views


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def compose_frame(obs: dict, text: str, image_keys=IMAGE_KEYS, color=(255, 255, 255)) -> np.ndarray:
    """One video frame: views left to right under a text strip. Height rounded to even for H.264."""
    views = [np.asarray(obs[k]) for k in image_keys if k in obs]
    if not views:
        raise ValueError(f"no camera images in the observation (looked for {', '.join(image_keys)})")
    row = np.concatenate(views, axis=1)
    canvas = Image.new("RGB", (row.shape[1] + row.shape[1] % 2, row.shape[0] + _BANNER + row.shape[0] % 2))
    canvas.paste(Image.fromarray(row), (0, _BANNER))
    ImageDraw.Draw(canvas).text((4, 3), text, fill=color, font=_font())
    return np.asarray(canvas)


class EpisodeVideo:
    """Streams frames to an MP4 as the episode runs (constant memory); `finish` stamps the outcome and renames."""

    def __init__(self, path: str | Path, instruction: str, fps: int = FPS):
        import imageio.v2 as imageio

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".tmp-{os.getpid()}-{self.path.name}")
        self.instruction = instruction
        self._writer = imageio.get_writer(self._tmp, fps=fps, macro_block_size=1, ffmpeg_log_level="error")
        self._last: dict | None = None
        self.fps = fps

    def add(self, obs: dict, step: int) -> None:
        self._last = obs
        self._writer.append_data(compose_frame(obs, f"{self.instruction}  [t={step}]"))

    def finish(self, success: bool, steps: int) -> Path:
        """Hold the last frame one second with the outcome, close, and move into place."""
        if self._last is not None:
            text = f"{'SUCCESS' if success else 'FAILURE'} after {steps} steps: {self.instruction}"
            frame = compose_frame(self._last, text, color=(80, 255, 80) if success else (255, 80, 80))
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

"""Training logs: metrics.jsonl, TensorBoard, wandb when installed, and a loss plot at the end (rank 0 only)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from contract.files import atomic_write_text

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss.png"


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The rows of a run's metrics.jsonl (a torn last line from a kill is skipped)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


class RunLogger:
    """Writes one row per logged step to every sink; on resume, rows past the resumed step are dropped first."""

    def __init__(self, run_dir: str | Path, config: dict, start_step: int = 0, use_wandb: bool = True,
                 run_name: str = ""):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / METRICS_FILE
        # Rows logged after the checkpoint we resume from belong to the lost work; the resumed run rewrites them.
        kept = [r for r in read_metrics(self.run_dir) if r.get("step", 0) <= start_step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self.file = open(self.path, "a", buffering=1)
        self.tensorboard = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=start_step + 1 if start_step else None)
        except ImportError:
            pass
        self.wandb = None
        if use_wandb:
            try:
                import wandb
            except ImportError:
                wandb = None
            if wandb is not None:
                self.wandb = wandb.init(project="xvr-vla", name=run_name or self.run_dir.name, config=config,
                                        dir=str(self.run_dir), resume="allow", id=run_name or None)

    def log(self, step: int, metrics: dict) -> None:
        """Record one row of scalars at `step`."""
        row = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        self.file.write(json.dumps(row) + "\n")
        if self.tensorboard is not None:
            for key, value in metrics.items():
                self.tensorboard.add_scalar(f"train/{key}", float(value), step)
        if self.wandb is not None:
            self.wandb.log(metrics, step=step)

    def close(self) -> None:
        """Flush and close every sink."""
        self.file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.wandb is not None:
            self.wandb.finish()


def plot_loss(run_dir: str | Path, key: str = "loss") -> Path | None:
    """Save the loss curve of metrics.jsonl as loss.png; None when there is nothing to plot."""
    rows = [r for r in read_metrics(run_dir) if key in r and math.isfinite(r[key])]
    if not rows:
        return None
    import matplotlib  # lazy: a slow import, for the one plot at the end

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot([r["step"] for r in rows], [r[key] for r in rows], lw=1, label=key)
    if "loss_avg" in rows[0]:
        ax.plot([r["step"] for r in rows], [r["loss_avg"] for r in rows], lw=2, label="mean since last log")
    ax.set_xlabel("step")
    ax.set_ylabel("flow-matching loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = Path(run_dir) / PLOT_FILE
    fig.savefig(out)
    plt.close(fig)
    return out

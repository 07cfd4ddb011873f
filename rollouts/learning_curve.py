"""Success against training steps: every checkpoint of a run evaluated on the same held-out episodes, plotted."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from checkpoints.format import CheckpointError, validate_checkpoint
from contract.files import atomic_write_json
from rollouts.config import RolloutConfig
from rollouts.evaluate import evaluate
from rollouts.metrics import TaskSummary, same_rate_p_value

CURVE_PNG = "learning_curve.png"
CURVE_JSON = "learning_curve.json"


def run_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint in a run directory, oldest first."""
    found = []
    for path in sorted(Path(run_dir).glob("checkpoint-*")):
        try:
            config = validate_checkpoint(path)
        except CheckpointError:
            continue  # a partial save (killed mid-write) or a foreign folder
        found.append((int(config["step"]), path))
    if not found:
        raise ValueError(f"{run_dir}: no complete checkpoint-* directories (is it a run directory?)")
    return found


def learning_curve(run_dir: str | Path, config: RolloutConfig, evaluate_fn=None) -> dict:
    """Evaluate each checkpoint (results under <run>/eval/<checkpoint>, resumable) and write the curve beside the run."""
    evaluate_fn = evaluate_fn or evaluate
    run_dir = Path(run_dir)
    points = []
    for step, path in run_checkpoints(run_dir):
        out = run_dir / "eval" / f"{path.name}-{config.episodes}ep-seed{config.seed}"
        evaluation = evaluate_fn(dataclasses.replace(config, checkpoint=str(path), out_dir=str(out)))
        points.append({"step": step, "checkpoint": str(path), "results": str(out),
                       "tasks": {t: _point(s) for t, s in evaluation.summaries.items()}})
    curve = {"run": str(run_dir), "episodes_per_task": config.episodes, "seed": config.seed, "points": points}
    atomic_write_json(run_dir / CURVE_JSON, curve)
    plot_curve(curve, run_dir / CURVE_PNG)
    return curve


def _point(summary: TaskSummary) -> dict:
    lo, hi = summary.interval
    return {"rate": summary.rate if summary.episodes else None, "ci95": [lo, hi], "successes": summary.successes,
            "episodes": summary.episodes}


def plot_curve(curve: dict, path: str | Path) -> Path:
    """Success (with Wilson 95% bands) per task against the training step."""
    import matplotlib  # about half a second to import, for a chart at the end of a run

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = curve["points"]
    steps = [p["step"] for p in points]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for task in points[0]["tasks"]:
        rates = [100 * (p["tasks"][task]["rate"] or 0.0) for p in points]
        lo = [100 * p["tasks"][task]["ci95"][0] for p in points]
        hi = [100 * p["tasks"][task]["ci95"][1] for p in points]
        line, = ax.plot(steps, rates, marker="o", label=task)
        ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.15)
    ax.set_xlabel("training step")
    ax.set_ylabel("success (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{Path(curve['run']).name}: {curve['episodes_per_task']} held-out episodes per task", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def curve_table(curve: dict) -> str:
    """Text table: one row per checkpoint, success per task (k/n), then whether the checkpoints differ beyond noise."""
    points = curve["points"]
    tasks = list(points[0]["tasks"])
    lines = [f"{'step':>7} " + " ".join(f"{t:>20}" for t in tasks)]
    for p in points:
        cells = [f"{100 * (p['tasks'][t]['rate'] or 0):5.1f}% ({p['tasks'][t]['successes']}/{p['tasks'][t]['episodes']})"
                 for t in tasks]
        lines.append(f"{p['step']:>7} " + " ".join(f"{c:>20}" for c in cells))
    cells = []
    for t in tasks:
        p_value = same_rate_p_value([p["tasks"][t]["successes"] for p in points],
                                    [p["tasks"][t]["episodes"] for p in points])
        cells.append("n/a" if p_value is None else f"p = {p_value:.2f}")
    lines.append(f"{'same?':>7} " + " ".join(f"{c:>20}" for c in cells))
    lines.append("  (same?: chi-square p that every checkpoint has one success rate; p > 0.05: the differences "
                 "between checkpoints are within evaluation noise at this many episodes)")
    return "\n".join(lines)


def load_curve(run_dir: str | Path) -> dict:
    return json.loads((Path(run_dir) / CURVE_JSON).read_text())

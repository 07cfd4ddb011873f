"""Rollout reports: a printed summary table, report.md, summary.json and a bar chart with 95% intervals."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from contract.files import atomic_write_text
from rollouts.metrics import TaskSummary, format_rate


def summary_table(summaries: dict[str, TaskSummary]) -> str:
    """Fixed-width text table: task, success with Wilson 95% CI, errors, mean steps."""
    rows = [f"{'task':<20} {'success [95% CI] (k/n)':<34} {'errors':>6} {'steps':>7}"]
    for task, s in summaries.items():
        per_seed = "" if len(s.per_seed) < 2 else f"  seeds: {', '.join(f'{100 * r:.0f}' for _, r in s.per_seed)}"
        rows.append(f"{task:<20} {format_rate(s):<34} {s.errors:>6} {s.mean_steps:>7.1f}{per_seed}")
    rows.append(_mean_row(summaries))
    return "\n".join(rows)


def _mean_row(summaries: dict[str, TaskSummary]) -> str:
    rates = [s.rate for s in summaries.values() if s.episodes]
    mean = f"{100 * sum(rates) / len(rates):5.1f}%" if rates else "n/a"
    return f"{'mean over tasks':<20} {mean}"


def markdown_table(summaries: dict[str, TaskSummary]) -> str:
    lines = ["| task | success | 95% CI | successes / episodes | errors | mean steps |", "|---|---|---|---|---|---|"]
    for task, s in summaries.items():
        if not s.episodes:
            lines.append(f"| {task} | n/a | | 0 / 0 | {s.errors} | |")
            continue
        lo, hi = s.interval
        lines.append(f"| {task} | {100 * s.rate:.1f}% | [{100 * lo:.1f}, {100 * hi:.1f}] | {s.successes} / {s.episodes} "
                     f"| {s.errors} | {s.mean_steps:.1f} |")
    return "\n".join(lines)


def bar_chart(series: dict[str, dict[str, TaskSummary]], path: str | Path, title: str = "") -> Path:
    """Grouped bars (one group per task, one bar per series) with Wilson 95% error bars."""
    import matplotlib  # about half a second to import, for a chart at the end of a run

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(next(iter(series.values())).keys())
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(2 + 2.2 * len(tasks), 3.6))
    for k, (name, summaries) in enumerate(series.items()):
        rates = np.array([100 * summaries[t].rate if summaries[t].episodes else 0.0 for t in tasks])
        bounds = np.array([[100 * b for b in summaries[t].interval] for t in tasks])
        errors = np.stack([rates - bounds[:, 0], bounds[:, 1] - rates]).clip(min=0)
        x = np.arange(len(tasks)) + (k - (len(series) - 1) / 2) * width
        ax.bar(x, rates, width, yerr=errors, capsize=3, label=name)
    ax.set_xticks(np.arange(len(tasks)), tasks)
    ax.set_ylim(0, 100)
    ax.set_ylabel("success % (Wilson 95% CI)")
    ax.set_title(title)
    if len(series) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def write_report(out_dir: str | Path, summaries: dict[str, TaskSummary], title: str, meta: dict) -> Path:
    """summary.json + report.md + success.png in out_dir; returns report.md's path."""
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "summary.json", json.dumps({
        "meta": meta,
        "tasks": {t: {**asdict(s), "rate": s.rate if s.episodes else None, "ci95": list(s.interval)} for t, s in summaries.items()},
    }, indent=2) + "\n")
    chart = bar_chart({title: summaries}, out_dir / "success.png", title=title)
    body = [f"# {title}", "", markdown_table(summaries), "", f"![success]({chart.name})", "", "## Settings", "",
            *[f"- {k}: `{v}`" for k, v in meta.items()], ""]
    atomic_write_text(out_dir / "report.md", "\n".join(body))
    return out_dir / "report.md"

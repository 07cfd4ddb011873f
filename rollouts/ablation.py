"""The backbone ablation: two checkpoints on the same episodes, side by side, with the paper's numbers."""

from __future__ import annotations

import math
from pathlib import Path

from contract.files import atomic_write_text
from rollouts.metrics import TaskSummary
from rollouts.report import bar_chart

# REFERENCE.md section 1: RoboCasa success %, Qwen3-VL-2B base backbone -> XVR backbone, 3 cameras.
PAPER = {
    "CoffeePressButton": (83.1, 89.3),
    "TurnOffMicrowave": (45.7, 72.7),
    "PnPCabToCounter": (31.1, 38.8),
}


def difference_interval(a: TaskSummary, b: TaskSummary) -> tuple[float, float, float]:
    """b - a with Newcombe's hybrid-score 95% interval (built from the two Wilson intervals)."""
    if not (a.episodes and b.episodes):
        return math.nan, math.nan, math.nan
    (la, ua), (lb, ub) = a.interval, b.interval
    d = b.rate - a.rate
    return d, d - math.sqrt((b.rate - lb) ** 2 + (ua - a.rate) ** 2), d + math.sqrt((ub - b.rate) ** 2 + (a.rate - la) ** 2)


def _cell(s: TaskSummary) -> str:
    if not s.episodes:
        return "n/a"
    lo, hi = s.interval
    return f"{100 * s.rate:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def _rows(a: dict[str, TaskSummary], b: dict[str, TaskSummary]) -> list[tuple[str, ...]]:
    rows = []
    for task in a:
        d, lo, hi = difference_interval(a[task], b[task])
        diff = "n/a" if math.isnan(d) else f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
        paper = PAPER.get(task)
        paper_text = f"{paper[0]:.1f} -> {paper[1]:.1f} ({paper[1] - paper[0]:+.1f})" if paper else "-"
        rows.append((task, _cell(a[task]), _cell(b[task]), diff, f"{a[task].episodes}/{b[task].episodes}", paper_text))
    means = [sum(s.rate for s in side.values() if s.episodes) / max(1, sum(1 for s in side.values() if s.episodes))
             for side in (a, b)]
    paper_mean = [sum(PAPER[t][k] for t in a if t in PAPER) / max(1, sum(t in PAPER for t in a)) for k in (0, 1)]
    rows.append(("mean", f"{100 * means[0]:.1f}", f"{100 * means[1]:.1f}", f"{100 * (means[1] - means[0]):+.1f}", "",
                 f"{paper_mean[0]:.1f} -> {paper_mean[1]:.1f}"))
    return rows


HEADER = ("task", "A success % [95% CI]", "B success % [95% CI]", "B - A [95% CI]", "episodes", "paper base -> XVR")


def comparison_table(a: dict[str, TaskSummary], b: dict[str, TaskSummary]) -> str:
    """Fixed-width text: both checkpoints with Wilson intervals, the difference, the paper's figures."""
    rows = [HEADER, *_rows(a, b)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def write_comparison(out_dir: str | Path, names: tuple[str, str], a: dict[str, TaskSummary], b: dict[str, TaskSummary],
                     dirs: tuple[Path, Path]) -> Path:
    """report.md + success.png for the ablation; returns report.md."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chart = bar_chart({f"A: {names[0]}": a, f"B: {names[1]}": b}, out_dir / "success.png", title="backbone ablation")
    rows = [HEADER, *_rows(a, b)]
    lines = [
        "# Backbone ablation", "", f"- A: `{names[0]}` (results: `{dirs[0]}`)", f"- B: `{names[1]}` (results: `{dirs[1]}`)",
        "- Both ran exactly the same episodes (same seeds, same initial states).",
        "- Intervals: Wilson 95% per checkpoint; Newcombe hybrid-score 95% for the difference.",
        "- Paper: XVR (CVPR 2026), RoboCasa, Qwen3-VL-2B base -> XVR backbone; different scenes and training budget,",
        "  so compare the direction and size of the gap, not absolute numbers.", "",
        "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER),
        *["| " + " | ".join(r) + " |" for r in rows[1:]], "", f"![success]({chart.name})", "",
    ]
    atomic_write_text(out_dir / "report.md", "\n".join(lines))
    return out_dir / "report.md"

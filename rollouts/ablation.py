"""The backbone ablation: two checkpoints (or one per training seed on each side) on the same episodes, side by
side, with the paper's numbers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from contract.files import atomic_write_text
from rollouts.metrics import TaskSummary, pool_summaries
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


Seeds = Sequence[dict[str, TaskSummary]]  # one side: per training seed, task -> summary

HEADER = ("task", "A success % [95% CI]", "B success % [95% CI]", "B - A [95% CI]", "episodes", "paper base -> XVR")
POOLED_HEADER = ("task", "A pooled % [95% CI]", "B pooled % [95% CI]", "B - A pooled [95% CI]", "B - A per seed",
                 "B - A over seeds [95% t]", "episodes", "paper base -> XVR")
POOLED_NOTE = ("The pooled interval counts evaluation noise only, not seed-to-seed variance (how much training seeds "
               "differ), which is why the per-seed differences are printed beside it, with a Student-t 95% interval "
               "for their mean that takes the training seeds as the units (wide with few seeds).")


def pool_seeds(seeds: Seeds) -> dict[str, TaskSummary]:
    """One side's training seeds as one summary per task: successes and episodes summed."""
    return {task: pool_summaries([seed[task] for seed in seeds]) for task in seeds[0]}


def per_seed_differences(a: Seeds, b: Seeds, task: str) -> list[float]:
    """B - A on one task for each training seed (paired by position); nan where a side ran no episodes."""
    return [difference_interval(a_seed[task], b_seed[task])[0] for a_seed, b_seed in zip(a, b)]


def seed_level_interval(differences: Sequence[float]) -> tuple[float, float, float]:
    """Mean of the per-seed differences with a Student-t 95% interval (the training seeds as the units); nan where
    fewer than two seeds have a difference."""
    from scipy.stats import t  # lazy: only the pooled comparison needs it

    values = [d for d in differences if not math.isnan(d)]
    if len(values) < 2:
        return math.nan, math.nan, math.nan
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = t.ppf(0.975, len(values) - 1) * sd / math.sqrt(len(values))
    return mean, mean - half, mean + half


def _cell(s: TaskSummary) -> str:
    if not s.episodes:
        return "n/a"
    lo, hi = s.interval
    return f"{100 * s.rate:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def _interval_cell(d: float, lo: float, hi: float) -> str:
    return "n/a" if math.isnan(d) else f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def _seed_cells(differences: Sequence[float]) -> tuple[str, str]:
    """The per-seed differences and the t interval over them."""
    return _points(differences), _interval_cell(*seed_level_interval(differences))


def _points(differences: Sequence[float]) -> str:
    """[0.04, -0.06, 0.1] -> '+4, -6, +10' (percentage points)."""
    return ", ".join("n/a" if math.isnan(d) else f"{round(100 * d):+d}" for d in differences)


def _paper_cell(task: str) -> str:
    paper = PAPER.get(task)
    return f"{paper[0]:.1f} -> {paper[1]:.1f} ({paper[1] - paper[0]:+.1f})" if paper else "-"


def _mean_rate(side: dict[str, TaskSummary]) -> float:
    """Mean success rate over the tasks that ran episodes (0 when none did)."""
    rates = [s.rate for s in side.values() if s.episodes]
    return sum(rates) / max(1, len(rates))


def _mean_row(a: dict[str, TaskSummary], b: dict[str, TaskSummary], seed_cells: tuple[str, ...]) -> tuple[str, ...]:
    mean_a, mean_b = _mean_rate(a), _mean_rate(b)
    paper_mean = [sum(PAPER[t][k] for t in a if t in PAPER) / max(1, sum(t in PAPER for t in a)) for k in (0, 1)]
    return ("mean", f"{100 * mean_a:.1f}", f"{100 * mean_b:.1f}", f"{100 * (mean_b - mean_a):+.1f}", *seed_cells, "",
            f"{paper_mean[0]:.1f} -> {paper_mean[1]:.1f}")


def _rows(a_seeds: Seeds, b_seeds: Seeds) -> list[tuple[str, ...]]:
    """Header and rows: pooled over the training seeds, plus a per-seed difference column when there are several."""
    if not a_seeds or len(a_seeds) != len(b_seeds):
        raise ValueError(f"need one summary per training seed on each side; got {len(a_seeds)} and {len(b_seeds)}")
    several = len(a_seeds) > 1
    a, b = pool_seeds(a_seeds), pool_seeds(b_seeds)
    rows = [POOLED_HEADER if several else HEADER]
    for task in a:
        seed_cells = _seed_cells(per_seed_differences(a_seeds, b_seeds, task)) if several else ()
        difference = _interval_cell(*difference_interval(a[task], b[task]))
        rows.append((task, _cell(a[task]), _cell(b[task]), difference, *seed_cells,
                     f"{a[task].episodes}/{b[task].episodes}", _paper_cell(task)))
    seed_means = [_mean_rate(b_seed) - _mean_rate(a_seed) for a_seed, b_seed in zip(a_seeds, b_seeds)]
    rows.append(_mean_row(a, b, _seed_cells(seed_means) if several else ()))
    return rows


def comparison_table(a_seeds: Seeds, b_seeds: Seeds) -> str:
    """Fixed-width text: both sides with Wilson intervals, the difference, the paper's figures.

    Each side is a list of summaries, one per training seed, paired by position; with several the success rates and
    the difference are pooled over the seeds and each seed's own difference is shown beside them.
    """
    rows = _rows(a_seeds, b_seeds)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def _side_lines(label: str, names: Sequence[str], dirs: Sequence[Path]) -> list[str]:
    if len(names) == 1:
        return [f"- {label}: `{names[0]}` (results: `{dirs[0]}`)"]
    return [f"- {label}, one checkpoint per training seed:",
            *[f"  - `{name}` (results: `{d}`)" for name, d in zip(names, dirs)]]


def _method_lines(seeds: int) -> list[str]:
    if seeds == 1:
        return ["- Both ran exactly the same episodes (same seeds, same initial states).",
                "- Intervals: Wilson 95% per checkpoint; Newcombe hybrid-score 95% for the difference."]
    return [f"- All {2 * seeds} checkpoints ran exactly the same episodes (same seeds, same initial states); A and B "
            "are paired by training seed.",
            f"- Pooled: each side's successes and episodes summed over its {seeds} training seeds; Wilson 95% per "
            "side, Newcombe hybrid-score 95% for the difference.",
            f"- {POOLED_NOTE}"]


def write_comparison(out_dir: str | Path, names: tuple[Sequence[str], Sequence[str]], a_seeds: Seeds, b_seeds: Seeds,
                     dirs: tuple[Sequence[Path], Sequence[Path]]) -> Path:
    """report.md + success.png for the ablation; returns report.md. names/dirs/summaries: per side, one per seed."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = _rows(a_seeds, b_seeds)
    seeds = len(a_seeds)
    labels = [f"{side}: {', '.join(side_names)}" for side, side_names in zip("AB", names)]
    title = "backbone ablation" + (f" ({seeds} training seeds pooled)" if seeds > 1 else "")
    chart = bar_chart({labels[0]: pool_seeds(a_seeds), labels[1]: pool_seeds(b_seeds)}, out_dir / "success.png",
                      title=title)
    lines = [
        "# Backbone ablation", "", *_side_lines("A", names[0], dirs[0]), *_side_lines("B", names[1], dirs[1]),
        *_method_lines(seeds),
        "- Paper: XVR (CVPR 2026), RoboCasa, Qwen3-VL-2B base -> XVR backbone; different scenes and training budget,",
        "  so compare the direction and size of the gap, not absolute numbers.", "",
        "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0]),
        *["| " + " | ".join(r) + " |" for r in rows[1:]], "", f"![success]({chart.name})", "",
    ]
    atomic_write_text(out_dir / "report.md", "\n".join(lines))
    return out_dir / "report.md"

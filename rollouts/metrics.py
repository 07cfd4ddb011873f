"""Success rates and their uncertainty: Wilson score intervals, a same-rate test across groups, per-task summaries."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

Z_95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when there are no trials."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n; got {successes}/{n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # Clamp: at p = 0 or 1 rounding can put a bound a hair outside [0, 1].
    return max(0.0, centre - half), min(1.0, centre + half)


def same_rate_p_value(successes: Sequence[int], episodes: Sequence[int]) -> float | None:
    """Pearson's chi-square test that every group (e.g. each checkpoint of a learning curve) has one success rate.

    The probability that evaluation noise alone spreads the groups at least this far apart: a large p means the
    differences between the groups are not resolved by this many episodes. None when it is undefined (fewer than
    two groups, or every episode of every group ended alike). Approximate when expected counts are below ~5.
    """
    from scipy.stats import chi2  # lazy: scipy.stats takes seconds to import, and every rollout imports this module

    groups = [(k, n) for k, n in zip(successes, episodes) if n > 0]
    total_k, total_n = sum(k for k, _ in groups), sum(n for _, n in groups)
    if len(groups) < 2 or total_k in (0, total_n):
        return None
    rate = total_k / total_n
    statistic = sum((k - n * rate) ** 2 / (n * rate * (1 - rate)) for k, n in groups)
    return float(chi2.sf(statistic, df=len(groups) - 1))


@dataclass(frozen=True)
class TaskSummary:
    """Success over one task's finished episodes (errored episodes are counted apart, not as failures)."""

    task: str
    episodes: int
    successes: int
    errors: int
    mean_steps: float
    per_seed: tuple[tuple[int, float], ...]  # (base seed, success rate) for each evaluation seed

    @property
    def rate(self) -> float:
        return self.successes / self.episodes if self.episodes else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.episodes)

    @property
    def seed_std(self) -> float:
        """Spread of the per-seed success rates (0 with one seed)."""
        rates = [r for _, r in self.per_seed]
        if len(rates) < 2:
            return 0.0
        mean = sum(rates) / len(rates)
        return math.sqrt(sum((r - mean) ** 2 for r in rates) / (len(rates) - 1))


def summarize(records: Iterable[dict], tasks: Iterable[str] | None = None) -> dict[str, TaskSummary]:
    """One TaskSummary per task from episode records (dicts with task, base_seed, success, steps, error)."""
    by_task: dict[str, list[dict]] = {t: [] for t in (tasks or ())}
    for record in records:
        by_task.setdefault(record["task"], []).append(record)
    out = {}
    for task, rows in by_task.items():
        ok = [r for r in rows if not r.get("error")]
        seeds: dict[int, list[bool]] = {}
        for r in ok:
            seeds.setdefault(int(r.get("base_seed", 0)), []).append(bool(r["success"]))
        out[task] = TaskSummary(
            task=task,
            episodes=len(ok),
            successes=sum(bool(r["success"]) for r in ok),
            errors=len(rows) - len(ok),
            mean_steps=sum(r["steps"] for r in ok) / len(ok) if ok else float("nan"),
            per_seed=tuple((s, sum(v) / len(v)) for s, v in sorted(seeds.items())),
        )
    return out


def pool_summaries(summaries: Sequence[TaskSummary]) -> TaskSummary:
    """One task's runs (e.g. one checkpoint per training seed, on the same episodes) as one summary.

    Episodes, successes and errors are summed, so `rate` and `interval` cover every episode of every run: the
    interval counts evaluation noise only, not how much the runs differ from one another.
    """
    tasks = {s.task for s in summaries}
    if len(tasks) != 1:
        raise ValueError(f"pool_summaries takes runs of one task; got {sorted(tasks) or 'none'}")
    episodes = sum(s.episodes for s in summaries)
    steps = sum(s.mean_steps * s.episodes for s in summaries if s.episodes)
    return TaskSummary(
        task=tasks.pop(),
        episodes=episodes,
        successes=sum(s.successes for s in summaries),
        errors=sum(s.errors for s in summaries),
        mean_steps=steps / episodes if episodes else float("nan"),
        per_seed=_mean_per_seed(summaries),
    )


def _mean_per_seed(summaries: Sequence[TaskSummary]) -> tuple[tuple[int, float], ...]:
    """Each evaluation seed's success rate averaged over the runs (exact when they ran as many episodes)."""
    rates: dict[int, list[float]] = {}
    for summary in summaries:
        for base_seed, rate in summary.per_seed:
            rates.setdefault(base_seed, []).append(rate)
    return tuple((seed, sum(r) / len(r)) for seed, r in sorted(rates.items()))


def format_rate(summary: TaskSummary) -> str:
    """'80.0% [49.0, 94.3] (8/10)'."""
    if not summary.episodes:
        return "n/a (0 episodes)"
    lo, hi = summary.interval
    return f"{100 * summary.rate:5.1f}% [{100 * lo:4.1f}, {100 * hi:5.1f}] ({summary.successes}/{summary.episodes})"

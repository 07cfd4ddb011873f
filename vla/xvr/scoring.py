"""XVR-Eval scoring: answer normalization, per-task exact-match accuracy, and the paper's table format."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from vla.vqa.format import VQASample
from vla.xvr.tasks import PAPER_RANDOM_OVERALL, PAPER_RESULTS, TASK_BY_NAME, TASK_TYPES, TASKS

_PREFIXES = ("the answer is", "answer:", "answer", "image", "the")


def normalize_answer(text: str) -> str:
    """'Image 3.' -> '3', ' Yellow' -> 'yellow': case, surrounding punctuation and a leading 'image'/'answer' go."""
    out = text.strip().lower()
    changed = True
    while changed:
        changed = False
        out = out.strip(" \t\n.,:;!?\"'()[]*")
        for prefix in _PREFIXES:
            if out.startswith(prefix + " ") or out == prefix:
                out = out[len(prefix):]
                changed = True
    return re.sub(r"\s+", " ", out)


@dataclass
class Scores:
    """Exact-match counts per task; accuracies in percent."""

    correct: dict[str, float] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)

    def add(self, task: str, value: float) -> None:
        self.correct[task] = self.correct.get(task, 0.0) + value
        self.total[task] = self.total.get(task, 0) + 1

    def percent(self, task: str) -> float | None:
        return 100.0 * self.correct[task] / self.total[task] if self.total.get(task) else None

    def overall(self) -> float | None:
        """Over samples, as the paper's overall column is (its per-task means do not average to it)."""
        n = sum(self.total.values())
        return 100.0 * sum(self.correct.values()) / n if n else None

    def row(self) -> list[float | None]:
        return [self.percent(t) for t in TASKS] + [self.overall()]

    def to_json(self) -> dict:
        return {"accuracy": {t: self.percent(t) for t in TASKS if self.total.get(t)}, "overall": self.overall(),
                "counts": {t: self.total[t] for t in TASKS if self.total.get(t)}}


def score(samples: list[VQASample], predictions: dict[str, str]) -> Scores:
    """Exact match after normalization of both sides; every sample needs a prediction."""
    missing = [s.sample_id for s in samples if s.sample_id not in predictions]
    if missing:
        raise ValueError(f"{len(missing)} of {len(samples)} samples have no prediction (first: {missing[0]!r})")
    scores = Scores()
    for sample in samples:
        scores.add(sample.task, float(normalize_answer(predictions[sample.sample_id]) == normalize_answer(sample.answer)))
    return scores


def chance(samples: list[VQASample]) -> Scores:
    """Expected accuracy of a uniform guess: 1 / options per sample (the paper's rate where options are unknown)."""
    scores = Scores()
    for sample in samples:
        rate = 1.0 / len(sample.options) if sample.options else TASK_BY_NAME[sample.task].random / 100.0
        scores.add(sample.task, rate)
    return scores


def read_predictions(path: str | Path) -> dict[str, str]:
    """A predictions file: JSONL rows with `sample_id` and `prediction`."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"predictions file {path} not found")
    out = {}
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out[str(row["sample_id"])] = str(row["prediction"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ValueError(f"{path}:{line_no}: expected a JSON object with sample_id and prediction") from None
    return out


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_table(rows: list[tuple[str, list[float | None]]], counts: dict[str, int] | None = None) -> str:
    """A markdown table in the paper's column order: the 8 tasks, then overall; rows of (name, 9 values)."""
    header = ["model"] + [t.label for t in TASK_TYPES] + ["overall"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, values in rows:
        lines.append("| " + " | ".join([name] + [_cell(v) for v in values]) + " |")
    if counts is not None:
        lines.append("| samples | " + " | ".join(str(counts.get(t, 0)) for t in TASKS)
                     + f" | {sum(counts.values())} |")
    return "\n".join(lines)


def paper_rows() -> list[tuple[str, list[float | None]]]:
    """The paper's random-chance row and its XVR-Eval rows for Qwen3-VL-2B-Instruct and -XVR."""
    rows = [("random chance (paper)", [t.random for t in TASK_TYPES] + [PAPER_RANDOM_OVERALL])]
    rows += [(name, list(values)) for name, values in PAPER_RESULTS.items()]
    return rows

"""Visual question answering samples in the published XVR layout, read and written with validation.

A dataset is a folder of JSONL files (one per split: train.jsonl, valid.jsonl, eval.jsonl) and the images they
name. Each row: `sample_id`, `task`, `prompt_blocks` (OpenAI-style: `{"type": "text", "text": ...}` and
`{"type": "image_url", "image_url": {"url": "images/....png"}}`, in order) and `ground_truth_answer`. Rows this
project writes may add `options` (the valid answers of a multiple-choice question) and `meta` (ground truth
numbers for metrics); readers of the published data never need them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "valid", "eval")


class VQAFormatError(ValueError):
    """A row that does not follow the layout, named by its file, line and sample id."""


@dataclass(frozen=True)
class VQASample:
    """One question: interleaved images and text, and the answer string."""

    sample_id: str
    task: str
    prompt_blocks: tuple[dict, ...]
    answer: str
    options: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def image_urls(self) -> list[str]:
        return [b["image_url"]["url"] for b in self.prompt_blocks if b["type"] == "image_url"]

    @property
    def question(self) -> str:
        """The text blocks joined (what is asked, without the images)."""
        return "\n".join(b["text"] for b in self.prompt_blocks if b["type"] == "text")

    def chat_content(self) -> list[dict]:
        """The user turn for a Qwen3-VL chat template: {"type": "image"} and {"type": "text"} in prompt order."""
        return [{"type": "image"} if b["type"] == "image_url" else {"type": "text", "text": b["text"]}
                for b in self.prompt_blocks]

    def to_row(self) -> dict:
        row = {"sample_id": self.sample_id, "task": self.task, "prompt_blocks": list(self.prompt_blocks),
               "ground_truth_answer": self.answer}
        if self.options:
            row["options"] = list(self.options)
        if self.meta:
            row["meta"] = self.meta
        return row


def image_block(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def text_block(text: str) -> dict:
    return {"type": "text", "text": text}


def check_sample(sample: VQASample, tasks: frozenset[str] | set[str] | None = None, root: Path | None = None,
                 where: str = "") -> None:
    """Raise VQAFormatError (naming the sample) for an unknown task, an answer outside its options or a missing image."""
    at = f"{where}: sample {sample.sample_id!r}" if where else f"sample {sample.sample_id!r}"
    if tasks is not None and sample.task not in tasks:
        raise VQAFormatError(f"{at}: unknown task {sample.task!r}; known: {', '.join(sorted(tasks))}")
    if not sample.answer.strip():
        raise VQAFormatError(f"{at}: empty ground_truth_answer")
    if sample.options and sample.answer not in sample.options:
        raise VQAFormatError(f"{at}: answer {sample.answer!r} is not among its options {list(sample.options)}")
    if not sample.image_urls:
        raise VQAFormatError(f"{at}: no image in prompt_blocks")
    if root is not None:
        for url in sample.image_urls:
            if not (root / url).is_file():
                raise VQAFormatError(f"{at}: image {url} not found under {root}")


def parse_row(row: dict, where: str = "") -> VQASample:
    """A JSON row -> VQASample; malformed rows raise VQAFormatError naming the row."""
    sid = row.get("sample_id", "?") if isinstance(row, dict) else "?"
    at = f"{where}: sample {sid!r}"
    if not isinstance(row, dict):
        raise VQAFormatError(f"{where}: row is not a JSON object")
    for key in ("sample_id", "task", "prompt_blocks", "ground_truth_answer"):
        if key not in row:
            raise VQAFormatError(f"{at}: missing {key!r}")
    blocks = row["prompt_blocks"]
    if not isinstance(blocks, list) or not blocks:
        raise VQAFormatError(f"{at}: prompt_blocks must be a non-empty list")
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            continue
        if kind == "image_url" and isinstance(block.get("image_url"), dict) and isinstance(block["image_url"].get("url"), str):
            continue
        raise VQAFormatError(f"{at}: bad prompt block {block!r}; expected text or image_url blocks")
    return VQASample(sample_id=str(row["sample_id"]), task=str(row["task"]), prompt_blocks=tuple(blocks),
                     answer=str(row["ground_truth_answer"]), options=tuple(str(o) for o in row.get("options") or ()),
                     meta=row.get("meta") or {})


def split_file(root: str | Path, split: str) -> Path:
    """Where a split's rows live: <root>/<split>.jsonl."""
    return Path(root) / f"{split}.jsonl"


def read_split(root: str | Path, split: str, tasks=None, check_images: bool = True) -> list[VQASample]:
    """All samples of one split, each validated (task known, answer among options, images present)."""
    root = Path(root)
    path = split_file(root, split)
    if not path.is_file():
        present = sorted(p.stem for p in root.glob("*.jsonl"))
        raise VQAFormatError(f"{root}: no {path.name} (splits here: {', '.join(present) or 'none'})")
    known = frozenset(tasks) if tasks is not None else None
    samples, seen = [], set()
    for where, sample in iter_rows(path):
        if sample.sample_id in seen:
            raise VQAFormatError(f"{where}: sample {sample.sample_id!r} appears twice")
        seen.add(sample.sample_id)
        check_sample(sample, known, root if check_images else None, where)
        samples.append(sample)
    return samples


def iter_rows(path: Path):
    """("file:line", VQASample) for every non-empty line of a JSONL split; bad JSON or rows are one-line errors."""
    with path.open() as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise VQAFormatError(f"{where}: not valid JSON ({err.msg})") from None
            yield where, parse_row(row, where)


def pin_settings(path: Path, settings: dict, ignore: tuple[str, ...] = ("workers",)) -> None:
    """Write a generator's settings beside its output, or refuse to continue output made with other settings."""
    if path.exists():
        old = json.loads(path.read_text())
        if {k: v for k, v in old.items() if k not in ignore} != {k: v for k, v in settings.items() if k not in ignore}:
            raise ValueError(f"{path.parent} was generated with other settings ({path}); use another --out")
    else:
        path.write_text(json.dumps(settings, indent=2))


def read_done(path: Path) -> set[tuple[str, str, int]]:
    """(split, task, seed) of the episodes a resumable generator has finished (one JSON row per line)."""
    if not path.exists():
        return set()
    return {(r["split"], r["task"], r["seed"]) for r in map(json.loads, path.read_text().splitlines()) if r}


class SplitWriter:
    """Appends validated rows to <root>/<split>.jsonl (flushed per row, so a killed run keeps what it wrote)."""

    def __init__(self, root: str | Path, split: str, tasks=None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.tasks = frozenset(tasks) if tasks is not None else None
        self.path = split_file(self.root, split)
        self._file = self.path.open("a")

    def write(self, sample: VQASample) -> None:
        check_sample(sample, self.tasks, self.root, str(self.path))
        self._file.write(json.dumps(sample.to_row()) + "\n")

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

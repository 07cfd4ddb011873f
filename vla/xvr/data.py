"""XVR data from a local directory: this project's generated splits or the published dataset (Jaehwisong/XVR).

Generated: <root>/{train,valid,eval}.jsonl with canonical task names and `options`. Published: <root>/train.jsonl,
valid.jsonl and xvr_eval.jsonl (the XVR-Eval split, read as "eval") with images extracted under <root>/images/,
task ids like "task9" and no options. Task ids map to the canonical names through PUBLISHED_TASK_IDS plus any
`task_map` the user gives; an unknown task, a missing image or an answer outside its options is refused with the
sample id.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vla.vqa.format import VQAFormatError, VQASample, check_sample, iter_rows
from vla.xvr.tasks import PUBLISHED_TASK_IDS, TASKS

PUBLISHED_EVAL_FILE = "xvr_eval.jsonl"


def parse_task_map(text: str) -> dict[str, str]:
    """'task2=temporal_verification,task4=language_localization' -> {id: canonical task}."""
    mapping = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--task-map entries look like ID=TASK, got {item!r}")
        if value.strip() not in TASKS:
            raise ValueError(f"--task-map {item!r}: unknown task {value.strip()!r}; known: {', '.join(TASKS)}")
        mapping[key.strip()] = value.strip()
    return mapping


def split_path(root: str | Path, split: str) -> Path:
    """The JSONL file of a split: <split>.jsonl, or the published xvr_eval.jsonl for "eval"."""
    root = Path(root)
    path = root / f"{split}.jsonl"
    if path.is_file():
        return path
    if split == "eval" and (root / PUBLISHED_EVAL_FILE).is_file():
        return root / PUBLISHED_EVAL_FILE
    present = sorted(p.name for p in root.glob("*.jsonl")) if root.is_dir() else []
    raise VQAFormatError(f"{root}: no {split}.jsonl{' or ' + PUBLISHED_EVAL_FILE if split == 'eval' else ''} "
                         f"(JSONL files here: {', '.join(present) or 'none'})")


def read_xvr(root: str | Path, split: str, task_map: dict[str, str] | None = None,
             check_images: bool = True) -> list[VQASample]:
    """All samples of one split with canonical task names, each validated (task, answer, images)."""
    root = Path(root)
    path = split_path(root, split)
    mapping = {**{t: t for t in TASKS}, **PUBLISHED_TASK_IDS, **(task_map or {})}
    samples, seen = [], set()
    for where, sample in iter_rows(path):
        if sample.task not in mapping:
            raise VQAFormatError(
                f"{where}: sample {sample.sample_id!r}: unknown task {sample.task!r}; known: "
                f"{', '.join(sorted(mapping))} (map other published ids with --task-map ID=TASK)")
        sample = dataclasses.replace(sample, task=mapping[sample.task])
        if sample.sample_id in seen:
            raise VQAFormatError(f"{where}: sample {sample.sample_id!r} appears twice")
        seen.add(sample.sample_id)
        check_sample(sample, TASKS, root if check_images else None, where)
        samples.append(sample)
    if not samples:
        raise VQAFormatError(f"{path}: no samples")
    return samples

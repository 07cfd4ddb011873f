"""Episode results as an append-only JSONL file: written as each episode ends, read back to resume."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class EpisodeKey:
    """What identifies an episode across runs: the same key means the same initial state."""

    task: str
    base_seed: int
    index: int


@dataclass(frozen=True)
class EpisodeRecord:
    """One finished (or given-up) episode."""

    task: str
    base_seed: int
    index: int
    seed: int
    success: bool
    steps: int
    time_s: float
    worker: int
    reruns: int
    error: str = ""  # set when the episode could not be run to its end (env crashed on every attempt)
    video: str = ""

    @property
    def key(self) -> EpisodeKey:
        return EpisodeKey(self.task, self.base_seed, self.index)


class ResultsLog:
    """JSONL of EpisodeRecords; each line is flushed and fsynced so a killed run loses at most the line in flight."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.records: dict[EpisodeKey, EpisodeRecord] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        *complete, torn = data.split(b"\n")
        # A run killed mid-write leaves a last line without its newline: drop it, the episode is simply rerun.
        if torn:
            with open(self.path, "r+b") as f:
                f.truncate(len(data) - len(torn))
        for number, line in enumerate(complete, 1):
            if not line.strip():
                continue
            try:
                record = EpisodeRecord(**json.loads(line))
            except (json.JSONDecodeError, TypeError) as exc:
                raise ValueError(f"{self.path}:{number}: not an episode record ({exc}); fix or delete that line") from None
            self.records[record.key] = record  # a later line for the same episode supersedes (a retried error)

    def append(self, record: EpisodeRecord) -> None:
        """Write one record durably and remember it."""
        with open(self.path, "a") as f:
            f.write(json.dumps(asdict(record), sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.records[record.key] = record

    def is_done(self, key: EpisodeKey) -> bool:
        """Finished without error; errored episodes are retried when a run resumes."""
        record = self.records.get(key)
        return record is not None and not record.error

    def as_dicts(self) -> list[dict]:
        return [asdict(r) for r in self.records.values()]

"""Scripted-expert demonstration collection: a client of the rollout runner, the main process the dataset writer.

The rollout workers run the experts' whole episodes and record them (WorkerSpec.record); the runner hands each
finished attempt to this module, which keeps the successes in the dataset and notes the failures in its sidecar.
Each task has its own deterministic stream of episode seeds (seed, seed+1, ...). An attempt is a pure function of
(task, seed), so with any number of workers the same seeds give the same episodes; the seeds already written or
rejected are read back from the dataset's sidecar, so rerunning the command after a kill continues the streams.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from contract.embodiments import IMAGE_SIZE
from contract.spec import ObservationSpec
from rollouts.pool import WorkerPool
from rollouts.results import EpisodeRecord
from rollouts.runner import RunnerSettings, run_episodes
from rollouts.worker import EpisodeSpec, Recording, WorkerSpec
from vla.data.schema import task_list
from vla.data.writer import DatasetWriter, Episode


@dataclass(frozen=True)
class CollectConfig:
    """What to collect and where."""

    task: str = "TurnOffMicrowave"  # or "all"
    episodes: int = 50
    out: str = "data/demos"
    workers: int = 1
    image_size: int = IMAGE_SIZE
    seed: int = 0
    backend: str = "builtin"
    horizon: int | None = None  # None: the task's own horizon
    disturbance: float = 0.0  # DART: std (action units) of a slowly varying push executed but not recorded
    max_attempts_factor: float = 3.0  # give up on a task after this many attempts per requested episode

    @property
    def spec(self) -> ObservationSpec:
        """What the envs render and the dataset records."""
        return ObservationSpec(image_size=self.image_size)

    @property
    def source(self) -> str:
        """The dataset's provenance; a resumed collection must ask for the same."""
        return f"collect:{self.backend}" + (f" disturbance={self.disturbance:g}" if self.disturbance else "")


def quotas(tasks: tuple[str, ...], episodes: int) -> dict[str, int]:
    """Split the requested episode count across tasks as evenly as possible (earlier tasks get the remainder)."""
    base, extra = divmod(episodes, len(tasks))
    return {t: base + (i < extra) for i, t in enumerate(tasks)}


def to_episode(record: EpisodeRecord, recording: Recording) -> Episode:
    """A successful attempt as a writer Episode."""
    return Episode(images=recording.images, state=recording.state, action=recording.action,
                   instruction=recording.instruction, task_name=record.task, seed=record.seed,
                   info={"steps": record.steps, "success": True})


class _Tally:
    """Per-task counts for the progress bar and the summary table."""

    def __init__(self, tasks):
        self.rows = {t: {"attempts": 0, "kept": 0, "failed": 0, "frames": 0, "sim_s": 0.0} for t in tasks}

    def add(self, r: EpisodeRecord, kept: bool) -> None:
        row = self.rows[r.task]
        row["attempts"] += 1
        row["sim_s"] += r.time_s
        if kept:
            row["kept"] += 1
            row["frames"] += r.steps
        elif not r.success:
            row["failed"] += 1

    def table(self, wall_s: float, workers: int) -> str:
        lines = [f"{'task':<20}{'attempts':>9}{'kept':>6}{'failed':>7}{'success%':>9}{'mean len':>9}{'ep/min/worker':>14}"]
        for task, r in self.rows.items():
            rate = 100 * (r["attempts"] - r["failed"]) / r["attempts"] if r["attempts"] else 0.0
            mean_len = r["frames"] / r["kept"] if r["kept"] else 0.0
            per_worker = 60 * r["attempts"] / r["sim_s"] if r["sim_s"] else 0.0
            lines.append(f"{task:<20}{r['attempts']:>9}{r['kept']:>6}{r['failed']:>7}{rate:>9.1f}{mean_len:>9.1f}"
                         f"{per_worker:>14.2f}")
        total = sum(r["attempts"] for r in self.rows.values())
        lines.append(f"all workers ({workers}): {total} attempts in {wall_s:.1f} s = {60 * total / max(wall_s, 1e-9):.2f} ep/min")
        return "\n".join(lines)


def collect(cfg: CollectConfig, log=print) -> dict:
    """Collect until every task has its quota of successful episodes (or runs out of attempts); returns the tally."""
    tasks = task_list(cfg.task)
    if cfg.episodes <= 0:
        raise ValueError(f"--episodes must be positive, got {cfg.episodes}")
    if cfg.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {cfg.workers}")
    if cfg.disturbance < 0:
        raise ValueError(f"--disturbance must be >= 0, got {cfg.disturbance}")
    want = quotas(tasks, cfg.episodes)
    writer = DatasetWriter(Path(cfg.out), cfg.spec, source=cfg.source)
    if writer.sidecar["source"] != cfg.source:
        writer.close()
        raise ValueError(f"{cfg.out} was collected as {writer.sidecar['source']!r}, this run asks for {cfg.source!r}; "
                         "use another --out")
    have = defaultdict(int)
    for e in writer.sidecar["episodes"].values():
        have[e["task_name"]] += 1
    done = defaultdict(set)
    for e in list(writer.sidecar["episodes"].values()) + writer.sidecar["rejected"]:
        done[e["task_name"]].add(e["seed"])
    stray = set(have) - set(tasks)
    if stray:
        raise ValueError(f"{cfg.out} already holds episodes of {sorted(stray)}; use another --out for {cfg.task!r}")
    cursor = {t: cfg.seed for t in tasks}
    budget = {t: int(np.ceil(want[t] * cfg.max_attempts_factor)) + 5 - len(done[t]) for t in tasks}

    def next_attempt() -> EpisodeSpec | None:
        """Asked whenever a worker is free: the next seed of the first task still short (None: none for now)."""
        for t in tasks:
            if have[t] + inflight_per_task[t] < want[t] and budget[t] > 0:
                while cursor[t] in done[t]:
                    cursor[t] += 1
                seed, cursor[t] = cursor[t], cursor[t] + 1
                budget[t] -= 1
                inflight_per_task[t] += 1
                return EpisodeSpec(t, base_seed=cfg.seed, index=seed - cfg.seed, seed=seed)
        return None

    tally = _Tally(tasks)
    inflight_per_task = defaultdict(int)
    already = sum(min(have[t], want[t]) for t in tasks)
    bar = tqdm(total=cfg.episodes, initial=already, unit="ep", desc="demos")
    started = time.perf_counter()

    def handle(r: EpisodeRecord, recording: Recording | None):
        inflight_per_task[r.task] -= 1
        keep = r.success and have[r.task] < want[r.task]
        if keep:
            writer.add_episode(to_episode(r, recording))
            have[r.task] += 1
            bar.update()
        elif not r.success and not r.error:  # an env error is no verdict on the seed: a rerun tries it again
            writer.reject(r.seed, r.task, f"no success in {r.steps} steps")
        tally.add(r, keep)
        tried = sum(x["attempts"] for x in tally.rows.values())
        ok = sum(x["attempts"] - x["failed"] for x in tally.rows.values())
        bar.set_postfix(success=f"{ok}/{tried}", ep_per_s=f"{tried / (time.perf_counter() - started):.3f}")

    workers = WorkerSpec(backend=cfg.backend, observation=cfg.spec, horizon=cfg.horizon or 0, render=True,
                         expert=True, send_obs=False, record=True, disturbance=cfg.disturbance)
    try:
        with WorkerPool(cfg.workers, workers) as pool:
            run_episodes(next_attempt, pool, None, None, RunnerSettings(), on_record=handle)
    finally:
        bar.close()
        writer.close()
    wall = time.perf_counter() - started
    short = {t: want[t] - have[t] for t in tasks if have[t] < want[t]}
    log(tally.table(wall, cfg.workers))
    if short:
        log(f"warning: ran out of attempts; missing episodes per task: {short}")
    log(f"{cfg.out}: {writer.num_episodes} episodes, {writer.num_frames} frames")
    return {"tally": tally.rows, "wall_s": wall, "short": short, "episodes": writer.num_episodes}

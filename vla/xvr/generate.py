"""Generate XVR questions from the simulator: one scene per (task, seed), written in the published row layout.

A scene is a scripted expert's episode on one scene seed (worker side, in parallel): every `frame_stride` steps the
robot's three cameras are rendered (the robot domain: temporal verification, cross-scenario and language
localization); at `captures` moments a random rig of calibrated cameras is rendered with depth, plus views carried
around a rig camera's target (the general domain: correspondence, spatial verification, viewpoint and directional
view localization). The main process turns a scene into questions (vla/xvr/questions.py) and writes them.

Splits come from disjoint scene seed ranges (train, valid, eval); seeds start at 2,000,000, so no demo, rollout or
grounding scene is reused. A run is resumable: finished scenes are listed in scenes_done.jsonl, rows are flushed as
they are written, and a rerun of the same command skips both.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

import envs
from envs.rendering import FastRenderer
from policies.experts import make_expert
from vla.data.schema import task_list
from vla.vqa.format import SplitWriter, VQASample, image_block, pin_settings, read_done, text_block
from vla.vqa.grounding import task_target
from vla.xvr.questions import (Capture, OrbitSet, Question, QuestionConfig, RigView, RobotFrame,
                               cross_scenario_localization, directional_correspondence,
                               directional_view_localization, language_localization, point_correspondence,
                               spatial_verification, temporal_verification, viewpoint_localization)
from vla.xvr.rig import RigConfig, ViewRenderer, clear_view, moved_around, random_rig
from vla.xvr.tasks import TASKS

SPLITS = ("train", "valid", "eval")
SCENE_SEED_BASE = 2_000_000  # demos use 0.., grounding 1,000,000..
SPLIT_SEED_STRIDE = 100_000


@dataclass(frozen=True)
class XVRConfig:
    """What to generate and where."""

    out: str = "data/xvr"
    samples: int = 2000  # questions wanted in all splits together (scenes are planned to give about this many)
    task: str = "all"  # the kitchen task(s) whose scenes are used
    image_size: int = 128
    questions_per_task: int = 2  # per scene and XVR task type
    rig_cameras: int = 6
    captures: int = 2  # moments of the episode with a rig
    orbits: int = 2  # centre views carried around per capture (directional view)
    max_steps: int = 240  # of the expert episode
    frame_stride: int = 6  # robot cameras rendered every n-th step
    valid_fraction: float = 0.05
    eval_fraction: float = 0.1
    workers: int = 2  # 0: scenes run in this process (no worker pool)
    seed: int = SCENE_SEED_BASE

    def __post_init__(self):
        if self.workers < 0:
            raise ValueError(f"--workers must be >= 0 (0: in this process), got {self.workers}")
        for name in ("samples", "image_size", "questions_per_task", "captures", "max_steps", "frame_stride"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.image_size < 32:
            raise ValueError(f"--image-size must be >= 32 (markers need room), got {self.image_size}")
        if self.rig_cameras < 5:
            raise ValueError(f"--rig-cameras must be >= 5 (spatial verification shows up to 5 views), "
                             f"got {self.rig_cameras}")
        if not (0 <= self.valid_fraction < 1 and 0 < self.eval_fraction < 1):
            raise ValueError("--valid-fraction must be in [0, 1) and --eval-fraction in (0, 1)")


def scene_plan(cfg: XVRConfig, tasks: tuple[str, ...]) -> list[tuple[str, str, int]]:
    """(split, kitchen task, scene seed) for every scene; each split has its own seed range."""
    per_scene = len(TASKS) * cfg.questions_per_task
    total = max(3, math.ceil(cfg.samples / per_scene))
    n_eval = max(1, round(total * cfg.eval_fraction))
    n_valid = max(1, round(total * cfg.valid_fraction)) if cfg.valid_fraction > 0 else 0
    counts = {"train": max(1, total - n_eval - n_valid), "valid": n_valid, "eval": n_eval}
    plan = []
    for k, split in enumerate(SPLITS):
        for i in range(counts[split]):
            plan.append((split, tasks[i % len(tasks)], cfg.seed + k * SPLIT_SEED_STRIDE + i // len(tasks)))
    return plan


def scene_id(split: str, task: str, seed: int) -> str:
    return f"{split}-{task}-s{seed}"


# ----- worker side: one expert episode, robot frames and rig captures -----

_WORKER: dict = {}


def _worker_env(task: str, size: int):
    """The env, its expert and renderers for this process (built once per task)."""
    if task not in _WORKER:
        from envs.kitchen_env import CAMERA_MJCF_NAMES  # lazy: robosuite, loaded in the workers only

        env = envs.make(task, image_size=size, render=False)
        env.reset(seed=0)
        sim = env.unwrapped.sim
        robot = FastRenderer(sim.mj_model, dict(CAMERA_MJCF_NAMES), size, size)  # first: it sets up offscreen GL
        _WORKER[task] = (env, make_expert(task, env), robot, ViewRenderer(sim.mj_model, size))
    return _WORKER[task]


def _capture(sim, views_renderer, t: int, cfg: XVRConfig, rng: np.random.Generator) -> Capture:
    m, d = sim.mj_model, sim.mj_data
    center = np.mean([mark.position for mark in sim.task_landmarks().values()], axis=0)
    center[0] = min(center[0], 1.0)  # in front of the kitchen wall
    rig = random_rig(m, d, center, cfg.rig_cameras, cfg.image_size, rng, RigConfig())

    def render(pose, target):
        rgb, depth = views_renderer.render(d, pose)
        return RigView(pose, rgb, depth, np.asarray(target))

    views = [render(pose, target) for pose, target in rig]
    orbits = []
    for k in rng.permutation(len(rig))[: cfg.orbits]:
        pose, target = rig[k]
        axis = "horizontal" if rng.random() < 0.6 else "vertical"
        degrees = rng.uniform(20, 40)
        moved = [moved_around(pose, target, axis, sign * degrees) for sign in (1, -1)]
        if all(clear_view(m, d, p, target, RigConfig().min_clear) for p in moved):
            orbits.append(OrbitSet(axis, views[k], tuple(render(p, target) for p in moved)))
    return Capture(t, center, views, orbits)


def run_scene(task: str, seed: int, cfg: XVRConfig) -> dict:
    """One expert episode on scene `seed`: robot frames every `frame_stride` steps and the rig captures."""
    env, expert, robot, views_renderer = _worker_env(task, cfg.image_size)
    sim = env.unwrapped.sim
    rng = np.random.default_rng([seed, 11])
    obs, _ = env.reset(seed=seed)
    expert.rng = np.random.default_rng(rng.integers(2**31))
    expert.reset()
    target = task_target(task, sim)
    later = rng.choice(np.arange(cfg.frame_stride, max(cfg.frame_stride + 1, cfg.max_steps // 2)),
                       cfg.captures - 1, replace=False) if cfg.captures > 1 else []
    capture_at = {0, *(int(t) for t in later)}
    frames, captures = [], []
    for t in range(cfg.max_steps):
        if t % cfg.frame_stride == 0:
            distance = float(np.linalg.norm(sim.landmarks()[target].position - sim.eef_pos()))
            frames.append(RobotFrame(t, robot.render(sim.mj_data), distance))
        if t in capture_at:
            captures.append(_capture(sim, views_renderer, t, cfg, rng))
            capture_at.discard(t)
        obs, _, terminated, truncated, _ = env.step(np.asarray(expert.select_action(obs), np.float32))
        if terminated or truncated:
            break
    for t in sorted(capture_at):  # the episode ended before these moments: capture its last state
        captures.append(_capture(sim, views_renderer, t, cfg, rng))
    return {"task": task, "seed": seed, "target": target, "frames": frames, "captures": captures}


# ----- main process: questions and rows -----

def scene_questions(scene: dict, partner: list[RobotFrame] | None, cfg: XVRConfig,
                    qcfg: QuestionConfig = QuestionConfig(), tries: int = 4) -> list[Question]:
    """Up to `questions_per_task` questions of every task type from one scene (cross-scenario needs a partner)."""
    rng = np.random.default_rng([scene["seed"], 17])
    frames, captures = scene["frames"], scene["captures"]

    def capture():
        return captures[int(rng.integers(len(captures)))]

    builders = {
        "point_correspondence": lambda: point_correspondence(capture(), rng, qcfg),
        "directional_correspondence": lambda: directional_correspondence(capture(), rng, qcfg),
        "spatial_verification": lambda: spatial_verification(capture(), rng, qcfg),
        "temporal_verification": lambda: temporal_verification(frames, rng, qcfg),
        "viewpoint_localization": lambda: viewpoint_localization(capture(), rng, qcfg),
        "directional_view_localization": lambda: directional_view_localization(capture(), rng),
        "cross_scenario_localization": lambda: cross_scenario_localization(frames, partner or [], rng),
        "language_localization": lambda: language_localization(frames, scene["target"], rng, qcfg),
    }
    out = []
    for name in TASKS:
        if name == "cross_scenario_localization" and not partner:
            continue
        for _ in range(cfg.questions_per_task):
            for _ in range(tries):
                question = builders[name]()
                if question is not None:
                    out.append(question)
                    break
    return out


def _save_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(image).save(tmp, format="PNG", compress_level=1)
    os.replace(tmp, path)


def to_sample(question: Question, sample_id: str, root: Path, image_dir: str) -> VQASample:
    """Write the question's images under root/image_dir and return its row (published block layout)."""
    blocks = [text_block(question.intro)]
    for k, (label, image) in enumerate(zip(question.labels, question.images)):
        url = f"{image_dir}/{sample_id}_{k}.png"
        if not (root / url).exists():
            _save_png(root / url, image)
        blocks += [text_block(f"\n{label}\n"), image_block(url)]
    blocks.append(text_block(f"\n{question.question}"))
    return VQASample(sample_id, question.task, tuple(blocks), question.answer, question.options, question.meta)


def write_questions(questions: list[Question], sid: str, split: str, root: Path, writer: SplitWriter,
                    existing: set[str], tag: str = "") -> int:
    counts: dict[str, int] = {}
    rows = 0
    for question in questions:
        k = counts[question.task] = counts.get(question.task, -1) + 1
        sample_id = f"{sid}-{question.task}{tag}-{k}"
        if sample_id in existing:
            continue
        writer.write(to_sample(question, sample_id, root, f"images/{split}/{sid}"))
        existing.add(sample_id)
        rows += 1
    writer.flush()
    return rows


def generate(cfg: XVRConfig, log=print) -> dict:
    """Generate (or continue) an XVR dataset under cfg.out; returns counts per split and the rate."""
    tasks = task_list(cfg.task)
    root = Path(cfg.out)
    root.mkdir(parents=True, exist_ok=True)
    pin_settings(root / "xvr_config.json", asdict(cfg))
    done_path = root / "scenes_done.jsonl"
    done = read_done(done_path)
    existing: set[str] = set()
    for split in SPLITS:
        path = root / f"{split}.jsonl"
        if path.exists():
            existing |= {json.loads(line)["sample_id"] for line in path.read_text().splitlines() if line.strip()}
    todo = [job for job in scene_plan(cfg, tasks) if job not in done]
    writers = {split: SplitWriter(root, split, TASKS) for split in SPLITS}
    counts = dict.fromkeys(SPLITS, 0)
    last: dict[str, tuple[str, list[RobotFrame]]] = {}  # per split: the latest scene's id and robot frames
    orphan: dict[str, tuple[dict, str]] = {}  # per split: a scene still waiting for a cross-scenario partner
    started = time.perf_counter()
    bar = tqdm(total=len(todo), unit="scene", desc="xvr")

    def write_scene(split: str, scene: dict, marks) -> None:
        sid = scene_id(split, scene["task"], scene["seed"])
        partner = last.get(split)
        questions = scene_questions(scene, partner[1] if partner else None, cfg)
        n = write_questions(questions, sid, split, root, writers[split], existing)
        if split in orphan:  # the first scene of this run in this split gets its partner now
            waiting, waiting_id = orphan.pop(split)
            cross = [q for q in scene_questions(waiting, scene["frames"], cfg)
                     if q.task == "cross_scenario_localization"]
            n += write_questions(cross, waiting_id, split, root, writers[split], existing)
        if partner is None:
            orphan[split] = (scene, sid)
        last[split] = (sid, scene["frames"])
        counts[split] += n
        marks.write(json.dumps({"split": split, "task": scene["task"], "seed": scene["seed"], "questions": n}) + "\n")
        marks.flush()
        bar.update(1)
        bar.set_postfix(rows=sum(counts.values()))

    try:
        with done_path.open("a") as marks:
            if cfg.workers == 0:
                for split, task, seed in todo:
                    write_scene(split, run_scene(task, seed, cfg), marks)
            else:
                with ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("spawn")) as pool:
                    pending, queue = {}, list(todo)
                    while queue or pending:
                        while queue and len(pending) < 2 * cfg.workers:
                            split, task, seed = queue.pop(0)
                            pending[pool.submit(run_scene, task, seed, cfg)] = split
                        finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                        for future in finished:
                            write_scene(pending.pop(future), future.result(), marks)
    finally:
        bar.close()
        for writer in writers.values():
            writer.close()
    wall = time.perf_counter() - started
    total = sum(counts.values())
    rate = 60 * total / wall if wall > 0 else 0.0
    log(f"{root}: {counts['train']} train, {counts['valid']} valid, {counts['eval']} eval questions from "
        f"{len(todo)} scenes in {wall:.0f} s ({rate:.0f} questions/min, {cfg.workers} workers)")
    return {"counts": counts, "scenes": len(todo), "wall_s": wall, "per_min": rate}

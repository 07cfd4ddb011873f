"""Grounding questions generated from the simulator: where things are in each camera and relative to the gripper.

The stand-in for a VLM's web-scale grounding pretraining, at the scale of the tiny backbone: scripted experts
(with random pushes off course, so the gripper visits more than the demo paths) play the kitchen tasks on scene
seeds no demonstration or evaluation uses; every few steps the three cameras are rendered and questions about the
scene's landmarks (buttons, objects, the gripper) are answered from the simulator's exact camera calibration:

  point   "Point to the stop button in image 2."              -> "(412, 530)" (0..999 across, down) or "not visible"
  target  "Task: <instruction> Point to the object to act on in image 1." -> the same format, for the task's target
  offset  "Where is the start button relative to the gripper, in cm (x forward, y left, z up)?" -> "x 12 y -3 z 5"

Only the cameras enter the questions; the simulator state is used for the answers alone.
"""

from __future__ import annotations

import json
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
from contract.embodiments import CAMERA_NAMES, TASK_KEY
from policies.experts import make_expert
from vla.data.schema import task_list
from vla.vqa.format import SplitWriter, VQASample, image_block, pin_settings, read_done, text_block

QUESTION_TASKS = ("point", "target", "offset")
NOT_VISIBLE = "not visible"
SCENE_SEED_OFFSET = 1_000_000  # grounding scenes never share a seed with demos (0, 1, ...) by default
SPLIT_SEED_STRIDE = 100_000  # eval scenes: SCENE_SEED_OFFSET + SPLIT_SEED_STRIDE + i


@dataclass(frozen=True)
class GroundingConfig:
    """What to generate and where."""

    out: str = "data/grounding"
    task: str = "all"
    episodes: int = 240  # training scenes (split evenly across tasks)
    eval_episodes: int = 24  # held-out scenes for the eval split
    image_size: int = 128
    frame_stride: int = 4  # render every n-th control step
    extra_questions: int = 2  # per frame, beside the target in every view and its offset
    push_prob: float = 0.6  # chance per episode of pushes off the expert's path
    workers: int = 2
    seed: int = SCENE_SEED_OFFSET
    # Every question's prompt starts with the frame's instruction, then the views, then the question: the prompt a
    # policy with `prompt_order` "instruction-first" gives the backbone, followed by a question. False: views, then
    # the question (the target question quotes the instruction itself).
    instruction_first: bool = False

    def __post_init__(self):
        for name in ("episodes", "image_size", "frame_stride", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.eval_episodes < 0 or self.extra_questions < 0:
            raise ValueError("--eval-episodes and --extra-questions must be >= 0")


def pixel_answer(uv: np.ndarray, size: int) -> str:
    """Pixel coordinates -> '(u, v)' on Qwen-VL's 0..999 relative grid."""
    u, v = (np.clip(np.asarray(uv, float) / size, 0.0, 0.999) * 1000).astype(int)
    return f"({u}, {v})"


def parse_point(answer: str) -> tuple[int, int] | None:
    """'(u, v)' -> (u, v); anything else (e.g. 'not visible') -> None."""
    text = answer.strip()
    if not (text.startswith("(") and text.endswith(")")):
        return None
    parts = text[1:-1].split(",")
    try:
        return (int(parts[0]), int(parts[1])) if len(parts) == 2 else None
    except ValueError:
        return None


def offset_answer(offset_m: np.ndarray) -> str:
    """A base-frame offset in metres -> 'x 12 y -3 z 5' (centimetres)."""
    x, y, z = np.round(np.asarray(offset_m) * 100).astype(int)
    return f"x {x} y {y} z {z}"


def parse_offset(answer: str) -> tuple[int, int, int] | None:
    parts = answer.split()
    if len(parts) != 6 or parts[0::2] != ["x", "y", "z"]:
        return None
    try:
        return tuple(int(v) for v in parts[1::2])
    except ValueError:
        return None


def task_target(task: str, sim) -> str:
    """The landmark a task acts on."""
    if task == "CoffeePressButton":
        return "start button"
    if task == "TurnOffMicrowave":
        return "stop button"
    return sim.target_name


# ----- episodes in the simulator (worker side) -----

_ENVS: dict = {}


def _env_and_expert(task: str, image_size: int):
    if task not in _ENVS:
        env = envs.make(task, image_size=image_size)
        _ENVS[task] = (env, make_expert(task, env))
    return _ENVS[task]


def _annotate(sim, image_size: int) -> dict:
    """Every landmark's pixel position and visibility in each camera, and its offset from the gripper."""
    # lazy: the simulator (mujoco, robosuite), loaded in the workers only
    from envs.cameras import camera_pose, line_of_sight
    from envs.kitchen_env import CAMERA_MJCF_NAMES

    m, d = sim.mj_model, sim.mj_data
    state = sim.privileged_state()
    base_inv = state["base_mat"].T
    poses = {cam: camera_pose(m, d, CAMERA_MJCF_NAMES[cam], image_size, image_size) for cam in CAMERA_NAMES}
    out = {}
    for name, mark in sim.landmarks().items():
        views = {}
        for cam, pose in poses.items():
            uv, depth = pose.project(mark.position[None])
            seen = bool(pose.in_frame(uv, depth)[0]) and line_of_sight(m, d, pose, mark.position, mark.geoms)
            views[cam] = {"uv": uv[0].round(2).tolist(), "visible": seen}
        offset = base_inv @ (mark.position - state["eef_pos"])
        out[name] = {"views": views, "offset": offset.round(4).tolist()}
    return out


def run_episode(task: str, seed: int, cfg: GroundingConfig) -> dict:
    """One expert episode with random pushes; frames every `frame_stride` steps with their annotations."""
    env, expert = _env_and_expert(task, cfg.image_size)
    sim = env.unwrapped.sim
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    expert.rng = np.random.default_rng(rng.integers(2**31))
    expert.reset()
    pushes = []
    if rng.random() < cfg.push_prob:
        for _ in range(rng.integers(1, 4)):
            pushes.append((int(rng.integers(0, 200)), int(rng.integers(5, 25)), rng.normal(size=3)))
    frames, offset = [], int(rng.integers(cfg.frame_stride))
    for t in range(env.horizon):
        if t % cfg.frame_stride == offset:
            frames.append({"t": t, "images": {c: obs[f"observation.images.{c}"] for c in CAMERA_NAMES},
                           "landmarks": _annotate(sim, cfg.image_size), "target": task_target(task, sim),
                           "instruction": obs[TASK_KEY]})
        action = np.asarray(expert.select_action(obs), np.float32)
        for start, length, direction in pushes:
            if start <= t < start + length:
                action[:3] = np.clip(direction / np.linalg.norm(direction) * 0.7, -1, 1)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    return {"task": task, "seed": seed, "frames": frames}


# ----- questions (main process) -----

def _view_phrase(k: int) -> str:
    return f"image {k + 1}"


def target_question(instruction: str, k: int, instruction_first: bool) -> str:
    """Where is the task's target in view k? With instruction_first the prompt already opens with the instruction."""
    if instruction_first:
        return f"Point to the object to act on in {_view_phrase(k)}."
    return f"Task: {instruction}. Point to the object to act on in {_view_phrase(k)}."


def prompt_blocks(urls: list[str], question: str, instruction: str | None = None) -> tuple[dict, ...]:
    """The views, then the question; an instruction, when given, opens the prompt (instruction-first)."""
    opening = (text_block(instruction),) if instruction is not None else ()
    return opening + tuple(image_block(u) for u in urls) + (text_block(question),)


def frame_questions(frame: dict, rng: np.random.Generator, extra: int, size: int,
                    instruction_first: bool = False) -> list[tuple[str, str, str, dict]]:
    """(question task, question, answer, meta) for one frame: the target in every view, its offset, and extras.
    With instruction_first the prompt already opens with the instruction, so the target question does not quote it."""
    marks, target = frame["landmarks"], frame["target"]

    def point(name: str, k: int, kind: str) -> tuple[str, str, str, dict]:
        view = marks[name]["views"][CAMERA_NAMES[k]]
        answer = pixel_answer(view["uv"], size) if view["visible"] else NOT_VISIBLE
        if kind == "target":
            question = target_question(frame["instruction"], k, instruction_first)
        else:
            question = f"Point to the {name} in {_view_phrase(k)}."
        return kind, question, answer, {"landmark": name, "view": CAMERA_NAMES[k], "uv": view["uv"],
                                        "visible": view["visible"]}

    def offset(name: str) -> tuple[str, str, str, dict]:
        question = f"Where is the {name} relative to the gripper, in cm (x forward, y left, z up)?"
        return "offset", question, offset_answer(marks[name]["offset"]), {"landmark": name,
                                                                           "offset": marks[name]["offset"]}

    questions = [point(target, k, "target") for k in range(len(CAMERA_NAMES))] + [offset(target)]
    names = sorted(marks)
    for _ in range(extra):
        name = names[rng.integers(len(names))]
        if name != "gripper" and rng.random() < 0.25:
            questions.append(offset(name))
        else:
            questions.append(point(name, int(rng.integers(len(CAMERA_NAMES))), "point"))
    return questions


def _save_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(image).save(tmp, format="PNG", compress_level=1)
    os.replace(tmp, path)


def write_episode(result: dict, root: Path, writer: SplitWriter, split: str, cfg: GroundingConfig,
                  existing: set[str]) -> int:
    """Images and question rows of one episode; returns the number of rows written."""
    task, seed = result["task"], result["seed"]
    rng = np.random.default_rng([seed, 7])
    rows = 0
    for frame in result["frames"]:
        stem = f"images/{split}/{task}/s{seed}_t{frame['t']:03d}"
        urls = [f"{stem}_{cam}.png" for cam in CAMERA_NAMES]
        for url, cam in zip(urls, CAMERA_NAMES):
            if not (root / url).exists():
                _save_png(root / url, frame["images"][cam])
        opening = frame["instruction"] if cfg.instruction_first else None
        for q, (kind, question, answer, meta) in enumerate(frame_questions(frame, rng, cfg.extra_questions,
                                                                           cfg.image_size, cfg.instruction_first)):
            sample_id = f"{task}-s{seed}-t{frame['t']:03d}-q{q}"
            if sample_id in existing:
                continue
            blocks = prompt_blocks(urls, question, opening)
            writer.write(VQASample(sample_id, kind, blocks, answer,
                                   meta={"scene_task": task, "seed": seed, "t": frame["t"], **meta}))
            rows += 1
    writer.flush()
    return rows


def _episode_plan(cfg: GroundingConfig, tasks: tuple[str, ...]) -> list[tuple[str, str, int]]:
    """(split, task, scene seed) for every episode; eval scenes come from their own seed range."""
    plan = []
    for split, count, base in (("train", cfg.episodes, cfg.seed), ("eval", cfg.eval_episodes, cfg.seed + SPLIT_SEED_STRIDE)):
        for i in range(count):
            task = tasks[i % len(tasks)]
            plan.append((split, task, base + i // len(tasks)))
    return plan


def generate(cfg: GroundingConfig, log=print) -> dict:
    """Generate (or continue) a grounding dataset; returns counts per split."""
    tasks = task_list(cfg.task)
    root = Path(cfg.out)
    root.mkdir(parents=True, exist_ok=True)
    pin_settings(root / "grounding_config.json", asdict(cfg))
    done_path = root / "episodes_done.jsonl"
    done = read_done(done_path)
    existing: set[str] = set()
    for split in ("train", "eval"):
        path = root / f"{split}.jsonl"
        if path.exists():
            existing |= {json.loads(line)["sample_id"] for line in path.read_text().splitlines() if line.strip()}
    todo = [job for job in _episode_plan(cfg, tasks) if job not in done]
    writers = {split: SplitWriter(root, split, QUESTION_TASKS) for split in ("train", "eval")}
    counts = {"train": 0, "eval": 0}
    started = time.perf_counter()
    bar = tqdm(total=len(todo), unit="ep", desc="grounding")
    try:
        with ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("spawn")) as pool, done_path.open("a") as marks:
            pending = {}
            queue = list(todo)
            while queue or pending:
                while queue and len(pending) < 2 * cfg.workers:
                    split, task, seed = queue.pop(0)
                    pending[pool.submit(run_episode, task, seed, cfg)] = split
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    split = pending.pop(fut)
                    result = fut.result()
                    counts[split] += write_episode(result, root, writers[split], split, cfg, existing)
                    marks.write(json.dumps({"split": split, "task": result["task"], "seed": result["seed"],
                                            "frames": len(result["frames"])}) + "\n")
                    marks.flush()
                    bar.update(1)
                    bar.set_postfix(rows=sum(counts.values()))
    finally:
        bar.close()
        for w in writers.values():
            w.close()
    log(f"{root}: {counts['train']} train and {counts['eval']} eval questions written in "
        f"{time.perf_counter() - started:.0f} s ({len(todo)} episodes)")
    return counts


def score(sample: VQASample, answer: str) -> dict[str, float]:
    """Metrics of one predicted answer: visibility correct, pointing error (image %), offset error (cm)."""
    out = {}
    if sample.task in ("point", "target"):
        truth, guess = parse_point(sample.answer), parse_point(answer)
        out[f"{sample.task}_visibility_acc"] = float((truth is None) == (guess is None))
        if truth is not None and guess is not None:
            # 0..999 grid -> percent of the image width
            out[f"{sample.task}_err_pct"] = float(np.hypot(truth[0] - guess[0], truth[1] - guess[1]) / 10)
    elif sample.task == "offset":
        truth, guess = parse_offset(sample.answer), parse_offset(answer)
        out["offset_parsed"] = float(guess is not None)
        if truth is not None and guess is not None:
            out["offset_err_cm"] = float(np.linalg.norm(np.subtract(truth, guess)))
    return out

"""Simulation benchmark: env steps/s with and without cameras, wrapper overhead, reset time, expert success.

    python scripts/benchmark_sim.py                     # all tasks, 50 expert episodes each
    python scripts/benchmark_sim.py --episodes 5 --steps 100 --tasks CoffeePressButton

Timings on a shared machine are noisy: raw and wrapped steps are interleaved in blocks so both see the same load,
and the overhead is the ratio of their medians.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import envs  # noqa: E402
from contract.embodiments import IMAGE_SIZE  # noqa: E402
from policies.experts import make_expert  # noqa: E402


@dataclass(frozen=True)
class BenchConfig:
    """What to measure and how long."""

    tasks: tuple[str, ...] = tuple(envs.list_tasks())
    image_size: int = IMAGE_SIZE
    steps: int = 200
    warmup: int = 20
    resets: int = 10
    episodes: int = 50
    seed: int = 0


def _actions(n: int, seed: int) -> np.ndarray:
    """Smooth random arm motions in arm mode (base still), like a policy's output."""
    rng = np.random.default_rng(seed)
    acts = np.zeros((n, 12), np.float32)
    acts[:, :6] = np.clip(np.cumsum(rng.normal(0, 0.1, (n, 6)), 0), -0.4, 0.4)
    acts[:, 6] = np.sign(np.sin(np.arange(n) / 15.0))
    acts[:, 11] = -1.0
    return acts


def steps_per_second(task: str, cfg: BenchConfig, render: bool) -> float:
    env = envs.make(task, image_size=cfg.image_size, render=render, seed=cfg.seed, horizon=10**9)
    env.reset(seed=cfg.seed)
    acts = _actions(cfg.warmup + cfg.steps, cfg.seed)
    for a in acts[: cfg.warmup]:  # first steps JIT-compile robosuite's numba kernels
        env.step(a)
    start = time.perf_counter()
    for a in acts[cfg.warmup:]:
        env.step(a)
    rate = cfg.steps / (time.perf_counter() - start)
    env.close()
    return rate


def wrapper_overhead(task: str, cfg: BenchConfig, block: int = 10) -> tuple[float, float, float]:
    """(raw ms/step, wrapped ms/step, overhead fraction); raw = robosuite step + rendering the cameras."""
    env = envs.make(task, image_size=cfg.image_size, seed=cfg.seed, horizon=10**9)
    env.reset(seed=cfg.seed)
    sim = env.unwrapped.sim
    acts = _actions(cfg.warmup + cfg.steps, cfg.seed)
    for a in acts[: cfg.warmup]:
        env.step(a)
    def run_raw(chunk):
        start = time.perf_counter()
        for a in chunk:
            sim.step(a.astype(np.float64)[sim.to_robosuite])
            sim.image_renderer.render(sim.mj_data)
        return (time.perf_counter() - start) / len(chunk)

    def run_wrapped(chunk):
        start = time.perf_counter()
        for a in chunk:
            env.step(a)
        return (time.perf_counter() - start) / len(chunk)

    raw, wrapped = [], []
    for k, i in enumerate(range(cfg.warmup, cfg.warmup + cfg.steps - 2 * block + 1, 2 * block)):
        first, second = acts[i:i + block], acts[i + block:i + 2 * block]
        if k % 2 == 0:  # alternate which goes first so neither always runs right after the other
            raw.append(run_raw(first))
            wrapped.append(run_wrapped(second))
        else:
            wrapped.append(run_wrapped(first))
            raw.append(run_raw(second))
    env.close()
    r, w = float(np.median(raw)), float(np.median(wrapped))
    return 1000 * r, 1000 * w, w / r - 1.0


def reset_seconds(task: str, cfg: BenchConfig) -> tuple[float, float]:
    """(mean, max) seconds per env.reset(seed=...) including the first rendered observation."""
    env = envs.make(task, image_size=cfg.image_size, seed=cfg.seed)
    env.reset(seed=cfg.seed)
    times = []
    for i in range(cfg.resets):
        start = time.perf_counter()
        env.reset(seed=cfg.seed + i + 1)
        times.append(time.perf_counter() - start)
    env.close()
    return float(np.mean(times)), float(np.max(times))


def expert_success(task: str, cfg: BenchConfig) -> tuple[int, int, float]:
    """(successes, episodes, mean episode length) of the scripted expert on seeds seed..seed+episodes-1."""
    env = envs.make(task, render=False, seed=cfg.seed)
    wins, lengths = 0, []
    for ep in range(cfg.episodes):
        obs, _ = env.reset(seed=cfg.seed + ep)
        expert = make_expert(task, env, seed=cfg.seed + ep)
        for t in range(env.horizon):
            obs, _, terminated, truncated, info = env.step(expert.select_action(obs))
            if terminated or truncated:
                break
        wins += int(info["success"])
        lengths.append(t + 1)
    env.close()
    return wins, cfg.episodes, float(np.mean(lengths))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=list(BenchConfig.tasks), choices=envs.list_tasks())
    p.add_argument("--image-size", type=int, default=BenchConfig.image_size)
    p.add_argument("--steps", type=int, default=BenchConfig.steps)
    p.add_argument("--resets", type=int, default=BenchConfig.resets)
    p.add_argument("--episodes", type=int, default=BenchConfig.episodes, help="expert episodes per task (0: skip)")
    p.add_argument("--seed", type=int, default=BenchConfig.seed)
    args = p.parse_args(argv)
    cfg = BenchConfig(tuple(args.tasks), args.image_size, args.steps, BenchConfig.warmup, args.resets,
                      args.episodes, args.seed)
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (timings are noisy when shared)")
    rows = []
    for task in cfg.tasks:
        cam = steps_per_second(task, cfg, render=True)
        nocam = steps_per_second(task, cfg, render=False)
        raw_ms, wrap_ms, overhead = wrapper_overhead(task, cfg)
        reset_mean, reset_max = reset_seconds(task, cfg)
        row = {"task": task, "cam": cam, "nocam": nocam, "raw_ms": raw_ms, "wrap_ms": wrap_ms,
               "overhead": overhead, "reset_mean": reset_mean, "reset_max": reset_max}
        if cfg.episodes > 0:
            row["wins"], row["n"], row["len"] = expert_success(task, cfg)
        rows.append(row)
        print(f"  done {task}", flush=True)

    size = cfg.image_size
    print(f"\n{'task':<20} {f'steps/s 3x{size}':>16} {'steps/s no cam':>15} {'raw ms':>8} {'wrapped ms':>11} "
          f"{'overhead':>9} {'reset s (max)':>14} {'expert success':>18}")
    for r in rows:
        expert = f"{r['wins']}/{r['n']} ({100 * r['wins'] / r['n']:.0f}%)" if "wins" in r else "-"
        print(f"{r['task']:<20} {r['cam']:>16.1f} {r['nocam']:>15.1f} {r['raw_ms']:>8.1f} {r['wrap_ms']:>11.1f} "
              f"{100 * r['overhead']:>8.1f}% {r['reset_mean']:>6.3f} ({r['reset_max']:.3f}) {expert:>18}")
    checks = [
        ("steps/s with 3 cameras >= 15", all(r["cam"] >= 15 for r in rows)),
        ("wrapper overhead <= 5%", all(r["overhead"] <= 0.05 for r in rows)),
        ("reset < 1 s", all(r["reset_max"] < 1.0 for r in rows)),
    ]
    if cfg.episodes > 0:
        checks.append(("expert success >= 90%", all(r["wins"] >= 0.9 * r["n"] for r in rows)))
    print()
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

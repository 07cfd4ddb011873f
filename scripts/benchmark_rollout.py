"""Rollout throughput: episodes/hour with 1 and 2 env workers, policy vs env share of wall time, runner overhead.

    python scripts/benchmark_rollout.py [--policy vla|expert] [--checkpoint DIR] [--episodes 6] [--horizon 60]

Goals (DESIGN.md): 2 workers >= 1.8x one worker's episode rate; runner overhead <= 5% of env + policy time.
Every run uses the same episodes (same seeds), in a fresh output dir, so the only change is the worker count.
Timings on a shared machine are noisy: compare ratios from one invocation, not absolute numbers across runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")

from contract.cli import parse_config_or_exit
from contract.embodiments import IMAGE_SIZE  # noqa: E402
from rollouts.config import RolloutConfig  # noqa: E402
from rollouts.evaluate import evaluate  # noqa: E402


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """What to time."""

    policy: str = "vla"  # vla (newest checkpoint, or --checkpoint) or expert
    checkpoint: str = "latest"
    task: str = "TurnOffMicrowave"
    episodes: int = 6  # per worker count; even, so 2 workers split them evenly
    horizon: int = 60  # steps per episode cap: keeps the benchmark minutes long, episodes equal length
    image_size: int = IMAGE_SIZE  # the data contract's size: the realistic rendering cost
    workers: tuple[int, ...] = (1, 2)
    execute_steps: int = 8
    json_out: str = ""


def _row(n: int, ev) -> dict:
    s = ev.stats
    steady = max(1e-9, s.wall_s - s.startup_s)
    return {
        "workers": n, "episodes": s.episodes, "env_steps": s.env_steps, "wall_s": round(s.wall_s, 2),
        "startup_s": round(s.startup_s, 2),
        "episodes_per_hour": round(3600 * s.episodes / s.wall_s, 1),
        "episodes_per_hour_steady": round(3600 * s.episodes / steady, 1),
        # Shares of the wall time after startup (process start, imports, scene build are reported apart).
        "policy_share": round(s.policy_s / steady, 3), "env_share": round(s.steady_env_s / steady, 3),
        "overhead_vs_env_policy": round(s.overhead_s / max(1e-9, s.steady_env_s + s.policy_s), 3),
        "policy_calls": s.policy_calls, "restarts": s.restarts,
    }


def main(argv: list[str]) -> int:
    bench = parse_config_or_exit(BenchmarkConfig(), argv, usage=__doc__ or "")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp:
        for n in bench.workers:
            config = RolloutConfig(task=bench.task, policy=bench.policy, checkpoint=bench.checkpoint,
                                   episodes=bench.episodes, num_envs=n, image_size=bench.image_size,
                                   horizon=bench.horizon, execute_steps=bench.execute_steps,
                                   out_dir=str(Path(tmp) / f"w{n}"), progress=False)
            rows.append(_row(n, evaluate(config)))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'workers':>7} {'ep/h':>8} {'ep/h steady':>11} {'startup s':>9} {'policy %':>8} {'env %':>6} {'overhead %':>10}")
    for r in rows:
        print(f"{r['workers']:>7} {r['episodes_per_hour']:>8.0f} {r['episodes_per_hour_steady']:>11.0f} {r['startup_s']:>9.1f} "
              f"{100 * r['policy_share']:>8.1f} {100 * r['env_share']:>6.1f} {100 * r['overhead_vs_env_policy']:>10.1f}")
    if len(rows) >= 2:
        base = rows[0]
        for r in rows[1:]:
            speed = r["episodes_per_hour"] / base["episodes_per_hour"]
            steady = r["episodes_per_hour_steady"] / base["episodes_per_hour_steady"]
            goal = 0.9 * r["workers"] / base["workers"]
            print(f"{r['workers']} vs {base['workers']} workers: {speed:.2f}x overall, {steady:.2f}x steady "
                  f"(goal >= {goal:.1f}x; {os.cpu_count()} cores, shared machine: noisy)")
    worst = max(r["overhead_vs_env_policy"] for r in rows)
    print(f"runner overhead: at most {100 * worst:.1f}% of env + policy time (goal <= 5%)")
    if bench.json_out:
        Path(bench.json_out).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

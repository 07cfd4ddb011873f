"""Success on held-out episodes at every saved step of a training run: a table, learning_curve.png and .json.

    python scripts/learning_curve.py --run checkpoints/runs/<run> [--episodes 10] [--num-envs 2]

Each checkpoint meets the same episodes (same seeds); results go to <run>/eval/ and resume like rollout.py's.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")

from contract.cli import parse_config_or_exit  # noqa: E402
from rollouts.config import RolloutConfig  # noqa: E402


@dataclasses.dataclass(frozen=True)
class CurveConfig:
    """Which run, and how many episodes per task and checkpoint."""

    run: str = ""
    task: str = "all"
    episodes: int = 10
    num_envs: int = 2
    seed: int = 0
    execute_steps: int = 8


def main(argv=None) -> int:
    cfg = parse_config_or_exit(CurveConfig(), sys.argv[1:] if argv is None else argv, __doc__)
    # lazy: both import torch; --help stays torch-free
    from checkpoints.format import CheckpointError
    from rollouts.learning_curve import CURVE_PNG, curve_table, learning_curve

    if not cfg.run:
        print("error: --run DIR is required (a training run directory with checkpoint-* inside)", file=sys.stderr)
        return 2
    rollout = RolloutConfig(task=cfg.task, episodes=cfg.episodes, num_envs=cfg.num_envs, seed=cfg.seed,
                            execute_steps=cfg.execute_steps)
    try:
        curve = learning_curve(cfg.run, rollout)
    except (ValueError, CheckpointError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(curve_table(curve))
    print(f"plot: {Path(cfg.run) / CURVE_PNG}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

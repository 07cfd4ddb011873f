"""Collect scripted-expert demonstrations into a LeRobot dataset (resumable: rerun the same command).

    python scripts/collect_demos.py --task TurnOffMicrowave --episodes 50 --workers 2 --out data/demos
    python scripts/collect_demos.py --task all --episodes 30 --image-size 128
    python scripts/collect_demos.py --task all --episodes 150 --disturbance 0.2 --out data/demos_dart   # DART
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")

from rollouts.runner import EnvFailure  # noqa: E402
from vla.data.collect import CollectConfig, collect  # noqa: E402


def main(argv=None) -> int:
    d = CollectConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default=d.task, help="CoffeePressButton, TurnOffMicrowave, PnPCabToCounter or all")
    p.add_argument("--episodes", type=int, default=d.episodes, help="successful episodes wanted (in total)")
    p.add_argument("--workers", type=int, default=d.workers, help="env processes (the main process writes)")
    p.add_argument("--out", default=d.out)
    p.add_argument("--image-size", type=int, default=d.image_size)
    p.add_argument("--seed", type=int, default=d.seed, help="first episode seed of each task")
    p.add_argument("--backend", default=d.backend, help="builtin or robocasa")
    p.add_argument("--horizon", type=int, default=d.horizon, help="max steps per episode (default: the task's)")
    p.add_argument("--disturbance", type=float, default=d.disturbance,
                   help="DART: std (action units) of a slowly varying push on the executed translation; the demos "
                        "record the expert's own actions, so they show it correcting from where the push drove it")
    args = p.parse_args(argv)
    cfg = CollectConfig(task=args.task, episodes=args.episodes, out=args.out, workers=args.workers,
                        image_size=args.image_size, seed=args.seed, backend=args.backend, horizon=args.horizon,
                        disturbance=args.disturbance)
    try:
        result = collect(cfg)
    except (ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except EnvFailure as e:  # the env keeps failing (missing assets, a broken backend): what is written stays
        print(f"error: {e}; rerun the same command to resume", file=sys.stderr)
        return 1
    return 1 if result["short"] else 0


if __name__ == "__main__":
    sys.exit(main())

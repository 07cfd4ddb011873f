"""`python rollout.py --task X [...]`: evaluate a checkpoint (or the experts), or compare two checkpoints."""

from __future__ import annotations

import dataclasses
import os
import sys

from contract.cli import ConfigError, apply_overrides, describe, parse_overrides
from rollouts.ablation import comparison_table, write_comparison
from rollouts.config import RolloutConfig
from rollouts.evaluate import OUTPUT_ROOT, evaluate, print_summary
from rollouts.runner import EnvFailure, PolicyError

USAGE = """usage: python rollout.py --task {TASK|all} [--checkpoint DIR] [--episodes 50] [--num-envs N]
                          [--backend builtin|robocasa] [--video] [--seed S] [--seeds K] [--image-size PX]
                          [--policy vla|expert|ws://HOST:PORT] [--execute-steps N] [--execute-mode chunk|ensemble]
                          [--ray [auto|HOST:PORT|ray://HOST:PORT]]   (Ray actors instead of the built-in pool)
       python rollout.py --compare CKPT_A CKPT_B --task all [--seeds 3 --episodes 50]
every option (current value):"""


def parse_args(argv: list[str]) -> RolloutConfig:
    """Command line -> RolloutConfig (ConfigError on unknown flags or bad values)."""
    return apply_overrides(RolloutConfig(), parse_overrides(argv))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        print(describe(RolloutConfig()))
        return 0
    os.environ.setdefault("MUJOCO_GL", "egl")
    from checkpoints.format import CheckpointError  # imports torch: --help must not

    try:
        config = parse_args(argv)
        if config.compare:
            return _compare(config)
        evaluation = evaluate(config)
        print_summary(evaluation)
        _print_timing(evaluation)
        return 0
    except (ConfigError, CheckpointError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ConnectionError as err:  # --policy ws://...: the server is down or refused us
        print(f"error: {err}", file=sys.stderr)
        return 2
    except PolicyError as err:
        print(f"policy error: {err}", file=sys.stderr)
        return 1
    except EnvFailure as err:
        print(f"env error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: finished episodes are saved; run the same command to resume", file=sys.stderr)
        return 130


def _print_timing(evaluation) -> None:
    s = evaluation.stats
    if not s.episodes or not s.wall_s:
        return
    steady = max(1e-9, s.wall_s - s.startup_s)
    print(f"{s.episodes} episodes in {s.wall_s:.0f} s ({3600 * s.episodes / s.wall_s:.0f} episodes/h; startup "
          f"{s.startup_s:.0f} s); after startup: policy {100 * s.policy_s / steady:.0f}%, env "
          f"{100 * s.steady_env_s / steady:.0f}%, runner {100 * s.overhead_s / steady:.0f}%; restarts {s.restarts}")


def _compare(config: RolloutConfig) -> int:
    if len(config.compare) != 2:
        raise ValueError(f"--compare takes exactly two checkpoints (A B); got {len(config.compare)}")
    if config.policy != "vla":
        raise ValueError("--compare evaluates two checkpoints; it cannot be combined with --policy expert")
    if config.out_dir:
        raise ValueError("--compare writes one results dir per checkpoint under outputs/rollouts; drop --out-dir")
    results = [evaluate(dataclasses.replace(config, compare=()), checkpoint=c) for c in config.compare]
    a, b = results
    out = OUTPUT_ROOT / f"compare-{a.name}-vs-{b.name}"
    report = write_comparison(out, (a.name, b.name), a.summaries, b.summaries, (a.out_dir, b.out_dir))
    print(f"\nA = {a.name}\nB = {b.name}")
    print(comparison_table(a.summaries, b.summaries))
    print(f"\nreport: {report}")
    return 0

"""`python rollout.py --task X [...]`: evaluate a checkpoint (or the experts), or compare two (one per training seed
each side, pooled)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
from pathlib import Path

from contract.cli import ConfigError, apply_overrides, describe, parse_overrides
from rollouts.ablation import POOLED_NOTE, comparison_table, write_comparison
from rollouts.config import RolloutConfig, compare_sides
from rollouts.evaluate import OUTPUT_ROOT, evaluate, print_summary
from rollouts.runner import EnvFailure, PolicyError

USAGE = """usage: python rollout.py --task {TASK|all} [--checkpoint DIR] [--episodes 50] [--num-envs N]
                          [--backend builtin|robocasa] [--video] [--seed S] [--seeds K] [--image-size PX]
                          [--policy vla|expert|ws://HOST:PORT] [--execute-steps N] [--execute-mode chunk|ensemble]
                          [--ray [auto|HOST:PORT|ray://HOST:PORT]]   (Ray actors instead of the built-in pool)
       python rollout.py --compare CKPT_A CKPT_B --task all [--seeds 3 --episodes 50]
       python rollout.py --compare A_S0,A_S1,A_S2 B_S0,B_S1,B_S2 --task all   (one checkpoint per training seed,
                          paired by position: pooled success and difference, plus each seed's difference)
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
    a_checkpoints, b_checkpoints = compare_sides(config)
    if config.policy != "vla":
        raise ValueError("--compare evaluates two checkpoints; it cannot be combined with --policy expert")
    if config.out_dir:
        raise ValueError("--compare writes one results dir per checkpoint under outputs/rollouts; drop --out-dir")
    _check_distinct_checkpoints(a_checkpoints + b_checkpoints)
    single = dataclasses.replace(config, compare=())
    a = [evaluate(single, checkpoint=c) for c in a_checkpoints]
    b = [evaluate(single, checkpoint=c) for c in b_checkpoints]
    a_names, b_names = [e.name for e in a], [e.name for e in b]
    report = write_comparison(_comparison_dir(a_names, b_names), (a_names, b_names), [e.summaries for e in a],
                              [e.summaries for e in b], ([e.out_dir for e in a], [e.out_dir for e in b]))
    print(f"\nA = {', '.join(a_names)}\nB = {', '.join(b_names)}")
    print(comparison_table([e.summaries for e in a], [e.summaries for e in b]))
    if len(a) > 1:
        print(POOLED_NOTE)
    print(f"\nreport: {report}")
    return 0


def _check_distinct_checkpoints(checkpoints: tuple[str, ...]) -> None:
    """Two spellings of one checkpoint (a run dir and its newest checkpoint) would count its episodes twice."""
    from checkpoints.format import CheckpointError, resolve_checkpoint

    seen: dict[Path, str] = {}
    for checkpoint in checkpoints:
        try:
            path = resolve_checkpoint(checkpoint).resolve()
        except CheckpointError:
            continue  # evaluate() reports it, with its hints
        if path in seen:
            raise ValueError(f"--compare: {seen[path]} and {checkpoint} are the same checkpoint ({path}); "
                             "give each once")
        seen[path] = checkpoint


def _comparison_dir(a_names: list[str], b_names: list[str]) -> Path:
    """compare-A-vs-B; with several seeds per side, the first pair, the seed count and a hash of every name."""
    if len(a_names) == 1:
        return OUTPUT_ROOT / f"compare-{a_names[0]}-vs-{b_names[0]}"
    digest = hashlib.sha256("\n".join(a_names + b_names).encode()).hexdigest()[:8]
    return OUTPUT_ROOT / f"compare-{a_names[0]}-vs-{b_names[0]}-{len(a_names)}seeds-{digest}"

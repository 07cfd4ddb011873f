"""Rollout configuration: one frozen dataclass, every field a command-line flag (`--num-envs 2`)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from typing import Literal

from contract.spec import check_image_size
from policies.action_queue import ExecutionConfig


@dataclass(frozen=True)
class RolloutConfig:
    """What to evaluate, on which episodes, and how to run it."""

    task: str = "all"  # a task name or "all"
    # vla: a checkpoint; expert: the scripted privileged-state experts (sanity check); ws://HOST:PORT: a policy server
    policy: str = "vla"
    checkpoint: str = "latest"  # a checkpoint dir, a run dir (its newest) or "latest" (newest under checkpoints/runs)
    # The backbone ablation: two checkpoints (`--compare A B`), or per side a comma-separated list with one
    # checkpoint per training seed, paired by position (`--compare A0,A1,A2 B0,B1,B2`); see compare_sides
    compare: tuple[str, ...] = ()
    episodes: int = 50  # per task and seed
    seeds: int = 1  # evaluation seeds: base seeds seed, seed+1, ...; each gives its own fixed episode set
    seed: int = 0
    num_envs: int = 1  # env worker processes (lock-step with a VLA; each on its own episodes with the experts)
    # Run the episodes as Ray work instead of the built-in pool: `--ray` alone starts a local Ray, `--ray auto` or
    # `--ray ray://HOST:PORT` joins a cluster. Same episodes, JSONL and report; the pool stays the default.
    ray: str = ""
    ray_policy_actors: int = 1  # --ray with a policy: actors holding a policy copy (one GPU each when there are GPUs)
    backend: Literal["builtin", "robocasa"] = "builtin"
    image_size: int = 0  # 0: the checkpoint's training image size (256 for the experts)
    horizon: int = 0  # 0: each task's own horizon; > 0 caps episodes (smoke runs, tests)
    execute_mode: Literal["chunk", "ensemble"] = "chunk"
    execute_steps: int = 8  # chunk: actions run from each chunk (16 steps by default); ensemble: steps between chunks
    ensemble_coeff: float = 0.01  # ACT weights exp(-coeff * i), i = 0 the oldest prediction
    device: str = "auto"  # policy device: auto = cuda when available
    ablate: Literal["", "cameras", "state"] = ""  # controls: black camera images, or the state held at its midpoint
    demo_seeds: bool = False  # replay the training demos' own scenes (the memorization check), not held-out ones
    allow_demo_seeds: bool = False  # evaluate even when an evaluation seed is one the checkpoint trained on
    video: bool = False
    out_dir: str = ""  # default outputs/rollouts/<run name>
    step_timeout_s: float = 60.0  # a worker silent this long on a step is hung: restarted, episode rerun
    reset_timeout_s: float = 300.0  # first reset builds the env (slow), hence longer
    # Expert runs step whole episodes inside the workers (no per-step messages): an episode still running this long
    # after its reset counts as hung (worker restarted, episode rerun). Generous: a 500-step episode takes ~1 minute.
    episode_timeout_s: float = 900.0
    max_reruns: int = 2  # an episode whose worker dies more often is recorded as an error
    progress: bool = True
    # Test-only fault injection: "crash:<episode>:<step>" or "hang:<episode>:<step>" fires once (first attempt).
    fault: str = ""

    @property
    def use_ray(self) -> bool:
        return self.ray not in ("", "false")

    def execution(self) -> ExecutionConfig:
        return ExecutionConfig(mode=self.execute_mode, execute_steps=self.execute_steps, ensemble_coeff=self.ensemble_coeff)

    def result_fingerprint(self, policy_id: str) -> str:
        """Short hash of everything that changes an episode's outcome (not how many episodes or workers)."""
        relevant = {
            "policy": policy_id,
            "backend": self.backend,
            "image_size": self.image_size,
            "horizon": self.horizon,
            **({} if self.policy == "expert" else asdict(self.execution())),
            **({"ablate": self.ablate} if self.ablate else {}),
            **({"demo_seeds": True} if self.demo_seeds else {}),
        }
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:8]


def validate(config: RolloutConfig, tasks: list[str], cpu_count: int | None = None) -> None:
    """One-line ValueError for settings that cannot work or make no sense."""
    cpus = cpu_count or os.cpu_count() or 1
    if config.episodes < 1 or config.seeds < 1:
        raise ValueError(f"--episodes and --seeds must be >= 1; got {config.episodes} and {config.seeds}")
    if config.policy not in ("vla", "expert") and not config.policy.startswith(("ws://", "wss://")):
        raise ValueError(f"--policy must be one of vla, expert, ws://HOST:PORT (a policy server); got {config.policy!r}")
    if config.num_envs < 1:
        raise ValueError(f"--num-envs must be >= 1; got {config.num_envs}")
    if config.num_envs > 4 * cpus and not config.use_ray:  # a Ray cluster brings its own cores
        raise ValueError(f"--num-envs {config.num_envs} is more than 4x the {cpus} CPU cores; use at most {4 * cpus}")
    total = config.episodes * config.seeds * len(tasks)
    if config.num_envs > total:
        raise ValueError(f"--num-envs {config.num_envs} exceeds the {total} episodes to run; use at most {total}")
    if config.image_size != 0:
        try:
            check_image_size(config.image_size)
        except ValueError as err:
            raise ValueError(f"--image-size: {err} (or 0: the checkpoint's)") from None
    if config.horizon < 0:
        raise ValueError(f"--horizon must be >= 0 (0 = the task's own); got {config.horizon}")
    if config.ray_policy_actors < 1:
        raise ValueError(f"--ray-policy-actors must be >= 1; got {config.ray_policy_actors}")
    if config.compare:
        compare_sides(config)
    if (config.ablate or config.demo_seeds) and config.policy != "vla":
        raise ValueError("--ablate and --demo-seeds apply to a trained checkpoint, not to --policy expert")
    # The upper bound is the policy's chunk length, which its action queue checks once the policy is loaded.
    if config.execute_steps < 1:
        raise ValueError(f"--execute-steps must be >= 1; got {config.execute_steps}")


def compare_sides(config: RolloutConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`--compare` as (A's checkpoints, B's checkpoints): one per training seed, paired by position.

    `--compare A B` is one checkpoint per side; `--compare A0,A1,A2 B0,B1,B2` three. One-line ValueError for two
    sides of unequal length, an empty entry or a checkpoint listed twice.
    """
    if len(config.compare) != 2:
        raise ValueError(f"--compare takes exactly two checkpoints (A B); got {len(config.compare)} (several training "
                         "seeds per side: A0,A1,A2 B0,B1,B2)")
    a, b = (_compare_side(label, entries) for label, entries in zip("AB", config.compare))
    if len(a) != len(b):
        raise ValueError(f"--compare: A lists {len(a)} and B {len(b)} checkpoints; give one per training seed on each "
                         "side, in the same seed order")
    _check_listed_once(a + b)
    return a, b


def _compare_side(label: str, entries: str) -> tuple[str, ...]:
    checkpoints = tuple(entry.strip() for entry in entries.split(","))
    if not all(checkpoints):
        raise ValueError(f"--compare: side {label} {entries!r} has an empty entry; separate checkpoints with one comma")
    return checkpoints


def _check_listed_once(checkpoints: tuple[str, ...]) -> None:
    seen: set[str] = set()
    for checkpoint in checkpoints:
        path = os.path.normpath(checkpoint)  # runs/a, runs/a/ and ./runs/a are one checkpoint
        if path in seen:
            raise ValueError(f"--compare lists {checkpoint} twice; give each training seed's checkpoint once")
        seen.add(path)

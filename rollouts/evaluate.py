"""One evaluation: resolve tasks and policy, pick the output dir, skip finished episodes, run, summarize, report."""

from __future__ import annotations

import dataclasses
import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

import envs
from contract.embodiments import IMAGE_SIZE
from contract.files import atomic_write_json
from contract.lookup import did_you_mean
from contract.spec import ObservationSpec
from envs.robocasa_backend import import_robocasa
from policies.remote import RemotePolicy
from policies.vla_policy import VLAPolicy
from rollouts.config import RolloutConfig, validate
from rollouts.metrics import TaskSummary, summarize
from rollouts.pool import WorkerPool
from rollouts.ray_pool import RayPolicy, RayPool, import_ray, ray_session
from rollouts.report import summary_table, write_report
from rollouts.results import EpisodeKey, ResultsLog
from rollouts.runner import EnvFailure, PolicyError, RunnerSettings, RunStats, run_episodes
from rollouts.seeding import episode_seed
from rollouts.worker import EpisodeSpec, WorkerSpec

OUTPUT_ROOT = Path("outputs/rollouts")
SIM_EMBODIMENT = "robocasa_panda_omron"


@dataclass
class Evaluation:
    """What one evaluation produced."""

    name: str
    out_dir: Path
    summaries: dict[str, TaskSummary]
    stats: RunStats
    skipped: int  # episodes already in the log from an earlier (interrupted) run
    scenes: str = ""  # whether the episodes are held out from the training demos


def known_tasks() -> list[str]:
    """Task names from the env registry."""
    return list(envs.list_tasks()) if hasattr(envs, "list_tasks") else list(envs.TASKS)


def resolve_tasks(task: str) -> list[str]:
    """'all' or one task name -> task list; an unknown name is a one-line error with the valid ones."""
    tasks = known_tasks()
    if task == "all":
        return tasks
    if task not in tasks:
        raise ValueError(f"unknown task {task!r}{did_you_mean(task, tasks)}; valid: {', '.join(tasks)}, all")
    return [task]


def episode_specs(tasks: list[str], config: RolloutConfig, demo_seeds: dict[str, list[int]] | None = None
                  ) -> list[EpisodeSpec]:
    """Every episode of the run, ordered task by task (so a worker keeps one scene built).

    Held-out by default: seeds are hashes of (base seed, task, index). With `config.demo_seeds` the episodes are
    instead the first `episodes` scenes the checkpoint was trained on (the memorization check).
    """
    if config.demo_seeds:
        if not demo_seeds:
            raise ValueError("--demo-seeds: the checkpoint records no demo seeds (trained on data made elsewhere)")
        return [EpisodeSpec(task, -1, i, seed) for task in tasks
                for i, seed in enumerate(demo_seeds.get(task, [])[: config.episodes])]
    return [
        EpisodeSpec(task, base, i, episode_seed(base, task, i))
        for task in tasks
        for base in range(config.seed, config.seed + config.seeds)
        for i in range(config.episodes)
    ]


def check_held_out(specs: list[EpisodeSpec], demo_seeds: dict[str, list[int]], allow: bool) -> int:
    """How many evaluation episodes reuse a demo's scene; refuses any unless allowed. Returns the overlap count."""
    used = {(task, seed) for task, seeds in demo_seeds.items() for seed in seeds}
    overlap = [s for s in specs if (s.task, s.seed) in used]
    if overlap and not allow:
        first = overlap[0]
        raise ValueError(f"{len(overlap)} evaluation episode(s) reuse a training demo's scene (e.g. {first.task} seed "
                         f"{first.seed}); evaluate on held-out scenes (another --seed) or pass --allow-demo-seeds")
    return len(overlap)


def env_spec(config: RolloutConfig, policy) -> ObservationSpec:
    """What the envs render: --image-size when given, else what the policy was trained on (the contract's size for
    the experts)."""
    trained = getattr(policy, "image_size", None) if policy is not None else None
    return ObservationSpec(embodiment=SIM_EMBODIMENT, image_size=config.image_size or trained or IMAGE_SIZE)


def load_policy(config: RolloutConfig, checkpoint: str):
    """(policy or None for experts, a stable id for the output dir name, a short display name)."""
    if config.policy == "expert":
        return None, "expert", "expert"
    if config.policy.startswith(("ws://", "wss://")):
        remote = RemotePolicy(config.policy, execution=config.execution())
        remote.check_compatible(env_spec(config, remote))
        served = remote.metadata.get("checkpoint") or "unnamed"
        return remote, f"{config.policy} {served}", f"remote-{Path(served).parent.name}-{Path(served).name}"
    from checkpoints.format import CheckpointError, resolve_checkpoint  # imports torch: rollout.py --help must not

    try:
        path = resolve_checkpoint(checkpoint).resolve()
    except CheckpointError as err:
        if checkpoint != "latest":
            raise
        raise CheckpointError(f"{err}; train one (python train_vla.py), pass --checkpoint DIR, or use --policy expert") from None
    policy = VLAPolicy.from_checkpoint(path, device=None if config.device == "auto" else config.device,
                                       execution=config.execution(), ablate=config.ablate)
    policy.check_compatible(env_spec(config, policy))
    return policy, str(path), f"{path.parent.name}-{path.name}"


def evaluate(config: RolloutConfig, checkpoint: str | None = None, policy_override=None, env_factory: str = "envs:make",
             expert_factory: str = "policies.experts:make_expert", tasks: list[str] | None = None) -> Evaluation:
    """Run (or resume) one policy's evaluation; results land in <out_dir>/episodes.jsonl as they finish."""
    tasks = tasks or resolve_tasks(config.task)
    validate(config, tasks)
    if config.use_ray:
        import_ray()  # before any policy loading: a missing extra is one line, at once
    if config.backend == "robocasa" and env_factory == "envs:make":
        _check_robocasa()
    if policy_override is not None:
        policy, policy_id, display = policy_override
    else:
        policy, policy_id, display = load_policy(config, checkpoint or config.checkpoint)
    if policy is not None and policy.chunks.config != config.execution():
        # The policy executes its chunks; the report and the output dir's fingerprint say how, from the config.
        raise ValueError(f"the policy executes chunks as {policy.chunks.config}, the config says {config.execution()}")
    env = env_spec(config, policy)
    config = dataclasses.replace(config, image_size=env.image_size)  # recorded in rollout_config.json and the report
    name = f"{display}-{config.backend}-{config.result_fingerprint(policy_id)}"
    out_dir = Path(config.out_dir) if config.out_dir else OUTPUT_ROOT / name
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_settings(out_dir, config, policy_id, config.result_fingerprint(policy_id))
    log = ResultsLog(out_dir / "episodes.jsonl")
    demo_seeds = getattr(policy, "demo_seeds", None) or {}
    specs = episode_specs(tasks, config, demo_seeds)
    if not specs:
        raise ValueError(f"no episodes to run: the checkpoint has no demos of {', '.join(tasks)}")
    reused = len(specs) if config.demo_seeds else check_held_out(specs, demo_seeds, config.allow_demo_seeds)
    todo = [s for s in specs if not log.is_done(EpisodeKey(s.task, s.base_seed, s.index))]
    skipped = len(specs) - len(todo)
    if skipped:
        print(f"resuming {out_dir}: {skipped} of {len(specs)} episodes already done", file=sys.stderr)
    stats = RunStats()
    if todo:
        worker_spec = WorkerSpec(
            backend=config.backend, observation=env, horizon=config.horizon,
            render=policy is not None or config.video, expert=policy is None, send_obs=policy is not None,
            video_dir=str(out_dir / "videos") if config.video else "", env_factory=env_factory,
            expert_factory=expert_factory, fault=config.fault,
        )
        settings = RunnerSettings(step_timeout_s=config.step_timeout_s,
                                  reset_timeout_s=config.reset_timeout_s, episode_timeout_s=config.episode_timeout_s,
                                  max_reruns=config.max_reruns,
                                  video_dir=worker_spec.video_dir)
        with _executor(config, policy, min(config.num_envs, len(todo)), worker_spec) as (pool, run_policy), \
                _progress(len(todo), display, config.progress) as on_record:
            try:
                stats = run_episodes(todo, pool, log, run_policy, settings, on_record=on_record)
            except (PolicyError, EnvFailure) as err:
                what = "policy" if isinstance(err, PolicyError) else "env"
                raise type(err)(f"{err}; {len(log.records)} finished episodes kept in {log.path}; "
                                f"fix the {what} and rerun the same command to resume") from err
    wanted = {(s.task, s.base_seed, s.index) for s in specs}
    records = [r for r in log.as_dicts() if (r["task"], r["base_seed"], r["index"]) in wanted]
    summaries = summarize(records, tasks)
    held_out = ("training scenes replayed (--demo-seeds)" if config.demo_seeds else
                f"{reused} episode(s) reuse a training scene" if reused else
                f"held-out: no evaluation scene is one of the {sum(map(len, demo_seeds.values()))} training demos'"
                if demo_seeds else "no demo seeds recorded in the checkpoint")
    meta = {"policy": policy_id, "backend": config.backend, "episodes_per_seed": config.episodes, "scenes": held_out,
            **({"ablate": config.ablate} if config.ablate else {}),
            "seeds": list(range(config.seed, config.seed + config.seeds)), "image_size": config.image_size,
            "execution": dataclasses.asdict(config.execution()) if policy is not None else "expert"}
    write_report(out_dir, summaries, title=display, meta=meta)
    return Evaluation(name, out_dir, summaries, stats, skipped, held_out)


@contextmanager
def _executor(config: RolloutConfig, policy, num_workers: int, worker_spec: WorkerSpec):
    """(pool, policy) for the runner: the built-in process pool, or Ray actors (`--ray`) behind the same interface."""
    if not config.use_ray:
        with WorkerPool(num_workers, worker_spec) as pool:
            yield pool, policy
        return
    with ray_session(config.ray), RayPool(num_workers, worker_spec) as pool:
        # A policy server (ws://) is already remote; a local policy moves into actors that batch all workers.
        remote = policy is None or config.policy.startswith(("ws://", "wss://"))
        run_policy = policy if remote else RayPolicy(policy, config.ray_policy_actors)
        try:
            yield pool, run_policy
        finally:
            if run_policy is not policy:
                run_policy.close()


def _check_robocasa() -> None:
    """Fail here, in one line, rather than in every worker once per episode."""
    try:
        import_robocasa()
    except RuntimeError as err:
        raise ValueError(f"--backend robocasa: {err}") from None


def _write_settings(out_dir: Path, config: RolloutConfig, policy_id: str, fingerprint: str) -> None:
    path = out_dir / "rollout_config.json"
    if path.exists():
        # Resuming into results made under other settings would mix two evaluations in one success rate.
        old = json.loads(path.read_text())
        if old.get("fingerprint") not in (None, fingerprint):
            raise ValueError(f"{out_dir} holds results of another policy or settings (policy {old.get('policy_id')}, "
                             f"backend {old.get('backend')}, image size {old.get('image_size')}, execute "
                             f"{old.get('execute_mode')}/{old.get('execute_steps')}); pass another --out-dir")
    atomic_write_json(path, {"policy_id": policy_id, "fingerprint": fingerprint, **dataclasses.asdict(config)})


class _progress:
    """tqdm bar advanced per finished episode, showing the running success rate; a no-op when disabled."""

    def __init__(self, total: int, name: str, enabled: bool):
        self.total, self.name, self.enabled = total, name, enabled
        self.done = self.ok = 0

    def __enter__(self):
        self.bar = None
        if self.enabled:
            self.bar = tqdm(total=self.total, desc=self.name, unit="ep", dynamic_ncols=True, file=sys.stderr)
        return self.update

    def update(self, record, recording=None) -> None:
        self.done += 1
        self.ok += bool(record.success)
        if self.bar is not None:
            self.bar.set_postfix_str(f"{record.task} ok {self.ok}/{self.done}", refresh=False)
            self.bar.update(1)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def print_summary(evaluation: Evaluation) -> None:
    print(f"\n{evaluation.name}  ->  {evaluation.out_dir}")
    print(summary_table(evaluation.summaries))
    if evaluation.scenes:
        print(f"scenes: {evaluation.scenes}")

"""Rollouts on Ray vs the built-in pool: the same episodes, their rate, and a run across two Ray nodes.

    python scripts/benchmark_ray.py [--task TurnOffMicrowave] [--episodes 6] [--horizon 60] [--workers 2]

Three evaluations of the same expert episodes (same seeds), each in a fresh output dir:
  pool    the built-in process pool (the default backend)
  ray     Ray actors on a one-node local cluster, joined by address as `rollout.py --ray HOST:PORT` does
  2-node  Ray actors on a local two-node cluster (ray.cluster_utils.Cluster: two raylets on this machine)
Printed: whether every episode's outcome (success, steps) and initial state (a hash of the simulator's qpos after
reset, recorded by the env) match between them; which Ray node ran which episode; episodes/hour per backend at the
same worker count (goal: Ray within 10% of the pool). Cluster start-up is reported apart: a real cluster is
already up. Timings on a shared machine are noisy: compare ratios from one invocation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")

import envs  # noqa: E402
from contract.cli import parse_config_or_exit  # noqa: E402
from rollouts.config import RolloutConfig  # noqa: E402
from rollouts.evaluate import evaluate  # noqa: E402

STATES_ENV = "BENCH_RAY_STATES"  # where the recording env appends one line per reset


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """What to run."""

    task: str = "TurnOffMicrowave"
    episodes: int = 6
    horizon: int = 60  # steps per episode cap: keeps the benchmark a few minutes long on 2 cores
    workers: int = 2
    json_out: str = ""


def make_recording_env(task, **kwargs):
    """envs.make, plus a line per reset: (task, seed, qpos hash, Ray node) appended to $BENCH_RAY_STATES."""
    env = envs.make(task, **kwargs)
    reset = env.reset

    def recording_reset(seed=None, **kw):
        obs, info = reset(seed=seed, **kw)
        data = getattr(env, "mj_data", None) or getattr(getattr(env, "unwrapped", None), "mj_data", None)
        state = data.qpos.tobytes() + data.qvel.tobytes() if data is not None else obs["observation.state"].tobytes()
        node = ""
        try:
            import ray

            if ray.is_initialized():
                node = ray.get_runtime_context().get_node_id()[:8]
        except ImportError:
            pass
        line = {"task": task, "seed": seed, "state": hashlib.sha256(state).hexdigest()[:16], "node": node}
        with open(os.environ[STATES_ENV], "a") as f:
            f.write(json.dumps(line) + "\n")
        return obs, info

    env.reset = recording_reset
    return env


def _run(bench: BenchmarkConfig, name: str, tmp: Path, ray: str = "") -> dict:
    config = RolloutConfig(task=bench.task, policy="expert", episodes=bench.episodes, num_envs=bench.workers,
                           horizon=bench.horizon, out_dir=str(tmp / name), progress=False, ray=ray)
    start = time.perf_counter()
    ev = evaluate(config, env_factory="benchmark_ray:make_recording_env")
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in (tmp / name / "episodes.jsonl").read_text().splitlines()]
    states = [json.loads(line) for line in Path(os.environ[STATES_ENV]).read_text().splitlines()]
    s = ev.stats
    return {
        "name": name, "episodes": s.episodes, "env_steps": s.env_steps, "restarts": s.restarts,
        "wall_s": round(wall, 2), "runner_wall_s": round(s.wall_s, 2), "startup_s": round(s.startup_s, 2),
        "episodes_per_hour": round(3600 * s.episodes / wall, 1),
        "episodes_per_hour_steady": round(3600 * s.episodes / max(1e-9, s.wall_s - s.startup_s), 1),
        "outcomes": sorted((r["task"], r["index"], r["seed"], r["success"], r["steps"]) for r in rows),
        "initial_states": sorted({(x["task"], x["seed"], x["state"]) for x in states}),
        "episodes_per_node": dict(Counter(x["node"] for x in states if x["node"])),
    }


def _print_row(run: dict) -> None:
    print(json.dumps({k: v for k, v in run.items() if k not in ("outcomes", "initial_states")}), flush=True)


def main(argv: list[str]) -> int:
    bench = parse_config_or_exit(BenchmarkConfig(), argv, usage=__doc__ or "")
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # workers and actors import this module by name
    from ray.cluster_utils import Cluster

    runs, clusters = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        tmp = Path(tmp)
        os.environ[STATES_ENV] = str(tmp / "pool-states.jsonl")
        runs.append(_run(bench, "pool", tmp))
        _print_row(runs[-1])
        for name, nodes in (("ray", 1), ("2-node", 2)):
            os.environ[STATES_ENV] = str(tmp / f"{name}-states.jsonl")  # before the raylets start: actors inherit it
            start = time.perf_counter()
            cpus = bench.workers // nodes
            cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus, "include_dashboard": False})
            for _ in range(nodes - 1):
                cluster.add_node(num_cpus=cpus)
            cluster.wait_for_nodes()
            clusters[name] = round(time.perf_counter() - start, 1)
            try:
                runs.append(_run(bench, name, tmp, ray=cluster.address))
            finally:
                cluster.shutdown()
            _print_row(runs[-1])

    pool = runs[0]
    print(f"\n{bench.episodes} episodes of {bench.task} (expert, horizon {bench.horizon}), {bench.workers} workers, "
          f"{os.cpu_count()} cores")
    print(f"{'backend':>8} {'ep/h':>7} {'ep/h steady':>11} {'wall s':>7} {'startup s':>9} {'cluster up s':>12}  nodes")
    for r in runs:
        print(f"{r['name']:>8} {r['episodes_per_hour']:>7.0f} {r['episodes_per_hour_steady']:>11.0f} "
              f"{r['wall_s']:>7.1f} "
              f"{r['startup_s']:>9.1f} {clusters.get(r['name'], 0.0):>12.1f}  {r['episodes_per_node'] or '-'}")
    for r in runs[1:]:
        same_outcomes = r["outcomes"] == pool["outcomes"]
        same_states = r["initial_states"] == pool["initial_states"] and len(pool["initial_states"]) == bench.episodes
        ratio = r["episodes_per_hour"] / pool["episodes_per_hour"]
        print(f"{r['name']} vs pool: outcomes {'identical' if same_outcomes else 'DIFFER'}, initial states "
              f"{'identical' if same_states else 'DIFFER'} ({len(r['initial_states'])} episodes); "
              f"{ratio:.2f}x the pool's episodes/hour (goal >= 0.90x)")
    two = runs[-1]
    print(f"2-node run used {len(two['episodes_per_node'])} node(s): {two['episodes_per_node']}")
    if bench.json_out:
        Path(bench.json_out).write_text(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

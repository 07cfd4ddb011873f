"""`rollout.py --ray`: the same episodes as the built-in pool, run by Ray actors; faults, resume and bad input.

One local Ray head (Ray's own test cluster, on this machine) serves the module; each evaluation joins it by address,
as `--ray HOST:PORT` would. The stand-in env and experts are the runner tests' (seconds, not minutes).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from policies.action_queue import ExecutionConfig  # noqa: E402
from rollouts.cli import main  # noqa: E402
from rollouts.evaluate import evaluate  # noqa: E402
from rollouts.ray_pool import MISSING  # noqa: E402
from test_rollout_runner import ProportionalPolicy, ReachEnv, _config, _lines, _run  # noqa: E402

TESTS = Path(__file__).parent


def test_ray_alone_starts_a_local_ray_for_the_run_and_stops_it(tmp_path):
    # First in the file, before the module's cluster starts: a second Ray on one machine confuses both.
    ev = _run(tmp_path, episodes=2, num_envs=2, ray="true")  # `--ray` with no address
    assert len(_lines(ev)) == 4 and ev.summaries["ReachA"].successes == 2
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    head = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    yield head
    head.shutdown()


def _outcomes(rows):
    return sorted((r["task"], r["index"], r["seed"], r["success"], r["steps"], r["reruns"], r["error"]) for r in rows)


def test_ray_runs_the_same_episodes_as_the_pool(tmp_path, cluster):
    pool = _run(tmp_path / "pool", episodes=3)
    on_ray = _run(tmp_path / "ray", episodes=3, ray=cluster.address)
    assert _outcomes(_lines(on_ray)) == _outcomes(_lines(pool))
    assert len(_lines(on_ray)) == 6 and {r["worker"] for r in _lines(on_ray)} == {0, 1}
    assert on_ray.summaries["ReachA"].successes == pool.summaries["ReachA"].successes == 3
    assert (on_ray.out_dir / "report.md").exists()


def test_a_policy_runs_in_a_policy_actor_batched_across_workers(tmp_path, cluster):
    execution = ExecutionConfig(execute_steps=4)
    pool = _run(tmp_path / "pool", policy=ProportionalPolicy(execution), episodes=3)
    on_ray = _run(tmp_path / "ray", policy=ProportionalPolicy(execution), episodes=3, ray=cluster.address)
    assert _outcomes(_lines(on_ray)) == _outcomes(_lines(pool))
    assert on_ray.summaries["ReachB"].successes == 3 and on_ray.stats.policy_calls == pool.stats.policy_calls


def test_a_killed_actor_is_restarted_and_its_episode_rerun_once(tmp_path, cluster):
    # The fault hook os._exit()s the actor at step 5 of episode 1 (first attempt only) of each task.
    ev = _run(tmp_path, episodes=3, fault="crash:1:5", ray=cluster.address)
    rows = _lines(ev)
    rerun = [r for r in rows if r["reruns"]]
    assert len(rows) == 6 and [(r["index"], r["reruns"], r["error"]) for r in rerun] == [(1, 1, "")] * 2
    assert ev.stats.restarts == 2
    clean = {(r["task"], r["index"]): r["steps"] for r in _lines(_run(tmp_path / "clean", episodes=3))}
    assert all(clean[(r["task"], r["index"])] == r["steps"] for r in rerun)  # rerun from the same initial state


def make_slow_env(task, **kwargs):
    class Slow(ReachEnv):
        def reset(self, seed=None):
            time.sleep(0.4)  # slow enough for the test to kill the driver mid-run
            return super().reset(seed)

    return Slow(task, **kwargs)


DRIVER = """
import sys
sys.path[:0] = [{tests!r}]
from rollouts.config import RolloutConfig
from rollouts.evaluate import evaluate
config = RolloutConfig(task="all", policy="expert", episodes=6, num_envs=1, image_size=16, horizon=30,
                       out_dir={out!r}, progress=False, ray={address!r})
evaluate(config, policy_override=(None, "expert", "expert"), env_factory="test_rollout_ray:make_slow_env",
         expert_factory="test_rollout_runner:make_reach_expert", tasks=["ReachA", "ReachB"])
"""


def test_a_killed_driver_resumes_from_the_jsonl(tmp_path, cluster):
    out = tmp_path / "out"
    jsonl = out / "episodes.jsonl"
    script = DRIVER.format(tests=str(TESTS), out=str(out), address=cluster.address)
    driver = subprocess.Popen([sys.executable, "-c", script], cwd=TESTS.parent, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and driver.poll() is None:
        if jsonl.exists() and len(jsonl.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    done = len(jsonl.read_text().splitlines())
    assert 3 <= done < 12

    again = _run(tmp_path, ray=cluster.address, num_envs=1)  # the same command: only the rest run
    assert again.skipped == done and again.stats.episodes == 12 - done
    rows = _lines(again)
    assert len(rows) == 12 and len({(r["task"], r["index"]) for r in rows}) == 12  # none counted twice


def test_a_node_lost_mid_run_reruns_its_episodes_elsewhere_and_counts_each_once(tmp_path, cluster):
    second = cluster.add_node(num_cpus=1)  # the two actors spread: one lands here
    cluster.wait_for_nodes()
    config = _config(tmp_path, ray=cluster.address, max_reruns=5)  # under load a survivor may time out too
    out = {}
    run = threading.Thread(target=lambda: out.update(ev=evaluate(
        config, policy_override=(None, "expert", "expert"), env_factory="test_rollout_ray:make_slow_env",
        expert_factory="test_rollout_runner:make_reach_expert", tasks=["ReachA", "ReachB"])))
    run.start()
    jsonl = tmp_path / "out" / "episodes.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (jsonl.exists() and len(jsonl.read_text().splitlines()) >= 2):
        time.sleep(0.05)
    cluster.remove_node(second, allow_graceful=False)  # its raylet and actor processes are killed
    run.join(120)
    ev = out["ev"]
    rows = _lines(ev)
    assert len(rows) == 12 and len({(r["task"], r["index"]) for r in rows}) == 12  # none twice, none lost
    assert ev.stats.restarts >= 1 and any(r["reruns"] for r in rows) and not any(r["error"] for r in rows)


def test_missing_ray_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    argv = ["--task", "all", "--policy", "expert", "--episodes", "1", "--out-dir", str(tmp_path), "--ray"]
    assert main(argv) == 2
    assert capsys.readouterr().err == f"error: {MISSING}\n"


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1", "nowhere"])
def test_an_unreachable_cluster_is_one_line(address, tmp_path, capsys):
    start = time.monotonic()
    argv = ["--task", "all", "--policy", "expert", "--episodes", "1", "--out-dir", str(tmp_path), "--ray", address]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --ray {address}: ") and err.count("\n") == 1
    assert time.monotonic() - start < 20
    assert not ray.is_initialized()



def test_a_port_that_answers_but_is_no_ray_head_is_one_line(tmp_path, capsys):
    with socket.socket() as listener:  # accepts connections (the kernel does), never speaks gRPC
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        start = time.monotonic()
        argv = ["--task", "all", "--policy", "expert", "--episodes", "1", "--out-dir", str(tmp_path), "--ray", address]
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"error: --ray {address}: something answers there, but not a Ray head (no gRPC); check the " \
                  f"address and port (`ray status` on the head prints them)\n"
    assert time.monotonic() - start < 20 and not ray.is_initialized()

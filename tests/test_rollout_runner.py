"""The runner's mechanics (lock-step batching, reruns, resume, determinism) on a tiny stand-in env.

The stand-in keeps these tests to seconds; tests/test_rollout_envs.py runs the same runner on the real tasks.
Workers import this module by name ("test_rollout_runner:make_reach_env"), so it must stay importable.
"""

import dataclasses
import json

import imageio.v2 as imageio
import numpy as np
import pytest

from contract.spec import ObservationSpec
from policies.action_queue import ChunkExecution, ExecutionConfig
from rollouts.config import RolloutConfig
from rollouts.evaluate import evaluate
from rollouts.pool import WorkerPool
from rollouts.results import ResultsLog
from rollouts.runner import EnvFailure, PolicyError, RunnerSettings, run_episodes
from rollouts.worker import EpisodeSpec, WorkerSpec

TASKS = ["ReachA", "ReachB"]
HORIZON = 30


class ReachEnv:
    """1-D reach: the state's first entry must get within 0.05 of a seed-drawn target; images echo the position."""

    def __init__(self, task, image_size=16, horizon=HORIZON, **_):
        self.task, self.size, self.horizon = task, image_size, horizon

    def reset(self, seed=None):
        rng = np.random.default_rng(seed)
        self.target, self.pos, self.t = float(rng.uniform(-1, 1)), 0.0, 0
        return self._obs(), {}

    def step(self, action):
        self.pos += float(np.clip(action[0], -1, 1)) * 0.1
        self.t += 1
        success = abs(self.pos - self.target) < 0.05
        return self._obs(), float(success), False, self.t >= self.horizon, {"success": success}

    def _obs(self):
        img = np.full((self.size, self.size, 3), int(127 + 120 * np.tanh(self.pos)), np.uint8)
        state = np.zeros(16, np.float32)
        state[0], state[1] = self.pos, self.target
        return {"observation.images.left": img, "observation.images.right": img, "observation.images.wrist": img,
                "observation.state": state, "task": f"reach {self.task}"}

    def close(self):
        pass


class ReachExpert:
    """Privileged expert: reads the target from the env, not the observation."""

    def __init__(self, env, slow):
        self.env, self.slow = env, slow

    def reset(self):
        pass

    def select_action(self, obs):
        action = np.zeros(12, np.float32)
        error = self.env.target - self.env.pos
        # The slow expert crawls 0.02 per step, so far targets are out of reach in HORIZON steps: real failures.
        action[0] = 0.2 * np.sign(error) if self.slow else np.clip(10 * error, -1, 1)
        return action


def make_reach_env(task, **kwargs):
    return ReachEnv(task, **kwargs)


def make_reach_expert(task, env, seed=None):
    return ReachExpert(env, slow=task == "ReachB")


class ProportionalPolicy:
    """A ChunkPolicy that reads the state (as a trained policy would): steps towards state[1]."""

    chunk_size, action_dim = 16, 12

    def __init__(self, execution=ExecutionConfig()):
        self.chunks = ChunkExecution(execution, self.chunk_size)
        self.batch_sizes = []

    def reset(self, seed=None, slot=0):
        self.chunks.reset(slot)

    def select_action(self, obs):
        return self.chunks.select_one(obs, self.predict_action_chunk)

    def select_actions(self, observations, slots):
        return self.chunks.select(observations, slots, self.predict_action_chunk)

    def predict_action_chunk(self, obs, slots=None):
        state = np.asarray(obs["observation.state"])
        self.batch_sizes.append(len(state))
        chunks = np.zeros((len(state), 16, 12), np.float32)
        chunks[:, :, 0] = np.clip((state[:, 1] - state[:, 0]) * 5, -0.5, 0.5)[:, None]
        return chunks


SPEC = WorkerSpec(observation=ObservationSpec(image_size=16), render=False, expert=True, send_obs=False,
                  env_factory="test_rollout_runner:make_reach_env", expert_factory="test_rollout_runner:make_reach_expert")


def _config(tmp_path, **kw):
    kw = {"task": "all", "policy": "expert", "episodes": 6, "num_envs": 2, "image_size": 16, **kw}
    kw.setdefault("horizon", HORIZON)
    return RolloutConfig(out_dir=str(tmp_path / "out"), progress=False, **kw)


def _run(tmp_path, policy=None, **kw):
    if policy is not None:
        execution = policy.chunks.config  # the policy executes its chunks; the config records how
        kw.update(policy="vla", execute_mode=execution.mode, execute_steps=execution.execute_steps)
    config = _config(tmp_path, **kw)
    tasks = TASKS if config.task == "all" else [config.task]
    return evaluate(config, policy_override=(policy, "test", "test") if policy else (None, "expert", "expert"),
                    env_factory=SPEC.env_factory, expert_factory=SPEC.expert_factory, tasks=tasks)


def _lines(ev):
    return [json.loads(line) for line in (ev.out_dir / "episodes.jsonl").read_text().splitlines()]


def test_expert_runs_through_the_pool_and_every_episode_is_logged(tmp_path):
    ev = _run(tmp_path)
    rows = _lines(ev)
    assert len(rows) == 12 and {r["worker"] for r in rows} == {0, 1}
    assert ev.summaries["ReachA"].successes == 6  # the good expert always reaches
    assert ev.summaries["ReachB"].successes < 6  # the slow one sometimes times out: failures are counted
    assert all(r["steps"] <= HORIZON and r["reruns"] == 0 for r in rows)
    assert (ev.out_dir / "report.md").exists() and (ev.out_dir / "success.png").stat().st_size > 1000


def test_same_seeds_give_identical_episodes_with_any_worker_count(tmp_path):
    one = _lines(_run(tmp_path / "a", num_envs=1))
    two = _lines(_run(tmp_path / "b", num_envs=3))
    key = lambda r: (r["task"], r["index"])  # noqa: E731
    outcome = lambda rows: sorted((key(r), r["seed"], r["success"], r["steps"]) for r in rows)  # noqa: E731
    assert outcome(one) == outcome(two)
    assert len({r["seed"] for r in one}) == 12


def test_resume_skips_finished_episodes(tmp_path):
    first = _run(tmp_path, episodes=3)
    assert first.skipped == 0 and len(_lines(first)) == 6
    again = _run(tmp_path, episodes=6)  # same command, more episodes: only the new ones run
    assert again.skipped == 6 and len(_lines(again)) == 12
    assert again.stats.episodes == 6


def test_crashed_worker_is_restarted_and_its_episode_rerun(tmp_path):
    ev = _run(tmp_path, fault="crash:1:5")
    rows = _lines(ev)
    rerun = [r for r in rows if r["reruns"]]
    assert len(rows) == 12 and len(rerun) == 2  # episode 1 of each task crashed once at step 5
    assert all(r["index"] == 1 and r["reruns"] == 1 and not r["error"] for r in rerun)
    assert ev.stats.restarts == 2
    clean = {(r["task"], r["index"]): r["steps"] for r in _lines(_run(tmp_path / "clean"))}
    assert all(clean[(r["task"], r["index"])] == r["steps"] for r in rerun)  # rerun from the same initial state


def test_hung_worker_times_out_and_is_rerun(tmp_path):
    # Experts run whole episodes in the worker: the hang is caught by the per-episode timeout.
    ev = _run(tmp_path, fault="hang:0:3", episode_timeout_s=2.0, task="ReachA")
    rows = [r for r in _lines(ev) if r["task"] == "ReachA" and r["index"] == 0]
    assert rows[-1]["reruns"] == 1 and rows[-1]["success"]
    assert ev.stats.restarts == 1


def test_hung_worker_in_lock_step_times_out_per_step(tmp_path):
    ev = _run(tmp_path, policy=ProportionalPolicy(), fault="hang:0:3", step_timeout_s=2.0, task="ReachA")
    rows = [r for r in _lines(ev) if r["task"] == "ReachA" and r["index"] == 0]
    assert rows[-1]["reruns"] == 1 and rows[-1]["success"]


def test_whole_episode_mode_matches_lock_step_and_skips_per_step_messages(tmp_path):
    specs = [EpisodeSpec(task, 0, i, 100 + i) for task in TASKS for i in range(4)]
    outcomes, rounds = {}, {}
    for whole in (True, False):
        log = ResultsLog(tmp_path / f"whole{whole}.jsonl")
        with WorkerPool(2, SPEC) as pool:
            stats = run_episodes(specs, pool, log, None, RunnerSettings(whole_episodes=whole))
        outcomes[whole] = sorted((r.task, r.index, r.success, r.steps) for r in log.records.values())
        rounds[whole] = stats.rounds
        assert stats.episodes == 8 and stats.env_steps == sum(r.steps for r in log.records.values())
    assert outcomes[True] == outcomes[False]
    assert rounds[True] <= 2 * len(specs) < rounds[False]  # "started" + "episode" per episode, not one per step


def test_chunk_policy_is_batched_across_workers(tmp_path):
    policy = ProportionalPolicy(ExecutionConfig(execute_steps=4))
    ev = _run(tmp_path, policy=policy)
    assert ev.summaries["ReachA"].successes == 6 and ev.summaries["ReachB"].successes == 6
    assert max(policy.batch_sizes) == 2  # both workers' observations went into one call


class _Boom(ProportionalPolicy):
    def predict_action_chunk(self, obs, slots=None):
        if len(self.batch_sizes) == 5:
            raise RuntimeError("CUDA out of memory")
        return super().predict_action_chunk(obs)


def test_policy_error_stops_with_a_clear_message_and_keeps_results(tmp_path):
    pool = WorkerPool(1, SPEC.__class__(**{**SPEC.__dict__, "expert": False, "send_obs": True}))
    log = ResultsLog(tmp_path / "episodes.jsonl")
    specs = [EpisodeSpec("ReachA", 0, i, 100 + i) for i in range(4)]
    with pool, pytest.raises(PolicyError, match=r"policy failed on episodes ReachA#\d: RuntimeError: CUDA out of memory"):
        run_episodes(specs, pool, log, _Boom(), RunnerSettings())
    assert len(log.records) >= 1


def test_videos_have_every_step_and_hold_the_outcome(tmp_path):
    ev = _run(tmp_path, video=True, episodes=2, task="ReachA", num_envs=1)
    row = _lines(ev)[0]
    reader = imageio.get_reader(row["video"])
    assert reader.count_frames() == row["steps"] + 1 + 20  # reset frame, one per step, one second of outcome
    assert reader.get_data(0).shape[1] == 3 * 16  # three 16 px views side by side


def make_broken_env(task, **kwargs):
    raise FileNotFoundError("kitchen assets not found at /nowhere")


def test_an_env_that_never_builds_stops_the_run_with_its_error(tmp_path):
    config = _config(tmp_path, task="ReachA", num_envs=1, max_reruns=1)
    with pytest.raises(EnvFailure, match=r"2 episodes in a row failed 2 times each; last: .*kitchen assets not found"):
        evaluate(config, policy_override=(None, "expert", "expert"), env_factory="test_rollout_runner:make_broken_env",
                 expert_factory=SPEC.expert_factory, tasks=["ReachA"])
    rows = [json.loads(line) for line in (tmp_path / "out" / "episodes.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["error"] for r in rows)


def test_temporal_ensembling_through_the_runner(tmp_path):
    policy = ProportionalPolicy(ExecutionConfig(mode="ensemble", execute_steps=1))
    ev = _run(tmp_path, policy=policy, task="ReachA", num_envs=1, episodes=2)
    steps = sum(r["steps"] for r in _lines(ev))
    assert ev.summaries["ReachA"].successes == 2
    assert len(policy.batch_sizes) == steps  # a fresh chunk every step, blended with the overlapping ones


def test_resuming_into_results_of_other_settings_is_refused(tmp_path):
    _run(tmp_path, episodes=1, task="ReachA", num_envs=1)
    with pytest.raises(ValueError, match="holds results of another policy or settings .*pass another --out-dir"):
        _run(tmp_path, episodes=1, task="ReachA", num_envs=1, horizon=10)


def test_recording_workers_send_back_successful_episodes_frames(tmp_path):
    # Demo collection's use: episodes from a function (asked when a worker is free), frames to a callback.
    todo = [EpisodeSpec(task, 0, i, 100 + i) for task in TASKS for i in range(3)]
    got = []
    with WorkerPool(2, dataclasses.replace(SPEC, record=True)) as pool:
        run_episodes(lambda: todo.pop(0) if todo else None, pool, None, None, RunnerSettings(),
                     on_record=lambda record, recording: got.append((record, recording)))
    assert len(got) == 6 and any(not record.success for record, _ in got)  # the slow expert fails some
    for record, recording in got:
        assert (recording is None) == (not record.success)
        if recording is not None:
            assert recording.instruction == f"reach {record.task}" and recording.action.shape == (record.steps, 12)
            assert recording.images["observation.images.wrist"].shape == (record.steps, 16, 16, 3)
            assert recording.state.dtype == np.float32 and recording.state[0, 0] == 0.0  # the reset's observation


def test_a_policy_that_executes_chunks_otherwise_than_the_config_records_is_refused(tmp_path):
    config = _config(tmp_path, policy="vla", execute_steps=4, task="ReachA")
    with pytest.raises(ValueError, match=r"^the policy executes chunks as .*execute_steps=8.*, the config says "):
        evaluate(config, policy_override=(ProportionalPolicy(), "test", "test"), env_factory=SPEC.env_factory,
                 tasks=["ReachA"])

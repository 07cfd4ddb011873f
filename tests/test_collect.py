"""Expert demo collection in the built-in env: read back, replay, resume after SIGKILL, bad input."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lerobot.datasets.lerobot_dataset  # noqa: F401  (before any MuJoCo EGL context: the other order segfaults)
import numpy as np
import pytest

pytest.importorskip("policies.experts")  # the scripted experts land separately (issue: experts)

import envs  # noqa: E402
from vla.data.collect import CollectConfig, collect  # noqa: E402
from vla.data.dataset import DataConfig, TrainingDataset, open_dataset  # noqa: E402
from vla.data.schema import read_sidecar  # noqa: E402
from vla.data.transforms import ImageAugConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TASK = "PnPCabToCounter"  # the expert whose seed 0 succeeds today; one ~30 s episode keeps this fast


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    out = tmp_path_factory.mktemp("collect") / "demos"
    result = collect(CollectConfig(task=TASK, episodes=1, out=str(out), image_size=64, seed=0), log=lambda *_: None)
    assert result["episodes"] == 1 and not result["short"]
    return out


def test_collected_episodes_read_back_as_chunks(collected):
    ds = open_dataset(collected, tasks=[TASK], delta_timestamps={"action": [i / 20 for i in range(16)]})
    assert ds.meta.total_episodes == 1 and ds[0]["observation.images.wrist"].shape == (3, 64, 64)
    data = TrainingDataset(DataConfig(root=str(collected), augment=ImageAugConfig(enabled=False)))
    last = data[len(data) - 1]
    assert last["images"].shape == (3, 64, 64, 3) and last["action"].shape == (16, 12)
    assert last["action_is_pad"].tolist() == [False] + [True] * 15
    stats = json.loads((collected / "meta" / "norm_stats.json").read_text())
    assert stats["action"]["count"] == len(ds)


def test_replaying_recorded_actions_reproduces_success(collected):
    ds = open_dataset(collected)
    episode = read_sidecar(collected)["episodes"]["0"]
    ep = ds.meta.episodes[0]
    actions = [ds[i]["action"].numpy() for i in range(ep["dataset_from_index"], ep["dataset_to_index"])]
    env = envs.make(TASK, image_size=64)
    obs, _ = env.reset(seed=episode["seed"])
    np.testing.assert_allclose(obs["observation.state"], ds[0]["observation.state"].numpy(), atol=1e-5)
    info = {}
    for a in actions:
        obs, _, terminated, truncated, info = env.step(a)
    assert info["success"] and terminated


def test_resuming_with_another_disturbance_is_refused(collected):
    with pytest.raises(ValueError, match="collected as 'collect:builtin', this run asks for 'collect:builtin "
                                         "disturbance=0.2'; use another --out"):
        collect(CollectConfig(task=TASK, episodes=2, out=str(collected), image_size=64, disturbance=0.2),
                log=lambda *_: None)
    assert read_sidecar(collected)["source"] == "collect:builtin" and len(read_sidecar(collected)["episodes"]) == 1


@pytest.mark.slow  # several expert episodes; tests/test_data.py covers SIGKILL of the writer itself
def test_collection_resumes_after_sigkill(tmp_path):
    out = tmp_path / "demos"
    cmd = [sys.executable, "scripts/collect_demos.py", "--task", TASK, "--episodes", "2", "--image-size", "32",
           "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if (out / "meta" / "vla.json").exists() and read_sidecar(out)["episodes"]:
                break
            time.sleep(0.2)
        time.sleep(1.0)  # now inside the next episode
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    survived = len(read_sidecar(out)["episodes"])
    assert 1 <= survived < 2
    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    ds = open_dataset(out)
    seeds = [e["seed"] for e in read_sidecar(out)["episodes"].values()]
    assert ds.meta.total_episodes == 2 and len(set(seeds)) == 2


def test_bad_task_is_one_line():
    r = subprocess.run([sys.executable, "scripts/collect_demos.py", "--task", "TurnOffMicrowav", "--episodes", "1"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "error: unknown task 'TurnOffMicrowav' (did you mean 'TurnOffMicrowave'?); "
        "valid: CoffeePressButton, TurnOffMicrowave, PnPCabToCounter, all"]

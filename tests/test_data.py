"""Writer, stats, normalizer, loader and transforms on synthetic episodes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from contract.embodiments import ACTION_HORIZON, IMAGE_KEYS, Embodiment, _layout
from vla.data.dataset import DataConfig, TrainingDataset, collate, open_dataset, validate_dataset
from vla.data.normalize import Normalizer
from contract.spec import ObservationSpec
from vla.data.stats import compute_stats
from vla.data.synthetic import synthetic_episode, write_synthetic_dataset
from vla.data.transforms import ImageAugConfig, ImageTransform
from vla.data.writer import DatasetWriter

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_ds(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds") / "demos"
    return write_synthetic_dataset(root, num_episodes=3, length=20, image_size=32,
                                   tasks=("TurnOffMicrowave", "CoffeePressButton"))


def test_written_dataset_reads_back_with_action_chunks(small_ds):
    ds = open_dataset(small_ds, delta_timestamps={"action": [i / 20 for i in range(ACTION_HORIZON)]})
    assert ds.meta.total_episodes == 3 and len(ds) == 20 + 21 + 22 and ds.fps == 20
    ep1 = synthetic_episode(21, seed=1, image_size=32, task_name="CoffeePressButton")
    first = ds[20]  # frame 0 of episode 1
    assert first["episode_index"].item() == 1 and first["task"] == ep1.instruction
    np.testing.assert_allclose(first["action"].numpy(), ep1.action[:16], rtol=0, atol=0)
    assert not first["action_is_pad"].any()
    last = ds[20 + 20]  # final frame: one real step then 15 pads that repeat it
    assert last["action_is_pad"].tolist() == [False] + [True] * 15
    np.testing.assert_array_equal(last["action"][1:].numpy(), np.repeat(ep1.action[-1:], 15, 0))
    img = (first["observation.images.left"] * 255).round().byte().permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(img, ep1.images[IMAGE_KEYS[0]][0])


def test_norm_stats_are_exact_over_all_frames(small_ds):
    stats = json.loads((small_ds / "meta" / "norm_stats.json").read_text())
    actions = np.concatenate([
        synthetic_episode(20 + i, seed=i, image_size=32, task_name=t).action
        for i, t in enumerate(("TurnOffMicrowave", "CoffeePressButton", "TurnOffMicrowave"))
    ])
    assert stats["action"]["count"] == len(actions)
    np.testing.assert_allclose(stats["action"]["q99"], np.quantile(actions.astype(np.float64), 0.99, axis=0), atol=1e-6)
    np.testing.assert_allclose(stats["action"]["std"], actions.std(0), atol=1e-5)
    assert set(stats["observation.state"]) >= {"min", "max", "mean", "std", "q01", "q99"}


def test_training_samples_have_the_trainer_contract(small_ds):
    data = TrainingDataset(DataConfig(root=str(small_ds), augment=ImageAugConfig(resize=28)))
    batch = collate([data[0], data[len(data) - 1]])
    assert batch["images"].shape == (2, 3, 28, 28, 3) and batch["images"].dtype == torch.uint8
    assert batch["state"].shape == (2, 16) and batch["state"].dtype == torch.float32
    assert batch["action"].shape == (2, 16, 12) and batch["action"].dtype == torch.float32
    assert batch["action_is_pad"].shape == (2, 16) and batch["action_is_pad"][1, 1:].all()
    assert isinstance(batch["instruction"], list) and len(batch["instruction"]) == 2
    assert batch["action"][..., [6, 11]].abs().eq(1).all()  # gripper and base mode are binary
    assert batch["action"].abs().max() <= 1.0
    only_coffee = TrainingDataset(DataConfig(root=str(small_ds), tasks=("CoffeePressButton",)))
    assert len(only_coffee) == 21


def test_in_memory_chunk_queries_give_lerobots_own_samples(small_ds):
    cfg = DataConfig(root=str(small_ds))
    lerobot_path = TrainingDataset(cfg, train=False, in_memory_chunks=False)
    fast = TrainingDataset(cfg, lerobot_path.normalizer, train=False)
    for i in (0, 7, 19, 20, 33, len(fast) - 1):  # episode starts, ends (padded chunks) and middles
        a, b = lerobot_path[i], fast[i]
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]) if isinstance(a[key], torch.Tensor) else a[key] == b[key], (i, key)
    assert fast[len(fast) - 1]["action_is_pad"].sum() == 15


def test_normalizer_roundtrip_numpy_torch_and_json(tmp_path):
    rng = np.random.default_rng(0)
    state, action = rng.normal(size=(500, 16)), rng.uniform(-1, 1, (500, 12))
    action[:, 6] = np.sign(action[:, 6])
    action[:, 7:11], action[:, 11] = 0.0, -1.0  # constant parts: must not divide by zero
    norm = Normalizer("robocasa_panda_omron", {"observation.state": compute_stats(state), "action": compute_stats(action)})
    a = norm.normalize_action(action)
    assert a.min() >= -1 and a.max() <= 1 and np.all(a[:, 7:11] == 0) and set(np.unique(a[:, 6])) <= {-1.0, 1.0}
    np.testing.assert_allclose(norm.unnormalize_action(a), action, atol=1e-9)
    s = norm.normalize_state(state)
    np.testing.assert_array_equal(s[:, 3:7], state[:, 3:7])  # the base quaternion is identity
    unsigned = np.r_[0:10, 14:16]  # the eef quaternion (10:14) comes back with one sign: test_quat_sign_mode
    np.testing.assert_allclose(norm.unnormalize_state(s)[:, unsigned], state[:, unsigned], atol=1e-9)
    chunk = torch.tensor(a[:16], dtype=torch.float32).unsqueeze(0)  # (B, 16, 12) like the model's output
    back = norm.unnormalize_action(chunk)
    assert isinstance(back, torch.Tensor) and back.shape == (1, 16, 12)
    np.testing.assert_allclose(back[0].numpy(), action[:16], atol=1e-5)
    norm.save(tmp_path / "normalizer.json")
    again = Normalizer.load(tmp_path / "normalizer.json")
    np.testing.assert_array_equal(again.normalize_action(action), a)
    with pytest.raises(ValueError, match="expected last dimension 12"):
        norm.normalize_action(np.zeros((3, 7)))


def test_q01_q99_and_mean_std_modes():
    robot = Embodiment("toy", 9, ("left",), _layout(("a", 1), ("b", 1)), _layout(("a", 1), ("b", 1)),
                       {"a": "q01_q99", "b": "mean_std"}, {"a": "q01_q99", "b": "mean_std"})
    x = np.random.default_rng(1).normal(size=(1000, 2))
    norm = Normalizer(robot, {"observation.state": compute_stats(x), "action": compute_stats(x)})
    y = norm.normalize_state(x)
    assert y[:, 0].min() == -1 and y[:, 0].max() == 1  # outliers beyond q01/q99 are clipped
    assert abs(y[:, 1].mean()) < 1e-9 and abs(y[:, 1].std() - 1) < 1e-6


def test_quat_sign_mode_gives_one_rotation_one_input_and_checkpoints_keep_their_modes():
    # A gripper pointing down, as robosuite reports it (x, y, z, w with w >= 0): w near 0, so noise flips the sign.
    rng = np.random.default_rng(2)
    quat = np.array([0.91, 0.01, 0.41, 0.0]) + rng.normal(scale=0.01, size=(200, 4))
    quat *= np.where(quat[:, 3:] < 0, -1, 1)  # the w >= 0 rule: x and z change sign from row to row
    assert 0.2 < (quat[:, 0] > 0).mean() < 0.8
    state = np.concatenate([rng.normal(size=(200, 10)), quat, rng.normal(size=(200, 2))], axis=1)
    stats = {"observation.state": compute_stats(state), "action": compute_stats(rng.uniform(-1, 1, (200, 12)))}
    norm = Normalizer("robocasa_panda_omron", stats)
    s = norm.normalize_state(state)
    assert (s[:, 10] > 0).all()  # x is the component largest in the data: it sets the sign
    np.testing.assert_allclose(np.abs(s[:, 10:14]), np.abs(quat), atol=1e-12)  # the same rotation, one sign
    np.testing.assert_allclose(norm.normalize_state(-state)[:, 10:14], s[:, 10:14], atol=1e-12)  # q and -q: one input
    st = norm.normalize_state(torch.tensor(state, dtype=torch.float32))
    np.testing.assert_allclose(st.numpy(), s, atol=1e-5)
    # A checkpoint saved with the earlier identity mode keeps it: its quaternions are fed as they were trained.
    older = norm.to_dict()
    older["modes"]["observation.state"]["eef_quat_rel_base"] = "identity"
    np.testing.assert_array_equal(Normalizer.from_dict(older).normalize_state(state)[:, 10:14], quat)
    older["modes"]["observation.state"]["wrist"] = "identity"
    with pytest.raises(ValueError, match=r"parts \['wrist'\] that robocasa_panda_omron does not have"):
        Normalizer.from_dict(older)
    toy = Embodiment("toy", 9, ("left",), _layout(("q", 3),), _layout(("a", 1),), {"q": "quat_sign"}, {})
    with pytest.raises(ValueError, match="quat_sign needs a 4-D quaternion, got 3"):
        Normalizer(toy, {"observation.state": compute_stats(state[:, :3]), "action": compute_stats(state[:, :1])})


def test_transforms_train_vs_eval():
    views = torch.randint(0, 255, (3, 64, 64, 3), dtype=torch.uint8)
    ev = ImageTransform(ImageAugConfig(resize=32), train=False)
    assert torch.equal(ev(views), ev(views)) and ev(views).shape == (3, 32, 32, 3)
    tr = ImageTransform(ImageAugConfig(resize=32), train=True, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(tr(views), tr(views))
    assert torch.equal(ImageTransform(ImageAugConfig(enabled=False))(views), views)
    with pytest.raises(ValueError, match="uint8"):
        ev(views.float())


def _edit_info(root, fn):
    path = root / "meta" / "info.json"
    info = json.loads(path.read_text())
    fn(info)
    path.write_text(json.dumps(info))


def test_validation_errors_name_the_key(tmp_path):
    root = write_synthetic_dataset(tmp_path / "d", num_episodes=1, length=5, image_size=16)
    _edit_info(root, lambda i: i["features"].pop("observation.images.wrist"))
    with pytest.raises(ValueError, match="missing key 'observation.images.wrist'"):
        validate_dataset(root)
    root = write_synthetic_dataset(tmp_path / "e", num_episodes=1, length=5, image_size=16)
    _edit_info(root, lambda i: i["features"]["observation.state"].update(shape=[14]))
    with pytest.raises(ValueError, match=r"'observation.state' is float32 \(14,\), expected float32 \(16,\)"):
        validate_dataset(root)
    root = write_synthetic_dataset(tmp_path / "f", num_episodes=1, length=5, image_size=16)
    _edit_info(root, lambda i: i.update(fps=30))
    with pytest.raises(ValueError, match="fps is 30, expected 20"):
        validate_dataset(root)
    root = write_synthetic_dataset(tmp_path / "g", num_episodes=1, length=5, image_size=16)
    path = next((root / "data").glob("*/*.parquet"))
    table = pq.read_table(path).to_pandas()
    table.at[2, "observation.state"] = np.full(16, np.nan, dtype=np.float32)
    table.to_parquet(path)
    with pytest.raises(ValueError, match="'observation.state' has NaN/inf .*frame 2"):
        validate_dataset(root)
    with pytest.raises(ValueError, match="not a LeRobot v3.0 dataset"):
        validate_dataset(tmp_path)
    with pytest.raises(ValueError, match="episode 'observation.images.left' is uint8 .*expected uint8"):
        DatasetWriter(tmp_path / "h", ObservationSpec(image_size=32)).add_episode(synthetic_episode(4, 0, image_size=16))


def test_repair_drops_a_half_written_tail(tmp_path):
    root = write_synthetic_dataset(tmp_path / "d", num_episodes=3, length=6, image_size=16)
    last_data = sorted((root / "data").glob("*/*.parquet"))[-1]
    last_data.write_bytes(last_data.read_bytes()[:100])  # as if killed before the footer
    (root / "meta" / "info.json").write_text('{"trunc')  # killed mid-write of info.json
    with DatasetWriter(root, ObservationSpec(image_size=16)) as w:
        assert w.num_episodes == 2 and w.done_seeds() == {0, 1}
        w.add_episode(synthetic_episode(6 + 2, seed=2, image_size=16))
    ds = open_dataset(root)
    assert ds.meta.total_episodes == 3 and len(ds) == 6 + 7 + 8


KILL_SCRIPT = """
import sys, time
from vla.data.writer import DatasetWriter
from contract.spec import ObservationSpec
from vla.data.synthetic import synthetic_episode
w = DatasetWriter(sys.argv[1], ObservationSpec(image_size=16))
for i in range(w.num_episodes, 1000):
    w.add_episode(synthetic_episode(30, seed=i, image_size=16))
    print("committed", i + 1, flush=True)
"""


def test_sigkill_mid_collection_then_resume(tmp_path):
    root = tmp_path / "demos"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(root)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:
            if line.strip() == "committed 2":
                break
        time.sleep(0.15)  # land somewhere inside a later episode's write
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with DatasetWriter(root, ObservationSpec(image_size=16)) as w:
        survived = w.num_episodes
        assert survived >= 2
        for i in range(survived, survived + 2):
            w.add_episode(synthetic_episode(30, seed=i, image_size=16))
    ds = open_dataset(root, delta_timestamps={"action": [i / 20 for i in range(16)]})
    assert ds.meta.total_episodes == survived + 2 and len(ds) == 30 * (survived + 2)
    assert ds[len(ds) - 1]["episode_index"].item() == survived + 1
    assert not (root / "images").exists() or not any((root / "images").rglob("*.png"))

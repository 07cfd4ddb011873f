"""One ObservationSpec through the stack: the image size is set in one place and every package reads it."""

import json

import numpy as np
import pytest
import torch

import envs
from contract.embodiments import ACTION_KEY, IMAGE_KEYS, STATE_KEY
from contract.spec import MIN_IMAGE_SIZE, ObservationSpec, spec_from_checkpoint_config
from policies.vla_policy import VLAPolicy
from rollouts.config import RolloutConfig, validate
from rollouts.evaluate import evaluate
from vla.data.dataset import DataConfig, TrainingDataset
from vla.data.normalize import Normalizer
from vla.data.schema import read_spec
from vla.data.transforms import ImageAugConfig
from vla.data.writer import DatasetWriter, Episode


class SpyModel(torch.nn.Module):
    """Records the images handed to the model (what its processor receives) and returns a zero chunk."""

    def __init__(self):
        super().__init__()
        self.image_shapes = []

    def predict_action_chunk(self, batch):
        self.image_shapes.append(tuple(batch["images"].shape))
        return torch.zeros(len(batch["state"]), 16, 12)


def _normalizer():
    stats = lambda dim: {"min": [-1.0] * dim, "max": [1.0] * dim, "mean": [0.0] * dim, "std": [0.5] * dim,  # noqa: E731
                         "q01": [-1.0] * dim, "q99": [1.0] * dim}
    return Normalizer("robocasa_panda_omron", {STATE_KEY: stats(16), ACTION_KEY: stats(12)})


def test_the_image_size_set_once_reaches_the_env_the_dataset_the_model_and_the_rollout(tmp_path):
    spec = ObservationSpec(image_size=32)  # the one place; nothing below names a size

    env = envs.make("CoffeePressButton", spec=spec, seed=0)
    obs, _ = env.reset(seed=0)
    frames = [obs]
    for _ in range(3):
        frames.append(env.step(np.zeros(12, np.float32))[0])
    env.close()
    assert all(f[key].shape == spec.image_shape for f in frames for key in IMAGE_KEYS)

    with DatasetWriter(tmp_path / "demos", spec, source="test") as writer:
        writer.add_episode(Episode(images={k: np.stack([f[k] for f in frames]) for k in IMAGE_KEYS},
                                   state=np.stack([f[STATE_KEY] for f in frames]).astype(np.float32),
                                   action=np.zeros((len(frames), 12), np.float32), instruction=obs["task"],
                                   task_name="CoffeePressButton", seed=0))
    recorded = read_spec(tmp_path / "demos")
    assert recorded == spec
    data = DataConfig(root=str(tmp_path / "demos"), augment=ImageAugConfig(enabled=False))  # no resize to the backbone's
    sample = TrainingDataset(data, spec=recorded, train=False)[0]
    assert sample["images"].shape == (3, *spec.image_shape) and sample["action"].shape == (spec.action_horizon, 12)

    model = SpyModel()
    policy = VLAPolicy(model, _normalizer(), spec=recorded)
    policy.predict_action_chunk(frames[0])
    assert model.image_shapes[-1] == (1, 3, *spec.image_shape)

    out = tmp_path / "rollout"
    config = RolloutConfig(task="CoffeePressButton", episodes=1, horizon=2, out_dir=str(out), progress=False)
    evaluate(config, policy_override=(policy, "spy", "spy"))
    assert json.loads((out / "rollout_config.json").read_text())["image_size"] == spec.image_size
    assert set(model.image_shapes[1:]) == {(1, 3, *spec.image_shape)}  # what the rollout's envs rendered


def test_the_image_size_is_checked_once_with_one_message():
    message = f"image_size must be a whole number of pixels >= {MIN_IMAGE_SIZE}; got 8"
    with pytest.raises(ValueError, match=message):
        ObservationSpec(image_size=8)
    with pytest.raises(ValueError, match=message):
        envs.make("CoffeePressButton", image_size=8)
    with pytest.raises(ValueError, match=f"^--image-size: {message} \\(or 0: the checkpoint's\\)$"):
        validate(RolloutConfig(task="CoffeePressButton", image_size=8), ["CoffeePressButton"])


def test_a_checkpoint_records_the_spec_and_older_checkpoints_read_the_same():
    spec = ObservationSpec(image_size=64, action_horizon=8)
    assert spec_from_checkpoint_config({"observation": spec.to_dict()}) == spec
    older = {"embodiment": "robocasa_panda_omron", "cameras": ["left", "right", "wrist"], "image_size": 64,
             "action_horizon": 8, "model": {"head": {"action_horizon": 8}}}
    assert spec_from_checkpoint_config(older) == spec
    with pytest.raises(ValueError, match="unknown observation spec field 'image_sise' \\(did you mean 'image_size'"):
        ObservationSpec.from_dict({"image_sise": 64})


def test_an_env_that_does_not_match_the_policy_is_one_line_naming_both_values():
    policy = ObservationSpec(image_size=64)
    assert policy.mismatch(ObservationSpec(image_size=64)) is None
    assert policy.mismatch(ObservationSpec(image_size=64, cameras=("left", "right", "wrist"))) is None
    assert policy.mismatch(ObservationSpec(image_size=128), "checkpoint c") == \
        "checkpoint c was trained on 64px images; the env renders 128px"
    assert policy.mismatch(ObservationSpec(image_size=64, fps=10)) == \
        "policy was trained at 20 Hz; the env runs at 10 Hz"

"""VLAPolicy's boundary: input checks, normalization in and out, chunk execution, batching."""

import numpy as np
import pytest
import torch

from contract.embodiments import ACTION_KEY, STATE_KEY
from contract.spec import ObservationSpec
from policies.action_queue import ExecutionConfig
from policies.base import ChunkPolicy
from policies.vla_policy import VLAPolicy
from vla.data.normalize import Normalizer
from vla.data.transforms import ImageAugConfig, ImageTransform
from vla.model import VLA
from vla.presets import get_preset


def _stats(dim, lo, hi):
    lo, hi = np.full(dim, lo, float), np.full(dim, hi, float)
    return {"min": lo.tolist(), "max": hi.tolist(), "mean": ((lo + hi) / 2).tolist(), "std": ((hi - lo) / 4).tolist(),
            "q01": lo.tolist(), "q99": hi.tolist()}


NORMALIZER = Normalizer("robocasa_panda_omron", {STATE_KEY: _stats(16, -2.0, 2.0), ACTION_KEY: _stats(12, -0.5, 0.5)})


class EchoModel(torch.nn.Module):
    """Chunk step t = normalized state[2] * (t + 1) / 16 in every action dim: exposes the state and step plumbing."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def predict_action_chunk(self, batch):
        self.seen.append(batch)
        assert batch["images"].dtype == torch.uint8 and batch["images"].ndim == 5
        steps = torch.arange(1, 17, dtype=torch.float32) / 16
        return batch["state"][:, 2, None, None] * steps[None, :, None] * torch.ones(1, 1, 12)


def _obs(state2=1.0, size=32, batch=None):
    img = np.zeros((size, size, 3), np.uint8)
    state = np.zeros(16, np.float32)
    state[2] = state2
    obs = {f"observation.images.{c}": img for c in ("left", "right", "wrist")}
    obs.update({STATE_KEY: state, "task": "press the stop button on the microwave"})
    if batch:
        obs = {k: [v] * batch if isinstance(v, str) else np.stack([v] * batch) for k, v in obs.items()}
    return obs


def _policy(**kw):
    return VLAPolicy(EchoModel(), NORMALIZER, spec=ObservationSpec(image_size=32), **kw)


def test_chunk_is_normalized_in_and_unnormalized_out():
    policy = _policy()
    assert isinstance(policy, ChunkPolicy)
    chunk = policy.predict_action_chunk(_obs(state2=1.0))  # state 1.0 in [-2, 2] -> 0.5 normalized
    assert chunk.shape == (16, 12) and chunk.dtype == np.float32
    seen = policy.model.seen[-1]
    assert seen["images"].shape == (1, 3, 32, 32, 3) and seen["embodiment"] == "robocasa_panda_omron"
    assert seen["state"][0, 2].item() == pytest.approx(0.5)
    # min_max action dims: normalized 0.5 * (t+1)/16 maps back to value * 0.5 (range [-0.5, 0.5]); gripper is binary
    assert chunk[15, 0] == pytest.approx(0.25) and chunk[0, 0] == pytest.approx(0.25 / 16)
    assert chunk[0, 6] == 1.0


def test_the_eef_quaternion_and_its_negation_are_one_input():
    policy = _policy()
    obs = _obs()
    obs[STATE_KEY][10:14] = (-0.91, 0.01, -0.41, 0.002)  # a gripper pointing down, in the sign w >= 0 picked
    negate_quat = np.r_[np.ones(10), -np.ones(4), np.ones(2)].astype(np.float32)
    flipped = dict(obs, **{STATE_KEY: obs[STATE_KEY] * negate_quat})
    policy.predict_action_chunk(obs)
    policy.predict_action_chunk(flipped)
    first, second = (seen["state"] for seen in policy.model.seen[-2:])
    assert torch.equal(first, second) and first[0, 10].item() == pytest.approx(0.91)


def test_batched_obs_give_batched_chunks():
    chunks = _policy().predict_action_chunk(_obs(state2=-1.0, batch=3))
    assert chunks.shape == (3, 16, 12) and chunks[:, 15, 0] == pytest.approx([-0.25] * 3)


def test_select_action_executes_n_of_each_chunk():
    policy = _policy(execution=ExecutionConfig(execute_steps=4))
    actions = [policy.select_action(_obs()) for _ in range(6)]
    assert len(policy.model.seen) == 2  # steps 0 and 4
    assert actions[3][0] == pytest.approx(0.25 * 4 / 16) and actions[4][0] == pytest.approx(0.25 / 16)
    policy.reset()
    policy.select_action(_obs())
    assert len(policy.model.seen) == 3


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda o: o.pop("observation.images.wrist"), "observation lacks observation.images.wrist"),
        (lambda o: o.__setitem__("observation.images.left", np.zeros((32, 32, 3), np.float32)),
         "observation.images.left: expected uint8 HxWx3 image; got float32"),
        (lambda o: o.__setitem__("observation.images.left", np.zeros((32, 32), np.uint8)), "expected uint8 HxWx3"),
        (lambda o: o.__setitem__("observation.images.right", np.zeros((16, 16, 3), np.uint8)), "differs from the other"),
        (lambda o: o[STATE_KEY].__setitem__(3, np.nan), "observation.state contains NaN"),
        (lambda o: o.__setitem__(STATE_KEY, np.zeros(9, np.float32)), r"expected shape \(16,\)"),
        (lambda o: o.__setitem__("task", 3), "task: expected the instruction string"),
    ],
)
def test_bad_observations_are_one_line_errors(change, message):
    obs = _obs()
    change(obs)
    with pytest.raises(ValueError, match=message) as info:
        _policy().predict_action_chunk(obs)
    assert "\n" not in str(info.value)


def test_checkpoint_for_another_robot_cameras_or_image_size_is_refused_in_one_line():
    policy = _policy(source="runs/x/checkpoint-000010")
    env = ObservationSpec(image_size=32)
    policy.check_compatible(env)
    for other, message in [
        (env.replace(embodiment="franka_panda"), "is for embodiment 'robocasa_panda_omron'; the env is 'franka_panda'"),
        (env.replace(cameras=("left", "wrist")), "needs cameras left, right, wrist; the env has left, wrist"),
        (env.replace(image_size=64), "^checkpoint runs/x/checkpoint-000010 was trained on 32px images; the env "
                                     "renders 64px$"),
    ]:
        with pytest.raises(ValueError, match=message) as info:
            policy.check_compatible(other)
        assert "\n" not in str(info.value)


def test_eval_image_transform_is_applied_before_the_model():
    transform = ImageTransform(ImageAugConfig(crop_scale=0.5, resize=24), train=False)
    policy = _policy(image_transform=transform)
    obs = _obs(size=32)
    obs["observation.images.left"] = np.zeros((32, 32, 3), np.uint8)
    obs["observation.images.left"][8:24, 8:24] = 255  # the centre half survives the crop, the border does not
    policy.predict_action_chunk(obs)
    images = policy.model.seen[-1]["images"]
    assert images.shape == (1, 3, 24, 24, 3) and images[0, 0].min() == 255 and images[0, 1].max() == 0


def test_controls_blank_the_cameras_or_hold_the_state():
    obs = _obs(state2=1.0)
    obs = {k: (np.full_like(v, 200) if k.startswith("observation.images") else v) for k, v in obs.items()}
    blind = _policy(ablate="cameras")
    blind.predict_action_chunk(obs)
    assert blind.model.seen[-1]["images"].max() == 0 and blind.model.seen[-1]["state"][0, 2] == pytest.approx(0.5)
    stateless = _policy(ablate="state")
    stateless.predict_action_chunk(obs)
    assert stateless.model.seen[-1]["images"].min() == 200 and stateless.model.seen[-1]["state"].abs().max() == 0
    with pytest.raises(ValueError, match="unknown ablation 'nose'"):
        _policy(ablate="nose")


def test_an_episodes_actions_depend_on_its_seeds_not_on_its_batch_mates():
    torch.manual_seed(0)
    policy = VLAPolicy(VLA(get_preset("tiny")).eval(), NORMALIZER, spec=ObservationSpec(image_size=64), seed=3)
    rng = np.random.default_rng(0)
    episodes = []
    for state2 in (0.5, -1.0, 1.5):
        obs = _obs(state2=state2, size=64)
        obs.update({f"observation.images.{c}": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
                    for c in ("left", "right", "wrist")})
        episodes.append(obs)
    batched = {k: [o[k] for o in episodes] if k == "task" else np.stack([o[k] for o in episodes]) for k in episodes[0]}

    policy.reset(seed=11)  # episode seed 11 alone, in slot 0
    alone = [policy.predict_action_chunk(episodes[2], slots=[0]) for _ in range(2)]
    policy.predict_action_chunk(batched, slots=[0, 1, 2])  # other episodes advance the streams of all slots
    for slot, seed in enumerate((12, 13, 11)):  # now seed 11 runs in slot 2, beside two other episodes
        policy.reset(seed=seed, slot=slot)
    in_batch = [policy.predict_action_chunk(batched, slots=[0, 1, 2])[2] for _ in range(2)]
    # The same noise; only float rounding of batched kernels differs (1e-7), where another stream differs by ~1.
    np.testing.assert_allclose(alone[0], in_batch[0], rtol=0, atol=1e-5)
    np.testing.assert_allclose(alone[1], in_batch[1], rtol=0, atol=1e-5)
    assert not np.array_equal(alone[0], alone[1])  # the stream runs on within an episode

    policy.reset(seed=12)
    assert not np.array_equal(policy.predict_action_chunk(episodes[2], slots=[0]), alone[0])
    other_policy_seed = VLAPolicy(policy.model, NORMALIZER, spec=policy.spec, seed=4)
    other_policy_seed.reset(seed=11)
    assert not np.array_equal(other_policy_seed.predict_action_chunk(episodes[2], slots=[0]), alone[0])


def test_wrong_slot_count_or_noise_shape_is_a_one_line_error():
    model = VLA(get_preset("tiny")).eval()
    policy = VLAPolicy(model, NORMALIZER, spec=ObservationSpec(image_size=64))
    with pytest.raises(ValueError, match=r"^3 slots for a batch of 2 observations; give one slot per row$"):
        policy.predict_action_chunk(_obs(size=64, batch=2), slots=[0, 1, 2])
    batch = {"images": torch.zeros(1, 3, 64, 64, 3, dtype=torch.uint8), "state": torch.zeros(1, 16)}
    with pytest.raises(ValueError, match=r"^noise must be \(1, \d+, \d+\) \(batch, horizon, max_action_dim\); got "):
        model.predict_action_chunk({**batch, "instruction": ["x"], "embodiment": "robocasa_panda_omron"},
                                   noise=torch.zeros(1, 2, 3))

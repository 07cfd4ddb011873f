"""The feature probe (rung 4): the ridge reads a linear signal and ignores noise, the attention readout reads what a
linear map cannot, frames are picked before the target moves, episodes never straddle splits, a recorded episode's
target is the simulator's, and a backbone's image tokens come out one row per frame."""

import numpy as np
import pytest

from vla.backbone import load_backbone
from vla.config import BackboneConfig
from vla.feature_probe import (AttentionReadoutConfig, ProbeConfig, frame_mask, parse_frames, pixel_features,
                               pointing_features, probe, record_episode, select_frames, split_episodes, token_features)


def _episodes(rng, signal: bool, n=20, frames=15, dims=40):
    weights = rng.normal(size=(dims, 3))
    features, targets = [], []
    for _ in range(n):
        x = rng.normal(size=(frames, dims))
        target = x @ weights if signal else rng.normal(size=(frames, 3)) * 5.0
        features.append(x)
        targets.append(target)
    return features, targets


def test_probe_reads_a_linear_signal_and_not_noise():
    rng = np.random.default_rng(0)
    readable = probe(*_episodes(rng, signal=True))
    unreadable = probe(*_episodes(rng, signal=False))
    assert list(readable) == list(unreadable) == [2, 3, 6, 12]  # scenes fit: an eighth .. all of 12 fit episodes
    assert readable[12]["mean_cm"] < 0.5, readable
    assert readable[2]["mean_cm"] > readable[12]["mean_cm"]  # 30 frames of 2 scenes pin down 40 weights less well
    for row in unreadable.values():  # |N(0, 25 I_3)| has mean ~8; no probe can beat guessing the mean by much
        assert row["mean_cm"] > 5.0, unreadable
    assert readable[12]["episodes_scored"] == 4 and readable[12]["frames_scored"] == 60


def _pointer_episodes(rng, n=40, frames=10, tokens=8):
    """Each frame: one token, at a random slot, is flagged and carries the target in its other channels; every other
    token carries noise of the same size there. The target is the product of flag and value: no linear map reads it."""
    features, targets = [], []
    for _ in range(n):
        x = np.concatenate([np.zeros((frames, tokens, 1)), rng.normal(scale=5.0, size=(frames, tokens, 3))], axis=2)
        lit = rng.integers(tokens, size=frames)
        x[np.arange(frames), lit, 0] = 1.0
        features.append(x)
        targets.append(x[np.arange(frames), lit, 1:])
    return features, targets


def test_attention_readout_reads_a_pointer_the_ridge_cannot():
    features, targets = _pointer_episodes(np.random.default_rng(0))
    ridge = probe(features, targets)
    attention = probe(features, targets, readout="attention",
                      attention=AttentionReadoutConfig(max_epochs=40, patience=10))  # short: it learns this in ~20
    assert list(attention) == list(ridge) == [3, 6, 12, 24]
    assert ridge[24]["mean_cm"] > 6.0, ridge  # |N(0, 25 I_3)| has mean ~8: the ridge barely beats the mean
    assert attention[24]["mean_cm"] < 0.5 * ridge[24]["mean_cm"], (attention, ridge)
    assert attention[24]["chosen"] >= 1  # the epoch kept, chosen on the choose episodes
    with pytest.raises(ValueError, match="features must be"):
        probe([f.reshape(len(f), -1) for f in features], targets, readout="attention")
    with pytest.raises(ValueError, match="readout must be"):
        probe(features, targets, readout="mlp")


def test_frame_mask_keeps_the_frames_before_the_target_moves():
    still_then_lifted = np.array([[0, 0, 0], [0.2, 0, 0], [0.5, 0, 0.3], [0, 0, 3.0], [0, 0, 0.1]], np.float32)
    assert frame_mask(still_then_lifted, "before-move").tolist() == [True, True, True, False, False]  # put back: moved
    assert frame_mask(still_then_lifted, "all").all()
    assert frame_mask(still_then_lifted, "first:2").tolist() == [True, True, False, False, False]
    for bad in ("first:0", "first:", "before", "first:x"):
        with pytest.raises(ValueError, match="frames must be"):
            frame_mask(still_then_lifted, bad)
    for bad in ("first:0", "all ", "first:-1"):
        with pytest.raises(ValueError, match="frames must be"):
            parse_frames(bad)
    assert parse_frames("first:7") == 7 and parse_frames("before-move") == "before-move"


def test_select_frames_cuts_every_per_frame_array_alike_and_the_probe_reads_only_those():
    still_then_lifted = np.array([[0, 0, 0], [0.2, 0, 0], [0.5, 0, 0.3], [0, 0, 3.0], [0, 0, 0.1]], np.float32)
    episode = {"images": np.arange(5 * 3 * 2 * 2 * 3, dtype=np.uint8).reshape(5, 3, 2, 2, 3),
               "state": np.arange(5 * 16, dtype=np.float32).reshape(5, 16), "target_cm": still_then_lifted,
               "instruction": "pick the object"}
    cut = select_frames(episode, "before-move")
    assert [len(cut[key]) for key in ("images", "state", "target_cm")] == [3, 3, 3]
    assert (cut["images"] == episode["images"][:3]).all() and (cut["state"] == episode["state"][:3]).all()
    assert cut["instruction"] == episode["instruction"]
    assert len(select_frames(episode, "first:1")["state"]) == 1 and len(select_frames(episode, "all")["state"]) == 5
    episodes = [select_frames(episode, "before-move")] * 5
    assert probe([e["state"] for e in episodes], [e["target_cm"] for e in episodes])[3]["frames_scored"] == 3


def test_split_is_by_whole_episode_and_disjoint():
    fit, choose, score = split_episodes(40)
    assert (len(fit), len(choose), len(score)) == (24, 8, 8)
    assert not set(fit) & set(choose) and not set(choose) & set(score) and not set(fit) & set(score)
    assert len(split_episodes(5)[2]) >= 1


def test_config_refuses_too_few_episodes():
    with pytest.raises(ValueError, match="episodes must be >= 5"):
        ProbeConfig(episodes=3)


def test_recorded_episode_has_the_button_fixed_in_the_base_frame_and_one_row_per_frame():
    episode = record_episode("CoffeePressButton", seed=2_000_000, render_size=64, frame_stride=30)
    frames = len(episode["images"])
    assert frames >= 3 and episode["images"].shape[1:] == (3, 64, 64, 3)
    assert episode["state"].shape[0] == episode["target_cm"].shape[0] == frames
    # The button does not move while the arm does: its base-frame position is the same in every kept frame.
    assert np.ptp(episode["target_cm"], axis=0).max() < 0.5
    assert np.ptp(episode["state"], axis=0).max() > 0
    backbone = load_backbone(BackboneConfig(image_size=64, select_layer=2))
    features = token_features(backbone, episode["images"], episode["instruction"], batch_size=2)
    assert features.shape == (frames, 3 * 4 * 128)  # 3 views x 4 tokens at 64 px x width 128
    # The text tokens come after the views, so they read the instruction: a different one changes them, while the
    # image tokens (the causal LLM reads them first) stay the same.
    text = token_features(backbone, episode["images"], episode["instruction"], tokens="text")
    assert text.shape == (frames, 2 * 128)  # mean-pooled text tokens, then the last token
    other = token_features(backbone, episode["images"], "open the microwave", tokens="text")
    assert np.abs(text - other).max() > 1e-3
    assert np.allclose(token_features(backbone, episode["images"], "open the microwave"), features, atol=1e-5)
    with pytest.raises(ValueError, match="tokens must be 'image' or 'text'"):
        token_features(backbone, episode["images"], episode["instruction"], tokens="all")
    assert pixel_features(episode["images"]).shape == (frames, 3 * 16 * 16 * 3)


def test_pointing_features_are_the_grounded_backbones_own_answers_per_view():
    from checkpoints.backbones import resolve_backbone
    from vla.vqa.sft import load_vlm

    episode = record_episode("CoffeePressButton", seed=2_000_001, render_size=128, frame_stride=40)
    vlm = load_vlm(resolve_backbone("tiny-grounded").source, 128)
    points = pointing_features(vlm, episode["images"], episode["instruction"], instruction_first=False, size=128)
    assert points.shape == (len(episode["images"]), 3 * 3)  # (u, v, visible) per view
    per_view = points.reshape(-1, 3, 3)
    assert set(np.unique(per_view[..., 2])) <= {0.0, 1.0} and per_view[..., 2].sum() > 0  # it answers with points
    assert per_view[..., :2].min() >= 0 and per_view[..., :2].max() < 1
    hidden = per_view[..., 2] == 0
    assert np.all(per_view[hidden][:, :2] == 0.5)

"""The feature probe (rung 4): the ridge reads a linear signal and ignores noise, episodes never straddle splits, a
recorded episode's target is the simulator's, and a backbone's image tokens come out one row per frame."""

import numpy as np
import pytest

from vla.backbone import load_backbone
from vla.config import BackboneConfig
from vla.feature_probe import (ProbeConfig, pixel_features, pointing_features, probe, record_episode, split_episodes,
                               token_features)


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

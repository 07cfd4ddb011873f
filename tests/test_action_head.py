"""The flow-matching DiT head: shapes, masking, N1.5 time sampling, Euler integration, and learning a bimodal toy."""

import dataclasses

import pytest
import torch

from vla.action_head import FlowMatchingActionHead
from vla.config import ActionHeadConfig
from vla.flow_matching import euler_sample, masked_mse, sample_time, time_bucket
from vla.presets import get_preset

CFG = get_preset("tiny").head


def make_inputs(batch=3, seq=10, seed=0, cfg=CFG):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, seq, cfg.backbone_dim, generator=g)
    mask = torch.ones(batch, seq, dtype=torch.bool)
    mask[0, seq - 3 :] = False
    state = torch.randn(batch, cfg.max_state_dim, generator=g)
    action = torch.randn(batch, cfg.action_horizon, cfg.max_action_dim, generator=g)
    category = torch.tensor([0, 1, 0][:batch])
    return features, mask, state, action, category


@pytest.fixture(scope="module")
def head():
    torch.manual_seed(0)
    return FlowMatchingActionHead(CFG).eval()


def test_sample_shape_and_loss_is_scalar(head):
    features, mask, state, action, category = make_inputs()
    chunk = head.sample(features, mask, state, category)
    assert chunk.shape == (3, CFG.action_horizon, CFG.max_action_dim) and torch.isfinite(chunk).all()
    loss = head.compute_loss(features, mask, state, action, torch.ones_like(action, dtype=torch.bool), category)
    assert loss.ndim == 0 and loss.item() > 0
    loss.backward()
    assert head.dit.blocks[0].attn.to_k.weight.grad is not None  # gradients reach the cross-attention


def test_padded_vl_tokens_do_not_change_the_velocity(head):
    features, mask, state, action, category = make_inputs()
    bucket = torch.tensor([0, 500, 999])
    junk = torch.randn(3, 5, CFG.backbone_dim) * 100
    padded = torch.cat([features, junk], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(3, 5, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        s = head.encode_state(state, category)
        ref = head.velocity(head.adapt(features, mask), mask, s, action, bucket, category)
        got = head.velocity(head.adapt(padded, padded_mask), padded_mask, s, action, bucket, category)
        unmasked = head.velocity(head.adapt(padded, None), None, s, action, bucket, category)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(unmasked, ref, atol=1e-3)  # the mask is what makes the difference


def test_embodiment_selects_its_own_encoders_and_decoder(head):
    features, mask, state, action, _ = make_inputs(batch=2)
    bucket = torch.tensor([100, 100])
    with torch.no_grad():
        vl = head.adapt(features, mask)
        outs = [
            head.velocity(vl, mask, head.encode_state(state, c), action, bucket, c)
            for c in (torch.tensor([0, 0]), torch.tensor([1, 1]))
        ]
    assert not torch.allclose(outs[0], outs[1])


def test_loss_ignores_padded_action_dims_and_steps(head, monkeypatch):
    features, mask, state, action, category = make_inputs()
    action_mask = torch.zeros_like(action, dtype=torch.bool)
    action_mask[:, :12, :7] = True  # 7 real dims, last 4 steps are padding
    changed = action.clone()
    changed[:, :, 7:] = 1e3
    changed[:, 12:] = -1e3
    # Padded entries still enter x_t (as in N1.5); what must not happen is that their targets count. Fix the
    # prediction so the loss is a function of the targets only.
    monkeypatch.setattr(head, "velocity", lambda *args: torch.zeros_like(action))

    def loss(a, m):
        return head.compute_loss(features, mask, state, a, m, category, generator=torch.Generator().manual_seed(1))

    assert loss(changed, action_mask).item() == pytest.approx(loss(action, action_mask).item(), rel=1e-6)
    assert loss(changed, torch.ones_like(action_mask)).item() > 1e3 * loss(action, action_mask).item()


def test_masked_mse_counts_only_real_entries():
    pred, target = torch.zeros(2, 3), torch.tensor([[1.0, 2.0, 100.0], [3.0, 100.0, 100.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert masked_mse(pred, target, mask).item() == pytest.approx((1 + 4 + 9) / 3)


def test_training_times_follow_n15_beta_schedule():
    t = sample_time(200_000, 1.5, 1.0, 0.999, generator=torch.Generator().manual_seed(0))
    assert t.min() > -0.001 - 1e-6 and t.max() <= 1.0
    # u ~ Beta(1.5, 1) has mean 0.6, so t = (0.999 - u) / 0.999 has mean ~0.3994, skewed to the noisy end
    assert t.mean().item() == pytest.approx((0.999 - 0.6) / 0.999, abs=3e-3)
    assert (t < 0.5).float().mean() > 0.6
    buckets = time_bucket(t, 1000)
    assert buckets.min() == 0 and buckets.max() <= 999
    assert time_bucket(torch.tensor([0.0, 0.25, 0.7509, 0.9999]), 1000).tolist() == [0, 250, 750, 999]


def test_euler_sampler_visits_n15_buckets_and_integrates_exactly():
    seen = []

    def velocity(x, bucket):
        seen.append(bucket[0].item())
        return torch.full_like(x, 2.0)

    x = euler_sample(velocity, torch.zeros(1, 4, 2), steps=4, num_buckets=1000)
    assert seen == [0, 250, 500, 750]
    torch.testing.assert_close(x, torch.full((1, 4, 2), 2.0))


@pytest.fixture
def one_thread():
    # Tiny ops gain nothing from threads, and on a shared CPU two threads per process are several times slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_head_learns_a_bimodal_action_distribution(one_thread):
    """Regression to the mean would put samples at 0; flow matching must land on the two modes +-1."""
    cfg = dataclasses.replace(CFG, action_horizon=4, num_future_tokens=1, backbone_dim=32, vl_heads=2, vl_head_dim=16)
    torch.manual_seed(0)
    head = FlowMatchingActionHead(cfg)
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3)
    batch = 128
    mask = torch.zeros(batch, cfg.action_horizon, cfg.max_action_dim, dtype=torch.bool)
    mask[..., 0] = True  # one real action dim
    features = torch.randn(batch, 2, cfg.backbone_dim)  # uninformative conditioning: the mode is pure chance
    state = torch.zeros(batch, cfg.max_state_dim)
    for _ in range(150):
        sign = torch.randint(0, 2, (batch, 1, 1)).float() * 2 - 1
        loss = head.compute_loss(features, None, state, sign * mask, mask, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    samples = head.eval().sample(features, None, state, 0)[..., 0]  # default 4 Euler steps
    near_mode = ((samples - 1).abs() < 0.3) | ((samples + 1).abs() < 0.3)
    assert near_mode.float().mean() > 0.75, f"only {near_mode.float().mean():.2f} of samples near +-1"
    positive = (samples.mean(dim=1) > 0).float().mean()
    assert 0.2 < positive < 0.8, f"mode collapse: {positive:.2f} of chunks positive"


def test_head_config_rejects_inconsistent_widths():
    with pytest.raises(ValueError, match="must equal input_embedding_dim"):
        ActionHeadConfig(num_heads=8, head_dim=48)
    with pytest.raises(ValueError, match="must equal backbone_dim"):
        ActionHeadConfig(backbone_dim=128)


def test_groot_n15_head_size_matches_the_reference():
    """REFERENCE.md section 3: head ~1.07 B, DiT ~550 M, VL self-attention ~201 M (built on meta: no memory)."""
    with torch.device("meta"):
        head = FlowMatchingActionHead(get_preset("groot-n1.5").head)

    def count(module):
        return sum(p.numel() for p in module.parameters())

    assert count(head) == pytest.approx(1.07e9, rel=0.02)
    assert count(head.dit) == pytest.approx(550e6, rel=0.02)
    assert count(head.vl_self_attention) == pytest.approx(201e6, rel=0.01)


def test_state_dropout_masks_some_samples_state_only_while_training():
    cfg = dataclasses.replace(CFG, state_dropout=0.5)
    torch.manual_seed(0)
    head = FlowMatchingActionHead(cfg)
    with torch.no_grad():
        head.state_mask_token.fill_(7.0)
    state = torch.randn(64, cfg.max_state_dim, generator=torch.Generator().manual_seed(0))
    token = head.encode_state(state, torch.zeros(64, dtype=torch.long))
    dropped = head.train().drop_state(token, torch.Generator().manual_seed(0))
    masked = (dropped == 7.0).all(dim=-1).squeeze(1)
    assert 16 <= int(masked.sum()) <= 48  # about half of 64
    assert torch.equal(dropped[~masked], token[~masked])
    assert torch.equal(head.eval().drop_state(token), token)  # evaluation always sees the state
    # Off (the default), no mask token exists, so checkpoints trained before it load unchanged.
    assert not hasattr(FlowMatchingActionHead(CFG), "state_mask_token")
    with pytest.raises(ValueError, match=r"state_dropout must be in \[0, 1\), got 1.0"):
        dataclasses.replace(CFG, state_dropout=1.0)

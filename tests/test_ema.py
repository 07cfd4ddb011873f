"""The weight average: its decay schedule and its update rule."""

import pytest
import torch
from torch import nn

from vla.train.ema import EmaConfig, WeightAverage, ema_decay


def test_the_decay_warms_up_from_zero_and_is_capped():
    config = EmaConfig(enabled=True, power=0.75, max_decay=0.999)
    assert ema_decay(0, config) == 0.0
    assert ema_decay(1, config) == pytest.approx(1 - 2 ** -0.75)
    assert ema_decay(459, config) == pytest.approx(0.99, abs=2e-4)  # 1 - 460 ** -0.75
    assert ema_decay(10**6, config) == 0.999
    decays = [ema_decay(s, config) for s in range(0, 20000, 97)]
    assert decays == sorted(decays)


def test_an_update_moves_the_average_by_one_minus_decay_and_skips_frozen_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    config = EmaConfig(enabled=True)
    average = WeightAverage(model, config)
    assert average.names == ["1.weight", "1.bias"]
    before = average.state_dict()
    with torch.no_grad():
        model[1].weight.add_(1.0)
    average.update(3)
    d = ema_decay(3, config)
    after = average.state_dict()
    assert torch.allclose(after["1.weight"], d * before["1.weight"] + (1 - d) * model[1].weight)
    assert torch.equal(after["1.bias"], before["1.bias"])  # unchanged weights stay where they were

    other = WeightAverage(model, config)
    other.load_state_dict(after)
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), after.values()))
    with pytest.raises(RuntimeError, match="lacks 1 trained weights, e.g. 1.bias"):
        other.load_state_dict({"1.weight": after["1.weight"]})


@pytest.mark.parametrize("field, value, message", [("power", 0.0, "--ema.power must be > 0"),
                                                   ("max_decay", 1.0, "--ema.max-decay must be in")])
def test_a_bad_setting_is_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        EmaConfig(**{field: value})

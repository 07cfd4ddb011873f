"""Presets: one table, each name declaring a model and the recipe that trains it; the values are pinned."""

import json
from pathlib import Path

import pytest

from vla.presets import PRESETS, get_preset, get_train_preset

PINNED = Path(__file__).parent / "preset_values.json"


def test_a_preset_is_a_model_and_its_training_recipe_under_one_name():
    assert list(PRESETS) == ["tiny", "small", "groot-n1.5"]
    for name, preset in PRESETS.items():
        assert get_preset(name) is preset.model and get_train_preset(name) is preset.train
        assert preset.train.preset == name


def test_preset_values_are_the_pinned_ones():
    # Pinned when the model and training tables were merged into one; update the file when a preset changes on purpose.
    now = json.loads(json.dumps({name: preset.to_dict() for name, preset in PRESETS.items()}))
    assert now == json.loads(PINNED.read_text())


@pytest.mark.parametrize("lookup", [get_preset, get_train_preset])
def test_an_unknown_name_is_one_line_with_a_suggestion(lookup):
    with pytest.raises(ValueError, match=r"^unknown preset 'smal' \(did you mean 'small'\?\); valid: tiny, small, "
                                         r"groot-n1.5$"):
        lookup("smal")

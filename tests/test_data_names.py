"""Feature names are part of the contract: state/action columns are read by name (ours in any order, or GR00T's
RoboCasa layout), unknown names are refused in one line."""

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from contract.embodiments import GR00T_ROBOCASA, ROBOCASA_PANDA_OMRON
from vla.data.dataset import open_dataset, validate_dataset
from vla.data.names import dataset_column_orders, match_names, reorder_note
from vla.data.normalize import Normalizer
from vla.data.synthetic import synthetic_episode, write_synthetic_dataset

ROBOT = ROBOCASA_PANDA_OMRON
OURS = ROBOT.dim_names("action")
# GR00T's RoboCasa action order (REFERENCE.md section 2), as their names.
GR00T_ACTION = ["base_motion_forward", "base_motion_side", "base_motion_yaw", "base_motion_torso", "control_mode",
                "end_effector_position_dx", "end_effector_position_dy", "end_effector_position_dz",
                "end_effector_rotation_drx", "end_effector_rotation_dry", "end_effector_rotation_drz",
                "gripper_close"]


def store_action_as(root, names):
    """Rewrite a dataset's action column in the order `names` gives (each one of our names or a GR00T name)."""
    to_ours = {**{n: n for n in OURS}, **GR00T_ROBOCASA.action}
    columns = [OURS.index(to_ours[n]) for n in names]
    for path in sorted((root / "data").glob("*/*.parquet")):
        table = pq.read_table(path)
        action = np.stack(table.column("action").to_numpy(zero_copy_only=False))[:, columns]
        index = table.column_names.index("action")
        table = table.set_column(index, table.schema.field("action"),
                                 pa.array(list(action.astype(np.float32)), type=table.schema.field("action").type))
        pq.write_table(table, path)
    info = json.loads((root / "meta" / "info.json").read_text())
    info["features"]["action"]["names"] = list(names)
    (root / "meta" / "info.json").write_text(json.dumps(info))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("names") / "ours"
    return write_synthetic_dataset(root, num_episodes=2, length=6, image_size=16)


def copy_of(source, tmp_path):
    return shutil.copytree(source, tmp_path / "copy")


def test_gr00t_robocasa_order_is_read_by_name(source, tmp_path, capsys):
    root = copy_of(source, tmp_path)
    store_action_as(root, GR00T_ACTION)
    expected = synthetic_episode(6, seed=0, image_size=16).action
    ds = open_dataset(root)
    np.testing.assert_array_equal(ds[3]["action"].numpy(), expected[3])  # back in our slots, not GR00T's
    assert ds[3]["action"][6] == expected[3, 6]  # the gripper is the gripper
    orders = dataset_column_orders(root, ROBOT.name)
    assert orders["action"].layout == "gr00t-robocasa" and orders["observation.state"].index is None
    # Statistics follow the names too (the dataset's own norm_stats.json was computed by position: not trusted).
    stats = Normalizer.from_dataset(root).stats["action"]
    assert stats == Normalizer.from_dataset(source).stats["action"]
    note = reorder_note(orders, ROBOT.name, str(root))
    assert "\n" not in note and "gr00t-robocasa" in note and "reordered by name" in note


def test_our_names_in_another_order_are_reordered(source, tmp_path):
    root = copy_of(source, tmp_path)
    shuffled = OURS[::-1]
    store_action_as(root, shuffled)
    expected = synthetic_episode(6, seed=0, image_size=16).action
    np.testing.assert_array_equal(open_dataset(root)[5]["action"].numpy(), expected[5])


def test_unknown_or_missing_names_are_refused_in_one_line(source, tmp_path):
    root = copy_of(source, tmp_path)
    store_action_as(root, OURS)
    info = json.loads((root / "meta" / "info.json").read_text())
    info["features"]["action"]["names"] = OURS[:11] + ["wrist_twist"]
    (root / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(ValueError) as err:
        validate_dataset(root)
    line = str(err.value)
    assert "\n" not in line and "unknown [wrist_twist]" in line and "expected [eef_delta_pos.0" in line
    assert "found [eef_delta_pos.0" in line and "info.json" in line
    with pytest.raises(ValueError, match="no per-dimension feature names"):
        match_names("action", None, ROBOT)
    with pytest.raises(ValueError, match="missing"):
        match_names("action", OURS[:11], ROBOT)

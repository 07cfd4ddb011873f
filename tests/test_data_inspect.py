"""inspect_dataset.py on a synthetic dataset: summary text, contact sheet and video."""

import imageio.v2 as imageio

from scripts.inspect_dataset import main
from vla.data.synthetic import write_synthetic_dataset


def test_inspect_writes_sheet_and_video(tmp_path, capsys):
    root = write_synthetic_dataset(tmp_path / "demos", num_episodes=2, length=12, image_size=32)
    assert main([str(root), "--out", str(tmp_path / "viz"), "--episode", "1"]) == 0
    text = capsys.readouterr().out
    assert "2 episodes, 25 frames" in text and "eef_delta_pos.0" in text and "TurnOffMicrowave (2)" in text
    sheet = imageio.imread(tmp_path / "viz" / "demos_contact_sheet.png")
    assert sheet.shape == (3 * 32, 6 * 32, 3)
    frames = imageio.mimread(tmp_path / "viz" / "demos_episode1.mp4")
    assert len(frames) == 13
    assert main([str(root), "--episode", "7"]) == 2

"""Both converters on tiny files written in the upstream schemas."""

import json

import av
import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vla.data.convert_groot import convert_groot_lerobot
from vla.data.convert_robocasa import CAMERA_OBS, STATE_OBS, convert_robocasa_hdf5
from vla.data.dataset import open_dataset
from test_data_names import GR00T_ACTION, store_action_as
from vla.data.schema import read_sidecar
from vla.data.synthetic import synthetic_episode, write_synthetic_dataset


def write_robocasa_hdf5(path, lengths=(5, 7), side=16):
    """A robomimic file as RoboCasa v0.x writes it: data/demo_N/{actions, obs/*}, ep_meta with lang."""
    rng = np.random.default_rng(0)
    demos = []
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "TurnOffMicrowave", "type": 1})
        for i, n in enumerate(lengths, start=1):
            g = data.create_group(f"demo_{i}")
            g.attrs["model_file"] = "<mujoco/>"
            g.attrs["ep_meta"] = json.dumps({"lang": "press the stop button on the microwave", "layout_id": 1})
            actions = rng.uniform(-1, 1, (n, 12)).astype(np.float64)
            g.create_dataset("actions", data=actions)
            obs = g.create_group("obs")
            for c, key in enumerate(CAMERA_OBS):
                obs.create_dataset(key, data=np.full((n, side, side, 3), 40 * (c + 1), np.uint8))
            state = []
            for key, width in STATE_OBS:
                value = rng.normal(size=(n, width))
                obs.create_dataset(key, data=value)
                state.append(value)
            demos.append((actions, np.concatenate(state, 1)))
    return demos


def test_robocasa_hdf5_converts_and_resumes(tmp_path):
    src = tmp_path / "demo.hdf5"
    demos = write_robocasa_hdf5(src)
    out = tmp_path / "out"
    assert convert_robocasa_hdf5(src, out, image_size=32) == 2
    assert convert_robocasa_hdf5(src, out, image_size=32) == 2  # rerun skips converted demos
    ds = open_dataset(out, tasks=["TurnOffMicrowave"])
    assert len(ds) == 12 and ds[0]["task"] == "press the stop button on the microwave"
    np.testing.assert_allclose(ds[5]["action"].numpy(), demos[1][0][0], atol=1e-6)
    np.testing.assert_allclose(ds[5]["observation.state"].numpy(), demos[1][1][0], atol=1e-6)
    assert ds[0]["observation.images.right"].shape == (3, 32, 32)
    assert round(float(ds[0]["observation.images.right"][0, 5, 5]) * 255) == 80
    assert [e["source_demo"] for e in read_sidecar(out)["episodes"].values()] == ["demo_1", "demo_2"]


def test_robocasa_missing_key_is_named(tmp_path):
    src = tmp_path / "bad.hdf5"
    write_robocasa_hdf5(src, lengths=(3,))
    with h5py.File(src, "a") as f:
        del f["data/demo_1/obs/robot0_eye_in_hand_image"]
    with pytest.raises(ValueError, match="missing 'robot0_eye_in_hand_image'"):
        convert_robocasa_hdf5(src, tmp_path / "out", image_size=16)


# GR00T's RoboCasa layout: state and action are concatenations whose order differs from ours.
GROOT_MODALITY = {
    "state": {"base_position": {"start": 0, "end": 3}, "base_rotation": {"start": 3, "end": 7},
              "end_effector_position_relative": {"start": 7, "end": 10},
              "end_effector_rotation_relative": {"start": 10, "end": 14}, "gripper_qpos": {"start": 14, "end": 16}},
    "action": {"base_motion": {"start": 0, "end": 4}, "control_mode": {"start": 4, "end": 5},
               "end_effector_position": {"start": 5, "end": 8}, "end_effector_rotation": {"start": 8, "end": 11},
               "gripper_close": {"start": 11, "end": 12}},
    "video": {"left_view": {"original_key": "observation.images.robot0_agentview_left"},
              "right_view": {"original_key": "observation.images.robot0_agentview_right"},
              "wrist_view": {"original_key": "observation.images.robot0_eye_in_hand"}},
    "annotation": {"human.action.task_description": {}},
}


def write_groot_folder(root, lengths=(6, 4), side=32):
    rng = np.random.default_rng(1)
    (root / "meta").mkdir(parents=True)
    (root / "meta/modality.json").write_text(json.dumps(GROOT_MODALITY))
    (root / "meta/info.json").write_text(json.dumps({
        "codebase_version": "v2.1", "fps": 20, "chunks_size": 1000,
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"}))
    (root / "meta/tasks.jsonl").write_text(
        json.dumps({"task_index": 0, "task": "valid"}) + "\n"
        + json.dumps({"task_index": 1, "task": "pick the apple from the cabinet and place it on the counter"}) + "\n")
    (root / "meta/episodes.jsonl").write_text("".join(
        json.dumps({"episode_index": i, "tasks": ["pick the apple from the cabinet and place it on the counter"],
                    "length": n}) + "\n" for i, n in enumerate(lengths)))
    raws = []
    for i, n in enumerate(lengths):
        state = rng.normal(size=(n, 16)).astype(np.float32)
        action = rng.uniform(-1, 1, (n, 12)).astype(np.float32)
        action[:, 4] = 0.0  # control_mode stored as 0/1
        action[:, 11] = (np.arange(n) >= n // 2).astype(np.float32)  # gripper_close stored as 0/1
        path = root / f"data/chunk-000/episode_{i:06d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({
            "observation.state": list(state), "action": list(action),
            "annotation.human.action.task_description": [1] * n, "task_index": [1] * n,
            "episode_index": [i] * n, "frame_index": list(range(n)), "timestamp": [t / 20 for t in range(n)],
        }), path)
        for c, spec in enumerate(GROOT_MODALITY["video"].values()):
            vpath = root / f"videos/chunk-000/{spec['original_key']}/episode_{i:06d}.mp4"
            vpath.parent.mkdir(parents=True, exist_ok=True)
            with av.open(str(vpath), "w") as container:
                stream = container.add_stream("mpeg4", rate=20)
                stream.width = stream.height = side
                stream.pix_fmt = "yuv420p"
                for _ in range(n):
                    img = np.full((side, side, 3), 60 * (c + 1), np.uint8)
                    for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
        raws.append((state, action))
    return raws


def test_groot_folder_converts_with_reordered_parts(tmp_path):
    src = tmp_path / "single_panda_gripper.PnPCabToCounter"
    raws = write_groot_folder(src)
    out = tmp_path / "out"
    assert convert_groot_lerobot(src, out, image_size=32) == 2
    ds = open_dataset(out, tasks="PnPCabToCounter")
    assert len(ds) == 10
    state, action = raws[0]
    item = ds[4]
    np.testing.assert_allclose(item["observation.state"].numpy(), state[4])  # same order as ours
    a = item["action"].numpy()
    np.testing.assert_allclose(a[0:6], action[4, 5:11])  # eef delta pos + rot
    np.testing.assert_allclose(a[7:11], action[4, 0:4])  # base velocity + torso
    assert a[6] == 1.0 and a[11] == -1.0  # 0/1 gripper and control mode became -1/+1
    assert ds[0]["action"][6] == -1.0
    assert item["task"] == "pick the apple from the cabinet and place it on the counter"
    for c, key in enumerate(("left", "right", "wrist")):
        pixel = float(item[f"observation.images.{key}"].mean()) * 255
        assert abs(pixel - 60 * (c + 1)) < 6, (key, pixel)  # lossy codec, right camera order


def test_groot_missing_modality_key_is_named(tmp_path):
    src = tmp_path / "single_panda_gripper.X"
    write_groot_folder(src, lengths=(3,))
    modality = json.loads((src / "meta/modality.json").read_text())
    del modality["action"]["gripper_close"]
    (src / "meta/modality.json").write_text(json.dumps(modality))
    with pytest.raises(ValueError, match="missing 'gripper_close'"):
        convert_groot_lerobot(src, tmp_path / "out", image_size=32)


def write_groot_v3(root):
    """A LeRobot v3.0 dataset as GR00T's RoboCasa copies hold it: robosuite camera keys, the action in GR00T's order
    under GR00T's names, gripper and control mode stored as 0/1, none of our own meta files."""
    write_synthetic_dataset(root, num_episodes=2, length=6, image_size=16)
    store_action_as(root, GR00T_ACTION)
    cameras = {"observation.images.left": "observation.images.robot0_agentview_left",
               "observation.images.right": "observation.images.robot0_agentview_right",
               "observation.images.wrist": "observation.images.robot0_eye_in_hand"}
    for path in sorted((root / "data").glob("*/*.parquet")):
        frame = pq.read_table(path).to_pandas().rename(columns=cameras)
        binary = [GR00T_ACTION.index("control_mode"), GR00T_ACTION.index("gripper_close")]
        frame["action"] = [np.where(np.isin(np.arange(12), binary), (a > 0).astype(np.float32), a)
                           .astype(np.float32) for a in frame["action"]]
        frame.to_parquet(path)
    info = json.loads((root / "meta/info.json").read_text())
    info["features"] = {cameras.get(k, k): v for k, v in info["features"].items()}
    (root / "meta/info.json").write_text(json.dumps(info))
    (root / "meta/vla.json").unlink()
    (root / "meta/norm_stats.json").unlink()
    return root


def test_groot_lerobot_v3_converts_by_feature_names(tmp_path):
    src = write_groot_v3(tmp_path / "single_panda_gripper.TurnOffMicrowave")
    out = tmp_path / "out"
    assert convert_groot_lerobot(src, out, image_size=16) == 2
    assert convert_groot_lerobot(src, out, image_size=16) == 2  # rerun skips converted episodes
    ds = open_dataset(out, tasks="TurnOffMicrowave")
    original = synthetic_episode(7, seed=1, image_size=16)
    item = ds[6 + 4]  # frame 4 of episode 1
    np.testing.assert_array_equal(item["action"].numpy(), original.action[4])  # our slots, -1/+1 binaries
    np.testing.assert_array_equal(item["observation.state"].numpy(), original.state[4])
    wrist = (item["observation.images.wrist"] * 255).round().byte().permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(wrist, original.images["observation.images.wrist"][4])  # right camera, lossless
    assert item["task"] == original.instruction
    assert [e["source_episode"] for e in read_sidecar(out)["episodes"].values()] == [0, 1]


def test_groot_lerobot_v3_with_unknown_names_is_refused(tmp_path):
    src = write_groot_v3(tmp_path / "single_panda_gripper.X")
    info = json.loads((src / "meta/info.json").read_text())
    info["features"]["action"]["names"][0] = "base_motion_up"
    (src / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"unknown \[base_motion_up\].*expected \[eef_delta_pos.0"):
        convert_groot_lerobot(src, tmp_path / "out", image_size=16)
    assert not (tmp_path / "out").exists()


def as_video_dataset(root, side=16):
    """Turn the image columns of a v3.0 dataset into one MP4 per camera holding every episode, as LeRobot v3.0 does."""
    info = json.loads((root / "meta/info.json").read_text())
    info["video_path"] = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    keys = [k for k, ft in info["features"].items() if ft["dtype"] == "image"]
    for path in sorted((root / "data").glob("*/*.parquet")):
        pq.write_table(pq.read_table(path).drop_columns(keys), path)
    total = info["total_frames"]
    for c, key in enumerate(keys):
        info["features"][key]["dtype"] = "video"
        path = root / f"videos/{key}/chunk-000/file-000.mp4"
        path.parent.mkdir(parents=True)
        with av.open(str(path), "w") as container:
            stream = container.add_stream("mpeg4", rate=20)
            stream.width = stream.height = side
            stream.pix_fmt = "yuv420p"
            for n in range(total):  # flat colours: the camera and the frame are readable after coding
                img = np.full((side, side, 3), 40 * (c + 1) + 3 * n, np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    (root / "meta/info.json").write_text(json.dumps(info))
    start = 0
    for path in sorted((root / "meta/episodes").glob("*/*.parquet")):
        frame = pq.read_table(path).to_pandas()
        length = int(frame.at[0, "length"])
        for key in keys:
            frame[f"videos/{key}/chunk_index"] = 0
            frame[f"videos/{key}/file_index"] = 0
            frame[f"videos/{key}/from_timestamp"] = start / 20
            frame[f"videos/{key}/to_timestamp"] = (start + length) / 20
        frame.to_parquet(path)
        start += length
    return root


def test_groot_lerobot_v3_with_videos_converts(tmp_path):
    src = as_video_dataset(write_groot_v3(tmp_path / "single_panda_gripper.TurnOffMicrowave"))
    out = tmp_path / "out"
    assert convert_groot_lerobot(src, out, image_size=16) == 2
    ds = open_dataset(out)
    item = ds[6 + 2]  # frame 2 of episode 1: frame 8 of each camera's video
    for c, key in enumerate(("left", "right", "wrist")):
        pixel = float(item[f"observation.images.{key}"].mean()) * 255
        assert abs(pixel - (40 * (c + 1) + 3 * 8)) < 4, (key, pixel)

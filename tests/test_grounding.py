"""Simulator grounding questions: camera projection against the renderer, answers against the simulator, format checks."""

import json

import numpy as np
import pytest

import envs
from envs.cameras import camera_pose, line_of_sight
from envs.kitchen_env import CAMERA_MJCF_NAMES
from vla.vqa.format import VQAFormatError, VQASample, check_sample, image_block, read_split, text_block
from vla.vqa.grounding import (GroundingConfig, frame_questions, generate, offset_answer, parse_offset, parse_point,
                               pixel_answer, run_episode, score)

SIZE = 96


@pytest.fixture(scope="module")
def microwave():
    env = envs.make("TurnOffMicrowave", image_size=SIZE, seed=0)
    obs, _ = env.reset(seed=3)
    yield env, obs
    env.close()


def test_projected_stop_button_lands_on_red_pixels(microwave):
    env, obs = microwave
    sim = env.unwrapped.sim
    button = sim.landmarks()["stop button"]
    seen = 0
    for cam in ("left", "right", "wrist"):
        pose = camera_pose(sim.mj_model, sim.mj_data, CAMERA_MJCF_NAMES[cam], SIZE, SIZE)
        uv, depth = pose.project(button.position[None])
        if not (pose.in_frame(uv, depth)[0] and line_of_sight(sim.mj_model, sim.mj_data, pose, button.position,
                                                              button.geoms)):
            continue
        u, v = uv[0].astype(int)
        patch = obs[f"observation.images.{cam}"][max(0, v - 1):v + 2, max(0, u - 1):u + 2].reshape(-1, 3).astype(int)
        red = (patch[:, 0] > 1.5 * patch[:, 1]) & (patch[:, 0] > 1.5 * patch[:, 2]) & (patch[:, 0] > 60)
        assert red.any(), f"{cam}: no red pixel around the projected stop button at {(u, v)}: {patch.tolist()}"
        seen += 1
    assert seen >= 2  # the button is in view of the wrist camera and at least one agent view at the start


def test_points_behind_the_camera_are_out_of_frame(microwave):
    env, _ = microwave
    sim = env.unwrapped.sim
    pose = camera_pose(sim.mj_model, sim.mj_data, CAMERA_MJCF_NAMES["left"], SIZE, SIZE)
    behind = pose.position + 2.0 * pose.rotation[:, 2]  # the camera looks along -z: +z is behind it
    uv, depth = pose.project(behind[None])
    assert depth[0] < 0 and not pose.in_frame(uv, depth)[0]


def test_answer_formats_round_trip():
    assert pixel_answer(np.array([48.0, 24.0]), 96) == "(500, 250)"
    assert parse_point("(500, 250)") == (500, 250) and parse_point("not visible") is None
    assert offset_answer(np.array([0.12, -0.034, 0.05])) == "x 12 y -3 z 5"
    assert parse_offset("x 12 y -3 z 5") == (12, -3, 5) and parse_offset("x 1 y 2") is None


def test_episode_answers_match_the_simulator():
    cfg = GroundingConfig(image_size=SIZE, frame_stride=20, push_prob=0.0)
    result = run_episode("CoffeePressButton", 1_000_003, cfg)
    assert result["frames"], "the expert episode produced no frames"
    frame = result["frames"][0]
    questions = frame_questions(frame, np.random.default_rng(0), extra=2, size=SIZE)
    kinds = [q[0] for q in questions]
    assert kinds[:4] == ["target", "target", "target", "offset"] and len(questions) == 6
    for kind, question, answer, meta in questions:
        if kind == "offset":
            truth = frame["landmarks"][meta["landmark"]]["offset"]
            assert parse_offset(answer) == tuple(int(v) for v in np.round(np.asarray(truth) * 100))
        elif meta["visible"]:
            u, v = parse_point(answer)
            assert abs(u - meta["uv"][0] / SIZE * 1000) <= 1 and abs(v - meta["uv"][1] / SIZE * 1000) <= 1
        else:
            assert answer == "not visible"
    assert "press the button on the coffee machine" in questions[0][1]


def test_generate_writes_the_published_layout_and_resumes(tmp_path):
    cfg = GroundingConfig(out=str(tmp_path / "g"), task="TurnOffMicrowave", episodes=1, eval_episodes=1,
                          image_size=64, frame_stride=25, workers=1)
    counts = generate(cfg, log=lambda *_: None)
    train = read_split(cfg.out, "train")
    assert counts["train"] == len(train) > 0 and counts["eval"] > 0
    row = json.loads((tmp_path / "g" / "train.jsonl").read_text().splitlines()[0])
    assert set(row) >= {"sample_id", "task", "prompt_blocks", "ground_truth_answer"}
    assert [b["type"] for b in row["prompt_blocks"]] == ["image_url"] * 3 + ["text"]
    assert generate(cfg, log=lambda *_: None) == {"train": 0, "eval": 0}  # nothing left to do
    assert len(read_split(cfg.out, "train")) == len(train)  # and nothing written twice
    with pytest.raises(ValueError, match="other settings"):
        generate(GroundingConfig(out=cfg.out, task="TurnOffMicrowave", episodes=2, workers=1), log=lambda *_: None)


def test_instruction_first_prompts_open_with_the_instruction(tmp_path):
    cfg = GroundingConfig(out=str(tmp_path / "g"), task="TurnOffMicrowave", episodes=1, eval_episodes=0,
                          image_size=64, frame_stride=25, workers=1, instruction_first=True)
    generate(cfg, log=lambda *_: None)
    rows = [json.loads(line) for line in (tmp_path / "g" / "train.jsonl").read_text().splitlines()]
    instruction = rows[0]["prompt_blocks"][0]["text"]
    assert "microwave" in instruction.lower()
    for row in rows:
        assert [b["type"] for b in row["prompt_blocks"]] == ["text"] + ["image_url"] * 3 + ["text"]
        assert row["prompt_blocks"][0]["text"] == instruction
    targets = [row["prompt_blocks"][-1]["text"] for row in rows if row["task"] == "target"]
    assert targets and all(t.startswith("Point to the object to act on in image") for t in targets)


def _sample(tmp_path, answer="(1, 2)", task="point", options=(), image="a.png"):
    (tmp_path / "a.png").write_bytes(b"")
    return VQASample("s1", task, (image_block(image), text_block("where?")), answer, options)


def test_bad_samples_are_refused_with_their_id(tmp_path):
    with pytest.raises(VQAFormatError, match="sample 's1'.*not among its options"):
        check_sample(_sample(tmp_path, answer="red", options=("blue", "green")), root=tmp_path)
    with pytest.raises(VQAFormatError, match="sample 's1'.*image missing.png not found"):
        check_sample(_sample(tmp_path, image="missing.png"), root=tmp_path)
    with pytest.raises(VQAFormatError, match="sample 's1'.*unknown task 'teleport'"):
        check_sample(_sample(tmp_path, task="teleport"), tasks={"point", "offset"}, root=tmp_path)
    (tmp_path / "train.jsonl").write_text('{"sample_id": "s2", "task": "point"}\n')
    with pytest.raises(VQAFormatError, match="train.jsonl:1: sample 's2': missing 'prompt_blocks'"):
        read_split(tmp_path, "train")


def test_score_measures_pointing_and_offsets():
    point = VQASample("p", "target", (text_block("q"),), "(500, 500)")
    assert score(point, "(530, 540)") == {"target_visibility_acc": 1.0, "target_err_pct": 5.0}
    assert score(point, "not visible") == {"target_visibility_acc": 0.0}
    offset = VQASample("o", "offset", (text_block("q"),), "x 3 y 4 z 0")
    assert score(offset, "x 0 y 0 z 0") == {"offset_parsed": 1.0, "offset_err_cm": 5.0}

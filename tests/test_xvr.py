"""XVR questions from the simulator: the rig camera against MuJoCo's renderer, every answer against the geometry
or bookkeeping it came from, splits, resuming, the published-layout loader, scoring, fine-tuning and XVR-Eval."""

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import mujoco
import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from vla.vqa.format import SplitWriter, VQAFormatError, read_split
from vla.xvr.data import parse_task_map, read_xvr
from vla.xvr.draw import dot_radius
from vla.xvr.generate import SPLITS, XVRConfig, generate, run_scene, scene_questions, to_sample, _worker_env
from vla.xvr.questions import (ROBOT_CAMERAS, QuestionConfig, RobotFrame, _angle, _side,
                               cross_scenario_localization, language_localization, pose_from_meta,
                               temporal_verification)
from vla.xvr.rig import focal_from_fovy, look_at, unproject
from vla.xvr.scoring import chance, format_table, normalize_answer, paper_rows, read_predictions, score
from vla.xvr.tasks import COLORS, TASKS

SIZE = 64
ROOT = Path(__file__).resolve().parents[1]
CFG = XVRConfig(samples=48, task="CoffeePressButton", image_size=SIZE, max_steps=40, frame_stride=5, workers=0)


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the script is being executed
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scene():
    """One scene run in this process, and its questions (several per task type)."""
    result = run_scene("CoffeePressButton", CFG.seed, CFG)
    questions = scene_questions(result, result["frames"], dataclasses.replace(CFG, questions_per_task=3))
    return result, questions


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A small generated dataset (3 scenes: one per split), written in this process."""
    cfg = dataclasses.replace(CFG, out=str(tmp_path_factory.mktemp("xvr") / "data"))
    return cfg, generate(cfg, log=lambda *_: None)


def test_rig_camera_is_the_camera_mujoco_renders():
    env, _, _, renderer = _worker_env("CoffeePressButton", SIZE)
    sim = env.unwrapped.sim
    m, d = sim.mj_model, sim.mj_data
    rng = np.random.default_rng(0)
    for fovy in (45.0, 70.0):
        pose = look_at([-0.3, rng.uniform(-0.6, 0.6), 1.7], [0.75, 0.0, 1.1], focal_from_fovy(fovy, SIZE), SIZE)
        forward = -pose.rotation[:, 2]
        # A small sphere in free space in front of the camera, off-centre.
        point = pose.position + 0.5 * forward + 0.06 * pose.rotation[:, 0] - 0.04 * pose.rotation[:, 1]
        plain, depth = renderer.render(d, pose)
        marked, _ = renderer.render(d, pose, spheres=((point, 0.02, (1, 0, 1, 1)),))
        changed = np.abs(marked.astype(int) - plain.astype(int)).sum(-1) > 30
        vs, us = np.nonzero(changed)
        assert len(us) > 3
        blob = np.array([us.mean() + 0.5, vs.mean() + 0.5])
        uv, z = pose.project(point[None])
        assert np.abs(blob - uv[0]).max() < 1.0, (blob, uv[0])
        # Depth is along the optical axis: the pixel's unprojected point is where MuJoCo's ray hits a surface.
        u, v = SIZE // 2, SIZE // 2
        surface = unproject(pose, np.array([[u + 0.5, v + 0.5]]), np.array([depth[v, u]]))[0]
        ray = (surface - pose.position) / np.linalg.norm(surface - pose.position)
        hit = mujoco.mj_ray(m, d, pose.position, ray, None, 1, -1, np.zeros(1, np.int32))
        assert abs(hit - np.linalg.norm(surface - pose.position)) < 0.02


def _of(questions, task):
    found = [q for q in questions if q.task == task]
    assert found, f"no {task} question"
    return found


def test_point_correspondence_answer_is_the_projection_of_the_marked_point(scene):
    _, questions = scene
    qcfg = QuestionConfig()
    for q in _of(questions, "point_correspondence"):
        assert q.answer in q.options and len(q.options) == 5
        pose = pose_from_meta(q.meta["target_pose"])
        uv = pose.project(np.array(q.meta["point"])[None])[0][0]
        assert np.allclose(uv, q.meta["dots"][q.answer], atol=0.05)
        u, v = (np.array(q.meta["dots"][q.answer])).astype(int)
        assert tuple(q.images[-1][v, u]) == COLORS[q.answer]  # the answer's colour is drawn there
        for ref, image in zip(q.meta["reference_poses"], q.images[:-1]):
            ru, rv = pose_from_meta(ref).project(np.array(q.meta["point"])[None])[0][0].astype(int)
            assert tuple(image[rv, ru]) == (255, 255, 255)
        dots = list(q.meta["dots"].values())
        gaps = [np.linalg.norm(np.subtract(a, b)) for i, a in enumerate(dots) for b in dots[i + 1:]]
        assert min(gaps) >= qcfg.min_separation * SIZE > 2 * dot_radius(SIZE)
        for color, p in q.meta["dot_points"].items():
            if color != q.answer:
                assert np.linalg.norm(np.subtract(p, q.meta["point"])) >= qcfg.min_distance_3d


def test_directional_answer_is_the_projection_of_the_3d_direction(scene):
    _, questions = scene
    for q in _of(questions, "directional_correspondence"):
        pose = pose_from_meta(q.meta["target_pose"])
        start = pose.project(np.array(q.meta["point"])[None])[0][0]
        end = np.array(q.meta["point"]) + q.meta["length"] * np.array(q.meta["directions"][q.answer])
        assert np.allclose(pose.project(end[None])[0][0], q.meta["arrow_ends"][q.answer], atol=0.05)
        drawn = {c: np.subtract(e, start) for c, e in q.meta["arrow_ends"].items()}
        angles = [_angle(a, b) for i, a in enumerate(drawn.values()) for b in list(drawn.values())[i + 1:]]
        assert min(angles) >= QuestionConfig().min_angle


def test_spatial_verification_answer_is_the_view_whose_mark_misses_the_point(scene):
    _, questions = scene
    for q in _of(questions, "spatial_verification"):
        odd = int(q.answer) - 1
        for k, (pose, mark) in enumerate(zip(q.meta["poses"], q.meta["marks"])):
            uv = pose_from_meta(pose).project(np.array(q.meta["point"])[None])[0][0]
            miss = np.linalg.norm(uv - np.array(mark))
            assert (miss > 0.2 * SIZE) if k == odd else (miss < 0.05)


def test_localization_answers_match_the_cameras(scene):
    _, questions = scene
    for q in _of(questions, "viewpoint_localization"):
        ref = pose_from_meta(q.meta["reference_pose"])
        true = pose_from_meta(q.meta["candidate_poses"][int(q.answer) - 2])
        assert np.allclose(ref.project(true.position[None])[0][0], q.meta["dot"], atol=0.05)
        for k, other in enumerate(q.meta["candidate_poses"]):
            if k != int(q.answer) - 2:
                assert np.linalg.norm(np.subtract(other["position"], true.position)) >= QuestionConfig().min_camera_gap
    for q in _of(questions, "directional_view_localization"):
        centre = pose_from_meta(q.meta["centre_pose"])
        sides = [_side(centre, pose_from_meta(p), q.meta["axis"]) for p in q.meta["candidate_poses"]]
        assert sides[int(q.answer) - 2] == q.meta["asked"] and sorted(set(sides)) == sorted(sides)


def test_robot_domain_questions_from_the_episode(scene):
    result, questions = scene
    frames = {f.t: f for f in result["frames"]}
    for q in _of(questions, "temporal_verification"):
        odd = int(q.answer) - 1
        times = q.meta["times"]
        others = [t for k, t in enumerate(times) if k != odd]
        assert others[0] == others[1] != times[odd]
        for cam, t, image in zip(q.meta["cameras"], times, q.images):
            assert np.array_equal(image, frames[t].images[cam])
    for q in _of(questions, "language_localization"):
        if q.meta["kind"] == "camera":
            assert q.meta["cameras"][int(q.answer) - 1] == q.meta["wanted"]


def _textured_frames(count: int, step: int = 10) -> list[RobotFrame]:
    rng = np.random.default_rng(3)
    return [RobotFrame(t * step, {c: rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8) for c in ROBOT_CAMERAS},
                       target_distance=0.5 - 0.1 * t) for t in range(count)]


def test_the_odd_frame_is_the_misaligned_one_and_the_ssim_filter_holds():
    frames = _textured_frames(6)
    rng = np.random.default_rng(0)
    for _ in range(10):
        q = temporal_verification(frames, rng)
        odd = int(q.answer) - 1
        by_time = {f.t: f for f in frames}
        others = {t for k, t in enumerate(q.meta["times"]) if k != odd}
        assert len(others) == 1 and q.meta["times"][odd] not in others
        for cam, t, image in zip(q.meta["cameras"], q.meta["times"], q.images):
            assert np.array_equal(image, by_time[t].images[cam])
    # A scene that does not change in time offers no visibly misaligned frame: no question.
    still = [RobotFrame(f.t, frames[0].images, 0.5) for f in frames]
    assert temporal_verification(still, rng) is None


def test_camera_role_answers_name_the_right_camera():
    first, second = _textured_frames(3), _textured_frames(3)[::-1]
    rng = np.random.default_rng(1)
    for _ in range(10):
        q = cross_scenario_localization(first, second, rng)
        shown = q.images[int(q.answer) - 1]
        assert any(np.array_equal(shown, f.images[q.meta["camera"]]) for f in second)
        assert any(np.array_equal(q.images[0], f.images[q.meta["camera"]]) for f in first)
        q = language_localization(first, "start button", rng)
        if q.meta["kind"] == "camera":
            assert np.array_equal(q.images[int(q.answer) - 1], first[q.meta["t"] // 10].images[q.meta["wanted"]])


def test_generation_writes_disjoint_splits_resumes_and_refuses_bad_rows(tmp_path, scene, generated):
    cfg, first = generated
    assert first["scenes"] == 3 and sum(first["counts"].values()) > 20
    seeds = {}
    for split in SPLITS:
        rows = read_xvr(cfg.out, split)  # every row validated: task known, answer among options, images present
        assert {r.task for r in rows} <= set(TASKS)
        seeds[split] = {r.sample_id.split("-")[2] for r in rows}
    assert not (seeds["train"] & seeds["valid"] or seeds["train"] & seeds["eval"] or seeds["valid"] & seeds["eval"])
    again = generate(cfg, log=lambda *_: None)  # resumed: nothing left to do
    assert again["scenes"] == 0 and sum(len(read_split(cfg.out, s)) for s in SPLITS) == sum(first["counts"].values())
    with pytest.raises(ValueError, match="other settings"):
        generate(dataclasses.replace(cfg, questions_per_task=3), log=lambda *_: None)
    _, questions = scene
    bad = dataclasses.replace(questions[0], answer="purple")
    with SplitWriter(tmp_path / "bad", "train", TASKS) as writer, pytest.raises(VQAFormatError, match="bad-0.*purple"):
        writer.write(to_sample(bad, "bad-0", tmp_path / "bad", "images"))


def _published(root: Path, rows: list[dict]) -> Path:
    (root / "images").mkdir(parents=True)
    for i in range(1, 4):
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(root / "images" / f"img_{i:07d}.png")
    (root / "xvr_eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def _row(sid, task, answer, images=(1, 2)):
    blocks = [{"type": "text", "text": "You will be shown multiple synchronized camera views.\n", "image_url": None}]
    for i in images:
        blocks += [{"type": "text", "text": f"\nImage {i}:\n"},
                   {"type": "image_url", "image_url": {"url": f"images/img_{i:07d}.png"}}]
    blocks.append({"type": "text", "text": "Which one?"})
    return {"sample_id": sid, "task": task, "prompt_blocks": blocks, "ground_truth_answer": answer}


def test_loader_reads_the_published_layout(tmp_path):
    rows = [_row("multi_reference_point_matching_070_5717086b", "task9", "yellow"),
            _row("correspondence_verification_599_11aa030a", "task6", "3", images=(1, 2, 3)),
            _row("task4_agibot_episode_001412_sample_1", "task4", "2")]
    root = _published(tmp_path / "XVR", rows)
    with pytest.raises(VQAFormatError, match="task4_agibot_episode_001412_sample_1.*unknown task 'task4'"):
        read_xvr(root, "eval")
    samples = read_xvr(root, "eval", parse_task_map("task4=language_localization"))
    assert [s.task for s in samples] == ["point_correspondence", "spatial_verification", "language_localization"]
    assert samples[1].image_urls == [f"images/img_{i:07d}.png" for i in (1, 2, 3)] and samples[0].answer == "yellow"
    (root / "images" / "img_0000003.png").unlink()
    with pytest.raises(VQAFormatError, match="correspondence_verification_599_11aa030a.*img_0000003.png not found"):
        read_xvr(root, "eval", parse_task_map("task4=language_localization"))
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        parse_task_map("task4=nope")


def test_scoring_a_known_prediction_file(tmp_path, capsys):
    rows = [_row("a", "task9", "yellow"), _row("b", "task9", "red"), _row("c", "task6", "3"),
            _row("d", "task10", "blue")]
    root = _published(tmp_path / "XVR", rows)
    predictions = tmp_path / "preds.jsonl"
    predictions.write_text("".join(json.dumps({"sample_id": s, "prediction": p}) + "\n" for s, p in
                                   [("a", "Yellow."), ("b", "green"), ("c", "Image 3"), ("d", "blue")]))
    assert normalize_answer(" Image 3.") == "3" and normalize_answer("The answer is Yellow") == "yellow"
    samples = read_xvr(root, "eval")
    result = score(samples, read_predictions(predictions))
    assert result.percent("point_correspondence") == 50.0 and result.percent("spatial_verification") == 100.0
    assert result.overall() == 75.0 and result.percent("temporal_verification") is None
    assert chance(samples).percent("point_correspondence") == 20.0  # no options given: the paper's rate
    table = format_table(paper_rows() + [("mine", result.row())], result.total)
    assert "| mine | 50.00 | 100.00 | 100.00 | - | - | - | - | - | 75.00 |" in table
    assert "| Qwen3-VL-2B-XVR (paper) | 94.32 |" in table
    eval_xvr = _script("eval_xvr")
    assert eval_xvr.main(["--predictions", str(predictions), "--data", str(root)]) == 0
    printed = capsys.readouterr().out
    assert "| preds.jsonl (this run) | 50.00 | 100.00 | 100.00 |" in printed and "random chance (paper)" in printed
    assert eval_xvr.main(["--predictions", str(tmp_path / "none.jsonl"), "--data", str(root)]) == 2


def test_fine_tuning_lowers_the_loss_and_xvr_eval_prints_the_table(tmp_path, capsys, generated):
    data = Path(generated[0].out)
    train_xvr = _script("train_xvr")
    cfg = train_xvr.TrainXVRConfig(
        data=str(data), backbone="tiny", out=str(tmp_path / "tiny-xvr"), lora_rank=4,
        sft=dataclasses.replace(train_xvr.TrainXVRConfig().sft, steps=24, batch_size=4, lr=3e-3, image_size=SIZE,
                                log_every=6, eval_every=24, eval_samples=4, num_workers=0))
    out = train_xvr.run(cfg, log=lambda *_: None)
    history = json.loads((out / "sft_history.json").read_text())
    losses = [h["loss"] for h in history if "loss" in h]
    assert losses[-1] < 0.8 * losses[0], losses
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if "lora" in k]  # adapters merged: a plain backbone directory
    eval_xvr = _script("eval_xvr")
    assert eval_xvr.main(["--backbone", str(out), "--data", str(data), "--image-size", str(SIZE),
                          "--out", str(tmp_path / "eval")]) == 0
    printed = capsys.readouterr().out
    assert "| model | point | directional | spatial | temporal | viewpoint | dir. view | cross-scen. | language |" \
           " overall |" in printed
    assert "| tiny-xvr (this run) |" in printed
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert 0.0 <= results["overall"] <= 100.0

"""One builder per XVR task type: rendered views of a scene in, one multiple-choice question out (or None).

Every answer comes from the simulator's geometry (calibrated poses, exact depth) or its bookkeeping (which
camera, which time step), never from the pixels. Distractors are kept apart (in pixels and in 3D) so that exactly
one option is right; `meta` keeps the numbers that make the answer checkable (tests re-derive answers from them).
General-domain tasks use random rig cameras (`Capture`); robot-domain tasks the robot's own cameras over an
expert episode (`RobotFrame`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from envs.cameras import CameraPose
from vla.xvr.draw import draw_arrows, draw_dots
from vla.xvr.rig import sample_surface, ssim, visible
from vla.xvr.tasks import COLORS, REFERENCE_COLOR

ROBOT_CAMERAS = ("left", "right", "wrist")
CAMERA_DESCRIPTIONS = {
    "left": "the camera on the robot's left side, looking over the counter",
    "right": "the camera on the robot's right side, looking over the counter",
    "wrist": "the camera on the robot's wrist, moving with the gripper",
}
GENERAL_INTRO = "You will be shown several views of one kitchen scene, some with annotations.\n"
ROBOT_INTRO = "You will be shown several camera images captured while a robot arm works in a kitchen.\n"


@dataclass
class RigView:
    """One rendered rig camera: its pose, RGB, depth, and the look-at target it was aimed at."""

    pose: CameraPose
    rgb: np.ndarray
    depth: np.ndarray
    target: np.ndarray


@dataclass
class OrbitSet:
    """A centre view and two views moved around its look-at target: one each way along `axis`."""

    axis: str  # "horizontal" (azimuth) or "vertical" (elevation)
    centre: RigView
    moved: tuple[RigView, RigView]


@dataclass
class Capture:
    """Random rig views of the scene at one time step."""

    t: int
    center: np.ndarray
    views: list[RigView]
    orbits: list[OrbitSet] = field(default_factory=list)


@dataclass
class RobotFrame:
    """The robot's three cameras at one time step, and how far the gripper is from the task's target."""

    t: int
    images: dict[str, np.ndarray]
    target_distance: float


@dataclass
class Question:
    """A multiple-choice question: labelled images, the question text, the answer among `options`."""

    task: str
    intro: str
    labels: list[str]  # the text shown before each image
    images: list[np.ndarray]
    question: str
    answer: str
    options: tuple[str, ...]
    meta: dict


def _pose_meta(pose: CameraPose) -> dict:
    return {"position": pose.position.round(5).tolist(), "rotation": pose.rotation.round(6).tolist(),
            "focal": round(float(pose.focal), 4), "size": pose.width}


def pose_from_meta(meta: dict) -> CameraPose:
    """The CameraPose a question's meta recorded."""
    return CameraPose(np.array(meta["position"]), np.array(meta["rotation"]), float(meta["focal"]),
                      int(meta["size"]), int(meta["size"]))


def _image_labels(count: int, reference: int = 0) -> list[str]:
    """'Image 1 (Reference):', 'Image 2:', ... (the first `reference` images are references)."""
    return [f"Image {i + 1}{' (Reference)' if i < reference else ''}:" for i in range(count)]


def _index_options(first: int, count: int) -> tuple[str, ...]:
    return tuple(str(first + i) for i in range(count))


def _or_list(items) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _far_apart(uv: np.ndarray, others: list[np.ndarray], min_px: float) -> bool:
    return all(np.linalg.norm(np.asarray(uv) - np.asarray(o)) >= min_px for o in others)


def _uv(pose: CameraPose, point: np.ndarray) -> np.ndarray:
    return pose.project(np.asarray(point)[None])[0][0]


@dataclass(frozen=True)
class QuestionConfig:
    """Difficulty knobs shared by the builders."""

    min_separation: float = 0.15  # distinct markers / dots at least this fraction of the image apart
    min_distance_3d: float = 0.08  # m between the true 3D point and a distractor's
    arrow_length: float = 0.2  # m, the drawn 3D direction's length
    min_arrow_px: float = 0.1  # its drawn length at least this fraction of the image in every view
    min_angle: float = 45.0  # deg between drawn arrows
    min_camera_gap: float = 0.3  # m between candidate viewpoints
    min_time_gap: int = 20  # control steps between the odd frame and the rest
    max_ssim: float = 0.8  # the odd frame must differ from its own camera's synchronized frame at least this much
    near_target: float = 0.08  # m: "the gripper at the target"
    far_target: float = 0.25  # m: "away from the target"


# ----- correspondence -----

def _shared_point(views: list[RigView], center: np.ndarray, rng: np.random.Generator, tries: int = 60):
    """A surface point of views[-1] that every view sees, or None."""
    target = views[-1]
    for point in _sample(target, rng, tries, center):
        if all(visible(v.pose, v.depth, point[None])[0] for v in views):
            return point
    return None


def _sample(view: RigView, rng, count: int, center) -> np.ndarray:
    return sample_surface(view.pose, view.depth, rng, count, center)


def point_correspondence(capture: Capture, rng: np.random.Generator, cfg: QuestionConfig = QuestionConfig(),
                         options: int = 5) -> Question | None:
    """References mark a 3D point (white); the target view shows coloured dots; which one is the same point?"""
    n_ref = int(rng.integers(1, 3))
    order = rng.permutation(len(capture.views))[: n_ref + 1]
    views = [capture.views[i] for i in order]
    target = views[-1]
    point = _shared_point(views, capture.center, rng)
    if point is None:
        return None
    size, min_px = target.pose.width, cfg.min_separation * target.pose.width
    true_uv = _uv(target.pose, point)
    dots = [(point, true_uv)]
    for candidate in _sample(target, rng, 80, None):
        if len(dots) == options:
            break
        uv = _uv(target.pose, candidate)
        if (np.linalg.norm(candidate - point) >= cfg.min_distance_3d
                and _far_apart(uv, [d[1] for d in dots], min_px)):
            dots.append((candidate, uv))
    if len(dots) < options:
        return None
    colors = list(rng.permutation(list(COLORS))[:options])
    images = [draw_dots(v.rgb, [(_uv(v.pose, point), REFERENCE_COLOR)]) for v in views[:-1]]
    images.append(draw_dots(target.rgb, [(uv, COLORS[c]) for (_, uv), c in zip(dots, colors)]))
    options_text = sorted(colors)
    question = (f"The white dot in the reference image{'s' if n_ref > 1 else ''} marks one point in the scene. "
                f"Image {n_ref + 1} shows coloured dots. Which coloured dot marks the same point? "
                f"Answer with one colour: {_or_list(options_text)}.")
    meta = {"point": point.round(5).tolist(), "target_pose": _pose_meta(target.pose),
            "reference_poses": [_pose_meta(v.pose) for v in views[:-1]],
            "dots": {c: uv.round(2).tolist() for (_, uv), c in zip(dots, colors)},
            "dot_points": {c: p.round(5).tolist() for (p, _), c in zip(dots, colors)}, "t": capture.t}
    return Question("point_correspondence", GENERAL_INTRO, _image_labels(len(images), n_ref), images, question,
                    colors[0], tuple(options_text), meta)


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    """Unsigned angle in degrees between two 2D vectors."""
    cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(np.rad2deg(np.arccos(np.clip(cos, -1.0, 1.0))))


def _random_direction(rng) -> np.ndarray:
    d = rng.normal(size=3)
    return d / np.linalg.norm(d)


def directional_correspondence(capture: Capture, rng: np.random.Generator, cfg: QuestionConfig = QuestionConfig(),
                               options: int = 4) -> Question | None:
    """References show a 3D direction as a white arrow; which coloured arrow in the target is the same direction?"""
    n_ref = int(rng.integers(1, 3))
    order = rng.permutation(len(capture.views))[: n_ref + 1]
    views = [capture.views[i] for i in order]
    target = views[-1]
    point = _shared_point(views, capture.center, rng)
    if point is None:
        return None

    def drawn(pose: CameraPose, direction: np.ndarray):
        """(start uv, end uv) of the arrow in a view, or None when too short or out of frame."""
        ends = np.stack([point, point + cfg.arrow_length * direction])
        uv, depth = pose.project(ends)
        if not pose.in_frame(uv, depth, 2.0).all():
            return None
        if np.linalg.norm(uv[1] - uv[0]) < cfg.min_arrow_px * pose.width:
            return None
        return uv

    arrows = []
    for _ in range(200):
        if len(arrows) == options:
            break
        direction = _random_direction(rng)
        if not arrows:  # the true direction must read in every view
            per_view = [drawn(v.pose, direction) for v in views]
            if any(a is None for a in per_view):
                continue
            arrows.append((direction, per_view[-1]))
            continue
        uv = drawn(target.pose, direction)
        if uv is not None and all(_angle(uv[1] - uv[0], a[1][1] - a[1][0]) >= cfg.min_angle for a in arrows):
            arrows.append((direction, uv))
    if len(arrows) < options:
        return None
    colors = list(rng.permutation(list(COLORS))[:options])
    true_dir = arrows[0][0]
    images = [draw_arrows(v.rgb, [(*drawn(v.pose, true_dir), REFERENCE_COLOR)]) for v in views[:-1]]
    images.append(draw_arrows(target.rgb, [(uv[0], uv[1], COLORS[c]) for (_, uv), c in zip(arrows, colors)]))
    options_text = sorted(colors)
    question = (f"The white arrow in the reference image{'s' if n_ref > 1 else ''} shows one direction in the "
                f"scene, starting at a point on a surface. Image {n_ref + 1} shows coloured arrows from the same point. "
                f"Which arrow points in the same 3D direction? Answer with one colour: {_or_list(options_text)}.")
    meta = {"point": point.round(5).tolist(), "length": cfg.arrow_length, "target_pose": _pose_meta(target.pose),
            "directions": {c: d.round(5).tolist() for (d, _), c in zip(arrows, colors)},
            "arrow_ends": {c: uv[1].round(2).tolist() for (_, uv), c in zip(arrows, colors)}, "t": capture.t}
    return Question("directional_correspondence", GENERAL_INTRO, _image_labels(len(images), n_ref), images,
                    question, colors[0], tuple(options_text), meta)


# ----- verification -----

def spatial_verification(capture: Capture, rng: np.random.Generator, cfg: QuestionConfig = QuestionConfig()
                         ) -> Question | None:
    """N views mark 'the same' 3D point; in one the mark sits on another surface point. Which view?"""
    count = int(rng.choice([4, 5]))
    if len(capture.views) < count:
        return None
    views = [capture.views[i] for i in rng.permutation(len(capture.views))[:count]]
    point = _shared_point(views, capture.center, rng)
    if point is None:
        return None
    odd = int(rng.integers(count))
    pose = views[odd].pose
    true_uv = _uv(pose, point)
    moved = None
    for candidate in _sample(views[odd], rng, 80, None):
        uv = _uv(pose, candidate)
        if (np.linalg.norm(candidate - point) >= 2 * cfg.min_distance_3d
                and np.linalg.norm(uv - true_uv) >= 1.5 * cfg.min_separation * pose.width):
            moved = (candidate, uv)
            break
    if moved is None:
        return None
    marks = [moved[1] if i == odd else _uv(v.pose, point) for i, v in enumerate(views)]
    images = [draw_dots(v.rgb, [(uv, COLORS["red"])]) for v, uv in zip(views, marks)]
    options = _index_options(1, count)
    question = (f"Each of these {count} views of the same scene has a red dot that should mark the same point in 3D. "
                f"In one view the dot marks a different point. Which image is it? Answer with its number "
                f"({_or_list(options)}).")
    meta = {"point": point.round(5).tolist(), "moved_point": moved[0].round(5).tolist(),
            "poses": [_pose_meta(v.pose) for v in views], "marks": [np.round(m, 2).tolist() for m in marks],
            "t": capture.t}
    return Question("spatial_verification", GENERAL_INTRO, _image_labels(count), images, question, str(odd + 1),
                    options, meta)


def temporal_verification(frames: list[RobotFrame], rng: np.random.Generator, cfg: QuestionConfig = QuestionConfig(),
                          tries: int = 30) -> Question | None:
    """The three cameras at one moment, but one image is from another time (visibly different). Which one?"""
    if len(frames) < 2:
        return None
    for _ in range(tries):
        i, j = rng.choice(len(frames), 2, replace=False)
        if abs(frames[i].t - frames[j].t) < cfg.min_time_gap:
            continue
        odd_cam = ROBOT_CAMERAS[rng.integers(3)]
        similarity = ssim(frames[i].images[odd_cam], frames[j].images[odd_cam])
        if similarity > cfg.max_ssim:
            continue
        cams = list(rng.permutation(ROBOT_CAMERAS))
        images = [frames[j if c == odd_cam else i].images[c] for c in cams]
        answer = str(cams.index(odd_cam) + 1)
        options = _index_options(1, 3)
        question = ("These three images come from the robot's left, right and wrist cameras and should show the same "
                    "moment. One of them was taken at a different time. Which image is it? Answer with its number "
                    f"({_or_list(options)}).")
        meta = {"cameras": cams, "times": [frames[j if c == odd_cam else i].t for c in cams],
                "ssim": round(similarity, 4)}
        return Question("temporal_verification", ROBOT_INTRO, _image_labels(3), images, question, answer, options,
                        meta)
    return None


# ----- localization -----

def viewpoint_localization(capture: Capture, rng: np.random.Generator, cfg: QuestionConfig = QuestionConfig(),
                           candidates: int = 3) -> Question | None:
    """The reference view marks where a camera stood; which candidate image was taken from there?"""
    views = capture.views
    pairs = [(r, c) for r in range(len(views)) for c in range(len(views)) if r != c]
    for r, c in [pairs[k] for k in rng.permutation(len(pairs))]:
        ref, true = views[r].pose, views[c].pose
        uv, depth = ref.project(true.position[None])
        if not ref.in_frame(uv, depth, 0.1 * ref.width)[0]:
            continue
        others = [k for k in range(len(views)) if k not in (r, c)
                  and np.linalg.norm(views[k].pose.position - true.position) >= cfg.min_camera_gap]
        if len(others) < candidates - 1:
            continue
        picked = [c, *rng.choice(others, candidates - 1, replace=False).tolist()]
        order = rng.permutation(candidates)
        shown = [picked[k] for k in order]
        images = [draw_dots(views[r].rgb, [(uv[0], COLORS["red"])])] + [views[k].rgb for k in shown]
        options = _index_options(2, candidates)
        answer = str(shown.index(c) + 2)
        question = ("The red dot in image 1 marks where a camera was placed. Which of the other images was taken from "
                    f"that camera? Answer with its number ({_or_list(options)}).")
        meta = {"reference_pose": _pose_meta(ref), "dot": uv[0].round(2).tolist(),
                "candidate_poses": [_pose_meta(views[k].pose) for k in shown], "t": capture.t}
        return Question("viewpoint_localization", GENERAL_INTRO, _image_labels(1 + candidates, 1), images, question,
                        answer, options, meta)
    return None


DIRECTIONS = {"horizontal": ("left", "right"), "vertical": ("above", "below")}


def _side(centre: CameraPose, other: CameraPose, axis: str) -> str:
    """Where `other` stands seen from `centre`: left/right along its image x axis, above/below in world z."""
    offset = other.position - centre.position
    if axis == "horizontal":
        return "right" if float(offset @ centre.rotation[:, 0]) > 0 else "left"
    return "above" if offset[2] > 0 else "below"


def directional_view_localization(capture: Capture, rng: np.random.Generator) -> Question | None:
    """With the centre image as reference, which of two images was taken from its left (right, above, below)?"""
    if not capture.orbits:
        return None
    orbit = capture.orbits[int(rng.integers(len(capture.orbits)))]
    sides = [_side(orbit.centre.pose, v.pose, orbit.axis) for v in orbit.moved]
    if sorted(sides) != sorted(DIRECTIONS[orbit.axis]):
        return None
    asked = DIRECTIONS[orbit.axis][int(rng.integers(2))]
    order = rng.permutation(2)
    shown = [orbit.moved[k] for k in order]
    shown_sides = [sides[k] for k in order]
    images = [orbit.centre.rgb] + [v.rgb for v in shown]
    options = _index_options(2, 2)
    where = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}[asked]
    question = (f"Take image 1 as the reference view of the scene. Images 2 and 3 were taken by cameras moved around "
                f"the scene from it. Which image was taken from a camera {where} the reference camera? Answer with "
                f"its number ({_or_list(options)}).")
    meta = {"axis": orbit.axis, "asked": asked, "sides": shown_sides, "centre_pose": _pose_meta(orbit.centre.pose),
            "candidate_poses": [_pose_meta(v.pose) for v in shown], "t": capture.t}
    return Question("directional_view_localization", GENERAL_INTRO, _image_labels(3, 1), images, question,
                    str(shown_sides.index(asked) + 2), options, meta)


def cross_scenario_localization(frames: list[RobotFrame], other: list[RobotFrame], rng: np.random.Generator
                                ) -> Question | None:
    """Image 1 from one episode; which of the other episode's three images comes from the same camera?"""
    if not frames or not other:
        return None
    camera = ROBOT_CAMERAS[rng.integers(3)]
    first = frames[int(rng.integers(len(frames)))]
    second = other[int(rng.integers(len(other)))]
    cams = list(rng.permutation(ROBOT_CAMERAS))
    images = [first.images[camera]] + [second.images[c] for c in cams]
    options = _index_options(2, 3)
    question = ("Image 1 comes from one robot episode (scenario 1); images 2, 3 and 4 from another (scenario 2), "
                "each from a different one of the robot's cameras (left, right, wrist). Which of images 2, 3 and 4 "
                f"was taken by the same camera as image 1? Answer with its number ({_or_list(options)}).")
    meta = {"camera": camera, "cameras": cams, "times": [first.t, second.t]}
    labels = ["Scenario 1, image 1:"] + [f"Scenario 2, image {k}:" for k in (2, 3, 4)]
    return Question("cross_scenario_localization", ROBOT_INTRO, labels, images, question,
                    str(cams.index(camera) + 2), options, meta)


def language_localization(frames: list[RobotFrame], target: str, rng: np.random.Generator,
                          cfg: QuestionConfig = QuestionConfig()) -> Question | None:
    """Which of two images matches a description: a camera's role, or the gripper at / away from the target?"""
    if not frames:
        return None
    near = [f for f in frames if f.target_distance < cfg.near_target]
    far = [f for f in frames if f.target_distance > cfg.far_target]
    options = _index_options(1, 2)
    if near and far and rng.random() < 0.5:
        camera = ROBOT_CAMERAS[rng.integers(3)]
        pair = [near[int(rng.integers(len(near)))], far[int(rng.integers(len(far)))]]
        order = rng.permutation(2)
        images = [pair[k].images[camera] for k in order]
        answer = str(int(np.flatnonzero(order == 0)[0]) + 1)
        description = f"the moment the gripper is at the {target}, seen by {CAMERA_DESCRIPTIONS[camera]}"
        meta = {"kind": "phase", "camera": camera, "times": [pair[k].t for k in order],
                "target_distance": [round(pair[k].target_distance, 4) for k in order]}
    else:
        frame = frames[int(rng.integers(len(frames)))]
        cams = list(rng.choice(ROBOT_CAMERAS, 2, replace=False))
        wanted = cams[int(rng.integers(2))]
        images = [frame.images[c] for c in cams]
        answer = str(cams.index(wanted) + 1)
        description = f"the view from {CAMERA_DESCRIPTIONS[wanted]}"
        meta = {"kind": "camera", "cameras": cams, "wanted": wanted, "t": frame.t}
    question = f"Which image shows {description}? Answer with its number ({_or_list(options)})."
    return Question("language_localization", ROBOT_INTRO, _image_labels(2), images, question, answer, options, meta)

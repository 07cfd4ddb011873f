"""The paper's 8 XVR task types (REFERENCE.md section 1), in its table order, with what is known about them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskType:
    name: str  # the task field of rows this project writes
    category: str
    label: str  # the column header of the table
    random: float  # the paper's chance accuracy (%)
    domain: str  # "general" (random camera rigs) or "robot" (the robot's own cameras over an episode)


TASK_TYPES = (
    TaskType("point_correspondence", "correspondence", "point", 20.0, "general"),
    TaskType("directional_correspondence", "correspondence", "directional", 25.0, "general"),
    TaskType("spatial_verification", "verification", "spatial", 22.2, "general"),
    TaskType("temporal_verification", "verification", "temporal", 33.3, "robot"),
    TaskType("viewpoint_localization", "localization", "viewpoint", 33.3, "general"),
    TaskType("directional_view_localization", "localization", "dir. view", 50.0, "general"),
    TaskType("cross_scenario_localization", "localization", "cross-scen.", 33.3, "robot"),
    TaskType("language_localization", "localization", "language", 50.0, "robot"),
)
TASKS = tuple(t.name for t in TASK_TYPES)
TASK_BY_NAME = {t.name: t for t in TASK_TYPES}

# XVR-Eval accuracy (%), per task in TASKS order, then overall (a mean over samples, not over tasks).
PAPER_RESULTS = {
    "Qwen3-VL-2B-Instruct (paper)": (46.59, 26.14, 23.11, 45.29, 19.50, 47.06, 41.63, 51.58, 36.82),
    "Qwen3-VL-2B-XVR (paper)": (94.32, 53.79, 84.85, 41.18, 57.68, 68.33, 70.14, 63.35, 68.06),
}
PAPER_RANDOM_OVERALL = 32.64

# Task ids of the published dataset (Jaehwisong/XVR) whose meaning its sample ids show
# (multi_reference_point_matching_* is task9, multi_reference_direction_matching_* task10,
# correspondence_verification_* task6). The other five ids are not documented anywhere this project could read;
# pass them with --task-map (e.g. task2=temporal_verification) once known.
PUBLISHED_TASK_IDS = {
    "task9": "point_correspondence",
    "task10": "directional_correspondence",
    "task6": "spatial_verification",
}

# Marker colours: the answers of the correspondence tasks. Names are the answers; values are what is drawn.
COLORS = {
    "red": (230, 25, 25),
    "green": (20, 200, 40),
    "blue": (30, 60, 235),
    "yellow": (250, 230, 20),
    "magenta": (235, 30, 235),
    "cyan": (20, 225, 235),
}
REFERENCE_COLOR = (255, 255, 255)  # the marker / arrow of reference views: white, never an answer

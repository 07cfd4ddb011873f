"""Low-poly MJCF kitchen fixtures (counter, coffee machine, microwave, wall cabinet) and graspable objects.

Every builder returns an MJCF <body> element placed in the world frame of a robot standing at the origin and
facing +x. Names are fixed so tasks and experts can look geoms, joints and sites up; per-episode variation is
applied later by editing model fields, which keeps resets soft (no recompilation).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

COUNTER_TOP_Z = 0.92  # RoboCasa counters are ~0.92 m high
COUNTER_FRONT_X = 0.48
COUNTER_DEPTH = 0.62
WALL_X = COUNTER_FRONT_X + COUNTER_DEPTH
CABINET_BOTTOM_Z = COUNTER_TOP_Z + 0.53  # the interior floor is 0.02 above this (panel thickness)
CABINET_HALF = (0.20, 0.30, 0.25)  # depth, width, height half extents

# Colours are overwritten at reset; these are only the compiled defaults.
_GREY = "0.6 0.6 0.62 1"


def _body(xml: str) -> ET.Element:
    return ET.fromstring(xml)


def _box(name: str, pos, size, rgba: str = _GREY, collide: bool = True, extra: str = "") -> str:
    # robosuite compiles with inertiagrouprange="0 0": colliding geoms live in group 0, visual-only in group 1.
    contact = ' group="0"' if collide else ' group="1" contype="0" conaffinity="0"'
    p = " ".join(f"{v:.4f}" for v in pos)
    s = " ".join(f"{v:.4f}" for v in size)
    return f'<geom name="{name}" type="box" pos="{p}" size="{s}" rgba="{rgba}"{contact} {extra}/>'


def counter() -> ET.Element:
    """Counter block under the fixtures plus the back wall the wall cabinet hangs on."""
    half = (COUNTER_DEPTH / 2, 1.2, COUNTER_TOP_Z / 2)
    return _body(
        f"""<body name="counter" pos="{COUNTER_FRONT_X + half[0]:.4f} 0 0">
          {_box("counter_top", (0, 0, half[2]), half, "0.75 0.72 0.66 1", extra='friction="1 0.005 0.0001"')}
          {_box("kitchen_wall", (half[0] + 0.01, 0, 1.5), (0.01, 1.2, 1.5), "0.85 0.85 0.8 1", collide=False)}
        </body>"""
    )


def coffee_machine() -> ET.Element:
    """Coffee machine on the counter: a tower, an overhanging head with the start button on its front, a mug.

    `coffee_liquid`, a stream from the spout into the mug, is hidden (alpha 0) until the button is pressed, as
    upstream RoboCasa shows its coffee-liquid sites once the machine is on; the task also lights the button then.
    So the press is visible to the cameras (tasks.CoffeePressButton.set_pressed).
    """
    x0 = COUNTER_FRONT_X + 0.34  # body origin: centre of the footprint at counter height
    return _body(
        f"""<body name="coffee_machine" pos="{x0:.4f} 0 {COUNTER_TOP_Z:.4f}">
          {_box("coffee_base", (0, 0, 0.01), (0.12, 0.10, 0.01), "0.15 0.15 0.15 1")}
          {_box("coffee_tower", (0.07, 0, 0.18), (0.05, 0.10, 0.18), "0.15 0.15 0.15 1")}
          {_box("coffee_head", (-0.02, 0, 0.31), (0.08, 0.10, 0.05), "0.15 0.15 0.15 1")}
          {_box("coffee_spout", (-0.05, 0, 0.245), (0.015, 0.015, 0.015), "0.5 0.5 0.5 1")}
          <geom name="coffee_liquid" type="cylinder" pos="-0.05 0 0.15" size="0.009 0.08" rgba="0.55 0.33 0.12 0"
                group="1" contype="0" conaffinity="0"/>
          <geom name="coffee_button" type="cylinder" pos="-0.105 0 0.31" quat="0.7071 0 0.7071 0"
                size="0.018 0.008" rgba="0.1 0.7 0.2 1" group="0"/>
          <site name="coffee_button_site" pos="-0.113 0 0.31" size="0.005" rgba="0 0 0 0"/>
          <body name="coffee_mug" pos="-0.05 0 0.02">
            <geom name="mug_wall" type="cylinder" pos="0 0 0.045" size="0.035 0.045" rgba="0.9 0.9 0.9 1" group="0"/>
            <geom name="mug_handle" type="box" pos="0 0.045 0.045" size="0.005 0.012 0.025" rgba="0.9 0.9 0.9 1"
                  group="1" contype="0" conaffinity="0"/>
          </body>
        </body>"""
    )


def microwave() -> ET.Element:
    """Microwave: hollow shell, a door hinged on its left edge, a right control panel with start/stop buttons."""
    w, d, h = 0.25, 0.18, 0.16  # half extents
    x0 = COUNTER_FRONT_X + 0.16 + d
    fx = -d  # front face x in body frame
    door_w = 0.17  # half width of the door; the panel takes the rest
    return _body(
        f"""<body name="microwave" pos="{x0:.4f} 0 {COUNTER_TOP_Z + h:.4f}">
          {_box("mw_bottom", (0, 0, -h + 0.01), (d, w, 0.01), "0.8 0.8 0.8 1")}
          {_box("mw_top", (0, 0, h - 0.01), (d, w, 0.01), "0.8 0.8 0.8 1")}
          {_box("mw_back", (d - 0.01, 0, 0), (0.01, w, h), "0.8 0.8 0.8 1")}
          {_box("mw_left", (0, w - 0.01, 0), (d, 0.01, h), "0.8 0.8 0.8 1")}
          {_box("mw_right", (0, -w + 0.01, 0), (d, 0.01, h), "0.8 0.8 0.8 1")}
          {_box("mw_divider", (0, w - 2 * door_w - 0.01, 0), (d, 0.01, h), "0.8 0.8 0.8 1")}
          {_box("mw_panel", (fx + 0.01, -door_w, 0), (0.01, w - door_w, h), "0.25 0.25 0.27 1")}
          {_box("mw_light", (0.05, w - door_w, -h + 0.03), (0.06, 0.06, 0.01), "1 0.85 0.3 1", collide=False)}
          <geom name="mw_bowl" type="cylinder" pos="0 {w - door_w:.4f} {-h + 0.045:.4f}" size="0.06 0.025"
                rgba="0.3 0.4 0.8 1" group="0"/>
          <geom name="mw_start_button" type="cylinder" pos="{fx - 0.006:.4f} {-door_w:.4f} 0.075"
                quat="0.7071 0 0.7071 0" size="0.016 0.008" rgba="0.1 0.7 0.2 1" group="0"/>
          <geom name="mw_stop_button" type="cylinder" pos="{fx - 0.006:.4f} {-door_w:.4f} 0.01"
                quat="0.7071 0 0.7071 0" size="0.016 0.008" rgba="0.8 0.1 0.1 1" group="0"/>
          <site name="mw_stop_button_site" pos="{fx - 0.014:.4f} {-door_w:.4f} 0.01" size="0.005"
                rgba="0 0 0 0"/>
          <body name="mw_door" pos="{fx:.4f} {w:.4f} 0">
            <inertial pos="0 {-door_w:.4f} 0" mass="1.0" diaginertia="0.01 0.01 0.01"/>
            <joint name="mw_door_hinge" type="hinge" axis="0 0 1" range="-2.0 0" damping="2" frictionloss="0.5"/>
            {_box("mw_door_panel", (-0.011, -door_w, 0), (0.01, door_w, h), "0.2 0.2 0.22 1")}
            {_box("mw_door_handle", (-0.03, -2 * door_w + 0.03, 0), (0.01, 0.008, 0.08), "0.7 0.7 0.7 1")}
          </body>
        </body>"""
    )


def wall_cabinet() -> ET.Element:
    """Wall cabinet above the counter: open-front box, one shelf, a door hinged on the left, pre-opened at reset."""
    d, w, h = CABINET_HALF
    x0 = WALL_X - d  # hung on the wall; the front face ends up ~0.2 m behind the counter edge
    z0 = CABINET_BOTTOM_Z + h
    return _body(
        f"""<body name="cabinet" pos="{x0:.4f} 0 {z0:.4f}">
          {_box("cab_bottom", (0, 0, -h + 0.01), (d, w, 0.01), "0.55 0.4 0.3 1")}
          {_box("cab_top", (0, 0, h - 0.01), (d, w, 0.01), "0.55 0.4 0.3 1")}
          {_box("cab_back", (d - 0.01, 0, 0), (0.01, w, h), "0.55 0.4 0.3 1")}
          {_box("cab_left", (0, w - 0.01, 0), (d, 0.01, h), "0.55 0.4 0.3 1")}
          {_box("cab_right", (0, -w + 0.01, 0), (d, 0.01, h), "0.55 0.4 0.3 1")}
          {_box("cab_shelf", (0, 0, 0.02), (d, w, 0.008), "0.55 0.4 0.3 1")}
          <body name="cab_door" pos="{-d:.4f} {w:.4f} 0">
            <inertial pos="0 {-w:.4f} 0" mass="1.5" diaginertia="0.03 0.03 0.03"/>
            <joint name="cab_door_hinge" type="hinge" axis="0 0 1" range="-1.75 0" damping="5" frictionloss="2"/>
            {_box("cab_door_panel", (-0.011, -w, 0), (0.01, w, h), "0.6 0.45 0.35 1")}
            {_box("cab_door_handle", (-0.03, -2 * w + 0.04, 0), (0.01, 0.008, 0.06), "0.7 0.7 0.7 1")}
          </body>
        </body>"""
    )



@dataclass(frozen=True)
class ObjectShape:
    """A graspable object kind: its name in the instruction and its collision/visual primitive."""

    name: str
    geom_type: str
    size: tuple[float, ...]  # MuJoCo size for geom_type
    half_height: float


OBJECT_SHAPES: tuple[ObjectShape, ...] = (
    ObjectShape("can", "cylinder", (0.028, 0.05), 0.05),
    ObjectShape("box", "box", (0.022, 0.025, 0.055), 0.055),
    ObjectShape("bottle", "cylinder", (0.024, 0.07), 0.07),
    ObjectShape("block", "box", (0.026, 0.026, 0.026), 0.026),
    ObjectShape("cup", "cylinder", (0.032, 0.04), 0.04),
)

OBJECT_COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.15, 0.12),
    "green": (0.2, 0.7, 0.25),
    "blue": (0.15, 0.3, 0.85),
    "yellow": (0.95, 0.85, 0.15),
    "orange": (0.95, 0.5, 0.1),
    "purple": (0.55, 0.25, 0.7),
}


def graspable_object(index: int, shape: ObjectShape) -> ET.Element:
    """A free-floating object body; parked out of sight until a task places it."""
    size = " ".join(f"{v:.4f}" for v in shape.size)
    # High friction and some torsional friction keep a two-finger side grasp from slipping.
    return _body(
        f"""<body name="obj{index}" pos="{-3 - index * 0.3:.3f} 2.5 {shape.half_height + 0.01:.4f}">
          <freejoint name="obj{index}_joint"/>
          <geom name="obj{index}_geom" type="{shape.geom_type}" size="{size}" rgba="0.8 0.2 0.2 1" group="0"
                mass="0.12" friction="1.5 0.02 0.001" condim="4"/>
        </body>"""
    )

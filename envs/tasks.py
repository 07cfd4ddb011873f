"""The three built-in kitchen tasks, with RoboCasa v0.2 semantics (REFERENCE.md section 2)."""

from __future__ import annotations

import numpy as np

from envs import fixtures
from envs.kitchen_env import KitchenEnv, Landmark

BUTTON_CLEARANCE = 0.15  # m between eef and button for coffee/microwave success
OBJECT_CLEARANCE = 0.25  # m between eef and object for pick-and-place success


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


class _FixtureScaler:
    """Scales a static fixture subtree about its root body (geom sizes, geom/site/child-body offsets)."""

    def __init__(self, env: KitchenEnv, root: str):
        m = env.mj_model
        root_id = m.body(root).id
        bodies = [b for b in range(m.nbody) if self._under(m, b, root_id)]
        self.model = m
        self.geoms = np.array([g for g in range(m.ngeom) if m.geom_bodyid[g] in bodies])
        self.sites = np.array([s for s in range(m.nsite) if m.site_bodyid[s] in bodies], dtype=int)
        self.children = np.array([b for b in bodies if b != root_id], dtype=int)
        self.orig = (m.geom_size[self.geoms].copy(), m.geom_pos[self.geoms].copy(), m.geom_rbound[self.geoms].copy(),
                     m.geom_aabb[self.geoms].copy(), m.site_pos[self.sites].copy(), m.body_pos[self.children].copy())

    @staticmethod
    def _under(m, body: int, root: int) -> bool:
        while body != 0:
            if body == root:
                return True
            body = m.body_parentid[body]
        return False

    def apply(self, scale: float) -> None:
        m, (size, pos, rbound, aabb, site_pos, child_pos) = self.model, self.orig
        m.geom_size[self.geoms] = size * scale
        m.geom_pos[self.geoms] = pos * scale
        m.geom_rbound[self.geoms] = rbound * scale
        m.geom_aabb[self.geoms] = aabb * scale
        m.site_pos[self.sites] = site_pos * scale
        m.body_pos[self.children] = child_pos * scale


def _place_fixture(env: KitchenEnv, body: str, rng, dx: float, dy: float, dyaw: float) -> None:
    m = env.mj_model
    bid = m.body(body).id
    home = env.fixture_home.setdefault(body, m.body_pos[bid].copy())
    m.body_pos[bid] = home + [rng.uniform(-dx, dx), rng.uniform(-dy, dy), 0.0]
    m.body_quat[bid] = _yaw_quat(rng.uniform(-dyaw, dyaw))


def _tint(env: KitchenEnv, geom_names, rng, base_rgb, spread: float = 0.08) -> None:
    rgb = np.clip(np.asarray(base_rgb) + rng.uniform(-spread, spread, 3), 0, 1)
    for name in geom_names:
        env.mj_model.geom(name).rgba[:3] = rgb


class CoffeePressButton(KitchenEnv):
    """Press the coffee machine's start button, then move the gripper away."""

    task_name = "CoffeePressButton"
    _BODY_GEOMS = ("coffee_base", "coffee_tower", "coffee_head")
    _BUTTON_LIT = (0.75, 1.0, 0.75, 1.0)

    def build_fixtures(self):
        return [fixtures.counter(), fixtures.coffee_machine()]

    def setup_task_references(self):
        self.button_geoms = self.geom_ids("coffee_button")
        self.button_site = self.mj_model.site("coffee_button_site").id
        self.mug_body = self.mj_model.body("coffee_mug").id
        self.mug_geoms = self.geom_ids("mug_wall", "mug_handle")
        self.liquid_geom = self.mj_model.geom("coffee_liquid").id
        self.button_rgba = self.mj_model.geom_rgba[self.button_geoms].copy()  # as built (fixtures.py): the "off" look
        self.scaler = _FixtureScaler(self, "coffee_machine")
        self.set_pressed(False)

    def randomize_scene(self, rng):
        _place_fixture(self, "coffee_machine", rng, dx=0.03, dy=0.12, dyaw=0.12)
        self.scaler.apply(rng.uniform(0.93, 1.07))
        _tint(self, self._BODY_GEOMS, rng, rng.choice([(0.15, 0.15, 0.15), (0.6, 0.6, 0.62), (0.55, 0.1, 0.1)]))
        _tint(self, ("counter_top",), rng, (0.72, 0.68, 0.6), spread=0.15)
        self.set_pressed(False)
        self.instruction = "press the button on the coffee machine to serve coffee"

    def set_pressed(self, pressed: bool) -> None:
        """Latch the start button; while the machine is on its button is lit and coffee pours (the stream shows)."""
        self.button_pressed = bool(pressed)
        self.mj_model.geom_rgba[self.liquid_geom, 3] = 1.0 if pressed else 0.0
        self.mj_model.geom_rgba[self.button_geoms] = self._BUTTON_LIT if pressed else self.button_rgba

    def update_fixture_state(self):
        if not self.button_pressed and self.touching(self.gripper_geoms, self.button_geoms):
            self.set_pressed(True)  # latches, as the upstream start button does

    def button_pos(self) -> np.ndarray:
        return self.mj_data.site_xpos[self.button_site].copy()

    def _check_success(self) -> bool:
        far = np.linalg.norm(self.eef_pos() - self.button_pos()) > BUTTON_CLEARANCE
        return bool(self.button_pressed and far)

    def task_state(self):
        mat = self.mj_data.site_xmat[self.button_site].reshape(3, 3)
        return {"button_pos": self.button_pos(), "button_normal": -mat[:, 0].copy(),
                "button_pressed": np.array(self.button_pressed)}

    def task_landmarks(self):
        return {"start button": Landmark(self.button_pos(), self.button_geoms),
                "mug": Landmark(self.mj_data.xpos[self.mug_body].copy() + [0.0, 0.0, 0.045], self.mug_geoms)}


class TurnOffMicrowave(KitchenEnv):
    """Press the microwave's stop button (it starts switched on), then move the gripper away."""

    task_name = "TurnOffMicrowave"
    _LIGHT_OFF = (0.25, 0.25, 0.25, 1.0)

    def build_fixtures(self):
        return [fixtures.counter(), fixtures.microwave()]

    def setup_task_references(self):
        m = self.mj_model
        self.stop_geoms = self.geom_ids("mw_stop_button")
        self.start_geoms = self.geom_ids("mw_start_button")
        self.stop_site = m.site("mw_stop_button_site").id
        self.start_geom = m.geom("mw_start_button").id
        self.light_geom = m.geom("mw_light").id
        self.light_on_rgba = m.geom_rgba[self.light_geom].copy()  # as built (fixtures.py): the lit look
        self.door_qpos_adr = m.jnt_qposadr[m.joint("mw_door_hinge").id]
        self.scaler = _FixtureScaler(self, "microwave")
        self.turned_on = True

    def randomize_scene(self, rng):
        _place_fixture(self, "microwave", rng, dx=0.03, dy=0.10, dyaw=0.10)
        self.scaler.apply(rng.uniform(0.95, 1.05))
        _tint(self, ("mw_bottom", "mw_top", "mw_back", "mw_left", "mw_right"), rng,
              rng.choice([(0.8, 0.8, 0.8), (0.2, 0.2, 0.22), (0.75, 0.7, 0.6)]))
        _tint(self, ("counter_top",), rng, (0.72, 0.68, 0.6), spread=0.15)
        self.mj_data.qpos[self.door_qpos_adr] = 0.0
        self.set_power(True)
        self.instruction = "press the stop button on the microwave"

    def set_power(self, on: bool) -> None:
        """Switch the microwave on/off (the interior light shows it)."""
        self.turned_on = bool(on)
        self.mj_model.geom_rgba[self.light_geom] = self.light_on_rgba if on else self._LIGHT_OFF

    def update_fixture_state(self):
        # Only the buttons change the power state; the door position never does (unlike the v0.2 loophole).
        if self.turned_on and self.touching(self.gripper_geoms, self.stop_geoms):
            self.set_power(False)
        elif not self.turned_on and self.touching(self.gripper_geoms, self.start_geoms):
            self.set_power(True)

    def stop_button_pos(self) -> np.ndarray:
        return self.mj_data.site_xpos[self.stop_site].copy()

    def _check_success(self) -> bool:
        far = np.linalg.norm(self.eef_pos() - self.stop_button_pos()) > BUTTON_CLEARANCE
        return bool((not self.turned_on) and far)

    def task_state(self):
        mat = self.mj_data.site_xmat[self.stop_site].reshape(3, 3)
        return {"button_pos": self.stop_button_pos(), "button_normal": -mat[:, 0].copy(),
                "turned_on": np.array(self.turned_on), "door_angle": np.array(self.mj_data.qpos[self.door_qpos_adr])}

    def task_landmarks(self):
        return {"stop button": Landmark(self.stop_button_pos(), self.stop_geoms),
                "start button": Landmark(self.mj_data.geom_xpos[self.start_geom].copy(), self.start_geoms)}


class PnPCabToCounter(KitchenEnv):
    """Pick the named object from the front of the open wall cabinet and place it on the counter below."""

    task_name = "PnPCabToCounter"
    DOOR_OPEN_FRACTION = (0.9, 1.0)

    def build_fixtures(self):
        objects = [fixtures.graspable_object(i, s) for i, s in enumerate(fixtures.OBJECT_SHAPES)]
        return [fixtures.counter(), fixtures.wall_cabinet(), *objects]

    def setup_task_references(self):
        m = self.mj_model
        self.counter_geoms = self.geom_ids("counter_top")
        self.object_bodies = [m.body(f"obj{i}").id for i in range(len(fixtures.OBJECT_SHAPES))]
        self.object_geoms = [self.geom_ids(f"obj{i}_geom") for i in range(len(fixtures.OBJECT_SHAPES))]
        self.object_qpos_adr = [m.jnt_qposadr[m.joint(f"obj{i}_joint").id] for i in range(len(fixtures.OBJECT_SHAPES))]
        hinge = m.joint("cab_door_hinge").id
        self.door_qpos_adr, self.door_range = m.jnt_qposadr[hinge], m.jnt_range[hinge].copy()
        self.target = 0
        self.object_names: dict[int, str] = {}

    def randomize_scene(self, rng):
        m, d = self.mj_model, self.mj_data
        _place_fixture(self, "cabinet", rng, dx=0.02, dy=0.08, dyaw=0.0)
        _tint(self, ("cab_bottom", "cab_top", "cab_back", "cab_left", "cab_right", "cab_shelf", "cab_door_panel"),
              rng, rng.choice([(0.55, 0.4, 0.3), (0.85, 0.85, 0.82), (0.3, 0.35, 0.45)]))
        _tint(self, ("counter_top",), rng, (0.72, 0.68, 0.6), spread=0.15)
        d.qpos[self.door_qpos_adr] = self.door_range[0] * rng.uniform(*self.DOOR_OPEN_FRACTION)

        shapes = fixtures.OBJECT_SHAPES
        order = rng.permutation(len(shapes))
        colours = rng.choice(list(fixtures.OBJECT_COLOURS), size=len(shapes), replace=False)
        self.target = int(order[0])
        cab_pos = m.body_pos[m.body("cabinet").id]
        hx, hy, _ = fixtures.CABINET_HALF
        floor_z = fixtures.CABINET_BOTTOM_Z + 0.02
        front_x = cab_pos[0] - hx
        spots = [
            (front_x + rng.uniform(0.05, 0.08), cab_pos[1] + rng.uniform(-0.12, 0.12), floor_z),  # target: front
            (cab_pos[0] + hx - 0.07, cab_pos[1] + rng.uniform(0.08, 0.2), floor_z),  # distractor: back of shelf
            (cab_pos[0] + hx - 0.07, cab_pos[1] - rng.uniform(0.08, 0.2), floor_z),
            (fixtures.WALL_X - 0.07, cab_pos[1] + rng.choice([-1, 1]) * rng.uniform(0.25, 0.4),
             fixtures.COUNTER_TOP_Z),  # distractor: back of the counter
        ]
        for rank, idx in enumerate(order):
            adr, shape = self.object_qpos_adr[idx], shapes[idx]
            m.geom_rgba[self.object_geoms[idx][0], :3] = fixtures.OBJECT_COLOURS[colours[rank]]
            if rank < len(spots):
                x, y, z = spots[rank]
                yaw = rng.uniform(-0.25, 0.25)
                d.qpos[adr:adr + 7] = [x, y, z + shape.half_height + 0.002, *_yaw_quat(yaw)]
            else:  # parked out of every camera's view
                d.qpos[adr:adr + 7] = [-3.0 - idx * 0.3, 2.5, shape.half_height + 0.002, 1, 0, 0, 0]
        self.target_name = f"{colours[0]} {shapes[self.target].name}"
        # What each placed object is called (colour + shape): distractors are named like the target.
        self.object_names = {int(idx): f"{colours[rank]} {shapes[idx].name}" for rank, idx in enumerate(order)
                             if rank < len(spots)}
        self.instruction = f"pick the {self.target_name} from the cabinet and place it on the counter"

    def object_pos(self) -> np.ndarray:
        return self.mj_data.xpos[self.object_bodies[self.target]].copy()

    def _check_success(self) -> bool:
        on_counter = self.touching(self.object_geoms[self.target], self.counter_geoms)
        far = np.linalg.norm(self.eef_pos() - self.object_pos()) > OBJECT_CLEARANCE
        return bool(on_counter and far)

    def task_state(self):
        shape = fixtures.OBJECT_SHAPES[self.target]
        m = self.mj_model
        cab_pos = m.body_pos[m.body("cabinet").id].copy()
        return {
            "object_pos": self.object_pos(),
            "object_quat": self.mj_data.xquat[self.object_bodies[self.target]].copy(),
            "object_half_height": np.array(shape.half_height),
            "cabinet_pos": cab_pos,
            "cabinet_half": np.array(fixtures.CABINET_HALF),
            "cabinet_floor_z": np.array(fixtures.CABINET_BOTTOM_Z + 0.02),
            "counter_top_z": np.array(fixtures.COUNTER_TOP_Z),
            "counter_front_x": np.array(fixtures.COUNTER_FRONT_X),
            "object_on_counter": np.array(self.touching(self.object_geoms[self.target], self.counter_geoms)),
        }

    def task_landmarks(self):
        return {name: Landmark(self.mj_data.xpos[self.object_bodies[idx]].copy(), self.object_geoms[idx])
                for idx, name in self.object_names.items()}


TASK_CLASSES: dict[str, type[KitchenEnv]] = {
    cls.task_name: cls for cls in (CoffeePressButton, TurnOffMicrowave, PnPCabToCounter)
}

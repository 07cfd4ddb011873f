"""Task registry: the three RoboCasa v0.2 kitchen tasks as data."""

from __future__ import annotations

from dataclasses import dataclass

from contract.lookup import check_name, lookup


@dataclass(frozen=True)
class TaskSpec:
    """One task: its instruction template ({obj} filled per episode), horizon and RoboCasa names."""

    name: str
    instruction: str
    horizon: int
    robocasa_v02_name: str
    robocasa_v1_name: str
    success: str  # human-readable success condition


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec("CoffeePressButton", "press the button on the coffee machine to serve coffee", 300,
                 "CoffeePressButton", "StartCoffeeMachine",
                 "start button touched by the gripper (latches) and eef > 0.15 m from it"),
        TaskSpec("TurnOffMicrowave", "press the stop button on the microwave", 500,
                 "TurnOffMicrowave", "TurnOffMicrowave",
                 "microwave off (stop button touched by the gripper) and eef > 0.15 m from the stop button"),
        TaskSpec("PnPCabToCounter", "pick the {obj} from the cabinet and place it on the counter", 500,
                 "PnPCabToCounter", "PickPlaceCabinetToCounter",
                 "object touches the counter and eef > 0.25 m from the object"),
    )
}

BACKENDS = ("builtin", "robocasa")


def list_tasks() -> list[str]:
    """Names of the registered tasks."""
    return list(TASKS)


def get_task(name: str) -> TaskSpec:
    """Look a task up by name; unknown names fail with the valid ones listed."""
    return lookup(TASKS, name, "task")


def check_backend(backend: str) -> str:
    """Validate a backend name."""
    return check_name(backend, BACKENDS, "backend")

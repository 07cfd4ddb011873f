"""The bridge's operating state: idle -> armed -> running <-> hold, and fault, left only by an operator reset.

idle: nothing is commanded. armed: the arm is commanded to stay where it is, ready to start. running: the
policy's (filtered) actions are commanded. hold: the arm is commanded to stay at the pose latched on entry; the
bridge returns to running by itself once the cause clears. fault: a robot reflex, a user stop or an operator
abort; the arm holds, and only `reset` (which runs the robot's error recovery) leaves it, to idle.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

log = logging.getLogger("bridge")


class Mode(enum.Enum):
    IDLE = "idle"
    ARMED = "armed"
    RUNNING = "running"
    HOLD = "hold"
    FAULT = "fault"


ALLOWED = {
    ("idle", "armed"), ("armed", "running"), ("running", "hold"), ("hold", "running"),
    ("armed", "idle"), ("running", "idle"), ("hold", "idle"),
    ("idle", "fault"), ("armed", "fault"), ("running", "fault"), ("hold", "fault"),
    ("fault", "idle"),
}


class TransitionError(ValueError):
    """An operator command that does not apply in the current state."""


@dataclass(frozen=True)
class Transition:
    time: float
    source: Mode
    target: Mode
    reason: str


class Supervisor:
    """The state machine; every transition is checked against ALLOWED, recorded and logged with its reason."""

    def __init__(self):
        self.mode = Mode.IDLE
        self.reason = ""
        self.history: list[Transition] = []

    def _go(self, target: Mode, reason: str, now: float) -> None:
        if (self.mode.value, target.value) not in ALLOWED:
            raise TransitionError(f"cannot go from {self.mode.value} to {target.value}")
        self.history.append(Transition(now, self.mode, target, reason))
        level = logging.WARNING if target in (Mode.HOLD, Mode.FAULT) else logging.INFO
        log.log(level, "%s -> %s: %s", self.mode.value, target.value, reason)
        self.mode, self.reason = target, reason

    def arm(self, now: float = 0.0) -> None:
        self._go(Mode.ARMED, "operator armed", now)

    def start(self, now: float = 0.0) -> None:
        self._go(Mode.RUNNING, "operator started", now)

    def stop(self, now: float = 0.0) -> None:
        self._go(Mode.IDLE, "operator stopped", now)

    def hold(self, reason: str, now: float = 0.0) -> None:
        """Enter hold from running; in hold already, only the reason is updated (not a new transition)."""
        if self.mode is Mode.HOLD:
            self.reason = reason
            return
        self._go(Mode.HOLD, reason, now)

    def resume(self, now: float = 0.0) -> None:
        self._go(Mode.RUNNING, "cause of the hold cleared", now)

    def fault(self, reason: str, now: float = 0.0) -> None:
        if self.mode is not Mode.FAULT:
            self._go(Mode.FAULT, reason, now)

    def reset(self, recover, now: float = 0.0) -> None:
        """Operator reset of a fault: runs `recover()` (the robot's error recovery); fault stays if it fails."""
        if self.mode is not Mode.FAULT:
            raise TransitionError(f"reset applies to a fault; the bridge is {self.mode.value}")
        try:
            ok = recover()
        except Exception as err:
            self.reason = f"error recovery failed: {type(err).__name__}: {err}"
            log.error(self.reason)
            return
        if ok is False:
            self.reason = "error recovery failed"
            log.error(self.reason)
            return
        self._go(Mode.IDLE, "operator reset (error recovery done)", now)

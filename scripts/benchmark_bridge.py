"""Bridge tick jitter at 15 Hz: the ROS-free core against a simulated arm, with the policy on a loopback server.

    python scripts/benchmark_bridge.py [--seconds 20] [--rate 15]

Cameras (3 x 640x480 RGB at 30 Hz) and robot state (100 Hz) arrive from their own threads, as ROS callbacks do;
the policy server runs in its own process with a zero-cost policy (so what is measured is the bridge, not a
model) and answers through policies.remote.RemotePolicy. Reported: how late each tick starts against its deadline
(jitter), the tick's own work, ticks skipped, holds, and the policy round trip seen by the bridge.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark_server import _serve  # noqa: E402

from bridge.config import BridgeConfig  # noqa: E402
from contract.embodiments import IMAGE_SIZE  # noqa: E402
from bridge.core import BridgeCore  # noqa: E402
from bridge.geometry import Pose  # noqa: E402
from bridge.loop import run_at_rate  # noqa: E402
from bridge.supervisor import Mode  # noqa: E402
from policies.remote import RemotePolicy  # noqa: E402

READY_Q = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])


class SimulatedArm:
    """Tracks the commanded pose with a first-order lag (time constant tau), like an impedance-controlled arm."""

    def __init__(self, pose: Pose, tau: float = 0.05):
        self.pose, self.target, self.tau = pose, pose, tau
        self.lock = threading.Lock()

    def command(self, pose: Pose) -> None:
        with self.lock:
            self.target = pose

    def advance(self, dt: float) -> Pose:
        with self.lock:
            a = 1 - np.exp(-dt / self.tau)
            self.pose = Pose(self.pose.pos + a * (self.target.pos - self.pose.pos), self.target.rot)
            return self.pose


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=15.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    ctx = mp.get_context("spawn")
    ports = ctx.Queue()
    server = ctx.Process(target=_serve, args=(IMAGE_SIZE, ports), daemon=True)
    server.start()
    stop = threading.Event()
    try:
        port = ports.get(timeout=60)
        config = BridgeConfig(rate_hz=args.rate)
        policy = RemotePolicy(f"ws://127.0.0.1:{port}", timeout_s=config.policy_timeout_s)
        core = BridgeCore(config, policy, task="press the stop button on the microwave")
        arm = SimulatedArm(Pose(np.array([0.4, 0.0, 0.4]), np.diag([1.0, -1.0, -1.0])))
        rng = np.random.default_rng(0)
        frames = {c: rng.integers(0, 256, (480, 640, 3), np.uint8) for c in ("left", "right", "wrist")}

        def cameras():
            while not stop.is_set():
                for name, frame in frames.items():
                    core.on_image(name, frame, time.monotonic())
                time.sleep(1 / 30)

        def robot():
            while not stop.is_set():
                pose = arm.advance(0.01)
                core.on_arm_state(pose, READY_Q, 2, time.monotonic())
                core.on_fingers([0.04, 0.04], time.monotonic())
                time.sleep(0.01)

        feeders = [threading.Thread(target=f, daemon=True) for f in (cameras, robot)]
        for t in feeders:
            t.start()
        time.sleep(0.3)
        core.arm(time.monotonic())
        core.start(time.monotonic())
        modes: list[Mode] = []

        def step(now: float) -> None:
            out = core.tick(now)
            modes.append(out.mode)
            if out.pose is not None:
                arm.command(out.pose)

        stats = run_at_rate(step, args.rate, ticks=int(args.seconds * args.rate))
        rtt = policy.last_timing.get("server_ms", float("nan"))
    finally:
        stop.set()
        server.terminate()
        server.join(5)
    holds = sum(1 for t in core.supervisor.history if t.target is Mode.HOLD)
    print(f"bridge at {args.rate:g} Hz for {args.seconds:g} s (3 cameras 640x480 -> 256x256, policy on loopback):")
    print(f"  {stats.summary()}")
    print(f"  modes: {modes.count(Mode.RUNNING)} running, {modes.count(Mode.HOLD)} hold ticks, {holds} hold "
          f"transition(s); chunk latency {core.scheduler.latency_ticks} tick(s); last server time {rtt:.1f} ms")
    if holds:
        print(f"  last hold: {core.supervisor.history[-1].reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

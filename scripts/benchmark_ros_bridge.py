"""Bridge tick jitter at 15 Hz through ROS 1: the simulated Franka (MuJoCo, its own process) on a private master,
the bridge node in this process, the policy on a loopback server with a zero-cost policy (what is measured is the
bridge and ROS, not a model).

    python scripts/benchmark_ros_bridge.py [--seconds 30] [--rate 15] [--image-size 256]

Reported: how late each tick starts against its deadline (jitter), the tick's own work, ticks skipped, holds,
and the machine's load average (other work on the CPU shows up in the jitter).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark_server import _serve  # noqa: E402

from bridge.config import BridgeConfig  # noqa: E402
from contract.embodiments import IMAGE_SIZE  # noqa: E402
from bridge.loop import run_at_rate  # noqa: E402
from bridge.ros1.launch import RosGraph, ros_missing  # noqa: E402
from bridge.ros1.node import Ros1Bridge  # noqa: E402
from bridge.supervisor import Mode  # noqa: E402
from policies.remote import RemotePolicy  # noqa: E402


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=15.0)
    parser.add_argument("--image-size", type=int, default=IMAGE_SIZE, help="the simulated cameras' frames (square)")
    parser.add_argument("--camera-rate", type=float, default=15.0)
    args = parser.parse_args(argv)
    if (missing := ros_missing()):
        print(f"error: {missing}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.ERROR)
    import rospy  # lazy: ROS 1 is an optional extra (checked above)

    ctx = mp.get_context("spawn")
    ports = ctx.Queue()
    server = ctx.Process(target=_serve, args=(IMAGE_SIZE, ports), daemon=True)
    server.start()
    config = BridgeConfig(rate_hz=args.rate)
    try:
        with tempfile.TemporaryDirectory() as tmp, RosGraph(tmp) as graph:
            graph.spawn("sim", [sys.executable, "-m", "bridge.ros1.sim_franka", "--image-size", str(args.image_size),
                                "--camera-rate", str(args.camera_rate)])
            port = ports.get(timeout=60)
            policy = RemotePolicy(f"ws://127.0.0.1:{port}", timeout_s=config.policy_timeout_s)
            rospy.init_node("benchmark_bridge", disable_signals=True)
            node = Ros1Bridge(config, policy, "press the stop button on the microwave", autostart=True)
            deadline = time.monotonic() + 600
            while node.core.mode is not Mode.RUNNING:  # the simulator builds its scene, then the bridge starts
                if time.monotonic() > deadline or graph.processes["sim"].poll() is not None:
                    tail = graph.log("sim").read_text().strip().splitlines()[-3:]
                    print(f"error: the bridge did not start; the simulator says: {' / '.join(tail)}", file=sys.stderr)
                    return 1
                node.step(time.monotonic())
                time.sleep(1 / args.rate)
            run_at_rate(node.step, args.rate, ticks=int(2 * args.rate))  # warm-up
            history = len(node.core.supervisor.history)
            modes: list[Mode] = []

            def step(now: float) -> None:
                modes.append(node.step(now).mode)

            stats = run_at_rate(step, args.rate, ticks=int(args.seconds * args.rate))
            load = os.getloadavg()
            node.core.close()
            rospy.signal_shutdown("benchmark done")
    finally:
        server.terminate()
        server.join(5)
    holds = [t for t in node.core.supervisor.history[history:] if t.target is Mode.HOLD]
    print(f"bridge through ROS 1 at {args.rate:g} Hz for {args.seconds:g} s (simulated Franka: 3 cameras "
          f"{args.image_size}x{args.image_size} at {args.camera_rate:g} Hz, state at 50 Hz; zero-cost policy on "
          f"loopback; load average {load[0]:.2f} on {os.cpu_count()} CPUs):")
    print(f"  {stats.summary()}")
    print(f"  modes: {modes.count(Mode.RUNNING)} running, {modes.count(Mode.HOLD)} hold ticks, {len(holds)} hold "
          f"transition(s); messages dropped {node.dropped}")
    if holds:
        print(f"  last hold: {holds[-1].reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

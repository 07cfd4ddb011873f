"""Policy-server round trip on loopback, beyond inference: 3 cameras at 256x256 + state + instruction per request.

    python scripts/benchmark_server.py [--requests 300] [--clients 1] [--image-size 256]

The server runs in its own process (as in deployment) with a policy whose chunk costs nothing, so the figures
are the link's own cost: msgpack-numpy encoding, websocket transfer both ways, request checks and batching. The
bar (DESIGN.md / issue 12): < 5 ms beyond inference. `beyond inference` = round trip minus the server's own
measured model time (infer_ms, reported in each reply).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contract.embodiments import ACTION_HORIZON, CAMERA_NAMES, IMAGE_SIZE, STATE_KEY, TASK_KEY, get_embodiment  # noqa: E402
from contract.spec import MIN_IMAGE_SIZE  # noqa: E402
from policies.remote import RemotePolicy  # noqa: E402
from policies.server import PolicyServer  # noqa: E402
from policies.wire import packb  # noqa: E402


class ZeroCostPolicy:
    """A ChunkPolicy whose chunk is zeros: isolates the server's and the link's time from the model's."""

    def __init__(self, image_size: int):
        self.embodiment = get_embodiment("robocasa_panda_omron")
        self.cameras = CAMERA_NAMES
        self.chunk_size = ACTION_HORIZON
        self.action_dim = self.embodiment.action_dim
        self.image_size = image_size
        self.source = "zero-cost benchmark policy"

    def predict_action_chunk(self, obs: dict) -> np.ndarray:
        return np.zeros((len(obs[STATE_KEY]), self.chunk_size, self.action_dim), np.float32)


def _serve(image_size: int, port_queue) -> None:
    server = PolicyServer(ZeroCostPolicy(image_size), port=0)
    asyncio.run(server.run(on_ready=lambda s: port_queue.put(s.port)))


def _percentiles(values: list[float]) -> str:
    q = np.percentile(values, [50, 90, 99])
    return f"median {q[0]:.2f} ms, p90 {q[1]:.2f} ms, p99 {q[2]:.2f} ms, mean {statistics.fmean(values):.2f} ms"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="timed requests per client")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--clients", type=int, default=1, help="concurrent clients (their requests are batched)")
    parser.add_argument("--image-size", type=int, default=IMAGE_SIZE)
    args = parser.parse_args(argv)
    if args.requests < 1 or args.clients < 1 or args.image_size < MIN_IMAGE_SIZE:
        print(f"error: --requests and --clients must be >= 1, --image-size >= {MIN_IMAGE_SIZE}", file=sys.stderr)
        return 2

    ctx = mp.get_context("spawn")
    ports = ctx.Queue()
    server = ctx.Process(target=_serve, args=(args.image_size, ports), daemon=True)
    server.start()
    try:
        port = ports.get(timeout=60)
        rng = np.random.default_rng(0)
        obs = {f"observation.images.{c}": rng.integers(0, 256, (args.image_size, args.image_size, 3), np.uint8)
               for c in CAMERA_NAMES}
        obs[STATE_KEY] = rng.standard_normal(16).astype(np.float32)
        obs[TASK_KEY] = "press the stop button on the microwave"
        size_kb = len(packb(obs)) / 1024
        rtts: list[list[float]] = [[] for _ in range(args.clients)]
        beyond: list[list[float]] = [[] for _ in range(args.clients)]
        batches: list[int] = []

        def client(i: int) -> None:
            with RemotePolicy(f"ws://127.0.0.1:{port}") as policy:
                for n in range(args.warmup + args.requests):
                    start = time.perf_counter()
                    policy.predict_action_chunk(obs)
                    rtt = 1000 * (time.perf_counter() - start)
                    if n >= args.warmup:
                        rtts[i].append(rtt)
                        beyond[i].append(rtt - policy.last_timing["infer_ms"])
                        batches.append(policy.last_timing["batch_size"])

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
    finally:
        server.terminate()
        server.join(5)
    all_rtt = [x for r in rtts for x in r]
    all_beyond = [x for r in beyond for x in r]
    if len(all_rtt) != args.clients * args.requests:
        print("error: a client failed (see its traceback above)", file=sys.stderr)
        return 1
    print(f"policy server on loopback: {args.clients} client(s) x {args.requests} requests, 3 cameras "
          f"{args.image_size}x{args.image_size} ({size_kb:.0f} KiB a request)")
    print(f"  round trip:             {_percentiles(all_rtt)}")
    print(f"  beyond inference:       {_percentiles(all_beyond)}  (bar: < 5 ms)")
    print(f"  throughput:             {len(all_rtt) / wall:.0f} requests/s; mean batch {statistics.fmean(batches):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

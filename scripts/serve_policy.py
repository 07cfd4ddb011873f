"""Serve a checkpoint to remote clients: `python scripts/serve_policy.py --checkpoint DIR [--port 8000]`.

Clients: `python rollout.py --policy ws://HOST:PORT ...`, the ROS bridge, or openpi's `openpi-client`
(`WebsocketClientPolicy(host, port).infer(obs)["actions"]`). Binds to 127.0.0.1 unless --host says otherwise; set
XVR_POLICY_TOKEN on both sides to require a shared token (the server refuses to listen beyond loopback without one
unless --insecure true).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contract.cli import parse_config_or_exit  # noqa: E402
from policies.server import TOKEN_ENV, PolicyServer  # noqa: E402
from policies.vla_policy import VLAPolicy  # noqa: E402

USAGE = """usage: python scripts/serve_policy.py --checkpoint DIR [--port 8000] [--host 127.0.0.1] [--device auto]
       (shared token: export XVR_POLICY_TOKEN=... here and on the client)"""

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServeConfig:
    """What to serve and how."""

    checkpoint: str = "latest"  # a checkpoint dir, a run dir (its newest) or "latest"
    host: str = "127.0.0.1"  # loopback by default; 0.0.0.0 serves the network (needs a token or --insecure)
    port: int = 8000
    device: str = "auto"  # auto = cuda when available
    seed: int = 0
    max_batch: int = 16  # observations per model call, gathered from concurrent requests
    batch_wait_ms: float = 0.0  # wait this long after a first request for others to share its call (0: only those queued)
    max_request_mb: float = 16.0  # larger frames close the connection (code 1009)
    insecure: bool = False  # allow a non-loopback host without a token


def main(argv: list[str] | None = None) -> int:
    config = parse_config_or_exit(ServeConfig(), sys.argv[1:] if argv is None else argv, USAGE)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from checkpoints.format import CheckpointError, resolve_checkpoint  # lazy: imports torch; --help stays torch-free

    token = os.environ.get(TOKEN_ENV, "")
    if config.host not in LOOPBACK and not token and not config.insecure:
        print(f"error: --host {config.host} serves the network; set {TOKEN_ENV} (on server and client) or pass "
              f"--insecure true", file=sys.stderr)
        return 2
    try:
        path = resolve_checkpoint(config.checkpoint).resolve()
        policy = VLAPolicy.from_checkpoint(path, device=None if config.device == "auto" else config.device,
                                           seed=config.seed)
        server = PolicyServer(policy, host=config.host, port=config.port, token=token,
                              max_request_bytes=int(config.max_request_mb * 2**20), max_batch=config.max_batch,
                              batch_wait_s=config.batch_wait_ms / 1000)
    except (CheckpointError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    def ready(s: PolicyServer) -> None:
        print(f"serving {path} ({s.metadata['embodiment']}, cameras {', '.join(s.metadata['cameras'])}, chunk "
              f"{s.metadata['chunk_size']}x{s.metadata['action_dim']}) on ws://{config.host}:{s.port} "
              f"(health: http://{config.host}:{s.port}/healthz; token {'required' if token else 'off'})", flush=True)

    try:
        asyncio.run(server.run(on_ready=ready))
    except OSError as err:
        print(f"error: cannot listen on {config.host}:{config.port}: {err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A policy served elsewhere (`scripts/serve_policy.py`), behind the same Policy interface as a local checkpoint.

Torch-free: the robot-side machine needs numpy, msgpack and websockets only.
"""

from __future__ import annotations

import os

import numpy as np
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import connect

from contract.embodiments import get_embodiment
from contract.spec import ObservationSpec
from policies.action_queue import ChunkExecution, ExecutionConfig
from policies.server import PROTOCOL, TOKEN_ENV
from policies.wire import packb, unpackb

REQUIRED_METADATA = ("protocol", "embodiment", "cameras", "action_dim", "chunk_size", "max_request_bytes")


def is_remote(spec: str) -> bool:
    """True for a policy given as a websocket URL (ws://HOST:PORT or wss://...)."""
    return spec.startswith(("ws://", "wss://"))


class RemotePolicy:
    """Client of a policy server: predict_action_chunk sends one request; select_action keeps the action queue here.

    A reply that does not come within `timeout_s` drops the connection (a late reply must never be taken for the
    next request's) and raises TimeoutError; the next call reconnects.
    """

    def __init__(self, url: str, *, token: str | None = None, execution: ExecutionConfig = ExecutionConfig(),
                 timeout_s: float = 30.0, connect_timeout_s: float = 10.0):
        if not is_remote(url):
            raise ValueError(f"a policy server address starts with ws:// or wss://; got {url!r}")
        self.url = url
        self.token = os.environ.get(TOKEN_ENV, "") if token is None else token
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._ws = None
        self.metadata = self._connect()
        meta = self.metadata
        self.embodiment = get_embodiment(meta["embodiment"])
        self.cameras = tuple(meta["cameras"])
        self.chunk_size = int(meta["chunk_size"])
        self.action_dim = int(meta["action_dim"])
        self.image_size = int(meta.get("image_size") or 0) or None
        self.demo_seeds = meta.get("demo_seeds") or {}
        self.source = f"{url} ({meta.get('checkpoint') or 'unnamed policy'})"
        self.chunks = ChunkExecution(execution, chunk_size=self.chunk_size)
        self.last_timing: dict = {}

    def _connect(self) -> dict:
        headers = {"Authorization": f"Api-Key {self.token}"} if self.token else None
        try:
            self._ws = connect(self.url, additional_headers=headers, compression=None, max_size=64 * 2**20,
                               open_timeout=self.connect_timeout_s)
            frame = self._ws.recv(timeout=self.connect_timeout_s)
        except InvalidStatus as err:
            status = err.response.status_code
            hint = f"; set {TOKEN_ENV} to the server's token" if status == 401 else ""
            raise ConnectionError(f"policy server at {self.url} refused the connection (HTTP {status}){hint}") from None
        except (OSError, TimeoutError, WebSocketException) as err:
            self._drop()
            raise ConnectionError(f"cannot reach the policy server at {self.url}: {type(err).__name__}: {err}") from None
        meta = unpackb(frame)
        missing = [k for k in REQUIRED_METADATA if not isinstance(meta, dict) or k not in meta]
        if missing:
            self._drop()
            raise ConnectionError(f"{self.url} is not a policy server of this project (metadata lacks "
                                  f"{', '.join(missing)})")
        return meta

    def _drop(self) -> None:
        if self._ws is not None:
            self._ws.close()
        self._ws = None

    def close(self) -> None:
        self._drop()

    def __enter__(self) -> RemotePolicy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def check_compatible(self, env: ObservationSpec) -> None:
        """One-line error when the served checkpoint was trained for another robot, camera set or image size."""
        served = ObservationSpec(embodiment=self.embodiment.name, cameras=self.cameras,
                                 image_size=self.image_size or env.image_size,  # 0 from the server: not recorded
                                 action_horizon=self.chunk_size)
        problem = served.mismatch(env, f"policy {self.source}")
        if problem:
            raise ValueError(problem)

    def reset(self, seed: int | None = None, slot: int = 0) -> None:
        """Start an episode in `slot`; the seed is not sent: the server draws noise from its own single stream."""
        self.chunks.reset(slot)

    def predict_action_chunk(self, obs: dict, slots: list[int] | None = None) -> np.ndarray:
        """(chunk, action_dim) for one observation, (B, chunk, action_dim) for a batched one; errors are one line.

        `slots` are not sent (see reset).
        """
        frame = packb(obs)
        limit = int(self.metadata["max_request_bytes"])
        if len(frame) > limit:
            raise ValueError(f"request of {len(frame)} bytes exceeds the server's limit of {limit} bytes "
                             f"(smaller images or batches, or serve with a larger --max-request-mb)")
        if self._ws is None:
            self._connect()
        try:
            self._ws.send(frame)
            reply = self._ws.recv(timeout=self.timeout_s)
        except TimeoutError:
            self._drop()
            raise TimeoutError(f"policy server at {self.url} sent no reply within {self.timeout_s:g} s") from None
        except ConnectionClosed as err:
            self._drop()
            raise ConnectionError(f"policy server at {self.url} closed the connection: {err}") from None
        if isinstance(reply, str):
            raise RuntimeError(f"policy server: {reply.removeprefix('error: ')}")
        data = unpackb(reply)
        actions = np.array(data["actions"], dtype=np.float32) if isinstance(data, dict) and "actions" in data else None
        batch = np.asarray(obs["observation.state"]).ndim == 2
        want = ((len(obs["observation.state"]),) if batch else ()) + (self.chunk_size, self.action_dim)
        if actions is None or actions.shape != want:
            got = None if actions is None else actions.shape
            raise RuntimeError(f"policy server replied with actions of shape {got}; expected {want}")
        self.last_timing = dict(data.get("server_timing") or {})
        return actions

    def select_action(self, obs: dict) -> np.ndarray:
        """The next action of the current chunk; asks the server for a new chunk when the queue needs one."""
        return self.chunks.select_one(obs, self.predict_action_chunk)

    def select_actions(self, observations: list[dict], slots: list[int]) -> np.ndarray:
        """(B, action_dim): each slot's next action; the slots needing a chunk share one request."""
        return self.chunks.select(observations, slots, self.predict_action_chunk)

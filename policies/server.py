"""A policy behind a websocket: openpi's wire protocol, checked requests, concurrent requests batched into one call.

Protocol (openpi's): on connect the server sends one binary msgpack-numpy frame of metadata; each binary frame the
client sends is an observation dict (one observation, or a batch with a leading dimension) and is answered by a
binary frame {"actions": (chunk, action_dim) or (B, chunk, action_dim) float32, "server_timing": {...}}. A bad
request is answered by a text frame "error: ..." and the connection stays open (openpi's client raises on a text
frame). A frame over the size limit closes that connection with code 1009. `GET /healthz` answers 200 "OK".
Authentication, when a token is set, is openpi's header `Authorization: Api-Key <token>`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus

import numpy as np
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from contract.embodiments import STATE_KEY, TASK_KEY
from policies.vla_policy import validate_observation
from policies.wire import WireError, packb, unpackb

log = logging.getLogger("policy_server")

PROTOCOL = "openpi-websocket-msgpack-numpy"
TOKEN_ENV = "XVR_POLICY_TOKEN"  # the shared token, for server and client alike (kept off the command line)
DEFAULT_MAX_REQUEST_BYTES = 16 * 2**20  # 3 x 256x256 views are ~0.6 MB; this leaves room for a batch of ~25


def server_metadata(policy, max_request_bytes: int, max_batch: int, auth: bool) -> dict:
    """What a client needs to build requests and read replies (sent once on connect)."""
    emb = policy.embodiment
    return {
        "protocol": PROTOCOL,
        "embodiment": emb.name,
        "cameras": list(policy.cameras),
        "image_keys": [f"observation.images.{c}" for c in policy.cameras],
        "state_key": STATE_KEY,
        "task_key": TASK_KEY,
        "state_dim": emb.state_dim,
        "state_layout": [{"name": s.name, "start": s.start, "stop": s.stop} for s in emb.state_layout],
        "action_dim": policy.action_dim,
        "action_layout": [{"name": s.name, "start": s.start, "stop": s.stop} for s in emb.action_layout],
        "chunk_size": policy.chunk_size,
        "image_size": int(policy.image_size) if getattr(policy, "image_size", None) else 0,
        "checkpoint": str(getattr(policy, "source", "") or ""),
        "demo_seeds": getattr(policy, "demo_seeds", None) or {},
        "max_request_bytes": max_request_bytes,
        "max_batch": max_batch,
        "auth": auth,
    }


@dataclass
class _Request:
    obs: dict
    rows: int
    batched: bool
    image_shape: tuple  # (H, W): only requests with equal image sizes share a model call
    future: asyncio.Future
    queued_at: float = field(default_factory=time.perf_counter)


class PolicyServer:
    """Serves a ChunkPolicy (predict_action_chunk on batched observations) to many clients at once."""

    def __init__(self, policy, *, host: str = "127.0.0.1", port: int = 8000, token: str = "",
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, max_batch: int = 16, batch_wait_s: float = 0.0):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1; got {max_batch}")
        if max_request_bytes < 1024:
            raise ValueError(f"max_request_bytes must be >= 1024; got {max_request_bytes}")
        self.policy = policy
        self.host, self.port = host, port
        self.token = token
        self.max_request_bytes = max_request_bytes
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_s
        self.metadata = server_metadata(policy, max_request_bytes, max_batch, auth=bool(token))
        self.model_calls = 0  # how many times the policy ran (batching makes this fewer than the requests)
        self.bad_requests = 0
        self._batcher: asyncio.Task | None = None

    async def run(self, on_ready=None, stop: asyncio.Event | None = None) -> None:
        """Serve until `stop` is set (or forever); `on_ready(self)` once listening (self.port is then the real one)."""
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy")  # one model call at a time
        self._batcher = asyncio.create_task(self._batch_loop())
        try:
            async with serve(self._handle, self.host, self.port, max_size=self.max_request_bytes, compression=None,
                             process_request=self._http) as server:
                self.port = server.sockets[0].getsockname()[1]
                if on_ready is not None:
                    on_ready(self)
                await (stop.wait() if stop is not None else asyncio.Future())
        finally:  # after the connections closed: requests still waiting on the batcher got their answers
            self._batcher.cancel()
            self._executor.shutdown(wait=False, cancel_futures=True)

    # -- HTTP side: health check and authentication, before the websocket handshake --------------------------------
    def _http(self, connection, request):
        if request.path == "/healthz":
            alive = self._batcher is not None and not self._batcher.done()
            return connection.respond(HTTPStatus.OK if alive else HTTPStatus.SERVICE_UNAVAILABLE,
                                      "OK\n" if alive else "batcher stopped\n")
        if self.token:
            given = request.headers.get("Authorization", "").encode("utf-8", "replace")
            if not hmac.compare_digest(given, f"Api-Key {self.token}".encode()):
                log.warning("refused %s: missing or wrong token", connection.remote_address)
                return connection.respond(HTTPStatus.UNAUTHORIZED, "missing or wrong token\n")
        return None

    # -- one connection --------------------------------------------------------------------------------------------
    async def _handle(self, ws) -> None:
        peer = ws.remote_address
        log.info("client %s connected", peer)
        try:
            await ws.send(packb(self.metadata))
            async for message in ws:
                await ws.send(await self._answer(message, peer))
        except ConnectionClosedError as err:
            log.warning("client %s: connection closed with an error: %s", peer, err)
        except ConnectionClosed:
            pass  # closed while a reply was on its way (the client left, or the server is shutting down)
        log.info("client %s disconnected", peer)

    async def _answer(self, message, peer) -> bytes | str:
        start = time.perf_counter()
        try:
            obs, rows, image_shape = self._parse(message)
        except Exception as err:  # the request boundary: whatever a client sends, it gets one line back
            self.bad_requests += 1
            log.warning("bad request from %s: %s", peer, err)
            return f"error: bad request: {err}"
        request = _Request(obs, rows or 1, rows is not None, image_shape, asyncio.get_running_loop().create_future())
        await self._queue.put(request)
        try:
            actions, timing = await request.future
        except Exception as err:
            log.error("policy failed for %s: %s: %s", peer, type(err).__name__, err)
            return f"error: policy failed: {type(err).__name__}: {err}"
        timing["server_ms"] = 1000 * (time.perf_counter() - start)
        return packb({"actions": actions, "server_timing": timing})

    def _parse(self, message) -> tuple[dict, int | None, tuple]:
        if isinstance(message, str):
            raise WireError("expected a binary msgpack frame; got a text frame")
        obs = unpackb(message)
        if not isinstance(obs, dict) or not all(isinstance(k, str) for k in obs):
            raise WireError(f"expected a map of string keys to values; got {type(obs).__name__}")
        rows = validate_observation(obs, self.policy.cameras, self.policy.embodiment.state_dim)
        if rows is not None and not 1 <= rows <= self.max_batch:
            raise ValueError(f"a request may carry 1..{self.max_batch} observations; got {rows}")
        image = obs[f"observation.images.{self.policy.cameras[0]}"]
        return obs, rows, tuple(image.shape[-3:-1])

    # -- batching --------------------------------------------------------------------------------------------------
    async def _batch_loop(self) -> None:
        while True:
            pending = [await self._queue.get()]
            if self.batch_wait_s > 0:
                await asyncio.sleep(self.batch_wait_s)
            while not self._queue.empty():  # everything that arrived while the previous call ran
                pending.append(self._queue.get_nowait())
            for group in _groups(pending, self.max_batch):
                await self._run_group(group)

    async def _run_group(self, group: list[_Request]) -> None:
        loop = asyncio.get_running_loop()
        obs = _stack(group, self.policy.cameras)
        rows = sum(r.rows for r in group)
        start = time.perf_counter()
        try:
            chunks = await loop.run_in_executor(self._executor, self.policy.predict_action_chunk, obs)
            chunks = np.asarray(chunks, dtype=np.float32)
            want = (rows, self.policy.chunk_size, self.policy.action_dim)
            if chunks.shape != want:
                raise RuntimeError(f"policy returned shape {chunks.shape}; expected {want}")
            if not np.isfinite(chunks).all():
                raise RuntimeError("policy returned non-finite (NaN/inf) actions")
        except Exception as err:
            for r in group:
                if not r.future.done():
                    r.future.set_exception(err)
            return
        finally:
            self.model_calls += 1
        infer_ms = 1000 * (time.perf_counter() - start)
        row = 0
        for r in group:
            part = chunks[row: row + r.rows]
            row += r.rows
            timing = {"infer_ms": infer_ms, "queue_ms": 1000 * (start - r.queued_at), "batch_size": rows}
            if not r.future.done():  # the client may have gone
                r.future.set_result((part if r.batched else part[0], timing))


def _groups(pending: list[_Request], max_batch: int) -> list[list[_Request]]:
    """Requests with the same image size, in arrival order, packed into groups of at most max_batch rows."""
    groups: list[list[_Request]] = []
    open_group: dict[tuple, list[_Request]] = {}
    for r in pending:
        group = open_group.get(r.image_shape)
        if group is None or sum(x.rows for x in group) + r.rows > max_batch:
            group = []
            groups.append(group)
            open_group[r.image_shape] = group
        group.append(r)
    return groups


def _stack(group: list[_Request], cameras) -> dict:
    """One batched observation from single and batched requests (images, state, instructions)."""
    def rows(r: _Request, key: str) -> np.ndarray:
        value = np.asarray(r.obs[key])
        return value if r.batched else value[None]

    obs = {key: np.concatenate([rows(r, key) for r in group])
           for key in [f"observation.images.{c}" for c in cameras]}
    obs[STATE_KEY] = np.concatenate([rows(r, STATE_KEY).astype(np.float32) for r in group])
    obs[TASK_KEY] = [t for r in group for t in (r.obs[TASK_KEY] if r.batched else [r.obs[TASK_KEY]])]
    return obs


class ServerThread:
    """A PolicyServer on its own event loop in a daemon thread: `with ServerThread(server) as s: s.port`."""

    def __init__(self, server: PolicyServer, start_timeout_s: float = 30.0):
        self.server = server
        self.start_timeout_s = start_timeout_s
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="policy-server", daemon=True)
        self._error: BaseException | None = None

    def _main(self) -> None:
        async def main():
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await self.server.run(on_ready=lambda _: self._ready.set(), stop=self._stop)

        try:
            asyncio.run(main())
        except BaseException as err:  # reported to the starting thread (e.g. the port is taken)
            self._error = err
            self._ready.set()

    def __enter__(self) -> PolicyServer:
        self._thread.start()
        if not self._ready.wait(self.start_timeout_s):
            raise RuntimeError(f"policy server did not start within {self.start_timeout_s:g} s")
        if self._error is not None:
            raise RuntimeError(f"policy server failed to start: {self._error}") from self._error
        return self.server

    def __exit__(self, *exc) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

"""Rollouts as Ray work (`python rollout.py --ray [ADDRESS]`): env workers as actors, the policy in actor(s).

RayPool has WorkerPool's interface (request / expect / gather / restart / close), so the runner's bookkeeping
(episode seeds, the JSONL, reruns, resume, the report) is one code path for both backends. Each env actor serves
the pipe worker's requests through the same EnvHost (one env per task, kept across episodes).

Faults: an actor that dies (a crash, its node lost) is restarted by Ray in place (max_restarts), on another node
when its own is gone. Its episode is queued again by the runner (attempt + 1), not by Ray's max_task_retries: a
transparent retry would hide the rerun from the record, fire the test fault hook forever and bypass the runner's
give-up-after-max_reruns rule. A hung actor, or one whose env raised, is replaced by a fresh actor.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from policies.action_queue import ChunkExecution
from policies.vla_policy import VLAPolicy
from rollouts.worker import EnvHost, WorkerSpec

MISSING = "--ray needs Ray: .venv/bin/pip install -e '.[ray]'"
CONNECT_TIMEOUT_S = 15.0
REPO_ROOT = Path(__file__).resolve().parent.parent


def import_ray():
    """The ray module, or a one-line ValueError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ValueError(MISSING) from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _speaks_grpc(target: tuple[str, int], timeout_s: float) -> bool:
    """Whether host:port answers an HTTP/2 preface with a SETTINGS frame, as Ray's GCS and client server do.

    Raises OSError when nothing listens or the host is unreachable. Checked before ray.init, which would otherwise
    retry a wrong port for a minute, printing a warning per retry.
    """
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS
    with socket.create_connection(target, timeout=timeout_s) as sock:
        sock.settimeout(min(timeout_s, 5.0))
        try:
            sock.sendall(preface)
            head = sock.recv(9)
        except (socket.timeout, ConnectionError):
            return False
    return len(head) >= 4 and head[3] == 0x04


@contextmanager
def ray_session(address: str):
    """Connect to Ray for one evaluation: "" / "local" / "true" start one on this machine, "auto" or
    HOST:PORT or ray://HOST:PORT join a cluster; already connected (tests, notebooks) reuses the connection.

    Unreachable addresses are a one-line ValueError within CONNECT_TIMEOUT_S, never a hang.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    address = "" if address in ("", "local", "true") else address
    where = f"--ray {address}" if address else "--ray (local)"
    if address and address != "auto":
        target = _host_port(address)
        if target is None:
            raise ValueError(f"{where}: not an address; use auto, HOST:PORT or ray://HOST:PORT "
                             f"(or --ray alone for a local Ray)")
        try:
            grpc = _speaks_grpc(target, CONNECT_TIMEOUT_S)
        except OSError as err:
            raise ValueError(f"{where}: cannot reach a Ray cluster there ({err.strerror or err}); start one with "
                             f"`ray start --head` or check the address") from None
        if not grpc:
            raise ValueError(f"{where}: something answers there, but not a Ray head (no gRPC); check the address "
                             f"and port (`ray status` on the head prints them)")
    if address.startswith("ray://"):
        kwargs = dict(address=address)  # Ray Client takes fewer options
    else:
        kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                      **({"address": address} if address else {}))
    outcome: dict = {}

    def init():
        try:
            outcome["ok"] = ray.init(**kwargs)
        except Exception as err:  # noqa: BLE001 (reported as one line below)
            outcome["error"] = err

    if address:
        # ray.init can still wait a long time (a head that accepts but never finishes the handshake): bound it.
        thread = threading.Thread(target=init, daemon=True)
        thread.start()
        thread.join(CONNECT_TIMEOUT_S)
    else:
        init()  # in this thread: the processes a local start spawns die with the thread that spawned them
    if "error" in outcome:
        raise ValueError(f"{where}: could not connect: {_first_line(outcome['error'])}") from None
    if "ok" not in outcome:
        raise ValueError(f"{where}: no answer from Ray within {CONNECT_TIMEOUT_S:.0f} s; is a Ray head running there?")
    try:
        yield ray
    finally:
        ray.shutdown()


def worker_runtime_env() -> dict:
    """What actors need to import the project and its test stand-ins, wherever the raylet started them.

    On other nodes this assumes the repository at the same path (a shared file system or the same image).
    """
    paths = [str(REPO_ROOT)] + [p for p in sys.path if p and os.path.isdir(p) and not p.startswith(sys.prefix)
                                and "site-packages" not in p and p != str(REPO_ROOT)]
    env = {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}
    for name in ("MUJOCO_GL", "PYOPENGL_PLATFORM", "ROBOCASA_PATH"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    return {"env_vars": env}


class EnvActor:
    """A Ray actor around an EnvHost: one env per task, kept across the episodes it is given."""

    def __init__(self, worker_id: int, spec: WorkerSpec):
        self.host = EnvHost(worker_id, spec)

    def call(self, message: tuple) -> tuple:
        return self.host.handle(message)

    def node_id(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()


class RayPool:
    """N env actors behind WorkerPool's interface; actors are spread over the cluster's nodes."""

    def __init__(self, num_workers: int, spec: WorkerSpec):
        ray = self._ray = import_ray()
        self.spec = spec
        self.restarts = 0
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        # More workers than cores is allowed (the pool allows 4x): share cores rather than queue actors forever.
        per_actor = max(0.01, min(1.0, int(100 * cpus / num_workers) / 100))
        self._options = dict(num_cpus=per_actor, max_restarts=-1, max_task_retries=0, scheduling_strategy="SPREAD",
                             runtime_env=worker_runtime_env())
        self._cls = ray.remote(EnvActor)
        self._actors = [self._start(i) for i in range(num_workers)]
        self._refs: list[deque] = [deque() for _ in range(num_workers)]
        self._deadlines: list[float | None] = [None] * num_workers
        self._last: list[tuple | None] = [None] * num_workers  # (message, timeout_s) of the outstanding request
        # Calls made right after Ray restarted an actor in place can fail with "the actor was restarted" before
        # they ever ran there: such a call is sent again (up to this many times), not counted as another failure.
        self._resends: list[int] = [0] * num_workers

    def _start(self, worker_id: int):
        return self._cls.options(**self._options).remote(worker_id, self.spec)

    def __len__(self) -> int:
        return len(self._actors)

    def request(self, worker_id: int, message: tuple, timeout_s: float) -> None:
        actor = self._actors[worker_id]
        self._last[worker_id] = (message, timeout_s)
        if message[0] == "episode":  # two calls, two replies, as the pipe worker's "started" then "episode"
            refs = [actor.call.remote(("begin_episode", message[1])), actor.call.remote(("run_episode",))]
        else:
            refs = [actor.call.remote(message)]
        self._refs[worker_id] = deque(refs)
        self._deadlines[worker_id] = time.monotonic() + timeout_s

    def expect(self, worker_id: int, timeout_s: float) -> None:
        """Wait for the next reply to the same request, with a fresh deadline."""
        self._deadlines[worker_id] = time.monotonic() + timeout_s

    def gather(self, first_only: bool = False) -> dict[int, tuple]:
        """Replies from every outstanding request (first_only: the first ones); failures are ('failed', reason)."""
        ray = self._ray
        replies: dict[int, tuple] = {}
        while True:
            if first_only and replies:
                return replies
            now = time.monotonic()
            for i, deadline in enumerate(self._deadlines):
                if deadline is not None and now >= deadline:
                    replies[i] = ("failed", f"worker {i} timed out (no reply in the allowed time; hung env?)")
                    self.restart(i)
            pending = {self._refs[i][0]: i for i, d in enumerate(self._deadlines) if d is not None}
            if not pending or (first_only and replies):
                return replies
            timeout = max(0.0, min(d for d in self._deadlines if d is not None) - now)
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=timeout)
            for ref in ready:
                i = pending[ref]
                self._refs[i].popleft()
                self._deadlines[i] = None
                try:
                    reply = ray.get(ref)
                except ray.exceptions.ActorDiedError as err:  # gone for good (e.g. its constructor failed)
                    replies[i] = ("failed", f"worker {i} died ({_first_line(err)})")
                    self.restart(i)
                    continue
                except ray.exceptions.RayError as err:  # crashed or its node was lost: Ray restarts it in place
                    if self._resends[i] and isinstance(err, ray.exceptions.ActorUnavailableError):
                        self._resends[i] -= 1
                        self.request(i, *self._last[i])
                        continue
                    replies[i] = ("failed", f"worker {i} died ({_first_line(err)})")
                    self._refs[i].clear()
                    self._resends[i] = 3
                    self.restarts += 1
                    continue
                self._resends[i] = 0
                if reply[0] == "error":
                    replies[i] = ("failed", f"worker {i}: {reply[1]}")
                    self.restart(i)
                else:
                    replies[i] = reply

    def restart(self, worker_id: int) -> None:
        """Replace the actor with a fresh one (a new handle: no call can reach the old, dying process)."""
        self._ray.kill(self._actors[worker_id], no_restart=True)
        self._actors[worker_id] = self._start(worker_id)
        self._refs[worker_id].clear()
        self._deadlines[worker_id] = None
        self.restarts += 1

    def node_ids(self) -> list[str]:
        """The Ray node each worker runs on now (benchmarks: episodes per node)."""
        return self._ray.get([a.node_id.remote() for a in self._actors])

    def close(self) -> None:
        _kill_all(self._ray, self._actors)

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:200]}" if text else type(err).__name__


def _load_vla(source: str, ablate: str):
    return VLAPolicy.from_checkpoint(source, ablate=ablate)  # device: the actor's GPU when it was given one


def _same_policy(policy):
    return policy


class PolicyActor:
    """Holds one policy copy; answers batched chunk requests and keeps the noise streams of the slots it serves."""

    def __init__(self, factory):
        self.policy = factory()

    def reset(self, seed: int | None, slot: int) -> None:
        self.policy.reset(seed=seed, slot=slot)

    def predict(self, obs: dict, slots: list[int] | None = None) -> np.ndarray:
        return np.asarray(self.policy.predict_action_chunk(obs, slots=slots))


class RayPolicy:
    """A ChunkPolicy whose chunks come from policy actor(s), on GPU nodes when the cluster has GPUs.

    The action queues stay here, in the runner's process (the wrapped policy's execution settings); the envs
    needing a chunk are batched into one call, as with a local policy; with several actors the batch is split
    between them, each slot always to the same actor (slot mod actors), which keeps its episode's noise stream.
    A checkpoint policy is reloaded from its directory in each actor (the path must be readable there); any other
    policy is shipped as a pickled copy.
    """

    def __init__(self, policy, num_actors: int = 1):
        ray = self._ray = import_ray()
        self.chunk_size = getattr(policy, "chunk_size", None)
        self.action_dim = getattr(policy, "action_dim", None)
        self.image_size = getattr(policy, "image_size", None)
        self.chunks = ChunkExecution(policy.chunks.config, chunk_size=self.chunk_size)
        source = getattr(policy, "source", "")
        if type(policy).__name__ == "VLAPolicy" and source and Path(source).is_dir():
            factory = functools.partial(_load_vla, source, getattr(policy, "ablate", ""))
        else:
            factory = functools.partial(_same_policy, policy)
        gpus = float(ray.cluster_resources().get("GPU", 0.0))
        num_gpus = 0.0 if not gpus else min(1.0, gpus / num_actors)
        options = dict(num_cpus=0, num_gpus=num_gpus, max_restarts=-1, max_task_retries=-1,
                       runtime_env=worker_runtime_env())
        cls = ray.remote(PolicyActor)
        self._actors = [cls.options(**options).remote(factory) for _ in range(num_actors)]

    def reset(self, seed: int | None = None, slot: int = 0) -> None:
        """Start an episode in `slot`: its queue here, its noise stream in the actor serving the slot."""
        self.chunks.reset(slot)
        self._actors[slot % len(self._actors)].reset.remote(seed, slot)  # runs before the slot's next predict

    def predict_action_chunk(self, obs: dict, slots: list[int] | None = None) -> np.ndarray:
        """Each row from its slot's actor (no slots: the batch split evenly between the actors)."""
        ray = self._ray
        n, actors = len(obs["observation.state"]), len(self._actors)
        owner = [slot % actors for slot in slots] if slots is not None else [i * actors // n for i in range(n)]
        parts = {a: [i for i in range(n) if owner[i] == a] for a in sorted(set(owner))}
        refs = [self._actors[a].predict.remote(_take(obs, rows), None if slots is None else [slots[i] for i in rows])
                for a, rows in parts.items()]
        try:
            chunks = np.concatenate(ray.get(refs))
        except ray.exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None)
            raise (cause if isinstance(cause, Exception) else RuntimeError(_first_line(err))) from None
        ordered = np.empty_like(chunks)
        ordered[[i for rows in parts.values() for i in rows]] = chunks
        return ordered

    def select_action(self, obs: dict) -> np.ndarray:
        return self.chunks.select_one(obs, self.predict_action_chunk)

    def select_actions(self, observations: list[dict], slots: list[int]) -> np.ndarray:
        return self.chunks.select(observations, slots, self.predict_action_chunk)

    def close(self) -> None:
        _kill_all(self._ray, self._actors)


def _kill_all(ray, actors) -> None:
    """Kill actors for good (no restart); an actor already gone is fine."""
    for actor in actors:
        try:
            ray.kill(actor, no_restart=True)
        except Exception:
            pass


def _take(obs: dict, rows: list[int]) -> dict:
    return {k: [v[i] for i in rows] if isinstance(v, list) else v[rows] for k, v in obs.items()}


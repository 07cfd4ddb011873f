"""A pool of env worker processes: send requests, gather every reply (lock-step) or the first ones, restart the failed."""

from __future__ import annotations

import multiprocessing as mp
import time
from multiprocessing.connection import wait

from rollouts.worker import WorkerSpec, worker_main


class WorkerFailure(RuntimeError):
    """A worker that died, hung past its deadline, or reported an env error."""


class _Handle:
    def __init__(self, process, conn):
        self.process, self.conn = process, conn
        self.deadline: float | None = None  # set while a request is outstanding


class WorkerPool:
    """N worker processes; `request` sends, `gather` collects replies (or failures) from all outstanding ones."""

    def __init__(self, num_workers: int, spec: WorkerSpec):
        # spawn, not fork: a forked child would inherit the parent's torch threads and GL state.
        self._ctx = mp.get_context("spawn")
        self.spec = spec
        self.restarts = 0
        self._workers: list[_Handle] = [self._spawn(i) for i in range(num_workers)]

    def __len__(self) -> int:
        return len(self._workers)

    def _spawn(self, worker_id: int) -> _Handle:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(target=worker_main, args=(worker_id, self.spec, child), daemon=True,
                                    name=f"rollout-worker-{worker_id}")
        process.start()
        child.close()
        return _Handle(process, parent)

    def request(self, worker_id: int, message: tuple, timeout_s: float) -> None:
        handle = self._workers[worker_id]
        handle.deadline = time.monotonic() + timeout_s
        try:
            handle.conn.send(message)
        except (BrokenPipeError, OSError):
            pass  # a dead worker is noticed by gather through its sentinel

    def expect(self, worker_id: int, timeout_s: float) -> None:
        """Wait for one more reply to the same request (a worker that reports progress), with a fresh deadline."""
        self._workers[worker_id].deadline = time.monotonic() + timeout_s

    def gather(self, first_only: bool = False) -> dict[int, tuple]:
        """Wait for every outstanding request (first_only: for whichever answer first; the rest stay outstanding).

        A failed worker's reply is ('failed', reason) and it is restarted.
        """
        replies: dict[int, tuple] = {}
        while True:
            if first_only and replies:
                return replies
            pending = {i: h for i, h in enumerate(self._workers) if h.deadline is not None}
            if not pending:
                return replies
            now = time.monotonic()
            for i, h in pending.items():
                if now >= h.deadline:
                    replies[i] = ("failed", f"worker {i} timed out (no reply in the allowed time; hung env?)")
                    self.restart(i)
            pending = {i: h for i, h in enumerate(self._workers) if h.deadline is not None}
            if not pending or (first_only and replies):
                return replies
            timeout = max(0.0, min(h.deadline for h in pending.values()) - now)
            ready = set(wait([h.conn for h in pending.values()] + [h.process.sentinel for h in pending.values()], timeout))
            for i, h in pending.items():
                if h.conn in ready:
                    try:
                        reply = h.conn.recv()
                    except (EOFError, OSError):
                        reply = None
                    if reply is not None:
                        h.deadline = None
                        replies[i] = reply if reply[0] != "error" else ("failed", f"worker {i}: {reply[1]}")
                        if reply[0] == "error":
                            self.restart(i)
                        continue
                if h.conn in ready or h.process.sentinel in ready:
                    h.process.join(timeout=1)
                    code = h.process.exitcode
                    replies[i] = ("failed", f"worker {i} died (exit code {code})")
                    self.restart(i)

    def restart(self, worker_id: int) -> None:
        """Kill a worker (if alive) and start a fresh one in its slot."""
        old = self._workers[worker_id]
        if old.process.is_alive():
            old.process.kill()
        old.process.join(timeout=5)
        old.conn.close()
        self._workers[worker_id] = self._spawn(worker_id)
        self.restarts += 1

    def close(self) -> None:
        for h in self._workers:
            try:
                h.conn.send(("close",))
            except (BrokenPipeError, OSError):
                pass
        deadline = time.monotonic() + 10
        for h in self._workers:
            h.process.join(timeout=max(0.1, deadline - time.monotonic()))
            if h.process.is_alive():
                h.process.kill()
                h.process.join(timeout=5)
            h.conn.close()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

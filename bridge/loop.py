"""A fixed-rate loop on absolute deadlines (no drift), recording how late each tick started."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger("bridge")


@dataclass
class LoopStats:
    """Per-tick start lateness (s past its deadline), work time (s), and ticks skipped because the loop fell behind."""

    lateness: list[float] = field(default_factory=list)
    work: list[float] = field(default_factory=list)
    skipped: int = 0

    def summary(self) -> str:
        if not self.lateness:
            return "no ticks"
        late = 1000 * np.asarray(self.lateness)
        work = 1000 * np.asarray(self.work)
        return (f"{len(late)} ticks; start jitter median {np.median(late):.2f} ms, p99 {np.percentile(late, 99):.2f} "
                f"ms, max {late.max():.2f} ms; tick work median {np.median(work):.2f} ms, max {work.max():.2f} ms; "
                f"skipped {self.skipped}")


def run_at_rate(step, rate_hz: float, ticks: int | None = None, should_stop=lambda: False,
                clock=time.monotonic, sleep=time.sleep) -> LoopStats:
    """Call step(now) at rate_hz until `ticks` ran or should_stop(); a tick more than one period late is skipped
    (the next deadline is kept) rather than run in a burst."""
    period = 1.0 / rate_hz
    stats = LoopStats()
    start = clock()
    k = 0
    while (ticks is None or len(stats.lateness) < ticks) and not should_stop():
        deadline = start + k * period
        now = clock()
        if now < deadline:
            sleep(deadline - now)
            now = clock()
        if now - deadline > period:
            missed = int((now - deadline) // period)
            stats.skipped += missed
            log.warning("loop fell %d tick(s) behind", missed)
            k += missed
            continue
        stats.lateness.append(now - deadline)
        step(now)
        stats.work.append(clock() - now)
        k += 1
    return stats

"""All performance bars in one place: runs the area benchmarks one after another and prints their figures.

    python scripts/benchmark.py                 # every area, CPU-sized defaults
    python scripts/benchmark.py sim model       # some areas
    python scripts/benchmark.py rollout -- --policy expert   # extra flags go to the (single) area named

Areas: sim (env steps/s, wrapper overhead, reset time, expert success), model (parameter counts, chunk latency
split), train (samples/s cached vs through the backbone), rollout (episodes/hour with 1 and 2 workers, policy
and runner shares), server (policy-server round trip on loopback, beyond inference). Run on a quiet machine: they
measure wall time.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
AREAS = {
    "sim": ["benchmark_sim.py", "--episodes", "50"],
    "model": ["benchmark_model.py"],
    "train": ["benchmark_train.py"],
    # The rollout benchmark evaluates the newest checkpoint (python train_vla.py makes one).
    "rollout": ["benchmark_rollout.py"],
    "server": ["benchmark_server.py"],
}


def main(argv: list[str]) -> int:
    extra: list[str] = []
    if "--" in argv:
        argv, extra = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    areas = argv or list(AREAS)
    unknown = [a for a in areas if a not in AREAS]
    if unknown:
        print(f"error: unknown area {unknown[0]!r}; valid: {', '.join(AREAS)}", file=sys.stderr)
        return 2
    if extra and len(areas) != 1:
        print("error: flags after -- go to one area; name exactly one", file=sys.stderr)
        return 2
    failed = []
    for area in areas:
        script, *defaults = AREAS[area]
        print(f"\n===== {area}: {script} {' '.join(defaults + extra)}", flush=True)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, str(SCRIPTS / script), *defaults, *extra])
        print(f"===== {area}: exit {done.returncode} after {time.perf_counter() - start:.0f} s", flush=True)
        if done.returncode != 0:
            failed.append(area)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

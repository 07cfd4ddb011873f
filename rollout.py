"""Evaluate a policy in simulation: `python rollout.py --task TurnOffMicrowave` (see `--help`)."""

import sys

from rollouts.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""Train a VLA policy: `python train_vla.py` (see `python train_vla.py --help`; multi-GPU: accelerate launch / torchrun)."""

import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")  # the default run may first collect demos in simulation
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from vla.train.cli import main

if __name__ == "__main__":
    sys.exit(main())

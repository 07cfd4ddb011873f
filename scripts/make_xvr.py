"""Generate cross-view (XVR) questions of all 8 task types from the simulator, in the published row layout.

    python scripts/make_xvr.py --out data/xvr --samples 2000
    python scripts/make_xvr.py --out data/xvr-smoke --samples 100 --image-size 64 --max-steps 80

Each scene (a kitchen task on one scene seed) is a scripted expert's episode: the robot's left/right/wrist cameras
over time give the robot-domain questions, random calibrated camera rigs rendered with depth give the
general-domain ones (vla/xvr/). Train, valid and eval come from disjoint scene seeds. Rerunning the same command
resumes; other settings on an existing --out are refused.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")

from contract.cli import parse_config_or_exit  # noqa: E402
from vla.vqa.format import VQAFormatError  # noqa: E402
from vla.xvr.generate import XVRConfig, generate  # noqa: E402


def main(argv=None) -> int:
    try:
        cfg = parse_config_or_exit(XVRConfig(), sys.argv[1:] if argv is None else argv, __doc__)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        generate(cfg)
    except (ValueError, VQAFormatError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

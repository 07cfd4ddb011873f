#!/usr/bin/env bash
# Create .venv in the repo root and install the project with everything it needs (CPU or GPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, so later resolution does not pick a different build; PyPI's 2.14.1 serves CPU and GPU machines alike.
.venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install -q -e ".[dev,ray]"  # ray: rollout.py --ray and its tests (~15 s, ~250 MB)
# lerobot's dataset code only, without its conflicting pins (see pyproject.toml).
.venv/bin/python -m pip install -q --no-deps "lerobot==0.4.4"
# ROS 1 (Debian packages) for the ROS bridge and its integration test; XVR_SKIP_ROS=1 skips it.
[ "${XVR_SKIP_ROS:-0}" = 1 ] || bash scripts/setup_ros.sh
.venv/bin/python -c "import torch, transformers, robosuite, mujoco; from lerobot.datasets.lerobot_dataset import LeRobotDataset" 2>/dev/null \
  && echo "setup: .venv ready (torch $(.venv/bin/python -c 'import torch; print(torch.__version__)'))"

"""A process that renders first can still import the ML stack (torchvision loads triton's own LLVM)."""

import subprocess
import sys

SCRIPT = """
import envs
env = envs.make("CoffeePressButton", image_size=32)
obs, _ = env.reset(seed=0)
import torchvision
from lerobot.datasets.lerobot_dataset import LeRobotDataset
print("ok", obs["observation.images.wrist"].shape)
env.close()
"""


def test_torchvision_imports_after_an_egl_context_exists():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ok (32, 32, 3)" in done.stdout

"""An env nobody closed still lets the interpreter exit cleanly: no EGL/OpenGL tracebacks at exit."""

import os
import subprocess
import sys

NEVER_CLOSED = "import envs; e = envs.make('TurnOffMicrowave'); e.reset(seed=0)"
# An XVR data worker keeps its env and both renderers (robot cameras, rig views) for the life of the process.
XVR_WORKER_NEVER_CLOSED = "from vla.xvr.generate import _worker_env; _worker_env('TurnOffMicrowave', 32)"

# mujoco terminates its EGL display at exit; a context freed after that prints tracebacks.
CLOSED_BEFORE_TERMINATE = """
import envs
from mujoco.egl import egl_ext as EGL  # the module mujoco's EGL context calls through

terminate = EGL.eglTerminate
def checked_terminate(display):
    print("renderer closed at eglTerminate:", env.unwrapped.sim.image_renderer._closed)
    return terminate(display)
EGL.eglTerminate = checked_terminate  # before the first context, when mujoco registers it with atexit

env = envs.make("CoffeePressButton", image_size=32)
env.reset(seed=0)
print("renderer closed:", env.unwrapped.sim.image_renderer._closed)
"""


def run(script, env):
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr[-2000:]
    return done.stdout


def test_an_env_never_closed_exits_cleanly_without_mujoco_gl_set():
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    run(NEVER_CLOSED, env)


def test_an_xvr_worker_never_closed_exits_cleanly():
    run(XVR_WORKER_NEVER_CLOSED, {**os.environ, "MUJOCO_GL": "egl"})


def test_open_renderers_are_closed_before_the_egl_display_is_terminated():
    out = run(CLOSED_BEFORE_TERMINATE, {**os.environ, "MUJOCO_GL": "egl"})
    assert "renderer closed: False" in out and "renderer closed at eglTerminate: True" in out

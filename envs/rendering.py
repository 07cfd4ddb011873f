"""Headless multi-camera rendering with the measured fast settings (REFERENCE.md section 5)."""

from __future__ import annotations

import atexit
import importlib.util
import os
import weakref

import mujoco
import numpy as np


def _load_triton_before_mesa() -> None:
    """Load triton's bundled LLVM before Mesa's llvmpipe (the EGL software renderer) brings its own.

    In the other order, a later `import torchvision` (which pulls in triton with CUDA builds of torch, lerobot
    and the model code do this) dies with a segfault inside libtriton. Loaded first, both coexist.
    """
    if importlib.util.find_spec("triton") is not None:
        import triton._C.libtriton  # noqa: F401



# Once Mesa's llvmpipe (the software renderer) has made a context, its worker threads hold locks for the life of
# the process. A child forked after that (multiprocessing's default on Linux, e.g. gymnasium.make_vec with
# vectorization_mode="async") inherits the locks without the threads and hangs forever making its own context;
# such a child fails with FORKED_AFTER_SOFTWARE_GL instead. LP_NUM_THREADS=0 runs llvmpipe without threads.
FORKED_AFTER_SOFTWARE_GL = (
    "this process was forked after its parent started Mesa's software renderer, and rendering here would hang; "
    "start workers with the 'spawn' or 'forkserver' multiprocessing context (gymnasium.make_vec: "
    "vector_kwargs={'context': 'spawn'}) or before the parent renders"
)
_software_gl_started = False
_forked_after_software_gl = False


def _after_fork_in_child() -> None:
    global _forked_after_software_gl
    _forked_after_software_gl = _software_gl_started
    _open_renderers.clear()  # the parent's contexts: not this process's to free at its exit


os.register_at_fork(after_in_child=_after_fork_in_child)


def _threaded_software_gl() -> bool:
    """Whether the current GL context is Mesa's llvmpipe with worker threads."""
    if os.environ.get("LP_NUM_THREADS") == "0":
        return False
    try:
        from OpenGL import GL

        return b"llvmpipe" in (GL.glGetString(GL.GL_RENDERER) or b"")
    except Exception:  # no answer: assume the worst, a refusal beats a hang
        return True


# Renderers nobody closed are closed at exit, before mujoco's EGL display is terminated: freeing a context after
# that (or while the interpreter tears modules down) prints EGL/OpenGL tracebacks. atexit runs handlers last-in
# first-out, so ours is registered after the first context is made, which is when mujoco registers eglTerminate.
# Any object owning a mujoco.Renderer registers itself with close_at_exit() and forgets itself on close().
_open_renderers: weakref.WeakSet = weakref.WeakSet()
_closes_at_exit = False


def _close_open_renderers() -> None:
    for renderer in list(_open_renderers):
        renderer.close()


class FastRenderer:
    """Renders named cameras of one model into uint8 HxWx3 arrays; call close() when done."""

    def __init__(self, model: mujoco.MjModel, cameras: dict[str, str], height: int, width: int):
        global _software_gl_started
        if _forked_after_software_gl:
            raise RuntimeError(FORKED_AFTER_SOFTWARE_GL)
        # Multisampling is the single biggest cost of software offscreen rendering; it must be off before the
        # render context is made, and the offscreen buffer only as large as the images.
        _load_triton_before_mesa()
        model.vis.quality.offsamples = 0
        model.vis.global_.offwidth = width
        model.vis.global_.offheight = height
        self._renderer = mujoco.Renderer(model, height=height, width=width)
        _software_gl_started = _software_gl_started or _threaded_software_gl()  # the new context is current
        scene = self._renderer.scene
        # Reflections alone double the cost; shadows cost ~100 ms per camera per light.
        flags = mujoco.mjtRndFlag
        for flag in (flags.mjRND_SHADOW, flags.mjRND_REFLECTION, flags.mjRND_SKYBOX):
            scene.flags[flag] = 0
        self._option = mujoco.MjvOption()
        self._camera_ids = {key: model.camera(name).id for key, name in cameras.items()}
        self._closed = False
        close_at_exit(self)

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(self._camera_ids)

    def render(self, data: mujoco.MjData) -> dict[str, np.ndarray]:
        """One image per camera key, each a fresh uint8 (H, W, 3) array."""
        images = {}
        for key, cam_id in self._camera_ids.items():
            self._renderer.update_scene(data, camera=cam_id, scene_option=self._option)
            images[key] = self._renderer.render()
        return images

    def close(self) -> None:
        """Free the GL context now (otherwise it is freed at interpreter exit)."""
        if not self._closed:
            self._renderer.close()
            self._closed = True
            forget_at_exit(self)


def close_at_exit(renderer) -> None:
    """Close `renderer` (anything with close()) at interpreter exit unless it was closed before: its close() must
    call forget_at_exit(self). Register after its GL context is made."""
    global _closes_at_exit
    _open_renderers.add(renderer)
    if not _closes_at_exit:
        atexit.register(_close_open_renderers)
        _closes_at_exit = True


def forget_at_exit(renderer) -> None:
    _open_renderers.discard(renderer)

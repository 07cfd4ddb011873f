"""Starting a private ROS 1 graph on loopback for tests and benchmarks: a master on a free port, nodes as processes.

    with RosGraph(tmp_dir) as graph:        # rosmaster on 127.0.0.1:<free port>; os.environ points at it
        sim = graph.spawn("sim", [sys.executable, "-m", "bridge.ros1.sim_franka", ...])
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import xmlrpc.client
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ros_missing() -> str:
    """'' when rospy, actionlib, genpy/genmsg and rosmaster are usable, else why not (one line)."""
    try:
        import actionlib  # noqa: F401
        import genmsg  # noqa: F401
        import genpy  # noqa: F401
        import rospy  # noqa: F401
    except ImportError as err:
        return f"ROS 1 is not importable ({err}); install it with bash scripts/setup_ros.sh"
    if shutil.which("rosmaster") is None:
        return "rosmaster is not on PATH; install it with bash scripts/setup_ros.sh"
    return ""


class RosGraph:
    """A rosmaster on a free loopback port, and the node processes started against it; all stopped on exit.

    On entry, this process's environment points at the master (ROS_MASTER_URI, ROS_HOSTNAME, ROS_LOG_DIR), so
    rospy.init_node here and every spawned node join it.
    """

    def __init__(self, work_dir: str | Path, nice: int = 0):
        self.work_dir = Path(work_dir)
        self.nice = nice
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.processes: dict[str, subprocess.Popen] = {}
        self._saved_env: dict[str, str | None] = {}

    def env(self) -> dict[str, str]:
        return {"ROS_MASTER_URI": self.uri, "ROS_HOSTNAME": "127.0.0.1", "ROS_IP": "127.0.0.1",
                "ROS_LOG_DIR": str(self.work_dir / "ros_log"), "ROS_HOME": str(self.work_dir / "ros_home"),
                "PYTHONUNBUFFERED": "1"}

    def __enter__(self) -> RosGraph:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        for key, value in self.env().items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        self.spawn("master", ["rosmaster", "--core", "-p", str(self.port)])
        deadline = time.monotonic() + 30
        while True:
            try:
                xmlrpc.client.ServerProxy(self.uri).getSystemState("/probe")
                return self
            except OSError:
                if time.monotonic() > deadline or self.processes["master"].poll() is not None:
                    self.__exit__(None, None, None)
                    raise RuntimeError(f"rosmaster did not come up on {self.uri}; see {self.log('master')}")
                time.sleep(0.1)

    def log(self, name: str) -> Path:
        return self.work_dir / f"{name}.log"

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start a node process (its output in work_dir/<name>.log), niced like the graph."""
        full_env = {**os.environ, **self.env(), **(env or {})}
        prefix = ["nice", "-n", str(self.nice)] if self.nice else []
        with open(self.log(name), "wb") as out:
            proc = subprocess.Popen(prefix + argv, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.processes[name] = proc
        return proc

    def stop(self, name: str, timeout: float = 10.0) -> None:
        """SIGINT (rospy shuts down cleanly), then SIGKILL if it lingers."""
        proc = self.processes.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def __exit__(self, *exc) -> None:
        for name in [n for n in self.processes if n != "master"] + ["master"]:
            self.stop(name)
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

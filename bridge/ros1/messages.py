"""franka_msgs and franka_gripper message classes for rospy, generated at import from the .msg/.action definitions in
bridge/ros1/definitions (upstream franka_ros field layout) with genmsg and genpy, the generators catkin runs.

Same text, same MD5 checksums: rospy on either side accepts the connection with a real franka_ros. Where a catkin
franka_msgs is importable (a sourced workspace on the robot PC), that one is used, and must have the same checksums.

    from bridge.ros1.messages import franka_msgs, franka_gripper
    franka_msgs.FrankaState, franka_gripper.MoveAction, franka_gripper.GraspGoal, franka_gripper.GraspEpsilon
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

DEFINITIONS = Path(__file__).resolve().parent / "definitions"
PACKAGES = ("franka_msgs", "franka_gripper")
SEPARATOR = "\n" + "=" * 80 + "\n"


def action_messages(name: str, text: str) -> dict[str, str]:
    """The eight messages of action `name` from its .action text, as actionlib_msgs' genaction.py writes them."""
    parts = [[]]
    for line in text.splitlines():
        if line.strip() == "---":
            parts.append([])
        else:
            parts[-1].append(line)
    if len(parts) != 3:
        raise ValueError(f"{name}.action must have goal, result and feedback sections separated by '---' lines")
    goal, result, feedback = ("".join(f"{line}\n" for line in lines) for lines in parts)
    return {
        f"{name}Goal": goal,
        f"{name}Result": result,
        f"{name}Feedback": feedback,
        f"{name}ActionGoal": f"Header header\nactionlib_msgs/GoalID goal_id\n{name}Goal goal\n",
        f"{name}ActionResult": f"Header header\nactionlib_msgs/GoalStatus status\n{name}Result result\n",
        f"{name}ActionFeedback": f"Header header\nactionlib_msgs/GoalStatus status\n{name}Feedback feedback\n",
        f"{name}Action": f"{name}ActionGoal action_goal\n{name}ActionResult action_result\n"
                         f"{name}ActionFeedback action_feedback\n",
    }


def definitions(package: str) -> dict[str, str]:
    """{message short name: .msg text} of one package, actions expanded."""
    root = DEFINITIONS / package
    out = {p.stem: p.read_text() for p in sorted((root / "msg").glob("*.msg"))}
    for path in sorted((root / "action").glob("*.action")):
        out.update(action_messages(path.stem, path.read_text()))
    return out


def _context():
    """A genmsg context with the messages ours depend on (std_msgs/Header, actionlib_msgs) taken from the installed
    Debian classes' own definition text."""
    # lazy, here and below: ROS 1 is an optional extra
    import actionlib_msgs.msg
    import genmsg
    import std_msgs.msg
    from genmsg.msg_loader import load_msg_from_string

    ctx = genmsg.MsgContext.create_default()
    for cls in (std_msgs.msg.Header, actionlib_msgs.msg.GoalID, actionlib_msgs.msg.GoalStatus):
        spec = load_msg_from_string(ctx, cls._full_text.split(SEPARATOR)[0], cls._type)
        ctx.register(cls._type, spec)
    return ctx


def generate(package: str, texts: dict[str, str], ctx=None) -> types.ModuleType:
    """Build `<package>.msg` in memory from {short name: .msg text} and register it in sys.modules."""
    from genmsg.msg_loader import load_msg_from_string
    from genpy.generator import msg_generator

    ctx = ctx or _context()
    specs = {}
    for name, text in texts.items():
        full = f"{package}/{name}"
        specs[name] = load_msg_from_string(ctx, text, full)
        ctx.register(full, specs[name])
    pkg = sys.modules.setdefault(package, types.ModuleType(package))
    msg = types.ModuleType(f"{package}.msg")
    pkg.msg = msg
    sys.modules[f"{package}.msg"] = msg
    for name, spec in specs.items():
        code = "\n".join(msg_generator(ctx, spec, {}))
        namespace = {"__name__": f"{package}.msg._{name}"}
        exec(compile(code, f"<genpy {package}/{name}>", "exec"), namespace)
        setattr(msg, name, namespace[name])
    return msg


def expected_md5(package: str) -> dict[str, str]:
    """{short name: MD5} that genmsg computes for our definitions (independent of what is imported)."""
    import genmsg
    from genmsg.msg_loader import load_msg_from_string

    ctx = _context()
    for pkg in PACKAGES:
        for name, text in definitions(pkg).items():
            ctx.register(f"{pkg}/{name}", load_msg_from_string(ctx, text, f"{pkg}/{name}"))
    return {name: genmsg.compute_md5(ctx, ctx.get_registered(f"{package}/{name}")) for name in definitions(package)}


def _load(package: str) -> types.ModuleType:
    try:
        module = importlib.import_module(f"{package}.msg")
    except ImportError:
        return generate(package, definitions(package))
    if getattr(module, "__file__", None) is None:
        return module  # ours, generated earlier in this process
    expected = expected_md5(package)
    for name, md5 in expected.items():
        have = getattr(getattr(module, name, None), "_md5sum", None)
        if have != md5:
            raise ImportError(f"the installed {package} ({module.__file__}) differs from franka_ros' definitions in "
                              f"bridge/ros1/definitions: {name} MD5 {have} != {md5}")
    return module


franka_msgs = _load("franka_msgs")
franka_gripper = _load("franka_gripper")

"""ROS 1 messages <-> the bridge's numpy types: camera frames, FrankaState's O_T_EE, PoseStamped, finger joints.

Readers raise ValueError with one line on a malformed message (the caller counts and drops it).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from bridge.geometry import Pose, quat_to_mat

# sensor_msgs/Image encodings a colour camera publishes: channels, and the order that gives RGB.
ENCODINGS = {"rgb8": (3, [0, 1, 2]), "bgr8": (3, [2, 1, 0]), "rgba8": (4, [0, 1, 2]), "bgra8": (4, [2, 1, 0]),
             "mono8": (1, [0, 0, 0])}
FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")


def rgb_from_image(msg) -> np.ndarray:
    """sensor_msgs/Image (8-bit rgb/bgr/rgba/bgra/mono) -> uint8 HxWx3 RGB."""
    if msg.encoding not in ENCODINGS:
        raise ValueError(f"image encoding {msg.encoding!r} is not one of {', '.join(ENCODINGS)}")
    channels, order = ENCODINGS[msg.encoding]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, bytes) else msg.data, np.uint8)
    if h <= 0 or w <= 0 or step < w * channels or data.size < h * step:
        raise ValueError(f"image of {w}x{h} {msg.encoding} with step {step} cannot hold {data.size} bytes")
    rows = data[: h * step].reshape(h, step)[:, : w * channels].reshape(h, w, channels)
    return np.ascontiguousarray(rows[:, :, order])


def rgb_from_compressed(msg) -> np.ndarray:
    """sensor_msgs/CompressedImage (JPEG or PNG) -> uint8 HxWx3 RGB."""
    try:
        with Image.open(io.BytesIO(bytes(msg.data))) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"compressed image ({msg.format!r}) does not decode: {err}") from None


def image_message(rgb: np.ndarray, stamp, frame_id: str = ""):
    """uint8 HxWx3 RGB -> sensor_msgs/Image (rgb8)."""
    from sensor_msgs.msg import Image as RosImage  # lazy: ROS is an optional extra

    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    msg = RosImage(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", is_bigendian=0, step=rgb.shape[1] * 3,
                   data=rgb.tobytes())
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    return msg


def pose_from_column_major(values) -> Pose:
    """A 4x4 homogeneous transform stored column-major (libfranka's O_T_EE) -> Pose."""
    values = np.asarray(values, dtype=float)
    if values.shape != (16,):
        raise ValueError(f"a column-major 4x4 transform has 16 values; got {values.shape}")
    return Pose.from_matrix(values.reshape(4, 4).T)


def column_major(pose: Pose) -> list[float]:
    """Pose -> 16 values, column-major (as FrankaState's O_T_EE)."""
    return pose.matrix().T.reshape(-1).tolist()


def pose_message(pose: Pose, frame_id: str, stamp):
    """Pose -> geometry_msgs/PoseStamped (quaternion x, y, z, w)."""
    from geometry_msgs.msg import PoseStamped  # lazy: ROS is an optional extra

    msg = PoseStamped()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    p, q = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = (float(v) for v in pose.pos)
    q.x, q.y, q.z, q.w = (float(v) for v in pose.quat())
    return msg


def pose_from_message(msg) -> Pose:
    """geometry_msgs/PoseStamped -> Pose; a non-unit or non-finite quaternion raises ValueError."""
    p, q = msg.pose.position, msg.pose.orientation
    quat = np.array([q.x, q.y, q.z, q.w], float)
    pos = np.array([p.x, p.y, p.z], float)
    if not (np.isfinite(pos).all() and np.isfinite(quat).all()) or abs(np.linalg.norm(quat) - 1) > 1e-3:
        raise ValueError(f"pose is not finite with a unit quaternion: {pos.tolist()} {quat.tolist()}")
    return Pose(pos, quat_to_mat(quat))


def fingers_from_joint_state(msg) -> np.ndarray:
    """sensor_msgs/JointState of franka_gripper -> the two finger positions (m), by joint name when named."""
    names, positions = list(msg.name), list(msg.position)
    if len(names) == len(positions) and all(n in names for n in FINGER_JOINTS):
        values = [positions[names.index(n)] for n in FINGER_JOINTS]
    elif len(positions) == 2:
        values = positions
    else:
        raise ValueError(f"gripper joint state must carry {' and '.join(FINGER_JOINTS)}; got {names} {positions}")
    return np.asarray(values, dtype=float)

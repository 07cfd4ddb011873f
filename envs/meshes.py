"""Decimated copies of visual-only meshes, generated once and cached on disk.

Software (Mesa) rendering time grows with the triangles drawn, and the robot's visual meshes are ~95% of the
scene's triangles (REFERENCE.md section 5). Vertex clustering keeps silhouettes and needs only numpy; collision
meshes are never touched, so physics is unchanged.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CACHE_ENV_VAR = "XVR_VLA_MESH_CACHE"
_PACKAGE_CACHE = Path(__file__).resolve().parent / ".mesh_cache"
_ALGORITHM_VERSION = 3  # part of the cache key: bump when decimate() changes


@dataclass(frozen=True)
class DecimationConfig:
    """How hard to decimate: target fraction of faces, and meshes below min_faces are left alone."""

    ratio: float = 0.1
    min_faces: int = 400


def cache_dir() -> Path:
    """Cache folder: $XVR_VLA_MESH_CACHE, else envs/.mesh_cache (self-git-ignoring), else ~/.cache."""
    candidates = [os.environ.get(CACHE_ENV_VAR), _PACKAGE_CACHE, Path.home() / ".cache" / "xvr_vla" / "meshes"]
    for path in filter(None, candidates):
        path = Path(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
            ignore = path / ".gitignore"
            if not ignore.exists():
                ignore.write_text("*\n")
            return path
        except OSError:
            continue
    raise OSError(f"no writable mesh cache folder; set {CACHE_ENV_VAR}")


def read_mesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V,3) and triangles (F,3) of an OBJ or STL file (ascii or binary STL)."""
    suffix = path.suffix.lower()
    if suffix == ".obj":
        return _read_obj(path)
    if suffix == ".stl":
        return _read_stl(path)
    raise ValueError(f"unsupported mesh format {suffix!r} ({path}); supported: .obj, .stl")


def _read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    lines = path.read_text(errors="replace").splitlines()
    verts = np.array([ln.split()[1:4] for ln in lines if ln.startswith("v ")], float).reshape(-1, 3)
    face_tokens = [re.sub(r"/\S*", "", ln[2:]).split() for ln in lines if ln.startswith("f ")]
    if all(len(tokens) == 3 for tokens in face_tokens):  # all triangles: convert in one go
        faces = np.array(face_tokens, dtype=np.int64).reshape(-1, 3)
    else:  # fan-triangulate polygons
        faces = np.array([[t[0], t[k], t[k + 1]] for t in face_tokens for k in range(1, len(t) - 1)],
                         dtype=np.int64).reshape(-1, 3)
    return verts, np.where(faces > 0, faces - 1, len(verts) + faces)  # OBJ is 1-based; negatives count back


def _read_stl(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = path.read_bytes()
    count = struct.unpack_from("<I", data, 80)[0] if len(data) >= 84 else -1
    if len(data) == 84 + 50 * count:
        rec = np.frombuffer(data, dtype=np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")]), offset=84)
        tri = rec["v"].astype(float)
    else:
        nums = [float(t) for line in data.decode(errors="replace").splitlines() if line.strip().startswith("vertex")
                for t in line.split()[1:4]]
        tri = np.asarray(nums, float).reshape(-1, 3, 3)
    verts = tri.reshape(-1, 3)
    return verts, np.arange(len(verts)).reshape(-1, 3)


def decimate(verts: np.ndarray, faces: np.ndarray, target_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """Vertex-clustering decimation to roughly target_faces triangles (duplicate vertices merge first)."""
    lo, hi = verts.min(0), verts.max(0)
    extent = float(np.max(hi - lo)) or 1.0
    best = (verts, faces)
    # Coarsen the grid until the face budget is met; the finest grid that fits wins.
    for cells in (400, 280, 200, 140, 100, 70, 50, 35, 25, 18, 12, 8):
        v, f = _cluster(verts, faces, lo, extent / cells)
        best = (v, f)
        if len(f) <= target_faces:
            break
    return best


def _cluster(verts, faces, origin, cell):
    # One int64 key per cell / per sorted triangle: 1-D np.unique is far faster than unique rows.
    cells = np.floor((verts - origin) / cell).astype(np.int64)
    keys = (cells[:, 0] << 42) | (cells[:, 1] << 21) | cells[:, 2]
    _, inverse = np.unique(keys, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse)
    new_verts = np.zeros((len(counts), 3))
    np.add.at(new_verts, inverse, verts)
    new_verts /= counts[:, None]
    f = inverse[faces]
    keep = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    f = f[keep]
    tri = np.sort(f, axis=1)
    _, first = np.unique((tri[:, 0] << 42) | (tri[:, 1] << 21) | tri[:, 2], return_index=True)
    return new_verts, f[np.sort(first)]


def write_obj(path: Path, verts: np.ndarray, faces: np.ndarray) -> None:
    """Write an OBJ atomically (parallel workers may generate the same file)."""
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)


def decimated_file(source: Path, config: DecimationConfig) -> Path:
    """Path of the cached decimated copy of source, generating it on first use."""
    stat = source.stat()
    ident = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{config}|{_ALGORITHM_VERSION}"
    key = hashlib.sha1(ident.encode()).hexdigest()[:16]
    out = cache_dir() / f"{source.stem}_{key}.obj"
    if not out.exists():
        verts, faces = read_mesh(source)
        if len(faces) > config.min_faces:
            verts, faces = decimate(verts, faces, max(config.min_faces, int(len(faces) * config.ratio)))
        write_obj(out, verts, faces)
    return out


def decimate_visual_meshes(root: ET.Element, config: DecimationConfig = DecimationConfig()) -> int:
    """Point every mesh used only by visual geoms (contype=conaffinity=0) at a decimated copy; returns count."""
    collision, visual = set(), set()
    for geom in root.iter("geom"):
        mesh = geom.get("mesh")
        if mesh is None:
            continue
        is_visual = geom.get("contype") == "0" and geom.get("conaffinity") == "0"
        (visual if is_visual else collision).add(mesh)
    changed = 0
    for mesh in root.iter("mesh"):
        name, file = mesh.get("name"), mesh.get("file")
        if name in visual and name not in collision and file and Path(file).suffix.lower() in (".obj", ".stl"):
            mesh.set("file", str(decimated_file(Path(file), config)))
            changed += 1
    return changed

"""Decimated visual meshes: fewer triangles, same extent, cached on disk."""

import xml.etree.ElementTree as ET

import numpy as np

from envs.meshes import DecimationConfig, decimate, decimate_visual_meshes, read_mesh, write_obj


def _sphere(n=60):
    th, ph = np.meshgrid(np.linspace(0, np.pi, n), np.linspace(0, 2 * np.pi, n), indexing="ij")
    verts = np.stack([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)], -1).reshape(-1, 3)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return verts, faces


def test_decimation_cuts_faces_and_keeps_the_extent(tmp_path):
    verts, faces = _sphere()
    small_v, small_f = decimate(verts, faces, target_faces=len(faces) // 5)
    assert len(small_f) <= len(faces) // 5
    assert len(small_f) > 50
    np.testing.assert_allclose(small_v.min(0), verts.min(0), atol=0.15)
    np.testing.assert_allclose(small_v.max(0), verts.max(0), atol=0.15)
    write_obj(tmp_path / "s.obj", small_v, small_f)
    v2, f2 = read_mesh(tmp_path / "s.obj")
    np.testing.assert_allclose(v2, small_v, atol=1e-5)
    np.testing.assert_array_equal(f2, small_f)


def test_only_visual_meshes_are_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("XVR_VLA_MESH_CACHE", str(tmp_path / "cache"))
    verts, faces = _sphere()
    write_obj(tmp_path / "vis.obj", verts, faces)
    write_obj(tmp_path / "col.obj", verts, faces)
    root = ET.fromstring(f"""<mujoco><asset>
        <mesh name="vis" file="{tmp_path / 'vis.obj'}"/><mesh name="col" file="{tmp_path / 'col.obj'}"/></asset>
        <worldbody><geom type="mesh" mesh="vis" contype="0" conaffinity="0" group="1"/>
        <geom type="mesh" mesh="col" group="0"/></worldbody></mujoco>""")
    assert decimate_visual_meshes(root, DecimationConfig(ratio=0.1, min_faces=100)) == 1
    files = {m.get("name"): m.get("file") for m in root.iter("mesh")}
    assert files["col"] == str(tmp_path / "col.obj")
    assert files["vis"].startswith(str(tmp_path / "cache"))
    assert len(read_mesh(tmp_path / "cache" / files["vis"].split("/")[-1])[1]) < len(faces) // 5


def test_obj_reader_handles_polygons_texture_indices_and_negative_indices(tmp_path):
    path = tmp_path / "quad.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nf 1/1 2/1 3/1 4/1\nf -4 -3 -2\n")
    verts, faces = read_mesh(path)
    assert verts.shape == (4, 3)
    np.testing.assert_array_equal(faces, [[0, 1, 2], [0, 2, 3], [0, 1, 2]])

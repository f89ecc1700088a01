"""A MuJoCo model's bodies in a viser scene.

Each body is one scene frame, `<root>/<body name>`, holding its geoms as meshes in the body's
own frame; moving the robot is setting every frame's pose from MuJoCo's forward kinematics
(mj_kinematics of qpos, or of a full FULLPHYSICS state). Geoms in the groups MuJoCo's viewer
shows by default (0-2) are drawn: planes, spheres, capsules, ellipsoids, cylinders, boxes and
meshes, in their rgba (material rgba when the geom has a material); height fields and
invisible geoms (alpha 0) are left out.
"""
import copy

import mujoco
import numpy as np
import trimesh

from ..sim.state import set_state

SHOWN_GROUPS = 3      # geom groups 0..2: what MuJoCo's viewer shows by default
PLANE_EXTENT = 10.0   # m, half-size drawn for an infinite plane (size 0)


def body_name(model, body_id: int) -> str:
    return model.body(body_id).name or f'body{body_id}'


def geom_mesh(model, geom_id: int) -> trimesh.Trimesh | None:
    """The geom's surface in its body's frame, or None for a geom type not drawn."""
    g = mujoco.mjtGeom
    kind, size = model.geom_type[geom_id], model.geom_size[geom_id]
    if kind == g.mjGEOM_PLANE:
        half = [s if s > 0 else PLANE_EXTENT for s in size[:2]]
        mesh = trimesh.creation.box(extents=[2 * half[0], 2 * half[1], 0.002])
        mesh.apply_translation([0, 0, -0.001])
    elif kind == g.mjGEOM_SPHERE:
        mesh = trimesh.creation.icosphere(subdivisions=2, radius=size[0])
    elif kind == g.mjGEOM_ELLIPSOID:
        mesh = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
        mesh.apply_scale(size[:3])
    elif kind == g.mjGEOM_CAPSULE:
        mesh = trimesh.creation.capsule(height=2 * size[1], radius=size[0], count=[12, 12])
    elif kind == g.mjGEOM_CYLINDER:
        mesh = trimesh.creation.cylinder(radius=size[0], height=2 * size[1], sections=16)
    elif kind == g.mjGEOM_BOX:
        mesh = trimesh.creation.box(extents=2 * size[:3])
    elif kind == g.mjGEOM_MESH:
        mesh_id = model.geom_dataid[geom_id]
        vert0, nvert = model.mesh_vertadr[mesh_id], model.mesh_vertnum[mesh_id]
        face0, nface = model.mesh_faceadr[mesh_id], model.mesh_facenum[mesh_id]
        mesh = trimesh.Trimesh(model.mesh_vert[vert0:vert0 + nvert],
                               model.mesh_face[face0:face0 + nface], process=False)
    else:
        return None
    rotation = np.zeros(9)
    mujoco.mju_quat2Mat(rotation, model.geom_quat[geom_id])
    transform = np.eye(4)
    transform[:3, :3] = rotation.reshape(3, 3)
    transform[:3, 3] = model.geom_pos[geom_id]
    mesh.apply_transform(transform)
    return mesh


def geom_rgba(model, geom_id: int) -> np.ndarray:
    material = model.geom_matid[geom_id]
    return model.mat_rgba[material] if material >= 0 else model.geom_rgba[geom_id]


def rgb8(rgb) -> tuple:
    """(3,) floats in [0, 1] -> (r, g, b) ints in [0, 255], as viser reads colors."""
    return tuple(int(round(255 * min(max(float(c), 0.0), 1.0))) for c in rgb[:3])


class SceneView:
    """The bodies of `model` under `root` in `server`'s scene.

    opacity: 1 for the robot, lower for a ghost; color: (3,) overrides every geom's color.
    task: the Task whose model parameters live in its extra state (`Task.prepare`: the door's
    position): a full state then places them, in a copy of `model`.
    `bodies` maps body name -> its viser frame handle (bodies with drawn geoms only)."""

    def __init__(self, server, model, root: str = '/robot', opacity: float = 1.0, color=None,
                 task=None):
        self.task = task if task is not None and task.layout.extra_size else None
        model = copy.copy(model) if self.task is not None else model
        self.server, self.model, self.root = server, model, root
        self.data = mujoco.MjData(model)
        self.bodies = {}
        self.body_ids = []
        for body_id in range(model.nbody):
            geoms = [i for i in range(model.body_geomadr[body_id],
                                      model.body_geomadr[body_id] + model.body_geomnum[body_id])
                     if model.geom_group[i] < SHOWN_GROUPS and geom_rgba(model, i)[3] > 0]
            meshes = [(i, geom_mesh(model, i)) for i in geoms]
            meshes = [(i, m) for i, m in meshes if m is not None]
            if not meshes:
                continue
            name = f'{root}/{body_name(model, body_id)}'
            frame = server.scene.add_frame(name, show_axes=False)
            for i, mesh in meshes:
                rgba = geom_rgba(model, i)
                server.scene.add_mesh_simple(
                    f'{name}/{model.geom(i).name or f"geom{i}"}', mesh.vertices.astype(np.float32),
                    mesh.faces.astype(np.uint32),
                    color=rgb8(color if color is not None else rgba[:3]),
                    opacity=opacity * float(rgba[3]) if opacity < 1 or rgba[3] < 1 else None)
            self.bodies[body_name(model, body_id)] = frame
            self.body_ids.append(body_id)
        mujoco.mj_kinematics(model, self.data)
        self._place()

    def show_qpos(self, qpos):
        """Pose the bodies at `qpos` (nq,)."""
        self.data.qpos[:] = qpos
        mujoco.mj_kinematics(self.model, self.data)
        self._place()

    def show_state(self, state):
        """Pose the bodies at a FULLPHYSICS `state` (qpos, and mocap poses if any); a task's
        full state (with its extra columns) also places its model parameters."""
        self.apply_extra(state)
        set_state(self.model, self.data, state)
        mujoco.mj_kinematics(self.model, self.data)
        self._place()

    def apply_extra(self, state):
        """The model parameters in the extra columns of a full `state`, if it has them."""
        if self.task is not None and len(state) == self.task.layout.size:
            self.task.prepare(self.model, np.asarray(state, dtype=np.float64))

    def poses(self) -> dict:
        """{body name: (position (3,), wxyz (4,))} as last sent to the browsers (viser skips a
        pose change within np.allclose of the last one)."""
        return {name: (np.asarray(frame.position), np.asarray(frame.wxyz))
                for name, frame in self.bodies.items()}

    def _place(self):
        with self.server.atomic():
            for body_id, frame in zip(self.body_ids, self.bodies.values()):
                frame.position = self.data.xpos[body_id].copy()
                frame.wxyz = self.data.xquat[body_id].copy()


def body_paths(model, qpos_rows) -> np.ndarray:
    """Centres of mass of the moving bodies along `qpos_rows` (T, nq) -> (T, B, 3)."""
    data = mujoco.MjData(model)
    moving = [b for b in range(1, model.nbody) if model.body_weldid[b] != 0]
    out = np.empty((len(qpos_rows), len(moving), 3))
    for t, qpos in enumerate(qpos_rows):
        data.qpos[:] = qpos
        mujoco.mj_kinematics(model, data)
        out[t] = data.xipos[moving]
    return out

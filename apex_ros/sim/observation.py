"""Named views of the state: a policy's observation as named terms (qpos:J, qvel:J, cos:J,
sin:J, extra:BLOCK, site:S[i]; grammar in apex_ros.deploy.observation.parse_term), and the
1-dof joints that sensor_msgs/JointState carries by name."""
import dataclasses

import mujoco
import numpy as np

from ..deploy.observation import parse_term
from ..errors import ApexError
from .kinematics import Kinematics
from .state import StateLayout

# Joint types a sensor_msgs/JointState entry (one position, one velocity) can carry.
ONE_DOF = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))


class Observation:
    """Observation as a named layout of state quantities, e.g. ('qpos:slider', 'cos:hinge').

    Terms: qpos:J, qvel:J, cos:J, sin:J (cos/sin of a joint position); J[i] picks coordinate i
    of a multi-coordinate joint (free, ball); extra:B[i] coordinate i of the extra-state block
    B (`layout.extra`); site:S[i] coordinate i of site S's world position and offset:A>B[i]
    that of B's minus A's, by forward kinematics of the state's qpos after `prepare(model,
    state)` (Task.prepare) has written the model parameters the extra state holds (the door's
    position). Joint names are what a robot's /joint_states carries, so the same layout can be
    rebuilt on hardware from joint names (and the bundle's declared inputs).

    `columns` holds each term's state column (a placeholder 0 for the site and offset terms,
    whose slots `sites` lists: they are computed).
    """

    def __init__(self, model, terms, layout: StateLayout | None = None, prepare=None):
        layout = layout or StateLayout.of(model)
        cols, funcs, sites = [], [], []
        for slot, term in enumerate(terms):
            kind, joint, coord = dataclasses.astuple(parse_term(term))
            if kind in ('site', 'offset'):
                names = joint.split('>') if kind == 'offset' else [None, joint]
                ids = [-1 if n is None else _site_id(model, term, n) for n in names]
                sites.append((slot, *ids, coord))
                cols.append(0)
                funcs.append(kind)
                continue
            if kind == 'extra':
                cols.append(_extra_column(layout, term, joint, coord))
                funcs.append(kind)
                continue
            jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, joint)
            if jid < 0:
                raise ApexError(f'observation term {term!r}: the model has no joint {joint!r}')
            if kind == 'qvel':
                start, width = model.jnt_dofadr[jid], _joint_width(model, jid, 'qvel')
                base = layout.qvel.start
            else:
                start, width = model.jnt_qposadr[jid], _joint_width(model, jid, 'qpos')
                base = layout.qpos.start
            i = coord or 0
            if i >= width or (coord is None and width > 1):
                raise ApexError(f'observation term {term!r}: joint {joint!r} has {width} '
                                f'{"velocity" if kind == "qvel" else "position"} coordinates; '
                                f'write {kind}:{joint}[i] with i < {width}')
            cols.append(base + start + i)
            funcs.append(kind)
        self.terms = tuple(terms)
        self.columns = np.array(cols, dtype=np.int64)
        funcs = np.array(funcs)
        self._cos = np.flatnonzero(funcs == 'cos')
        self._sin = np.flatnonzero(funcs == 'sin')
        # computed slots: value = position of site `to` - that of site `of` (-1: the origin)
        self.sites = np.array([slot for slot, *_ in sites], dtype=np.int64)
        rows = np.array([rest for _, *rest in sites], dtype=np.int64).reshape(-1, 3)
        self._site_of, self._site_to, self._site_coords = rows.T
        self._offsets = np.flatnonzero(self._site_of >= 0)
        self._kinematics = Kinematics(model, layout.qpos, prepare)

    @property
    def size(self) -> int:
        return len(self.terms)

    def __call__(self, states: np.ndarray) -> np.ndarray:
        """states (..., nstate) -> observations (..., size), float32."""
        return self.values(states).astype(np.float32)

    def values(self, states: np.ndarray) -> np.ndarray:
        """states (..., nstate) -> the terms' values (..., size) in float64."""
        x = states[..., self.columns]
        if self.sites.size:
            x[..., self.sites] = self._site_positions(states)
        if self._cos.size:
            x[..., self._cos] = np.cos(x[..., self._cos])
        if self._sin.size:
            x[..., self._sin] = np.sin(x[..., self._sin])
        return x

    def _site_positions(self, states: np.ndarray) -> np.ndarray:
        """(..., nstate) -> the site terms' values (..., n_sites)."""
        to, of, coords, offsets = self._site_to, self._site_of, self._site_coords, self._offsets

        def read(data, out):
            out[:] = data.site_xpos[to, coords]
            out[offsets] -= data.site_xpos[of[offsets], coords[offsets]]
        return self._kinematics.map(states, read, self.sites.size)


def _site_id(model, term, name) -> int:
    sid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, name)
    if sid < 0:
        raise ApexError(f'observation term {term!r}: the model has no site {name!r}')
    return sid


def _extra_column(layout, term, block, coord):
    if block not in layout.extra:
        known = ', '.join(layout.extra) or 'none'
        raise ApexError(f'observation term {term!r}: the task has no extra-state block '
                        f'{block!r} (its blocks: {known})')
    s = layout.extra[block]
    width, i = s.stop - s.start, coord or 0
    if i >= width or (coord is None and width > 1):
        raise ApexError(f'observation term {term!r}: block {block!r} has {width} coordinates; '
                        f'write extra:{block}[i] with i < {width}')
    return s.start + i


def extra_terms(layout, block):
    """The observation terms of every coordinate of the extra-state block `block`."""
    s = layout.extra[block]
    width = s.stop - s.start
    return tuple(f'extra:{block}' if width == 1 else f'extra:{block}[{i}]' for i in range(width))


def _joint_width(model, jid, kind):
    jtype = int(model.jnt_type[jid])  # numpy ints and mujoco enums compare unreliably
    if jtype == int(mujoco.mjtJoint.mjJNT_FREE):
        return 7 if kind == 'qpos' else 6
    if jtype == int(mujoco.mjtJoint.mjJNT_BALL):
        return 4 if kind == 'qpos' else 3
    return 1


def joint_terms(model, kind, skip=()):
    """All observation terms of one kind for every joint coordinate, except `skip` terms."""
    terms = []
    for jid in range(model.njnt):
        name = model.joint(jid).name
        width = _joint_width(model, jid, kind)
        for i in range(width):
            term = f'{kind}:{name}' if width == 1 else f'{kind}:{name}[{i}]'
            if term not in skip:
                terms.append(term)
    return tuple(terms)



def joint_columns(model) -> dict:
    """{joint name: (qpos column, qvel column)} of the 1-dof joints in the state vector."""
    layout = StateLayout.of(model)
    return {model.joint(j).name: (layout.qpos.start + int(model.jnt_qposadr[j]),
                                  layout.qvel.start + int(model.jnt_dofadr[j]))
            for j in range(model.njnt) if int(model.jnt_type[j]) in ONE_DOF}


class JointStates:
    """The model's 1-dof (hinge, slide) joints as sensor_msgs/JointState carries them: by name,
    one position and one velocity each, in model order."""

    def __init__(self, model, layout: StateLayout | None = None, initial_extra=None):
        joints = [j for j in range(model.njnt) if int(model.jnt_type[j]) in ONE_DOF]
        self.names = [model.joint(j).name for j in joints]
        self.qpos = np.array([model.jnt_qposadr[j] for j in joints], dtype=np.int64)
        self.dofs = np.array([model.jnt_dofadr[j] for j in joints], dtype=np.int64)
        self.columns = joint_columns(model)
        layout = layout or StateLayout.of(model)
        self.default_state = np.zeros(layout.size)   # qpos0, the task's initial extra, else 0
        self.default_state[layout.qpos] = model.qpos0
        if initial_extra is not None:
            self.default_state[layout.physics:] = initial_extra

    @classmethod
    def of(cls, task):
        """A task's joints, with its state layout (extra state included)."""
        return cls(task.model, task.layout, task.initial_extra())

    def read(self, data):
        """-> (positions, velocities, efforts) of the joints from mujoco.MjData."""
        return data.qpos[self.qpos], data.qvel[self.dofs], data.qfrc_actuator[self.dofs]

    def to_state(self, names, positions, velocities=None) -> np.ndarray:
        """A full state (nstate,): the named joints set, everything else at the defaults.
        Names the model lacks are ignored; velocities of another length than `names` are
        treated as absent (left at 0)."""
        state = self.default_state.copy()
        with_velocity = velocities is not None and len(velocities) == len(names)
        for i, name in enumerate(names):
            cols = self.columns.get(name)
            if cols is not None:
                state[cols[0]] = positions[i]
                if with_velocity:
                    state[cols[1]] = velocities[i]
        return state

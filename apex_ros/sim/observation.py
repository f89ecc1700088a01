"""A policy's observation as named terms of the state (qpos:J, qvel:J, cos:J, sin:J)."""
import re

import mujoco
import numpy as np

from ..errors import ApexError
from .state import StateLayout

_TERM = re.compile(r'^(qpos|qvel|cos|sin):([A-Za-z0-9_./-]+)(?:\[(\d+)\])?$')


class Observation:
    """Observation as a named layout of state quantities, e.g. ('qpos:slider', 'cos:hinge').

    Terms: qpos:J, qvel:J, cos:J, sin:J (cos/sin of a joint position); J[i] picks coordinate i
    of a multi-coordinate joint (free, ball). The names are what a robot's /joint_states
    carries, so the same layout can be rebuilt on hardware from joint names alone.
    """

    def __init__(self, model, terms):
        layout = StateLayout.of(model)
        cols, funcs = [], []
        for term in terms:
            m = _TERM.match(term)
            if m is None:
                raise ApexError(f'observation term {term!r}: expected qpos|qvel|cos|sin:JOINT[i]')
            kind, joint, coord = m.group(1), m.group(2), m.group(3)
            jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, joint)
            if jid < 0:
                raise ApexError(f'observation term {term!r}: the model has no joint {joint!r}')
            if kind == 'qvel':
                start, width = model.jnt_dofadr[jid], _joint_width(model, jid, 'qvel')
                base = layout.qvel.start
            else:
                start, width = model.jnt_qposadr[jid], _joint_width(model, jid, 'qpos')
                base = layout.qpos.start
            i = int(coord or 0)
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

    @property
    def size(self) -> int:
        return len(self.terms)

    def __call__(self, states: np.ndarray) -> np.ndarray:
        """states (..., nstate) -> observations (..., size), float32."""
        x = states[..., self.columns]
        if self._cos.size:
            x[..., self._cos] = np.cos(x[..., self._cos])
        if self._sin.size:
            x[..., self._sin] = np.sin(x[..., self._sin])
        return x.astype(np.float32)


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

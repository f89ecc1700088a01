"""The one place that knows the state layout: MuJoCo FULLPHYSICS vectors
[time, qpos, qvel, act, ...], as `mujoco.rollout` returns them, followed by the task's extra
state: what a task's state holds beyond MjData (a goal, a model parameter such as the door's
position, an integrated end-effector target), in named blocks."""
import dataclasses

import mujoco
import numpy as np

from ..errors import ApexError

STATE_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS


@dataclasses.dataclass(frozen=True)
class StateLayout:
    """Column indices of the state vector: FULLPHYSICS, then the extra blocks."""
    size: int                  # physics + extra
    time: int
    qpos: slice
    qvel: slice
    act: slice
    physics: int               # columns of the FULLPHYSICS part
    extra: dict = dataclasses.field(default_factory=dict)  # block name -> slice

    @classmethod
    def of(cls, model, extra: dict | None = None):
        """`extra`: {name: size} of the blocks after the physics state, in order."""
        nq, nv, na = model.nq, model.nv, model.na
        physics = mujoco.mj_stateSize(model, STATE_SPEC)
        blocks, at = {}, physics
        for name, width in (extra or {}).items():
            blocks[name] = slice(at, at + int(width))
            at += int(width)
        return cls(size=at, time=0, qpos=slice(1, 1 + nq), qvel=slice(1 + nq, 1 + nq + nv),
                   act=slice(1 + nq + nv, 1 + nq + nv + na), physics=physics, extra=blocks)

    @property
    def extra_size(self) -> int:
        return self.size - self.physics

    def describe(self) -> str:
        """'[time, qpos 2, qvel 2, act 0, physics rest 0] + goal 3' for error messages."""
        rest = self.physics - self.act.stop
        text = (f'{self.size} = [time, qpos {self.qpos.stop - self.qpos.start}, qvel '
                f'{self.qvel.stop - self.qvel.start}, act {self.act.stop - self.act.start}'
                + (f', other physics {rest}' if rest else '') + ']')
        return text + ''.join(f' + {name} {s.stop - s.start}' for name, s in self.extra.items())

    def check(self, states, what: str):
        """Raise an ApexError naming `what` and the expected layout unless the last axis of
        `states` is this layout's size."""
        states = np.asarray(states)
        if states.ndim == 0 or states.shape[-1] != self.size:
            got = 'a scalar' if states.ndim == 0 else f'{states.shape[-1]} columns'
            raise ApexError(f'{what}: a state has {self.size} columns, got {got}; layout: '
                            f'{self.describe()}')
        return states


def get_state(model, data) -> np.ndarray:
    """The FULLPHYSICS part of the state of `data`."""
    state = np.empty(mujoco.mj_stateSize(model, STATE_SPEC))
    mujoco.mj_getState(model, data, state, STATE_SPEC)
    return state


def set_state(model, data, state):
    """Set `data` from the FULLPHYSICS part of `state` (extra columns, if any, ignored)."""
    physics = mujoco.mj_stateSize(model, STATE_SPEC)
    mujoco.mj_setState(model, data, np.asarray(state[:physics], dtype=np.float64), STATE_SPEC)

"""The one place that knows the state layout: MuJoCo FULLPHYSICS vectors
[time, qpos, qvel, act, ...], as `mujoco.rollout` returns them."""
import dataclasses

import mujoco
import numpy as np

STATE_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS


@dataclasses.dataclass(frozen=True)
class StateLayout:
    """Column indices of the FULLPHYSICS state vector."""
    size: int
    time: int
    qpos: slice
    qvel: slice
    act: slice

    @classmethod
    def of(cls, model):
        nq, nv, na = model.nq, model.nv, model.na
        return cls(size=mujoco.mj_stateSize(model, STATE_SPEC), time=0,
                   qpos=slice(1, 1 + nq), qvel=slice(1 + nq, 1 + nq + nv),
                   act=slice(1 + nq + nv, 1 + nq + nv + na))


def get_state(model, data) -> np.ndarray:
    state = np.empty(mujoco.mj_stateSize(model, STATE_SPEC))
    mujoco.mj_getState(model, data, state, STATE_SPEC)
    return state


def set_state(model, data, state):
    mujoco.mj_setState(model, data, np.asarray(state, dtype=np.float64), STATE_SPEC)

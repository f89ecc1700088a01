"""Forward kinematics of many states: one mj_kinematics per state on this thread's own MjData
(rollout threads call it at once), with a model copy of its own where `prepare` writes a
state's extra parameters (the door's position) into the model first."""
import copy
import threading

import mujoco
import numpy as np


class Kinematics:
    def __init__(self, model, qpos_columns, prepare=None):
        """qpos_columns: where a row holds qpos (a state layout's slice, or slice(None) for
        rows that are qpos); prepare(model, row): Task.prepare, or None."""
        self.model, self.qpos_columns, self.prepare = model, qpos_columns, prepare
        self._scratch = threading.local()

    def __getstate__(self):   # picklable: the per-thread scratch is made again on use
        return {k: v for k, v in self.__dict__.items() if k != '_scratch'}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._scratch = threading.local()

    def map(self, rows: np.ndarray, read, width: int) -> np.ndarray:
        """rows (..., n) -> (..., width): read(data, out) fills each row's out (width,) after
        mj_kinematics at that row."""
        scratch = self._scratch
        if not hasattr(scratch, 'data'):
            scratch.model = copy.copy(self.model) if self.prepare else self.model
            scratch.data = mujoco.MjData(scratch.model)
        model, data = scratch.model, scratch.data
        flat = rows.reshape(-1, rows.shape[-1])
        out = np.empty((len(flat), width))
        for b, row in enumerate(flat):
            if self.prepare is not None:
                self.prepare(model, row)
            data.qpos[:] = row[self.qpos_columns]
            mujoco.mj_kinematics(model, data)
            read(data, out[b])
        return out.reshape(rows.shape[:-1] + (width,))

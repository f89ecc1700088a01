"""Batched rollouts on the true MuJoCo model.

OpenLoopRollouts: action sequences from one start state, through a persistent
`mujoco.rollout.Rollout` thread pool (the GIL is released while it simulates). Each action is
held for frame_skip physics substeps. A sample that diverges (MuJoCo warning -> time stops
advancing, or a non-finite state) is flagged, so the planner can give it infinite cost.

closed_loop_rollout: a policy picks every action, batched over start states.
"""
import time

import mujoco
import mujoco.rollout
import numpy as np

from .state import STATE_SPEC, get_state, set_state


class OpenLoopRollouts:
    def __init__(self, task, threads: int = 1):
        if threads < 1:
            raise ValueError(f'rollout threads must be >= 1, got {threads}')
        self.task = task
        self.model = task.model
        self.threads = threads
        self._pool = mujoco.rollout.Rollout(nthread=threads)
        self._datas = [mujoco.MjData(self.model) for _ in range(threads)]
        m = self.model
        # mujoco.rollout resets mocap to model defaults unless it is part of the control.
        self.control_spec = int(mujoco.mjtState.mjSTATE_CTRL)
        if m.nmocap:
            self.control_spec |= int(mujoco.mjtState.mjSTATE_MOCAP_POS
                                     | mujoco.mjtState.mjSTATE_MOCAP_QUAT)
        self._buffers = {}
        self.sim_seconds = 0.0  # time spent inside the physics, accumulated
        self.default_mocap = default_mocap(m)

    def close(self):
        self._pool.close()

    def _buffers_for(self, batch, nstep):
        """Preallocated inputs/outputs per (batch, nstep): iCEM uses a handful of sizes."""
        key = (batch, nstep)
        if key not in self._buffers:
            m = self.model
            self._buffers[key] = (
                [m] * batch,
                np.empty((batch, nstep, self.task.layout.size)),
                np.empty((batch, nstep, m.nsensordata)),
            )
        return self._buffers[key]

    def run(self, state0, actions, warmstart=None, mocap=None):
        """Roll out `actions` (B, H, nu) from `state0` (nstate,).

        Returns (states (B, H+1, nstate) at control steps, including state0; ok (B,) bool).
        `warmstart` is the start data's qacc_warmstart (nv,), which makes the result match an
        mj_step loop bitwise; `mocap` = (mocap_pos, mocap_quat) of the start data, held.
        """
        batch, horizon, _ = actions.shape
        fs = self.task.frame_skip
        nstep = horizon * fs
        control = np.repeat(actions, fs, axis=1) if fs > 1 else np.array(actions, dtype=float)
        if self.control_spec != mujoco.mjtState.mjSTATE_CTRL:
            pos, quat = mocap if mocap is not None else self.default_mocap
            extra = np.concatenate([np.ravel(pos), np.ravel(quat)])
            control = np.concatenate(
                [control, np.broadcast_to(extra, (batch, nstep, extra.size))], axis=-1)
        init = np.tile(np.asarray(state0, dtype=np.float64), (batch, 1))
        ws = None if warmstart is None else np.tile(np.asarray(warmstart, np.float64), (batch, 1))
        models, out, sensordata = self._buffers_for(batch, nstep)
        t0 = time.perf_counter()
        # Inputs are built with the exact shapes and dtypes rollout wants, so its Python-side
        # checks and tiling are skipped.
        self._pool.rollout(models, self._datas, init, control,
                           control_spec=self.control_spec, nstep=nstep,
                           initial_warmstart=ws, state=out, sensordata=sensordata,
                           skip_checks=True)
        self.sim_seconds += time.perf_counter() - t0
        states = np.empty((batch, horizon + 1, out.shape[-1]))
        states[:, 0] = state0
        states[:, 1:] = out[:, fs - 1::fs]
        return states, rollout_ok(out, state0[0], self.model.opt.timestep)


def default_mocap(model):
    """(mocap_pos, mocap_quat) of a freshly reset MjData: the model's mocap body poses."""
    data = mujoco.MjData(model)
    return data.mocap_pos.copy(), data.mocap_quat.copy()


def rollout_ok(substates, t0, timestep):
    """Per sample: every substep advanced time and every state is finite.

    After a MuJoCo warning (instability) a rollout silently repeats its last state, so time
    stops advancing; that, or any NaN/inf, marks the sample as failed.
    """
    times = substates[:, :, 0]
    advancing = np.all(np.diff(times, axis=1) > 0, axis=1) & (times[:, 0] > t0)
    finite = np.isfinite(substates).all(axis=(1, 2))
    return advancing & finite


def closed_loop_rollout(task, policy, state0, steps, warmstart=None, mocap=None):
    """Let `policy` act for `steps` control steps from each start state.

    state0: (B, nstate) or (nstate,); warmstart: matching qacc_warmstart (B, nv) or (nv,);
    mocap: (mocap_pos, mocap_quat) held during the rollout (default: the model's).
    Returns (states (B, steps+1, nstate), actions (B, steps, nu)), actions clipped to bounds.
    Stepping is mj_step on one MjData per start state, so it matches `run_episode` bitwise.
    """
    m = task.model
    state0 = np.atleast_2d(state0)
    batch = state0.shape[0]
    datas = [mujoco.MjData(m) for _ in range(batch)]
    for b, d in enumerate(datas):
        set_state(m, d, state0[b])
        if warmstart is not None:
            d.qacc_warmstart[:] = np.atleast_2d(warmstart)[b]
        if mocap is not None:
            d.mocap_pos[:], d.mocap_quat[:] = mocap
    states = np.empty((batch, steps + 1, state0.shape[1]))
    actions = np.empty((batch, steps, task.nu))
    states[:, 0] = state0
    for t in range(steps):
        a = np.clip(policy(task.observe(states[:, t])), task.action_low, task.action_high)
        actions[:, t] = a
        for b, d in enumerate(datas):
            d.ctrl[:] = a[b]
            mujoco.mj_step(m, d, nstep=task.frame_skip)
            mujoco.mj_getState(m, d, states[b, t + 1], STATE_SPEC)
    return states, actions


__all__ = ['OpenLoopRollouts', 'closed_loop_rollout', 'rollout_ok', 'get_state']

"""Batched rollouts on the true MuJoCo model.

OpenLoopRollouts: action sequences from one start state, through a persistent
`mujoco.rollout.Rollout` thread pool (the GIL is released while it simulates). Each action is
held for frame_skip physics substeps; the task maps it to controls and mocap targets
(`Task.actuate`: one call over the horizon) and its extra state rides along, or, for a command
relative to the state a step starts from (`Task.actuate_feedback`), one call per control
step. A sample that diverges (MuJoCo warning -> time stops advancing, or a non-finite state)
is flagged, so the planner can give it infinite cost.

closed_loop_rollout: a policy picks every action, batched over start states.
"""
import copy
import time

import mujoco
import mujoco.rollout
import numpy as np

from .simulation import Simulation
from .state import get_state


class OpenLoopRollouts:
    def __init__(self, task, threads: int = 1):
        if threads < 1:
            raise ValueError(f'rollout threads must be >= 1, got {threads}')
        self.task = task
        # a copy: the start state's model parameters (Task.prepare) are written into it
        self.model = copy.copy(task.model) if task.layout.extra_size else task.model
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
                np.empty((batch, nstep, self.task.layout.physics)),
                np.empty((batch, nstep, m.nsensordata)),
            )
        return self._buffers[key]

    def run(self, state0, actions, warmstart=None):
        """Roll out `actions` (B, H, nu) from `state0` (nstate,).

        Returns (states (B, H+1, nstate) at control steps, including state0; ok (B,) bool).
        `warmstart` is the start data's qacc_warmstart (nv,), which makes the result match an
        mj_step loop (Simulation) bitwise. Mocap bodies the task does not drive stay at the
        model's poses.
        """
        task = self.task
        if task.feedback:
            return self._run_feedback(np.asarray(state0, dtype=np.float64), actions)
        batch, horizon, _ = actions.shape
        fs = task.frame_skip
        nstep = horizon * fs
        layout = task.layout
        state0 = np.asarray(state0, dtype=np.float64)
        if layout.extra_size:
            task.prepare(self.model, state0)
            ctrl, mocap, extra = task.actuate(np.broadcast_to(state0, (batch, layout.size)),
                                              actions)
        else:
            ctrl, mocap, extra = actions, None, None
        control = np.repeat(ctrl, fs, axis=1) if fs > 1 else np.array(ctrl, dtype=float)
        if self.control_spec != mujoco.mjtState.mjSTATE_CTRL:
            pos, quat = self.default_mocap
            if mocap is None:
                pos = np.broadcast_to(np.ravel(pos), (batch, nstep, pos.size))
            else:
                pos = np.repeat(np.reshape(mocap, (batch, horizon, -1)), fs, axis=1)
            quat = np.broadcast_to(np.ravel(quat), (batch, nstep, quat.size))
            control = np.concatenate([control, pos, quat], axis=-1)
        init = np.tile(state0[:layout.physics], (batch, 1))
        ws = None if warmstart is None else np.tile(np.asarray(warmstart, np.float64), (batch, 1))
        out = self._rollout(init, control, nstep, ws)
        states = np.empty((batch, horizon + 1, layout.size))
        states[:, 0] = state0
        states[:, 1:, :layout.physics] = out[:, fs - 1::fs]
        if extra is not None:
            states[:, 1:, layout.physics:] = extra
        return states, rollout_ok(out, state0[0], self.model.opt.timestep)

    def _rollout(self, init, control, nstep, warmstart):
        """One batched mujoco.rollout call from `init` (B, nphysics) -> states (B, nstep,
        nphysics), timed into sim_seconds. Inputs are built with the exact shapes and dtypes
        rollout wants, so its Python-side checks and tiling are skipped."""
        models, out, sensordata = self._buffers_for(len(init), nstep)
        t0 = time.perf_counter()
        self._pool.rollout(models, self._datas, init, control,
                           control_spec=self.control_spec, nstep=nstep,
                           initial_warmstart=warmstart, state=out, sensordata=sensordata,
                           skip_checks=True)
        self.sim_seconds += time.perf_counter() - t0
        return out

    def _run_feedback(self, state0, actions):
        """`run` for a task whose controls depend on the state each step starts from
        (Task.actuate_feedback): one rollout call per control step, from a zero warm start
        (as Simulation.advance steps such a task)."""
        task, layout = self.task, self.task.layout
        batch, horizon, _ = actions.shape
        fs = task.frame_skip
        if layout.extra_size:
            task.prepare(self.model, state0)
        zero = np.zeros((batch, self.model.nv))
        default_pos, default_quat = (np.ravel(v) for v in self.default_mocap)
        states = np.empty((batch, horizon + 1, layout.size))
        states[:, 0] = state0
        ok = np.ones(batch, dtype=bool)
        for t in range(horizon):
            ctrl, pos, quat = task.actuate_feedback(states[:, t], actions[:, t])
            control = [ctrl]
            if self.control_spec != mujoco.mjtState.mjSTATE_CTRL:
                control.append(np.broadcast_to(default_pos, (batch, default_pos.size))
                               if pos is None else np.reshape(pos, (batch, -1)))
                control.append(np.broadcast_to(default_quat, (batch, default_quat.size))
                               if quat is None else np.reshape(quat, (batch, -1)))
            control = np.repeat(np.concatenate(control, axis=-1)[:, None], fs, axis=1)
            out = self._rollout(np.ascontiguousarray(states[:, t, :layout.physics]), control,
                                fs, zero)
            states[:, t + 1, :layout.physics] = out[:, -1]
            states[:, t + 1, layout.physics:] = state0[layout.physics:]
            ok &= rollout_ok(out, states[0, t, 0], self.model.opt.timestep)
        return states, ok


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


def closed_loop_rollout(task, policy, state0, steps, warmstart=None):
    """Let `policy` act for `steps` control steps from each start state.

    state0: (B, nstate) or (nstate,); warmstart: matching qacc_warmstart (B, nv) or (nv,).
    Returns (states (B, steps+1, nstate), actions (B, steps, nu)), actions clipped to bounds.
    Stepping is a Simulation per start state, so it matches `run_episode` bitwise.
    """
    state0 = np.atleast_2d(state0)
    batch = state0.shape[0]
    sims = [Simulation(task) for _ in range(batch)]
    for b, sim in enumerate(sims):
        sim.reset(state=state0[b],
                  warmstart=None if warmstart is None else np.atleast_2d(warmstart)[b])
    states = np.empty((batch, steps + 1, state0.shape[1]))
    actions = np.empty((batch, steps, task.nu))
    states[:, 0] = state0
    for t in range(steps):
        a = np.clip(policy(task.observe(states[:, t])), task.action_low, task.action_high)
        actions[:, t] = a
        for b, sim in enumerate(sims):
            states[b, t + 1] = sim.advance(a[b])
    return states, actions


__all__ = ['OpenLoopRollouts', 'closed_loop_rollout', 'rollout_ok', 'get_state']

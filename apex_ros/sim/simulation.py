"""The environment: one MjData stepped with mj_step, frame_skip substeps per control step.

Used by MPC, APEX rollouts and the simulation node, so "the robot" is the same everywhere.
The state is the task's whole state: the physics of MjData and the extra state beyond it
(`Task.extra_state`), which the simulation keeps beside MjData and writes into its own copy
of the model (`Task.prepare`).
"""
import copy

import mujoco
import numpy as np

from ..errors import ApexError
from .state import get_state, set_state


class Simulation:
    def __init__(self, task):
        self.task = task
        self.model = copy.copy(task.model) if task.layout.extra_size else task.model
        self.data = mujoco.MjData(self.model)
        self.extra = task.initial_extra()
        self.steps = 0
        self._substeps = 0   # physics substeps into the current control step (`substep`)

    def reset(self, seed: int | None = None, state=None, warmstart=None):
        """Randomized initial state from `seed`, or exactly `state` (nstate,) if given."""
        task = self.task
        if state is not None:
            state = task.check_states(np.asarray(state, dtype=np.float64), 'reset state')
            mujoco.mj_resetData(self.model, self.data)
            set_state(self.model, self.data, state)
            self.extra = state[task.layout.physics:].copy()
        else:
            extra = task.reset(self.data, np.random.default_rng(seed))
            self.extra = (task.initial_extra() if extra is None
                          else np.asarray(extra, dtype=np.float64).copy())
        self._apply_extra()
        if warmstart is not None:
            self.data.qacc_warmstart[:] = warmstart
        self.steps = self._substeps = 0
        return self.state()

    def _apply_extra(self):
        """The model parameters of the extra state into the model (targets integrated from
        the actions are applied by `step`)."""
        if self.task.layout.extra_size:
            self.task.prepare(self.model, self.state())
        mujoco.mj_forward(self.model, self.data)

    def set_extra(self, name: str, value):
        """Change one extra-state block (a new goal) in the running simulation."""
        value = np.asarray(value, dtype=np.float64)
        block = self.task.layout.extra[name]
        self.extra[block.start - self.task.layout.physics:
                   block.stop - self.task.layout.physics] = value
        self.task.prepare(self.model, self.state())
        mujoco.mj_forward(self.model, self.data)

    def state(self) -> np.ndarray:
        physics = get_state(self.model, self.data)
        return np.concatenate([physics, self.extra]) if self.extra.size else physics

    def warmstart(self) -> np.ndarray:
        return self.data.qacc_warmstart.copy()

    def plan_inputs(self):
        """(state, warmstart): what a planner needs to plan from the current state."""
        return self.state(), self.warmstart()

    def advance(self, action) -> np.ndarray:
        """Apply `action` (clipped to bounds) for one control step; returns the new state."""
        task = self.task
        action = np.clip(np.asarray(action, dtype=np.float64), task.action_low, task.action_high)
        if task.feedback:
            ctrl, pos, quat = task.actuate_feedback(self.state()[None], action[None])
            self.data.ctrl[:] = ctrl[0]
            if pos is not None:
                self.data.mocap_pos[:] = np.reshape(pos[0], self.data.mocap_pos.shape)
            if quat is not None:
                self.data.mocap_quat[:] = np.reshape(quat[0], self.data.mocap_quat.shape)
            self.data.qacc_warmstart[:] = 0.0   # as the rollouts' per-step calls start
        elif task.drives_targets:
            ctrl, mocap, extra = task.actuate(self.state()[None], action[None, None])
            self.data.ctrl[:] = ctrl[0, 0]
            if mocap is not None:
                self.data.mocap_pos[:] = np.reshape(mocap[0, 0], self.data.mocap_pos.shape)
            self.extra = np.array(extra[0, 0], dtype=np.float64)
        else:
            self.data.ctrl[:] = action
        mujoco.mj_step(self.model, self.data, nstep=task.frame_skip)
        self.steps += 1
        return self.state()

    def substep(self, action, nstep: int) -> np.ndarray:
        """Apply `action` (clipped to bounds) for `nstep` of a control step's frame_skip physics
        substeps, as a robot's driver servos faster than the policy commands; every frame_skip
        substeps count as one control step. Only for tasks whose action is the control."""
        task = self.task
        if task.drives_targets:
            raise ApexError(f'task {task.name}: its action is integrated per control step '
                            '(actuate); it cannot be applied for part of one')
        self.data.ctrl[:] = np.clip(np.asarray(action, dtype=np.float64), task.action_low,
                                    task.action_high)
        mujoco.mj_step(self.model, self.data, nstep=nstep)
        self._substeps += nstep
        if self._substeps >= task.frame_skip:
            self._substeps -= task.frame_skip
            self.steps += 1
        return self.state()

    def reward(self, before, after, action) -> float:
        """The task's reward of one control step from state `before` to `after`."""
        task = self.task
        action = np.clip(np.asarray(action, dtype=np.float64), task.action_low, task.action_high)
        return float(task.reward(np.stack([before, after])[None], action[None, None])[0, 0])

    def step(self, action) -> tuple:
        """Apply `action` (clipped to bounds) for one control step; returns (reward, state)."""
        before = self.state()
        after = self.advance(action)
        return self.reward(before, after, action), after

    @property
    def done(self) -> bool:
        return self.steps >= self.task.episode_steps

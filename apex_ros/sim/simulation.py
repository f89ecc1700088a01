"""The environment: one MjData stepped with mj_step, frame_skip substeps per control step.

Used by MPC, APEX rollouts and the simulation node, so "the robot" is the same everywhere.
"""
import mujoco
import numpy as np

from .state import get_state, set_state


class Simulation:
    def __init__(self, task):
        self.task = task
        self.model = task.model
        self.data = mujoco.MjData(task.model)
        self.steps = 0

    def reset(self, seed: int | None = None, state=None):
        """Randomized initial state from `seed`, or exactly `state` if given."""
        if state is not None:
            mujoco.mj_resetData(self.model, self.data)
            set_state(self.model, self.data, state)
            mujoco.mj_forward(self.model, self.data)
        else:
            self.task.reset(self.data, np.random.default_rng(seed))
        self.steps = 0
        return self.state()

    def state(self) -> np.ndarray:
        return get_state(self.model, self.data)

    def warmstart(self) -> np.ndarray:
        return self.data.qacc_warmstart.copy()

    def mocap(self):
        if self.model.nmocap == 0:
            return None
        return self.data.mocap_pos.copy(), self.data.mocap_quat.copy()

    def plan_inputs(self):
        """(state, warmstart, mocap): what a planner needs to plan from the current state."""
        return self.state(), self.warmstart(), self.mocap()

    def step(self, action) -> tuple:
        """Apply `action` (clipped to bounds) for one control step; returns (reward, state)."""
        task = self.task
        before = self.state()
        action = np.clip(np.asarray(action, dtype=np.float64), task.action_low, task.action_high)
        self.data.ctrl[:] = action
        mujoco.mj_step(self.model, self.data, nstep=task.frame_skip)
        after = self.state()
        self.steps += 1
        reward = float(task.reward(np.stack([before, after])[None], action[None, None])[0, 0])
        return reward, after

    @property
    def done(self) -> bool:
        return self.steps >= self.task.episode_steps

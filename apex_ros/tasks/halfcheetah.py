"""HalfCheetah running (gymnasium's half_cheetah.xml), as in the APEX paper: gymnasium's
forward-velocity reward minus control cost; the planner alone is also heavily penalized for
large absolute root angles, so it cannot exploit rolling/flipping. Returns count gymnasium's
reward only, as the paper's do (its authors' iCEM code, martius-lab/iCEM: the flip penalty is
in the planner's cost_fn, `env.step` returns the plain reward)."""
import dataclasses

import mujoco
import numpy as np

from ..sim.observation import joint_terms
from .base import Task


class HalfCheetahRun(Task):
    name = 'halfcheetah_run'
    model_file = 'gymnasium:half_cheetah.xml'
    frame_skip = 5             # 20 Hz control (dt 0.01 x 5)
    episode_steps = 1000
    reset_noise = 0.1

    @dataclasses.dataclass
    class Params:
        forward_weight: float = 1.0
        ctrl_cost_weight: float = 0.1
        max_root_angle: float = 1.5708    # rad (pi/2); the planner pays for |rooty| beyond
        root_angle_penalty: float = 100.0  # this, this much per rad per step
        failed_root_angle: float = 1.0    # rad: beyond it the cheetah has stalled nose-up/down
        #                                   or is rolling (the expert: < 0.05 % of its states)

    def obs_terms(self):
        # gymnasium's observation: qpos without rootx, then qvel.
        return (joint_terms(self.model, 'qpos', skip=('qpos:rootx',))
                + joint_terms(self.model, 'qvel'))

    def reward(self, states, actions):
        p = self.params
        x = states[..., 1]                      # rootx
        forward = (x[:, 1:] - x[:, :-1]) / self.dt
        ctrl = np.sum(actions ** 2, axis=-1)
        return p.forward_weight * forward - p.ctrl_cost_weight * ctrl

    def planning_reward(self, states, actions):
        p = self.params
        root_angle = states[:, 1:, 3]           # rooty after the step
        roll = np.maximum(np.abs(root_angle) - p.max_root_angle, 0.0)
        return self.reward(states, actions) - p.root_angle_penalty * roll

    def failed(self, states):
        return np.abs(self.qpos(states)[..., 2]) > self.params.failed_root_angle  # rooty

    def reset(self, data, rng):
        # gymnasium HalfCheetah-v5: uniform qpos noise, normal qvel noise.
        m, n = self.model, self.reset_noise
        mujoco.mj_resetData(m, data)
        data.qpos[:] = m.qpos0 + rng.uniform(-n, n, m.nq)
        data.qvel[:] = n * rng.standard_normal(m.nv)
        mujoco.mj_forward(m, data)

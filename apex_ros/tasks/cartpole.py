"""Cart-pole swing-up (models/cartpole.xml): the small, fast default task.

The pole starts hanging down; the reward (in [0, 1] per step, dm_control style) is high when
the pole is upright, the cart centred, and control and pole velocity small.
"""
import dataclasses

import mujoco
import numpy as np

from .base import Task


class CartpoleSwingup(Task):
    name = 'cartpole_swingup'
    model_file = 'cartpole.xml'
    frame_skip = 5             # 20 Hz control
    episode_steps = 200        # 10 s
    reset_noise = 0.01

    @dataclasses.dataclass
    class Params:
        centering_scale: float = 1.0     # cart offset (m) at which `centered` is ~0.68
        control_weight: float = 0.2      # share of the reward lost at full control
        velocity_weight: float = 0.5     # share lost at high pole angular velocity
        success_cos: float = 0.95        # upright if cos(hinge) above this ...
        success_fraction: float = 0.2    # ... over this last fraction of the episode

    def obs_terms(self):
        return ('qpos:slider', 'cos:hinge', 'sin:hinge', 'qvel:slider', 'qvel:hinge')

    def reward(self, states, actions):
        p = self.params
        nxt = states[:, 1:]
        x, theta = nxt[..., 1], nxt[..., 2]
        theta_dot = nxt[..., 4]
        upright = (np.cos(theta) + 1.0) / 2.0
        centered = (1.0 + np.exp(-(x / p.centering_scale) ** 2)) / 2.0
        u = actions[..., 0]
        small_control = 1.0 - p.control_weight * (1.0 - np.exp(-u ** 2))
        small_velocity = 1.0 - p.velocity_weight * (1.0 - np.exp(-0.1 * theta_dot ** 2))
        return upright * centered * small_control * small_velocity

    def reset(self, data, rng):
        mujoco.mj_resetData(self.model, data)
        n = self.reset_noise
        data.qpos[:] = [rng.uniform(-n, n), np.pi + rng.uniform(-n, n)]
        data.qvel[:] = rng.uniform(-n, n, 2)
        mujoco.mj_forward(self.model, data)

    def success(self, states):
        tail = states[-max(1, int(len(states) * self.params.success_fraction)):]
        return bool(np.all(np.cos(tail[:, 2]) > self.params.success_cos))

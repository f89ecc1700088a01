"""HumanoidStandup (gymnasium's humanoidstandup.xml and HumanoidStandup-v5 reward).

reward = z_torso / timestep + 1 - 0.1 |a|^2. gymnasium also subtracts an impact cost
(5e-7 |cfrc_ext|^2, clipped at 10) computed from contact forces, which are not part of the
physics state a rollout returns; it is left out here (it is < 1 per step against an uph term
of ~30-400 per step).

The planner maximizes the reward itself. The APEX authors' planner cost (martius-lab/iCEM
`environments/mujoco.py`, HumanoidStandup.cost_fn) is -z + 0.1 |a|^2, the height in metres, not
over the timestep: relative to the reward it weighs the controls 1/timestep = 333x more.
`planning_ctrl_cost_weight: 33.3` plans with that balance (experiments/paper_tasks/NOTES.md).
"""
import dataclasses

import numpy as np

from ..sim.observation import joint_terms
from .base import Task


class HumanoidStandup(Task):
    name = 'humanoid_standup'
    model_file = 'gymnasium:humanoidstandup.xml'
    frame_skip = 5             # 66.7 Hz control (dt 0.003 x 5)
    episode_steps = 500        # the APEX paper's task horizon (gymnasium's default is 1000)
    reset_noise = 0.01

    @dataclasses.dataclass
    class Params:
        uph_weight: float = 1.0
        ctrl_cost_weight: float = 0.1
        alive_bonus: float = 1.0
        planning_ctrl_cost_weight: float | None = None   # None: ctrl_cost_weight

    def obs_terms(self):
        # qpos without the root's x, y, then qvel (the state part of gymnasium's observation).
        skip = ('qpos:root[0]', 'qpos:root[1]')
        return joint_terms(self.model, 'qpos', skip=skip) + joint_terms(self.model, 'qvel')

    def reward(self, states, actions):
        p = self.params
        z = states[:, 1:, 3]                    # root z after the step
        uph = p.uph_weight * z / self.model.opt.timestep
        ctrl = p.ctrl_cost_weight * np.sum(actions ** 2, axis=-1)
        return uph - ctrl + p.alive_bonus

    def planning_reward(self, states, actions):
        p = self.params
        if p.planning_ctrl_cost_weight is None:
            return self.reward(states, actions)
        extra = p.planning_ctrl_cost_weight - p.ctrl_cost_weight
        return self.reward(states, actions) - extra * np.sum(actions ** 2, axis=-1)

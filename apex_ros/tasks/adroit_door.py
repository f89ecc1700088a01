"""Adroit Door (DAPG, Rajeswaran et al. 2018) as the APEX paper uses it: the ShadowHand on a
4-dof arm unlatches and swings open a door whose position is randomized per episode.

Model: gymnasium-robotics' adroit_door.xml with DAPG's start-up gain overrides (wrist servos
kp 10, finger servos kp 1), frame_skip 5 (dt 0.01 s), 200 steps. The action is the control:
28 joint position targets within the actuators' ctrlrange, as in the APEX authors' Door env
(martius-lab/iCEM environments/mjenvs.py, use_normalized_actions=False: DAPG's [-1, 1]
scaling is undone before the env applies it). Their iCEM's initial std was 0.5 x half each
action's range: config/adroit_door.yaml sets planner.sigma_relative.

The door's position lives in model.body_pos, not in MjData: it is the extra-state block
'door_pos' (3,), drawn at reset as DAPG does and written into the simulator's model by
`prepare`.

Reward (DAPG's door_v0 step without its hand-to-handle term, as the APEX paper: "door
opening, a quadratic penalty on the velocities, and a bounty for opening the door"), on the
state after each step, h = door hinge angle:
    -0.1 (h - 1.57)^2 - 1e-5 |qvel|^2 + 2 [h > 0.2] + 8 [h > 1.0] + 10 [h > 1.35]
The planner maximizes the same without the velocity penalty (`planning_reward`, below).
Success as DAPG's evaluate_success: the door is open (h >= 1.35) after more than 25 of the
episode's steps.
"""
import dataclasses

import mujoco
import numpy as np

from ..sim.observation import joint_terms
from .base import Task

WORLD_FRAME = 'world'
INPUT_AGE = 0.05   # s (5 control periods): the palm's and handle's positions are streams


class AdroitDoor(Task):
    name = 'adroit_door'
    model_file = 'gymnasium_robotics:adroit_hand/adroit_door.xml'
    frame_skip = 5             # 100 Hz control (dt 0.002 x 5)
    episode_steps = 200
    extra_state = {'door_pos': 3}
    door_body = 'frame'        # the body whose position DAPG randomizes
    palm_site, handle_site = 'S_grasp', 'S_handle'
    # DAPG's reset ranges of the door body's x, y, z (m)
    door_low = (-0.3, 0.25, 0.252)
    door_high = (-0.2, 0.35, 0.35)
    bounties = ((0.2, 2.0), (1.0, 8.0), (1.35, 10.0))   # (hinge angle in rad, bounty past it)

    @dataclasses.dataclass
    class Params:
        open_angle: float = 1.57         # rad: the hinge angle the opening term pulls to
        open_weight: float = 0.1
        velocity_weight: float = 1e-5
        success_angle: float = 1.35      # rad: the door counts as open (DAPG's goal_achieved)
        success_steps: int = 25          # success: open after more than this many steps
        planning_velocity_weight: float = 0.0  # the velocity penalty the planner pays (below)

    def build_model(self):
        model = super().build_model()
        # DAPG's "actuator sensitivity": position servos with these gains (bias -kp * q).
        for first, last, kp in (('A_WRJ1', 'A_WRJ0', 10.0), ('A_FFJ3', 'A_THJ0', 1.0)):
            rows = slice(model.actuator(first).id, model.actuator(last).id + 1)
            model.actuator_gainprm[rows, :3] = [kp, 0.0, 0.0]
            model.actuator_biasprm[rows, :3] = [0.0, -kp, 0.0]
        return model

    @property
    def hinge_column(self) -> int:
        return self.layout.qpos.start + self.model.joint('door_hinge').qposadr[0]

    def obs_terms(self):
        # DAPG's (and the APEX authors') observation: the hand, arm and door joints' positions,
        # the palm, the handle and the palm's offset from it; no velocities. The handle's
        # position carries the door's. (experiments/paper_tasks/NOTES.md: students distilled
        # from the same data turned the latch ~4x as often with it as with joints alone)
        palm, handle = (tuple(f'site:{site}[{i}]' for i in range(3))
                        for site in (self.palm_site, self.handle_site))
        offset = tuple(f'offset:{self.handle_site}>{self.palm_site}[{i}]' for i in range(3))
        return joint_terms(self.model, 'qpos') + palm + handle + offset

    def inputs(self):
        """The palm's and the handle's positions in 'world' (a robot's forward kinematics and
        its perception of the door; the simulation computes both)."""
        from ..deploy.inputs import InputSpec
        return tuple(
            InputSpec(name, 'geometry_msgs/PointStamped', topic, WORLD_FRAME,
                      tuple(f'site:{site}[{i}]' for i in range(3)), max_age=INPUT_AGE)
            for name, topic, site in (('palm', '/palm/position', self.palm_site),
                                      ('handle', '/door/handle/position', self.handle_site)))

    def reset(self, data, rng):
        mujoco.mj_resetData(self.model, data)
        return rng.uniform(self.door_low, self.door_high)

    def prepare(self, model, state):
        model.body_pos[model.body(self.door_body).id] = state[self.layout.extra['door_pos']]

    def initial_extra(self):
        return self.model.body_pos[self.model.body(self.door_body).id].copy()

    def reward(self, states, actions):
        p = self.params
        after = states[:, 1:]
        hinge = after[..., self.hinge_column]
        reward = (-p.open_weight * (hinge - p.open_angle) ** 2
                  - p.velocity_weight * np.sum(self.qvel(after) ** 2, axis=-1))
        for angle, bonus in self.bounties:
            reward = reward + bonus * (hinge > angle)
        return reward

    def planning_reward(self, states, actions):
        # The APEX authors' planner cost (martius-lab/iCEM mjenvs.py Door.cost_fn) meant the
        # same velocity penalty but indexed the last 30 observation entries, which are finger
        # angles and door/palm/handle positions, not velocities: ~1e-5 per step, no force on
        # the search. On the true velocities the penalty is the only term that varies while
        # the door is shut, and it drives the search to hold the hand still.
        p = self.params
        velocity = np.sum(self.qvel(states[:, 1:]) ** 2, axis=-1)
        return (self.reward(states, actions)
                + (p.velocity_weight - p.planning_velocity_weight) * velocity)

    def success(self, states):
        hinge = states[1:, self.hinge_column]
        return bool(np.sum(hinge >= self.params.success_angle) > self.params.success_steps)

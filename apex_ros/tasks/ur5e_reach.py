"""UR5e reach (models/ur5e.xml): bring the tool point to a goal position and stop there.

The action is the six joint-position targets of the arm's position servos (what a
ros2_control forward_position_controller takes), within the joint limits, at 50 Hz; physics
runs at 500 Hz, the robot side's command rate. The goal (x, y, z in the base frame, metres)
is the extra-state block `goal`, drawn at reset in a region in front of the arm's home pose
and observed as `extra:goal`. The tool point comes from the UR5e's DH parameters
(`tool_position`, vectorized numpy), which the model's `tool` site reproduces.
"""
import dataclasses

import mujoco
import numpy as np

from .base import Task

# UR5e Denavit-Hartenberg parameters (universal-robots.com), joints 1..6
DH_D = np.array([0.1625, 0.0, 0.0, 0.1333, 0.0997, 0.0996])
DH_A = np.array([0.0, -0.425, -0.3922, 0.0, 0.0, 0.0])
DH_ALPHA = np.array([np.pi / 2, 0.0, 0.0, np.pi / 2, -np.pi / 2, 0.0])
# upper arm raised, forearm level, tool pointing down: the UR "home" pose used by most demos
HOME = np.array([0.0, -np.pi / 2, np.pi / 2, -np.pi / 2, -np.pi / 2, 0.0])


def tool_position(qpos: np.ndarray) -> np.ndarray:
    """Forward kinematics of the UR5e flange: joint angles (..., 6) -> position (..., 3) in
    the base frame, by the standard DH convention Rz(q) Tz(d) Tx(a) Rx(alpha)."""
    q = np.asarray(qpos, dtype=np.float64)
    rot = np.broadcast_to(np.eye(3), q.shape[:-1] + (3, 3))
    pos = np.zeros(q.shape[:-1] + (3,))
    for i in range(6):
        c, s = np.cos(q[..., i]), np.sin(q[..., i])
        ca, sa = np.cos(DH_ALPHA[i]), np.sin(DH_ALPHA[i])
        local = np.stack([DH_A[i] * c, DH_A[i] * s, np.full_like(c, DH_D[i])], axis=-1)
        pos = pos + np.einsum('...ij,...j->...i', rot, local)
        zeros, ones = np.zeros_like(c), np.ones_like(c)
        joint = np.stack([np.stack([c, -s * ca, s * sa], -1),
                          np.stack([s, c * ca, -c * sa], -1),
                          np.stack([zeros, sa * ones, ca * ones], -1)], axis=-2)
        rot = rot @ joint
    return pos


class UR5eReach(Task):
    name = 'ur5e_reach'
    model_file = 'ur5e.xml'
    frame_skip = 10            # 50 Hz policy over 500 Hz physics
    episode_steps = 100        # 2 s
    extra_state = {'goal': 3}
    joints = ('shoulder_pan_joint', 'shoulder_lift_joint', 'elbow_joint', 'wrist_1_joint',
              'wrist_2_joint', 'wrist_3_joint')

    @dataclasses.dataclass
    class Params:
        velocity_weight: float = 0.02    # per (rad/s)^2 of joint speed
        effort_weight: float = 0.01      # per rad^2 of servo error (target - position)
        reset_noise: float = 0.05        # uniform noise (rad) on the home pose at reset
        # goals: [low, high] of the distance from the base's z axis (m), the azimuth (rad,
        # +-60 deg around the home pose's direction, -x) and the height above the base (m)
        goal_radius: list[float] = dataclasses.field(default_factory=lambda: [0.3, 0.65])
        goal_azimuth: list[float] = dataclasses.field(default_factory=lambda: [2.0944, 4.1888])
        goal_height: list[float] = dataclasses.field(default_factory=lambda: [0.05, 0.55])
        success_distance: float = 0.02   # tool within this of the goal at the end ...
        success_speed: float = 0.05      # ... its mean speed (m/s) over the last ...
        success_window: float = 0.1      # ... this many seconds below this

    def obs_terms(self):
        return (tuple(f'qpos:{j}' for j in self.joints) + tuple(f'qvel:{j}' for j in self.joints)
                + tuple(f'extra:goal[{i}]' for i in range(3)))

    def inputs(self):
        """The goal, as a robot gets it: a geometry_msgs/PointStamped in the base frame."""
        from ..deploy.inputs import InputSpec
        return (InputSpec('goal', 'geometry_msgs/PointStamped', '/goal', 'base_link',
                          tuple(f'extra:goal[{i}]' for i in range(3))),)

    def tool(self, states: np.ndarray) -> np.ndarray:
        """Tool point (..., 3) of states (..., nstate)."""
        return tool_position(self.qpos(states))

    def goal_distance(self, states: np.ndarray) -> np.ndarray:
        return np.linalg.norm(self.tool(states) - self.extra(states, 'goal'), axis=-1)

    def reward(self, states, actions):
        p = self.params
        nxt = states[:, 1:]
        servo_error = actions - self.qpos(states[:, :-1])
        return -(self.goal_distance(nxt)
                 + p.velocity_weight * np.sum(self.qvel(nxt) ** 2, axis=-1)
                 + p.effort_weight * np.sum(servo_error ** 2, axis=-1))

    def nominal_action(self, state):
        """Hold: the current joint positions as the targets."""
        return np.clip(self.qpos(state), self.action_low, self.action_high)

    def sample_goal(self, rng) -> np.ndarray:
        p = self.params
        r, phi, z = (rng.uniform(*p.goal_radius), rng.uniform(*p.goal_azimuth),
                     rng.uniform(*p.goal_height))
        return np.array([r * np.cos(phi), r * np.sin(phi), z])

    def initial_extra(self):
        """A robot's state without a goal message: the middle of the goal region."""
        p = self.params
        r, phi = np.mean(p.goal_radius), np.mean(p.goal_azimuth)
        return np.array([r * np.cos(phi), r * np.sin(phi), np.mean(p.goal_height)])

    def reset(self, data, rng):
        m = self.model
        mujoco.mj_resetData(m, data)
        n = self.params.reset_noise
        data.qpos[:] = HOME + rng.uniform(-n, n, m.nq)
        data.ctrl[:] = data.qpos
        mujoco.mj_forward(m, data)
        return self.sample_goal(rng)

    def success(self, states):
        """Within success_distance of the goal at the end, and settled: the tool moved less
        than success_speed * success_window over the last success_window seconds."""
        p = self.params
        steps = min(max(1, round(p.success_window / self.dt)), len(states) - 1)
        if steps == 0:   # an episode of one state has not settled anywhere yet
            return False
        tool = self.tool(states[[-1 - steps, -1]])
        speed = np.linalg.norm(tool[1] - tool[0]) / (steps * self.dt)
        return bool(self.goal_distance(states[-1]) < p.success_distance
                    and speed < p.success_speed)

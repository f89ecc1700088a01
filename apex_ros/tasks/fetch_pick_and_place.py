"""Fetch Pick&Place (gymnasium-robotics' fetch/pick_and_place.xml), as the APEX paper uses it.

The setup reproduces gymnasium-robotics' FetchPickAndPlace (which does not construct under
MuJoCo >= 3.12): the mocap weld's relative pose zeroed, the base joints and the box at the
env's initial positions, the gripper moved to its start pose by 10 settling control steps;
per episode the box's xy is drawn within 0.15 m of the gripper's start (at least 0.1 m from
it) and the goal within 0.15 m of it, at table height or, half of the time, up to 0.45 m
above. 50 steps of 20 x 2 ms (25 Hz).

Action: 4 numbers in [-1, 1], the env's: each step the mocap goes to the gripper's current
position + 0.05 a[:3], its orientation to the gripper's + (1, 0, 1, 0), and each finger's
servo to that finger's position + a[3] (`actuate_feedback`; "current" as the APEX authors'
iCEM env has it, kinematics after every step). The controls depend on the state each step
starts from, so rollouts run one batched `mujoco.rollout` call per control step (Task.
actuate_feedback). An earlier version integrated the targets from the deltas instead, to fit
one call over the horizon; the expert planning with it lifted the box less often than with
the env's action (experiments/fetch_expert/NOTES.md).

State: FULLPHYSICS + goal (3). Reward (the paper's): -|box - goal| after each step, no
hand-to-box term; success: |box - goal| <= 0.05 m at the end.

Deployment (`command_interface`, `inputs`): the action goes to a Cartesian controller as
geometry_msgs/TwistStamped (0.05 a[:3] m per control step from where the end effector is, as
a velocity) in 'base_link' and the gripper value a[3] to the fingers' forward controller
(/gripper_controller/commands). The twist's frame is the robot's: the base joints are slides,
so base_link's axes are the world's and a displacement (a direction) is the same in both;
positions are the task's world frame ('world'). Inputs: the goal (PointStamped, once), the
box's pose and velocity (PoseStamped, TwistStamped as its free joint's qvel holds it:
perception).
"""
import dataclasses
import time

import mujoco
import numpy as np

from ..sim.kinematics import Kinematics
from ..sim.observation import joint_terms
from ..sim.simulation import Simulation
from .base import Task

# gymnasium-robotics' FetchPickAndPlace setup (fetch/pick_and_place.py, fetch/fetch_env.py)
INITIAL_QPOS = {
    'robot0:slide0': 0.405,
    'robot0:slide1': 0.48,
    'robot0:slide2': 0.0,
    'object0:joint': [1.25, 0.53, 0.4, 1.0, 0.0, 0.0, 0.0],
}
# the gripper's start, relative to the grip site; + 0.2: the env's gripper_extra_height
GRIPPER_START_OFFSET = np.array([-0.498, 0.005, -0.431 + 0.2])
GRIPPER_QUAT = np.array([1.0, 0.0, 1.0, 0.0])   # the env's fixed end-effector orientation
SETTLE_STEPS = 10
MOCAP_STEP = 0.05            # metres per unit of a[:3]
OBJECT_RANGE = 0.15
OBJECT_MIN_DISTANCE = 0.1
TARGET_RANGE = 0.15
AIR_PROBABILITY = 0.5
AIR_HEIGHT = 0.45
FINGERS = ('robot0:l_gripper_finger_joint', 'robot0:r_gripper_finger_joint')
WORLD_FRAME = 'world'
INPUT_AGE = 0.2              # s (5 control periods): the box's pose and twist are streams


class FetchPickAndPlace(Task):
    name = 'fetch_pick_and_place'
    model_file = 'gymnasium_robotics:fetch/pick_and_place.xml'
    frame_skip = 20            # 25 Hz control (dt 0.002 x 20)
    episode_steps = 50
    extra_state = {'goal': 3}
    command_interface = {'interface': 'cartesian', 'message': 'geometry_msgs/TwistStamped',
                         'frame': 'base_link', 'axes': ['x', 'y', 'z', 'gripper'],
                         'scale': MOCAP_STEP}

    @dataclasses.dataclass
    class Params:
        success_distance: float = 0.05   # metres, box to goal, at the end of the episode

    def __init__(self, params=None, episode_steps=None, where='task.params'):
        super().__init__(params, episode_steps, where)
        m = self.model
        self.gripper_body = m.body('robot0:gripper_link').id
        box = m.joint('object0:joint')
        self.box_qpos = slice(int(box.qposadr[0]), int(box.qposadr[0]) + 7)
        self.finger_qpos = np.array([m.joint(f).qposadr[0] for f in FINGERS])
        # the fingers' actuators in actuator order (the order of ctrl)
        self.actuator_finger_qpos = m.jnt_qposadr[m.actuator_trnid[:, 0]]
        self._kinematics = Kinematics(m, slice(None))   # of qpos rows (gripper_pose)
        self._settle()

    def build_model(self):
        model = super().build_model()
        for eq in range(model.neq):
            if int(model.eq_type[eq]) == int(mujoco.mjtEq.mjEQ_WELD):
                # anchor and relative pose zero, as the env's reset_mocap_welds (the raw XML
                # keeps the gripper 1.415, 0.264, 0.786 away from the mocap body)
                model.eq_data[eq, :6] = 0.0
                model.eq_data[eq, 6:10] = [1.0, 0.0, 0.0, 0.0]
        # the env's fixed end-effector orientation: rollouts hold the mocap bodies' model quat
        mocap = int(np.flatnonzero(model.body_mocapid >= 0)[0])
        model.body_quat[mocap] = GRIPPER_QUAT / np.linalg.norm(GRIPPER_QUAT)
        return model

    def _settle(self):
        """The env's _env_setup: base and box placed, the mocap moved above the table, 10
        control steps; keeps the resulting data as every episode's starting point."""
        m = self.model
        data = mujoco.MjData(m)
        for name, value in INITIAL_QPOS.items():
            j = m.joint(name)
            width = 7 if int(j.type[0]) == int(mujoco.mjtJoint.mjJNT_FREE) else 1
            data.qpos[j.qposadr[0]:j.qposadr[0] + width] = value
        mujoco.mj_forward(m, data)
        data.mocap_pos[0] = GRIPPER_START_OFFSET + data.site('robot0:grip').xpos
        for _ in range(SETTLE_STEPS):
            mujoco.mj_step(m, data, nstep=self.frame_skip)
        self._start = (data.time, data.qpos.copy(), data.qvel.copy())
        self.initial_gripper_xpos = data.site('robot0:grip').xpos.copy()
        self.table_height = float(data.site('object0').xpos[2])   # the env's height_offset

    # --- the action: relative to where the gripper is ---------------------------------
    def action_bounds(self):
        return -np.ones(4), np.ones(4)

    def gripper_pose(self, qpos: np.ndarray) -> tuple:
        """(B, nq) -> the gripper body's positions (B, 3) and orientations (B, 4) there."""
        body = self.gripper_body

        def read(data, out):
            out[:3], out[3:] = data.xpos[body], data.xquat[body]
        pose = self._kinematics.map(qpos, read, 7)
        return pose[:, :3], pose[:, 3:]

    def actuate_feedback(self, states, actions):
        """(B, nstate), (B, 4) -> ctrl (B, 2), mocap_pos (B, 1, 3), mocap_quat (B, 1, 4):
        the env's mocap_set_action and ctrl_set_action from the states."""
        qpos = states[:, self.layout.qpos]
        pos, quat = self.gripper_pose(qpos)
        quat = quat + GRIPPER_QUAT
        quat /= np.linalg.norm(quat, axis=1, keepdims=True)
        ctrl = qpos[:, self.actuator_finger_qpos] + actions[:, 3:4]
        return ctrl, (pos + MOCAP_STEP * actions[:, :3])[:, None], quat[:, None]

    # --- episodes -----------------------------------------------------------------------
    def reset(self, data, rng):
        m = self.model
        mujoco.mj_resetData(m, data)
        data.time, qpos, qvel = self._start
        data.qpos[:] = qpos
        data.qvel[:] = qvel
        start_xy = self.initial_gripper_xpos[:2]
        box_xy = start_xy
        while np.linalg.norm(box_xy - start_xy) < OBJECT_MIN_DISTANCE:
            box_xy = start_xy + rng.uniform(-OBJECT_RANGE, OBJECT_RANGE, size=2)
        data.qpos[self.box_qpos.start:self.box_qpos.start + 2] = box_xy
        goal = self.initial_gripper_xpos + rng.uniform(-TARGET_RANGE, TARGET_RANGE, size=3)
        goal[2] = self.table_height
        if rng.uniform() < AIR_PROBABILITY:
            goal[2] += rng.uniform(0, AIR_HEIGHT)
        mujoco.mj_forward(m, data)
        return goal

    def initial_extra(self):
        return self.initial_gripper_xpos.copy()   # a goal where the gripper starts

    def obs_terms(self):
        # the robot's joints, the box's pose and velocity (its free joint), the goal
        goal = tuple(f'extra:goal[{i}]' for i in range(3))
        return joint_terms(self.model, 'qpos') + joint_terms(self.model, 'qvel') + goal

    def inputs(self):
        """The goal and the box's pose and velocity, in 'world'."""
        from ..deploy.inputs import InputSpec
        return (
            InputSpec('goal', 'geometry_msgs/PointStamped', '/goal', WORLD_FRAME,
                      tuple(f'extra:goal[{i}]' for i in range(3))),
            InputSpec('object0', 'geometry_msgs/PoseStamped', '/object0/pose', WORLD_FRAME,
                      tuple(f'qpos:object0:joint[{i}]' for i in range(7)), max_age=INPUT_AGE),
            InputSpec('object0_twist', 'geometry_msgs/TwistStamped', '/object0/twist',
                      WORLD_FRAME, tuple(f'qvel:object0:joint[{i}]' for i in range(6)),
                      max_age=INPUT_AGE))

    def box_to_goal(self, states):
        """(...,) distance of the box from the goal in states (..., nstate)."""
        box = states[..., self.layout.qpos.start + self.box_qpos.start:
                     self.layout.qpos.start + self.box_qpos.start + 3]
        return np.linalg.norm(box - self.extra(states, 'goal'), axis=-1)

    def reward(self, states, actions):
        return -self.box_to_goal(states[:, 1:])

    def success(self, states):
        return bool(self.box_to_goal(states[-1]) <= self.params.success_distance)


class GymnasiumStepped(Simulation):
    """Fetch stepped with the env's own code path, as the APEX authors' iCEM env steps it: an
    independent reference for the task's action (test/test_fetch.py, benchmarks/
    fetch_expert.py). Each step the mocap goes to the gripper's `xpos` + 0.05 a[:3], its quat
    to the gripper's `xquat` + (1, 0, 1, 0) (unnormalized, as the env writes it), each
    finger's servo to that finger's position + a[3], then mj_step, then the kinematics (the
    env's forward pass after a step); the solver's warm start carries over from step to step,
    as in the env."""

    def advance(self, action):
        task, data = self.task, self.data
        a = np.clip(np.asarray(action, dtype=np.float64), task.action_low, task.action_high)
        data.mocap_pos[0] = data.xpos[task.gripper_body] + MOCAP_STEP * a[:3]
        data.mocap_quat[0] = data.xquat[task.gripper_body] + GRIPPER_QUAT
        data.ctrl[:] = data.qpos[task.actuator_finger_qpos] + a[3]
        mujoco.mj_step(self.model, data, nstep=task.frame_skip)
        mujoco.mj_kinematics(self.model, data)
        self.steps += 1
        return self.state()


class SteppedRollouts:
    """OpenLoopRollouts' interface (`run`, `sim_seconds`, `close`) on the reference: every
    sample stepped by a GymnasiumStepped simulation, as the iCEM reference's ground-truth
    model steps copies of the env. Single-threaded Python stepping, for the parity
    measurement (benchmarks/fetch_expert.py: the expert planning with and acting on the env's
    code path against the task's batched one), not for training."""

    threads = 1

    def __init__(self, task: FetchPickAndPlace):
        self.task = task
        self.sims = []
        self.sim_seconds = 0.0

    def close(self):
        pass

    def run(self, state0, actions, warmstart=None):
        """state0 (nstate,), actions (B, H, 4) -> (states (B, H+1, nstate), ok (B,))."""
        batch, horizon, _ = actions.shape
        while len(self.sims) < batch:
            self.sims.append(GymnasiumStepped(self.task))
        states = np.empty((batch, horizon + 1, len(state0)))
        t0 = time.perf_counter()
        for b in range(batch):
            sim = self.sims[b]
            states[b, 0] = sim.reset(state=state0, warmstart=warmstart)
            for t in range(horizon):
                states[b, t + 1] = sim.advance(actions[b, t])
        self.sim_seconds += time.perf_counter() - t0
        return states, np.isfinite(states).all(axis=(1, 2))


class ReachOnlyPolicy:
    """A weak Fetch policy, the guide of the paper's Fig. 3 measurement (benchmarks/
    fetch_expert.py --guide reach, test/test_fetch.py): moves the gripper towards the box
    with the gripper open and never grasps, so it almost never succeeds.
    obs (B, obs_dim) -> actions (B, 4)."""

    def __init__(self, task: FetchPickAndPlace, gain: float = 0.5):
        terms = task.observation.terms
        self.task = task
        self.qpos = [terms.index(t) for t in joint_terms(task.model, 'qpos')]
        self.box = [terms.index(f'qpos:object0:joint[{i}]') for i in range(3)]
        self.gain = gain
        self.obs_dim, self.act_dim = task.obs_dim, task.nu

    def __call__(self, obs):
        obs = np.asarray(obs, dtype=np.float64)
        gripper, _ = self.task.gripper_pose(obs[:, self.qpos])
        reach = np.clip(self.gain * (obs[:, self.box] - gripper) / MOCAP_STEP, -1, 1)
        return np.concatenate([reach, np.ones((len(obs), 1))], axis=1)

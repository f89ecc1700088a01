"""Test-only tasks with state beyond /joint_states, used as `goal_tasks:Reach` (test/ on the
path): a planar point finger (slide joints x, y) reaching a goal held in the extra state, next
to a free object whose pose the policy observes. Its inputs: the goal as a PointStamped on
/goal, the object's pose as a PoseStamped on /object0/pose, both in frame 'world'."""
import mujoco
import numpy as np

from apex_ros.deploy.inputs import InputSpec
from apex_ros.tasks.base import Task

XML = """
<mujoco model="goal_reach">
  <option timestep="0.002" gravity="0 0 0"/>
  <worldbody>
    <body name="finger">
      <joint name="x" type="slide" axis="1 0 0" damping="2"/>
      <joint name="y" type="slide" axis="0 1 0" damping="2"/>
      <geom type="sphere" size="0.02" mass="0.1" contype="0" conaffinity="0"/>
    </body>
    <body name="object0" pos="0.3 0.3 0">
      <freejoint name="object0:joint"/>
      <geom type="box" size="0.02 0.02 0.02" mass="0.05" contype="0" conaffinity="0"/>
    </body>
  </worldbody>
  <actuator>
    <motor joint="x" ctrlrange="-1 1"/>
    <motor joint="y" ctrlrange="-1 1"/>
  </actuator>
</mujoco>
"""
GOAL = tuple(f'extra:goal[{i}]' for i in range(3))
OBJECT = tuple(f'qpos:object0:joint[{i}]' for i in range(7))
GOAL_INPUT = InputSpec('goal', 'geometry_msgs/PointStamped', '/goal', 'world', GOAL)
OBJECT_INPUT = InputSpec('object0', 'geometry_msgs/PoseStamped', '/object0/pose', 'world',
                         OBJECT, max_age=0.25)


class Reach(Task):
    name = 'goal_reach'
    frame_skip = 10              # 50 Hz control
    episode_steps = 40
    extra_state = {'goal': 3}

    def build_model(self):
        return mujoco.MjModel.from_xml_string(XML)

    def obs_terms(self):
        return ('qpos:x', 'qpos:y', 'qvel:x', 'qvel:y') + GOAL + OBJECT

    def inputs(self):
        return (GOAL_INPUT, OBJECT_INPUT)

    def reset(self, data, rng):
        mujoco.mj_resetData(self.model, data)
        data.qpos[:2] = rng.uniform(-0.1, 0.1, 2)
        data.qpos[2:4] += rng.uniform(-0.1, 0.1, 2)      # the object's x, y
        return np.array([*rng.uniform(-0.3, 0.3, 2), 0.0])

    def reward(self, states, actions):
        finger = states[:, 1:, self.layout.qpos][..., :2]
        goal = self.extra(states[:, 1:], 'goal')[..., :2]
        return -np.linalg.norm(finger - goal, axis=-1)


class ReachUncovered(Reach):
    """Observes the object but declares only the goal input: not deployable."""
    name = 'goal_reach_uncovered'

    def inputs(self):
        return (GOAL_INPUT,)

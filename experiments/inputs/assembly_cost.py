"""What assembling the observation from joint states plus declared inputs costs per control
step, against joint states alone (apex_ros.deploy.inputs.InputObservation vs
JointObservation), on test/goal_tasks.py's Reach: 4 joint terms + a goal (3) + an object pose
(7). Best of 5 repeats of 20 000 calls each; prints microseconds per call.

    PYTHONPATH=.:test python experiments/inputs/assembly_cost.py
"""
import timeit

import goal_tasks
from geometry_msgs.msg import PointStamped, PoseStamped

from apex_ros.deploy.inputs import InputObservation, fill_message, received
from apex_ros.deploy.observation import JointObservation
from apex_ros.tasks import make_task

CALLS, REPEATS = 20_000, 5


def main():
    task = make_task('goal_tasks:Reach')
    inputs = InputObservation(task.observation.terms, task.inputs())
    joints_only = JointObservation(['qpos:x', 'qpos:y', 'qvel:x', 'qvel:y'])
    goal = fill_message(goal_tasks.GOAL_INPUT, PointStamped(), [0.1, 0.2, 0.0])
    pose = fill_message(goal_tasks.OBJECT_INPUT, PoseStamped(), [0.3, 0.3, 0, 1, 0, 0, 0])
    latest = {'goal': received(goal_tasks.GOAL_INPUT, 1.0, goal),
              'object0': received(goal_tasks.OBJECT_INPUT, 1.0, pose)}
    state = (['x', 'y'], [0.0, 0.0], [0.0, 0.0])
    for name, call in (
            ('joint states only (4 terms)', lambda: joints_only(*state)),
            ('input check (problem)', lambda: inputs.problem(latest, 1.1)),
            ('joint states + 2 inputs (14 terms)', lambda: inputs(*state, latest, 1.1)),
            ('one PoseStamped received', lambda: received(goal_tasks.OBJECT_INPUT, 1.0, pose))):
        best = min(timeit.repeat(call, number=CALLS, repeat=REPEATS)) / CALLS
        print(f'{name}: {best * 1e6:.1f} us')


if __name__ == '__main__':
    main()

"""One Fetch Pick&Place expert episode, step by step: where the box, the gripper and the
fingers are, the distance to the goal and the action taken. For diagnosis on tuning seeds
(0-99), never on the benchmark's (1000+).

    python experiments/fetch_expert/trace.py --seed 3 [--config C] [--set planner.horizon=40]
"""
import argparse
import time

import numpy as np

from apex_ros.cli.common import add_config_args, load_config
from apex_ros.sim.episodes import planner_actor, run_episode


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_config_args(p, shorthands=('budget', 'threads'))
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--steps', type=int)
    args = p.parse_args()
    cfg = load_config(args)
    task = cfg.make_task()
    planner = cfg.make_planner(task)
    t0 = time.perf_counter()
    ep = run_episode(task, planner_actor(planner, args.seed), args.seed, steps=args.steps)
    lay = task.layout
    box = slice(lay.qpos.start + task.box_qpos.start, lay.qpos.start + task.box_qpos.start + 3)
    fingers = lay.qpos.start + task.finger_qpos
    goal = task.extra(ep.states[0], 'goal')
    print(f'goal {np.round(goal, 3)}, table {task.table_height:.3f}; '
          f'{time.perf_counter() - t0:.0f} s')
    print(' t   box                    gripper                fingers   dist   action')
    for t, s in enumerate(ep.states):
        a = ep.actions[t] if t < len(ep.actions) else np.full(4, np.nan)
        gripper, _ = task.gripper_pose(s[None, lay.qpos])
        print(f'{t:2d} {np.round(s[box], 3)} {np.round(gripper[0], 3)} '
              f'{s[fingers].sum():.3f} {task.box_to_goal(s):.3f} {np.round(a, 2)}')
    print('success', ep.success)


if __name__ == '__main__':
    main()

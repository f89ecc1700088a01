"""Does Fetch's student need to see the gripper? Students distilled from one APEX run's dataset
(recorded with the task's joint observation: every qpos and qvel and the goal) under two
observations, driven in the simulation:

  joints  what the run's student saw: 22 qpos, 21 qvel, the goal (46)
  gym     the APEX authors' (gymnasium-robotics' FetchPickAndPlace `observation` + the goal,
          martius-lab/iCEM `icem/environments/robotics.py`): the gripper, the box, the box's
          offset from the gripper, the fingers, the box's orientation and velocity, the
          fingers' velocity, the goal; by forward kinematics of the recorded qpos (26 terms).
          Unlike gym's: no gripper velocity (a site's velocity is not an observation term
          here), the box's velocity is its own rather than relative to the gripper's, and
          its orientation a quaternion rather than Euler angles

    python experiments/paper_tasks/fetch_observation.py \
        experiments/paper_tasks/fpp_apex_iter1-2.npz experiments/paper_tasks/fetch_observation.json

The shard (committed) is the run's dataset after 2 iterations (100 rollouts of 50 steps: 25
expert and 25 DAgger per iteration), written by

    python experiments/paper_tasks/fetch_observation.py runs/fpp_apex \
        experiments/paper_tasks/fpp_apex_iter1-2.npz --save-shard
from the run `apex-ros train --config config/fetch_pick_and_place.yaml --threads 1 --out
runs/fpp_apex --resume` (started 2026-12-02 ~11:00; the task has not changed since).
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from apex_ros.files import atomic_write_text  # noqa: E402
from apex_ros.learning.apex.checkpoint import read_checkpoint  # noqa: E402
from apex_ros.learning.dataset import Dataset  # noqa: E402
from apex_ros.learning.student import MLPPolicy, make_optimizer, train_policy  # noqa: E402
from apex_ros.learning.train_config import TrainConfig  # noqa: E402
from apex_ros.sim.episodes import run_episode  # noqa: E402
from apex_ros.sim.observation import Observation  # noqa: E402
from apex_ros.sim.simulation import Simulation  # noqa: E402
from apex_ros.tasks import make_task  # noqa: E402

EVAL_SEED = 777   # not an APEX evaluation seed (those come from apex.config.episode_seed)
GRIP, BOX, FINGERS = 'robot0:grip', 'object0', ('robot0:r_gripper_finger_joint',
                                                 'robot0:l_gripper_finger_joint')
REACHED, LIFTED = 0.02, 0.02   # m: gripper this close to the box; box this far off the table


def xyz(kind):
    return tuple(kind.format(i=i) for i in range(3))


GYM_TERMS = (xyz(f'site:{GRIP}[{{i}}]') + xyz(f'qpos:{BOX}:joint[{{i}}]')
             + xyz(f'offset:{GRIP}>{BOX}[{{i}}]') + tuple(f'qpos:{f}' for f in FINGERS)
             + tuple(f'qpos:{BOX}:joint[{i}]' for i in range(3, 7))
             + tuple(f'qvel:{BOX}:joint[{i}]' for i in range(6))
             + tuple(f'qvel:{f}' for f in FINGERS) + xyz('extra:goal[{i}]'))


def how_far(task, states) -> dict:
    """How far an episode got: closest gripper-to-box distance, box lifted, final distance."""
    grip = Observation(task.model, xyz(f'site:{GRIP}[{{i}}]'), task.layout, task.prepare)
    box = task.layout.qpos.start + task.model.joint(f'{BOX}:joint').qposadr[0]
    reach = np.linalg.norm(grip(states) - states[:, box:box + 3], axis=1).min()
    lift = states[:, box + 2].max() - states[0, box + 2]
    return {'closest_m': float(reach), 'lifted_m': float(lift),
            'final_m': float(task.box_to_goal(states[-1]))}


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('data', help='the dataset shard (.npz), or with --save-shard a run directory')
    p.add_argument('out', help='JSON to write (with --save-shard: the shard to write)')
    p.add_argument('--save-shard', action='store_true',
                   help="write the run's dataset as a compressed shard and stop")
    p.add_argument('--steps', type=int, default=3000, help='Adam steps per student')
    p.add_argument('--seeds', default='0,1,2', help='training seeds')
    p.add_argument('--episodes', type=int, default=50)
    args = p.parse_args()
    if args.save_shard:
        read_checkpoint(args.data).dataset.save(args.out, compress=True)
        print(f'-> {args.out}')
        return
    task = make_task('fetch_pick_and_place')
    dataset = Dataset.load(args.data)
    obs, actions = dataset.arrays()
    states = np.zeros((len(obs), task.layout.size))
    states[:, 1:] = obs   # the joint observation is the state without its time
    if obs.shape[1] != task.obs_dim or not np.array_equal(task.observe(states), obs):
        raise SystemExit(f'{args.data}: its observations are not the joint observation '
                         f'(every qpos, qvel, the goal: {task.obs_dim} terms)')
    views = {'joints': task.observation,
             'gym': Observation(task.model, GYM_TERMS, task.layout, task.prepare)}
    results = {'data': args.data, 'samples': len(obs), 'rollouts': len(dataset),
               'steps': args.steps, 'episodes': args.episodes, 'eval_seed0': EVAL_SEED,
               'variants': {}}
    for name, view in views.items():
        x = view(states).astype(np.float32)
        per_seed = []
        for seed in map(int, args.seeds.split(',')):
            torch.manual_seed(seed)
            cfg = TrainConfig(steps=args.steps, lr_schedule='cosine')
            student = MLPPolicy(x.shape[1], actions.shape[1], cfg.hidden)
            mse = train_policy(student, make_optimizer(student, cfg), x, actions, cfg,
                               torch.Generator().manual_seed(seed),
                               action_bounds=(task.action_low, task.action_high))

            def act(sim, student=student, view=view):
                x = torch.as_tensor(view(sim.state()[None]), dtype=torch.float32)
                with torch.no_grad():
                    return student(x).numpy()[0], None
            sim, episodes = Simulation(task), []
            for e in range(args.episodes):
                ep = run_episode(task, act, seed=EVAL_SEED + e, sim=sim)
                episodes.append({'success': bool(ep.success), **how_far(task, ep.states)})
            row = {'seed': seed, 'train_mse': mse,
                   'successes': sum(e['success'] for e in episodes),
                   'reached': sum(e['closest_m'] <= REACHED for e in episodes),
                   'lifted': sum(e['lifted_m'] >= LIFTED for e in episodes),
                   'median_final_m': float(np.median([e['final_m'] for e in episodes])),
                   'episodes': episodes}
            print(f'{name} seed {seed}: mse {mse:.4f} successes {row["successes"]}, reached '
                  f'{row["reached"]}, lifted {row["lifted"]} of {args.episodes}; median final '
                  f'distance {row["median_final_m"]:.3f} m', flush=True)
            per_seed.append(row)
        results['variants'][name] = {'obs_dim': int(x.shape[1]), 'terms': list(view.terms),
                                     'students': per_seed}
    atomic_write_text(args.out, json.dumps(results, indent=1) + '\n')
    print(f'-> {args.out}')


if __name__ == '__main__':
    main()

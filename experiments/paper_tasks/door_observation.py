"""Does Door's student need to see the palm and the handle? Students distilled from one APEX
run's dataset (recorded with the joint observation: every qpos and qvel, the door's position)
under two observations, driven in the simulation:

  joints  what the run's student saw: 30 qpos, 30 qvel, door_pos (3)
  dapg    DAPG's (the task's observation since, `task.observe`): 30 qpos, the palm, the
          handle, the palm's offset from the handle (forward kinematics of the recorded qpos
          and door_pos)

    python experiments/paper_tasks/door_observation.py runs/door_b45_jointobs \
        experiments/paper_tasks/door_observation.json

The run: `apex-ros train --task adroit_door --threads 1 --out runs/door_b45 --resume` at
commit 4e49341 (before the observation changed), stopped after 3 iterations (60 rollouts,
12000 samples).
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
from apex_ros.learning.student import MLPPolicy, make_optimizer, train_policy  # noqa: E402
from apex_ros.learning.train_config import TrainConfig  # noqa: E402
from apex_ros.sim.episodes import run_episode  # noqa: E402
from apex_ros.sim.simulation import Simulation  # noqa: E402
from apex_ros.tasks import make_task  # noqa: E402

EVAL_SEED = 777   # not an APEX evaluation seed (those come from apex.config.episode_seed)


def joint_view(task):
    """The run's observation (qpos, qvel, door_pos) of states."""
    lay = task.layout
    columns = np.r_[lay.qpos.start:lay.qpos.stop, lay.qvel.start:lay.qvel.stop,
                    lay.extra['door_pos'].start:lay.extra['door_pos'].stop]
    return lambda states: states[:, columns].astype(np.float32)


def dataset_states(task, obs):
    """States (qpos, qvel, door_pos filled) from the run's stored observations."""
    states = np.zeros((len(obs), task.layout.size))
    nq, nv = task.model.nq, task.model.nv
    states[:, task.layout.qpos] = obs[:, :nq]
    states[:, task.layout.qvel] = obs[:, nq:nq + nv]
    states[:, task.layout.extra['door_pos']] = obs[:, nq + nv:]
    return states


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('run', help='an APEX Door run directory recorded with the joint observation')
    p.add_argument('out', help='JSON to write')
    p.add_argument('--steps', type=int, default=3000, help='Adam steps per student')
    p.add_argument('--seeds', default='0,1,2', help='training seeds')
    p.add_argument('--episodes', type=int, default=10)
    args = p.parse_args()
    task = make_task('adroit_door')
    ckpt = read_checkpoint(args.run)
    obs, actions = ckpt.dataset.arrays()
    if obs.shape[1] != task.model.nq + task.model.nv + 3:
        raise SystemExit(f'{args.run}: observations of {obs.shape[1]} terms; expected the joint '
                         'observation (qpos, qvel, door_pos)')
    views = {'joints': joint_view(task), 'dapg': task.observe}   # dapg: the task's own now
    states = dataset_states(task, obs)
    results = {'run': args.run, 'samples': len(obs), 'rollouts': len(ckpt.dataset),
               'steps': args.steps, 'episodes': args.episodes, 'eval_seed0': EVAL_SEED,
               'variants': {}}
    for name in ('joints', 'dapg'):
        view = views[name]
        x = view(states)
        per_seed = []
        for seed in map(int, args.seeds.split(',')):
            torch.manual_seed(seed)
            cfg = TrainConfig(steps=args.steps, lr_schedule='cosine')
            student = MLPPolicy(x.shape[1], actions.shape[1])
            mse = train_policy(student, make_optimizer(student, cfg), x, actions, cfg,
                               torch.Generator().manual_seed(seed))

            def act(sim, student=student, view=view):
                with torch.no_grad():
                    return student(torch.as_tensor(view(sim.state()[None]))).numpy()[0], None
            sim, episodes = Simulation(task), []
            latch = task.layout.qpos.start + task.model.joint('latch').qposadr[0]
            for e in range(args.episodes):
                ep = run_episode(task, act, seed=EVAL_SEED + e, sim=sim)
                episodes.append({'return': ep.ret, 'success': bool(ep.success),
                                 'max_hinge': float(ep.states[:, task.hinge_column].max()),
                                 'max_latch': float(ep.states[:, latch].max())})
            row = {'seed': seed, 'train_mse': mse,
                   'success_rate': float(np.mean([e['success'] for e in episodes])),
                   'latch_turned': int(sum(e['max_latch'] > 1.0 for e in episodes)),
                   'episodes': episodes}
            print(f'{name} seed {seed}: mse {mse:.4f} success {row["success_rate"]:.2f} '
                  f'latch turned (> 1 rad) in {row["latch_turned"]}/{args.episodes}', flush=True)
            per_seed.append(row)
        results['variants'][name] = {'obs_dim': int(x.shape[1]), 'students': per_seed}
    atomic_write_text(args.out, json.dumps(results, indent=1) + '\n')
    print(f'-> {args.out}')


if __name__ == '__main__':
    main()

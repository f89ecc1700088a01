"""Continue the student or train a fresh one? On one APEX run's dataset (as its checkpoint
holds it), fresh students (`train.reinit: true`: new weights, 1000 Adam steps, as Table 3) on
several training seeds against the run's own student, which has continued training through
every iteration; each driven for N episodes on seeds EVAL_SEED + e (not the run's evaluation
seeds).

    python experiments/paper_tasks/humanoid_student.py runs/humanoid_b45 \
        experiments/paper_tasks/humanoid_student.json
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

EVAL_SEED = 50_000


def drive(task, student, episodes):
    def act(sim):
        with torch.no_grad():
            return student(torch.as_tensor(task.observe(sim.state()[None]))).numpy()[0], None
    sim = Simulation(task)
    return [run_episode(task, act, seed=EVAL_SEED + e, sim=sim).ret for e in range(episodes)]


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('run')
    p.add_argument('out')
    p.add_argument('--seeds', type=int, default=5, help='fresh students (training seeds 0..)')
    p.add_argument('--episodes', type=int, default=5)
    args = p.parse_args()
    ckpt = read_checkpoint(args.run)
    cfg = ckpt.config
    task = make_task(ckpt.task, cfg['task'].get('params'), cfg['task'].get('episode_steps'))
    train = TrainConfig(**{k: v for k, v in cfg['train'].items()
                           if k in TrainConfig.__dataclass_fields__})
    obs, actions = ckpt.dataset.arrays()
    own = drive(task, ckpt.student(), args.episodes)
    print(f'the run\'s student (continued): {np.mean(own):.0f} ± {np.std(own):.0f}', flush=True)
    fresh = []
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        student = MLPPolicy(obs.shape[1], actions.shape[1], train.hidden)
        mse = train_policy(student, make_optimizer(student, train), obs, actions, train,
                           torch.Generator().manual_seed(seed))
        returns = drive(task, student, args.episodes)
        print(f'fresh student, seed {seed}: mse {mse:.4f}, {np.mean(returns):.0f} ± '
              f'{np.std(returns):.0f}', flush=True)
        fresh.append({'seed': seed, 'train_mse': mse, 'returns': returns,
                      'mean': float(np.mean(returns))})
    out = {'run': args.run, 'iterations_done': ckpt.iteration, 'samples': len(obs),
           'rollouts': len(ckpt.dataset), 'train': train.__dict__, 'eval_seed0': EVAL_SEED,
           'episodes': args.episodes,
           'continued': {'returns': own, 'mean': float(np.mean(own))},
           'fresh': fresh,
           'fresh_means': [f['mean'] for f in fresh]}
    atomic_write_text(args.out, json.dumps(out, indent=1) + '\n')
    print(f'-> {args.out}')


if __name__ == '__main__':
    main()

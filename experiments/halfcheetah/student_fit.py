"""How good a student can an APEX run's dataset make? Trains fresh students offline.

Reads the aggregated dataset of an APEX run's checkpoint (read_checkpoint(RUN_DIR)), trains
fresh MLP students (the run's `train:` settings except the number of steps) on all of it and,
with --drop-dagger-obs, on the data without the DAgger samples whose |obs[INDEX]| exceeds
LIMIT (halfcheetah: index 1 is the root pitch; a stalled, nose-up cheetah sits near 1.2 rad).
Each student is evaluated on --episodes episodes; reported: mean, median, max return, rolled
(return < -1000) episodes, and the student's label MSE on expert and on DAgger samples.
Writes one JSON file.

    python experiments/halfcheetah/student_fit.py OUT.json --run runs/halfcheetah_mean \\
        --config CONFIG_OF_THE_RUN.yaml --steps 1000 5000 \\
        --drop-dagger-obs 1 0.8
"""
import argparse
import dataclasses
import sys

import numpy as np
import torch

from apex_ros.cli.bench import environment, write_json
from apex_ros.config.run import load_run_config
from apex_ros.deploy.bundle import PolicyBundle
from apex_ros.deploy.export import bundle_bytes
from apex_ros.learning.apex.checkpoint import read_checkpoint
from apex_ros.learning.student import MLPPolicy, make_optimizer, train_policy
from apex_ros.sim.episodes import policy_actor, run_episode


def label_mse(model, rollouts, kind):
    chosen = [r for r in rollouts if r.kind == kind]
    if not chosen:
        return None
    obs = torch.as_tensor(np.concatenate([r.obs for r in chosen]))
    act = np.concatenate([r.actions for r in chosen])
    with torch.no_grad():
        return float(np.mean((model(obs).numpy() - act) ** 2))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('out', help='JSON file to write')
    ap.add_argument('--run', required=True, help='APEX run directory')
    ap.add_argument('--config', help="the run's YAML config (default: config/<task>.yaml)")
    ap.add_argument('--steps', type=int, nargs='+', default=[1000, 5000])
    ap.add_argument('--seeds', type=int, default=2, help='students per setting')
    ap.add_argument('--episodes', type=int, default=10)
    data = ap.add_mutually_exclusive_group()
    data.add_argument('--drop-dagger-obs', nargs=2, metavar=('INDEX', 'LIMIT'),
                      help='also train without DAgger samples where |obs[INDEX]| > LIMIT')
    data.add_argument('--kind', choices=('expert', 'dagger'),
                      help='train only on the expert or only on the DAgger samples')
    ap.add_argument('--hidden', type=int, nargs='+',
                    help="hidden layer widths (default: the run's)")
    ap.add_argument('--threads', type=int, default=1, help='torch threads')
    args = ap.parse_args(argv)
    ckpt = read_checkpoint(args.run)
    cfg = load_run_config(ckpt.task, args.config)
    task = cfg.make_task()
    train_cfg = cfg.train
    rollouts = ckpt.dataset.rollouts
    if args.hidden:
        train_cfg = dataclasses.replace(train_cfg, hidden=list(args.hidden))
    subsets = {'all': rollouts}
    if args.kind:
        subsets = {f'{args.kind} only': [r for r in rollouts if r.kind == args.kind]}
    if args.drop_dagger_obs:
        index, limit = int(args.drop_dagger_obs[0]), float(args.drop_dagger_obs[1])
        kept = []
        for r in rollouts:
            keep = np.abs(r.obs[:, index]) <= limit if r.kind == 'dagger' else slice(None)
            kept.append(dataclasses.replace(r, obs=r.obs[keep], actions=r.actions[keep]))
        subsets[f'without DAgger |obs[{index}]| > {limit}'] = kept
    results = []
    for name, subset in subsets.items():
        obs = np.concatenate([r.obs for r in subset])
        act = np.concatenate([r.actions for r in subset])
        for steps in args.steps:
            for seed in range(args.seeds):
                torch.manual_seed(seed)
                tc = dataclasses.replace(train_cfg, steps=steps, threads=args.threads)
                model = MLPPolicy(task.obs_dim, task.nu, tc.hidden)
                loss = train_policy(model, make_optimizer(model, tc), obs, act, tc,
                                    torch.Generator().manual_seed(seed))
                policy = PolicyBundle(bundle_bytes(model, task, 0))
                returns = np.array([run_episode(task, policy_actor(task, policy), 1000 + e).ret
                                    for e in range(args.episodes)])
                row = {'data': name, 'samples': len(obs), 'hidden': list(tc.hidden),
                       'steps': steps, 'seed': seed,
                       'train_mse': loss, 'mean': float(returns.mean()),
                       'median': float(np.median(returns)), 'max': float(returns.max()),
                       'rolled': int((returns < -1000).sum()),
                       'mse_expert_samples': label_mse(model, rollouts, 'expert'),
                       'mse_dagger_samples': label_mse(model, rollouts, 'dagger')}
                results.append(row)
                print(' '.join(f'{k} {v:.3f}' if isinstance(v, float) else f'{k} {v}'
                               for k, v in row.items()), flush=True)
    write_json(args.out, {'benchmark': 'student_fit', 'environment': environment(),
                          'settings': vars(args), 'results': results})
    return 0


if __name__ == '__main__':
    sys.exit(main())

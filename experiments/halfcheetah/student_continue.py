"""How much of a student's return is the draw of its last training? (APEX, halfcheetah)

Continues the student of an APEX run's checkpoint (read_checkpoint(RUN_DIR)) for one more
training (`train.steps` Adam steps from the checkpoint's weights and optimizer state, fresh
copies per variant) on the checkpoint's dataset, once per minibatch seed and variant, and
drives each result alone from --episodes start states (seeds --first-seed, +1, ...):
  constant    the config's training as it is (constant learning rate)
  cosine      the learning rate decayed from train.lr to 0 over the steps
  window      constant, on the latest --window rollouts of the checkpoint's dataset joined
              with those of --more-runs (older rollouts the window had dropped)
Writes one JSON file.

    python experiments/halfcheetah/student_continue.py OUT.json --run runs/X --config CFG \\
        --seeds 0 1 2
"""
import argparse
import copy
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

VARIANTS = ('constant', 'cosine', 'window')


def load_rollouts(run_dirs):
    """Rollouts of the runs' checkpoints, each once, oldest first."""
    seen, rollouts = set(), []
    for run in run_dirs:
        for r in read_checkpoint(run).dataset.rollouts:
            key = (r.kind, r.iteration, r.info.get('seed'))
            if key not in seen:
                seen.add(key)
                rollouts.append(r)
    return sorted(rollouts, key=lambda r: r.iteration)


def continue_training(ckpt, task, cfg, obs, actions, seed):
    """One more training from the checkpoint's student and optimizer state."""
    model = MLPPolicy(task.obs_dim, task.nu, cfg.hidden)
    model.load_state_dict(copy.deepcopy(ckpt.model))
    optimizer = make_optimizer(model, cfg)
    optimizer.load_state_dict(copy.deepcopy(ckpt.optimizer))  # Adam updates it in place
    train_policy(model, optimizer, obs, actions, cfg, torch.Generator().manual_seed(seed))
    return model


def evaluate(task, model, episodes, first_seed):
    policy = PolicyBundle(bundle_bytes(model, task, 0))
    return [run_episode(task, policy_actor(task, policy), first_seed + e).ret
            for e in range(episodes)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('out', help='JSON file to write')
    ap.add_argument('--run', required=True, help='APEX run directory')
    ap.add_argument('--task', default='halfcheetah_run')
    ap.add_argument('--config', help='YAML config of the run (default: config/<task>.yaml)')
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--variants', nargs='+', choices=VARIANTS, default=list(VARIANTS))
    ap.add_argument('--window', type=int, default=100)
    ap.add_argument('--more-runs', nargs='*', default=[], help='runs whose checkpoints hold '
                    'older rollouts of the same lineage (for the window variant)')
    ap.add_argument('--episodes', type=int, default=50)
    ap.add_argument('--first-seed', type=int, default=1000)
    ap.add_argument('--threads', type=int, default=1)
    args = ap.parse_args(argv)
    run_cfg = load_run_config(args.task, args.config)
    task = run_cfg.make_task()
    cfg = dataclasses.replace(run_cfg.train,
                              threads=args.threads)
    ckpt = read_checkpoint(args.run)
    obs, actions = ckpt.dataset.arrays()
    wide = load_rollouts([args.run] + args.more_runs)[-args.window:]
    wide_obs = np.concatenate([r.obs for r in wide])
    wide_actions = np.concatenate([r.actions for r in wide])
    data = {'constant': (cfg, obs, actions),
            'cosine': (dataclasses.replace(cfg, lr_schedule='cosine'), obs, actions),
            'window': (cfg, wide_obs, wide_actions)}
    results = {v: [] for v in args.variants}
    for seed in args.seeds:
        for variant in args.variants:
            model = continue_training(ckpt, task, *data[variant], seed)
            r = evaluate(task, model, args.episodes, args.first_seed)
            results[variant].append({'seed': seed, 'mean': float(np.mean(r)),
                                     'median': float(np.median(r)), 'returns': r})
        print(f'seed {seed}: ' + ', '.join(f'{v} {results[v][-1]["mean"]:.0f}'
                                           for v in args.variants), flush=True)
    summary = {v: {'mean': float(np.mean([r['mean'] for r in rows])),
                   'per_seed': [round(r['mean']) for r in rows]} for v, rows in results.items()}
    for v, s in summary.items():
        print(f'{v}: {s["mean"]:.0f} {s["per_seed"]}')
    write_json(args.out, {'benchmark': 'student_continue', 'environment': environment(),
                          'settings': {**vars(args), 'samples': len(obs),
                                       'window_samples': len(wide_obs)},
                          'summary': summary, 'result': results})
    return 0


if __name__ == '__main__':
    sys.exit(main())

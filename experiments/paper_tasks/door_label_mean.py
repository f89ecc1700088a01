"""Door: would the student learn more from the elites' mean than from the best sample?

The guided expert (iCEM_pi at budget 45, the run's config, guided by a run's bundle) drives
--rollouts Door episodes executing its best sample's first action, as in APEX. Each step also
records the first action of its final elite mean (`act: mean` would execute that one) and
its guidance lambda (0 where the elites share one main cost: nothing in the horizon moves
the door, so the best sample is a tie broken by chance). Then students are distilled from the
same states with either label (fresh, APEX Table 3 settings) and each is driven for
--episodes episodes (seeds 777+, not the runs' evaluation seeds).

    python experiments/paper_tasks/door_label_mean.py \
        experiments/paper_tasks/door_b45_iter_004.onnx \
        experiments/paper_tasks/door_label_mean.npz experiments/paper_tasks/door_label_mean.json

The rollouts (the costly part, ~3 CPU-min each) are kept in the .npz, one by one as they
finish; a rerun with the same .npz only trains and evaluates.
"""
import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from door_student import EVAL_SEED, drive  # noqa: E402

from apex_ros.config.run import load_run_config  # noqa: E402
from apex_ros.deploy.bundle import PolicyBundle  # noqa: E402
from apex_ros.files import atomic_write_bytes, atomic_write_text  # noqa: E402
from apex_ros.learning.apex.config import apex_settings  # noqa: E402
from apex_ros.learning.student import MLPPolicy, make_optimizer, train_policy  # noqa: E402
from apex_ros.learning.train_config import TrainConfig  # noqa: E402
from apex_ros.planners import make_planner  # noqa: E402
from apex_ros.sim.episodes import run_episode  # noqa: E402

ROLLOUT_SEED = 900_000
ARM = slice(0, 4)


def expert_rollout(task, planner, seed: int) -> dict:
    obs, best, mean, lam = [], [], [], []

    def act(sim):
        result = planner.plan(*sim.plan_inputs())
        obs.append(task.observe(sim.state()))
        best.append(result.action)
        mean.append(np.clip(planner.mean[0], task.action_low, task.action_high))
        lam.append(result.info['lambdas'][0])
        return result.action, result
    planner.reset(seed)
    ep = run_episode(task, act, seed, progress=f'expert rollout seed {seed}')
    return {'obs': np.array(obs, np.float32), 'best': np.array(best, np.float32),
            'mean': np.array(mean, np.float32), 'lambda': np.array(lam),
            'success': bool(ep.success), 'ret': ep.ret}


def load_rollouts(path: Path) -> list:
    if not path.exists():
        return []
    data = np.load(path)
    count = int(data['count'])
    return [{k: data[f'{i}_{k}'] for k in ('obs', 'best', 'mean', 'lambda', 'success', 'ret')}
            for i in range(count)]


def save_rollouts(path: Path, rollouts: list):
    arrays = {'count': len(rollouts)}
    for i, r in enumerate(rollouts):
        arrays.update({f'{i}_{k}': v for k, v in r.items()})
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def student(task, obs, labels, seed: int):
    cfg = TrainConfig()
    torch.manual_seed(seed)
    model = MLPPolicy(task.obs_dim, task.nu, cfg.hidden)
    mse = train_policy(model, make_optimizer(model, cfg), obs, labels, cfg,
                       torch.Generator().manual_seed(seed))
    return model, mse


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('guide', type=Path, help='the bundle (.onnx) that guides the expert')
    p.add_argument('rollouts_file', type=Path, help='.npz of the expert rollouts (kept, resumed)')
    p.add_argument('out', type=Path, help='JSON to write')
    p.add_argument('--rollouts', type=int, default=10)
    p.add_argument('--seeds', default='0,1,2,3,4', help='training seeds')
    p.add_argument('--episodes', type=int, default=20)
    p.add_argument('--threads', type=int, default=1)
    args = p.parse_args()
    cfg = load_run_config('adroit_door')
    task = cfg.make_task()
    rollouts = load_rollouts(args.rollouts_file)
    if len(rollouts) < args.rollouts:
        _, planner_cfg = apex_settings(cfg)
        planner = make_planner(task, 'icem', planner_cfg, threads=args.threads,
                               policy=PolicyBundle(args.guide))
        for i in range(len(rollouts), args.rollouts):
            rollouts.append(expert_rollout(task, planner, ROLLOUT_SEED + i))
            save_rollouts(args.rollouts_file, rollouts)
            print(f'rollout {i + 1}/{args.rollouts}: return {rollouts[-1]["ret"]:.1f}, '
                  f'success {rollouts[-1]["success"]}', flush=True)
    rollouts = rollouts[:args.rollouts]
    obs = np.concatenate([r['obs'] for r in rollouts])
    half = (task.action_high - task.action_low) / 2
    lam = np.concatenate([r['lambda'] for r in rollouts])
    results = {
        'guide': str(args.guide), 'rollouts': len(rollouts), 'rollout_seed0': ROLLOUT_SEED,
        'expert_successes': int(sum(bool(r['success']) for r in rollouts)),
        'expert_return_mean': float(np.mean([r['ret'] for r in rollouts])),
        'guidance_lambda_quantiles_10_50_90': np.quantile(lam, [0.1, 0.5, 0.9]).tolist(),
        'episodes': args.episodes, 'eval_seed0': EVAL_SEED, 'labels': {}}
    for label in ('best', 'mean'):
        actions = np.concatenate([r[label] for r in rollouts])
        # how much a label jumps step to step against its spread (white noise: 1.41)
        jumps = [np.median(np.diff(r[label][:, ARM], axis=0).std(0) / r[label][:, ARM].std(0))
                 for r in rollouts]
        rows = []
        for seed in map(int, args.seeds.split(',')):
            model, mse = student(task, obs, actions, seed)
            rows.append({'seed': seed, 'train_mse': mse, **drive(task, model, args.episodes)})
            print(label, rows[-1], flush=True)
        results['labels'][label] = {
            'arm_step_change_over_spread_median': float(np.median(jumps)),
            'students': rows,
            **{f'total_{k}': int(sum(r[k] for r in rows))
               for k in ('successes', 'latch_turned', 'door_moved')}}
    results['mean_minus_best_over_half_range_arm'] = float(np.mean(np.abs(
        np.concatenate([r['mean'] - r['best'] for r in rollouts])[:, ARM] / half[ARM])))
    print(json.dumps({k: v for k, v in results.items() if k != 'labels'}, indent=1))
    atomic_write_text(args.out, json.dumps(results, indent=1) + '\n')
    print(f'-> {args.out}')


if __name__ == '__main__':
    main()

"""POLO's horizon claim (Lowrey et al. 2019, Sec. 3.2) on cartpole_swingup: with a learned
terminal value, MPPI with a short planning horizon reaches the return that plain MPPI needs a
longer horizon for.

For every horizon H in --horizons:
1. train POLO (MPPI + value ensemble, apex_ros.learning.polo.run_polo) at H for --train-steps agent
   steps (episodes of --episode-steps, the agent resets between them), as in the paper's
   Fig. 3; with --train-horizon, one value is trained once at that horizon and reused;
2. export the ensemble to ONNX and load it back as a TerminalValue (the deployable path);
3. mean return over --eval-episodes of plain MPPI and of MPPI + the trained value (POLO),
   same budget, same evaluation seeds (unseen in training).

Writes a JSON table horizon x {mppi, polo} -> return to OUT.

    python experiments/polo/polo_horizon.py OUT.json             # full scale (minutes)
    python experiments/polo/polo_horizon.py OUT.json --tiny      # smoke test (seconds)
"""
import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from apex_ros.cli.bench import environment, write_json
from apex_ros.learning.polo import run_polo
from apex_ros.learning.value import TerminalValue, ValueConfig
from apex_ros.planners import make_planner
from apex_ros.sim.episodes import run_mpc
from apex_ros.tasks import make_task

TASK = 'cartpole_swingup'
EVAL_SEED = 1000   # evaluation episodes use seeds EVAL_SEED + i, never seen in training
TINY = dict(horizons=[3, 5], train_steps=48, eval_episodes=1,
            episode_steps=20, budget=12, gradient_steps=8, target_steps=4)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('out', help='JSON file to write')
    p.add_argument('--horizons', type=int, nargs='+', default=[4, 6, 8, 10, 15, 20, 30])
    p.add_argument('--budget', type=int, default=40, help='MPPI samples per step (both)')
    p.add_argument('--temperature', type=float, default=0.2)
    p.add_argument('--sigma', type=float, default=0.5)
    p.add_argument('--train-steps', type=int, default=3000, help='POLO agent steps')
    p.add_argument('--train-horizon', type=int,
                   help='train one value at this horizon for all (default: one per horizon)')
    p.add_argument('--target-steps', type=int, default=10, help='N of the N-step targets')
    p.add_argument('--gradient-steps', type=int, default=64, help='G per value update')
    p.add_argument('--kappa', type=float, default=0.1, help='optimism while training')
    p.add_argument('--eval-kappa', type=float,
                   help='optimism of the value in evaluation (default: as trained)')
    p.add_argument('--eval-episodes', type=int, default=5)
    p.add_argument('--episode-steps', type=int, default=200)
    p.add_argument('--threads', type=int, default=1, help='rollout threads')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--value-out', help='where to keep the trained value ensemble(s) (.onnx); '
                   'default: a temporary directory')
    p.add_argument('--tiny', action='store_true', help='seconds-long smoke-test settings')
    args = p.parse_args(argv)
    if args.tiny:
        for key, value in TINY.items():
            setattr(args, key, value)
    return args


def mppi_settings(args, horizon):
    return {'horizon': horizon, 'budget': args.budget, 'temperature': args.temperature,
            'sigma': args.sigma}


def evaluate(task, args, horizon, terminal_value=None):
    returns, successes = [], []
    for e in range(args.eval_episodes):
        seed = EVAL_SEED + e
        planner = make_planner(task, 'mppi', mppi_settings(args, horizon), threads=args.threads,
                               seed=seed)
        planner.set_terminal_value(terminal_value)
        ep = run_mpc(task, planner, seed=seed)
        planner.rollouts.close()
        returns.append(ep.ret)
        successes.append(bool(ep.success))
    return {'returns': returns, 'mean': float(np.mean(returns)), 'std': float(np.std(returns)),
            'success_rate': float(np.mean(successes))}


def train_value(task, args, horizon, value_path):
    value_cfg = ValueConfig(kappa=args.kappa, target_steps=min(args.target_steps, horizon),
                            gradient_steps=args.gradient_steps)
    t0 = time.perf_counter()
    run = run_polo(task, mppi_settings(args, horizon), value_cfg, args.train_steps,
                   seed=args.seed, threads=args.threads,
                   on_episode=lambda i, ep: print(f'  POLO H={horizon} training episode {i + 1}: '
                                                  f'return {ep.ret:.1f}', file=sys.stderr))
    run.ensemble.export(task, value_path, extra={'train_horizon': horizon,
                                                 'train_steps': args.train_steps})
    info = {'horizon': horizon, 'steps': run.steps, 'seconds': time.perf_counter() - t0,
            # the bundle lives in a temporary dir deleted after the run: its name only
            'episode_returns': run.returns, 'value_bundle': value_path.name,
            'value_config': dataclasses.asdict(value_cfg)}
    return TerminalValue.load(value_path, task, kappa=args.eval_kappa), info


def claim_summary(table, fraction=0.9):
    """Shortest horizon at which each planner reaches `fraction` of plain MPPI's best mean,
    and for every POLO horizon the shortest MPPI horizon that does at least as well."""
    target = fraction * max(row['mppi']['mean'] for row in table)

    def shortest(kind, level):
        hits = [row['horizon'] for row in table if row[kind]['mean'] >= level]
        return min(hits) if hits else None
    return {'target_return': target, 'target_fraction_of_best_mppi': fraction,
            'shortest_horizon_mppi': shortest('mppi', target),
            'shortest_horizon_polo': shortest('polo', target),
            'mppi_horizon_matching_polo': {
                row['horizon']: shortest('mppi', row['polo']['mean']) for row in table}}


def main(argv=None):
    args = parse_args(argv)
    task = make_task(TASK, episode_steps=args.episode_steps)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix='polo-horizon-') as tmp:
        value_dir = Path(args.value_out or tmp)
        training, shared_value = [], None
        if args.train_horizon is not None:
            shared_value, info = train_value(task, args, args.train_horizon,
                                             value_dir / f'value_h{args.train_horizon}.onnx')
            training.append(info)
        table = []
        for horizon in args.horizons:
            value = shared_value
            if shared_value is None:
                value, info = train_value(task, args, horizon,
                                          value_dir / f'value_h{horizon}.onnx')
                training.append(info)
            row = {'horizon': horizon, 'mppi': evaluate(task, args, horizon),
                   'polo': evaluate(task, args, horizon, value)}
            table.append(row)
            print(f'H={horizon:3d}  MPPI {row["mppi"]["mean"]:7.1f} ± {row["mppi"]["std"]:5.1f}'
                  f'   POLO {row["polo"]["mean"]:7.1f} ± {row["polo"]["std"]:5.1f}', flush=True)
    result = {'task': TASK, 'settings': {k: v for k, v in vars(args).items() if k != 'out'},
              'training': training, 'table': table, 'claim': claim_summary(table),
              'seconds': time.perf_counter() - t_start}
    result.update(environment())
    write_json(args.out, result)
    print(json.dumps(result['claim']), f'-> {args.out} ({result["seconds"]:.0f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())

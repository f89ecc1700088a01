"""Replay a run's in-loop evaluations under the task as it is now (e.g. after a reward change).

For every iteration in RUN_DIR/metrics.jsonl, drives that iteration's bundle
(RUN_DIR/bundles/iter_NNN.onnx) from the same start states the loop evaluated it on
(`apex.episode_seed`) and checks that the replay reproduces the recorded returns, which
summed `--recorded`: `planning_reward` (halfcheetah's returns counted the planner's
no-rolling penalty until it became the planner's alone; up to iteration `--recorded-until`
if given, `reward` after it) or `reward`. Writes the rescored metrics (recorded returns kept
as `recorded_policy_returns`) and redraws the learning curve.

    python experiments/halfcheetah/rescore_run.py runs/X --out-dir experiments/halfcheetah/X
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

from apex_ros.config.run import load_run_config
from apex_ros.deploy.bundle import PolicyBundle
from apex_ros.files import atomic_write_text
from apex_ros.learning.apex import episode_seed
from apex_ros.learning.plot import plot_learning_curve
from apex_ros.sim.episodes import policy_actor, run_episode

EVALUATION = 3   # episode kind of the in-loop evaluation (apex.episode_seed)


def rescore(task, run_dir, record, run_seed, recorded_planning, episodes):
    """-> (rescored record, number of recorded returns the replay does not reproduce). Older
    runs logged only the mean of `episodes` episodes: then the mean is what is checked."""
    it = record['iteration']
    policy = PolicyBundle(str(run_dir / 'bundles' / f'iter_{it:03d}.onnx'))
    recorded = record.get('policy_returns')
    returns, replayed = [], []
    for e in range(len(recorded) if recorded else episodes):
        ep = run_episode(task, policy_actor(task, policy), episode_seed(run_seed, it - 1,
                                                                        EVALUATION, e))
        returns.append(ep.ret)
        replayed.append(float(np.sum(task.planning_reward(ep.states[None], ep.actions[None])))
                        if recorded_planning else ep.ret)
    if recorded is None:
        replayed, recorded = [np.mean(replayed)], [record['policy_return']]
    mismatches = int(np.sum(~np.isclose(replayed, recorded, rtol=1e-9, atol=1e-6)))
    new = dict(record, recorded_policy_returns=recorded, policy_returns=returns,
               policy_return=float(np.mean(returns)), policy_return_std=float(np.std(returns)),
               policy_return_median=float(np.median(returns)))
    return new, mismatches


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('run_dir', type=Path)
    ap.add_argument('--task', default='halfcheetah_run')
    ap.add_argument('--config', help='YAML config (default: config/<task>.yaml); its seed '
                    'must be the run\'s')
    ap.add_argument('--recorded', choices=('planning_reward', 'reward'),
                    default='planning_reward', help='what the recorded returns summed')
    ap.add_argument('--recorded-until', type=int, help='last iteration recorded the '
                    '--recorded way; later ones are checked as recorded without it')
    ap.add_argument('--eval-episodes', type=int, default=10, help='evaluation episodes per '
                    'iteration, for runs whose metrics lack per-episode returns')
    ap.add_argument('--out-dir', type=Path, help='where to write rescored_metrics.jsonl and '
                    'learning_curve.png (default: RUN_DIR)')
    args = ap.parse_args(argv)
    cfg = load_run_config(args.task, args.config)
    task = cfg.make_task()
    planning = args.recorded == 'planning_reward'
    records = [json.loads(line) for line in (args.run_dir / 'metrics.jsonl').open()]
    rescored, total = [], 0
    for record in records:
        before = args.recorded_until is None or record['iteration'] <= args.recorded_until
        new, mismatches = rescore(task, args.run_dir, record, cfg.seed,
                                  planning and before, args.eval_episodes)
        total += mismatches
        rescored.append(new)
        print(f'iteration {new["iteration"]}: {new["policy_return"]:.2f} ± '
              f'{new["policy_return_std"]:.2f} (recorded {record["policy_return"]:.2f}), '
              f'{mismatches} recorded return(s) not reproduced', flush=True)
    out = args.out_dir or args.run_dir
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / 'rescored_metrics.jsonl',
                      ''.join(json.dumps(m) + '\n' for m in rescored))
    plot_learning_curve(rescored, out / 'learning_curve.png', f'APEX on {task.name}')
    checked = sum(len(r['recorded_policy_returns']) for r in rescored)
    print(f'{total} of {checked} recorded returns not reproduced')
    return 1 if total else 0


if __name__ == '__main__':
    sys.exit(main())

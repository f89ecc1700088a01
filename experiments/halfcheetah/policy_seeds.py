"""How policies drive from many start states (APEX on halfcheetah: fast, or robust?).

Runs each --policy bundle alone for --episodes episodes (seeds --first-seed, +1, ...) on the
task of --config, and reports per bundle the return's mean, median, 90th percentile and the
share of episodes below 1000 / 4000, plus per episode the first step the task calls failed
(`Task.failed`; halfcheetah: |root pitch| > 1 rad), the pitch there, and the mean forward speed
(qvel[0]) from step 100 until that step. Writes one JSON file.

    python experiments/halfcheetah/policy_seeds.py OUT.json \\
        --policy runs/X/bundles/iter_050.onnx ...
"""
import argparse
import sys

import numpy as np

from apex_ros.cli.bench import environment, write_json
from apex_ros.config.run import load_run_config
from apex_ros.deploy.bundle import PolicyBundle
from apex_ros.sim.episodes import policy_actor, run_episode


def drive(task, policy, seed):
    ep = run_episode(task, policy_actor(task, policy), seed)
    states = ep.states[:-1]
    failed = np.flatnonzero(task.failed(states))
    end = int(failed[0]) if failed.size else len(states)
    speed = task.qvel(states)[100:end, 0]
    return {'seed': seed, 'return': ep.ret, 'failed_step': end if failed.size else None,
            'pitch_at_failure': float(task.qpos(states)[end, 2]) if failed.size else None,
            'speed_before_failure': float(speed.mean()) if speed.size else None}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('out', help='JSON file to write')
    ap.add_argument('--task', default='halfcheetah_run')
    ap.add_argument('--config', help='YAML config (default: config/<task>.yaml)')
    ap.add_argument('--policy', required=True, nargs='+', help='policy bundles')
    ap.add_argument('--episodes', type=int, default=50)
    ap.add_argument('--first-seed', type=int, default=1000)
    args = ap.parse_args(argv)
    task = load_run_config(args.task, args.config).make_task()
    results = []
    for path in args.policy:
        policy = PolicyBundle(path)
        episodes = [drive(task, policy, args.first_seed + e) for e in range(args.episodes)]
        r = np.array([e['return'] for e in episodes])
        summary = {'mean': float(r.mean()), 'median': float(np.median(r)),
                   'p90': float(np.percentile(r, 90)), 'below_1000': float(np.mean(r < 1000)),
                   'below_4000': float(np.mean(r < 4000)),
                   'failed': float(np.mean([e['failed_step'] is not None for e in episodes]))}
        print(path, ' '.join(f'{k} {v:.2f}' for k, v in summary.items()), flush=True)
        results.append({'policy': path, 'summary': summary, 'episodes': episodes})
    write_json(args.out, {'benchmark': 'policy_seeds', 'environment': environment(),
                          'settings': vars(args), 'result': results})
    return 0


if __name__ == '__main__':
    sys.exit(main())

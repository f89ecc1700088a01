"""How consistent are the expert's labels? (APEX Fig. 2, on any task.)

The expert (`planner:` of the task config) drives one episode for --steps steps; its last
--states states are then relabelled --repeats times with different seeds by each variant:
  unguided       plain iCEM (no policy)
  guided         iCEM_pi guided by --policy (warm start, policy samples, guidance c)
  guided_c0      the same with guidance c = 0 (warm start and policy samples only)
each once with act: best (iCEM, APEX Alg. 1) and act: mean. Reported per variant: the label
std across relabels (noise), the overall label std, their ratio, and with a policy the
fraction of labels that are exactly the policy's own action (its sequence won) and the mean
squared distance to it. Writes one JSON file.

    python experiments/halfcheetah/label_spread.py OUT.json --task halfcheetah_run --policy BUNDLE
"""
import argparse
import dataclasses
import sys

import numpy as np

from apex_ros.cli.bench import environment, write_json
from apex_ros.config.run import load_run_config
from apex_ros.deploy.bundle import PolicyBundle
from apex_ros.learning.apex import apex_settings
from apex_ros.planners import make_planner
from apex_ros.sim.episodes import planner_actor, run_episode


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('out', help='JSON file to write')
    ap.add_argument('--task', default='cartpole_swingup')
    ap.add_argument('--config', help='YAML config (default: config/<task>.yaml)')
    ap.add_argument('--policy', help='policy bundle for the guided variants')
    ap.add_argument('--steps', type=int, default=250, help='expert episode length')
    ap.add_argument('--states', type=int, default=150, help='states relabelled (the last ones)')
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--seed', type=int, default=7)
    args = ap.parse_args(argv)
    cfg = load_run_config(args.task, args.config)
    task = cfg.make_task()
    _, base = apex_settings(cfg)  # the APEX expert's planner settings
    expert = make_planner(task, cfg.planner_name, base, threads=args.threads, seed=args.seed)
    states = run_episode(task, planner_actor(expert, args.seed), args.seed,
                         steps=args.steps).states[-args.states - 1:-1]
    policy = PolicyBundle(args.policy) if args.policy else None
    variants = [('unguided', None, {})]
    if policy is not None:
        variants += [('guided', policy, {}), ('guided_c0', policy, {'guidance_c': 0.0})]
    results = []
    for name, guide, changes in variants:
        for act in ('best', 'mean'):
            planner = make_planner(task, cfg.planner_name,
                                   dataclasses.replace(base, act=act, **changes),
                                   threads=args.threads, seed=0)
            planner.set_policy(guide)
            labels = np.array([planner.relabel(states, None, seed=s)
                               for s in range(1, args.repeats + 1)])
            noise = float(np.sqrt(labels.var(axis=0).mean()))
            spread = float(labels.reshape(-1, task.nu).std(axis=0).mean())
            row = {'variant': name, 'act': act, 'label_std_across_relabels': noise,
                   'label_std_overall': spread, 'ratio': noise / spread}
            if guide is not None:
                own = np.clip(guide(task.observe(states)), task.action_low, task.action_high)
                row['fraction_equal_to_policy'] = float(
                    np.mean(np.all(np.abs(labels - own) < 1e-6, axis=-1)))
                row['mse_to_policy'] = float(np.mean((labels - own) ** 2))
            results.append(row)
            print(' '.join(f'{k} {v:.3f}' if isinstance(v, float) else f'{k} {v}'
                           for k, v in row.items()), flush=True)
    write_json(args.out, {'benchmark': 'label_spread', 'environment': environment(),
                          'settings': {**vars(args), 'planner': cfg.planner_name},
                          'results': results})
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""How strong is the APEX expert at each sampling std sigma, guided by a trained policy?

For each sigma in --sigmas, the APEX expert of the task config (its `planner:` with the
`apex:` settings applied) drives --episodes episodes of --steps steps guided by --policy;
with --unguided, once more without a policy (plain iCEM); with --mean-of K, once more
executing the mean action of K guided experts that plan independently from the same states
(how much a student that learned the expert's average action could get). Reported per
run: the return, the mean squared distance between the executed action and the policy's
action in the same state (how far the labels are from what the student already does) and,
for --mean-of, the std of the K experts' actions. Writes one JSON file.

    python experiments/halfcheetah/expert_sigma.py OUT.json --task halfcheetah_run \\
        --policy BUNDLE --sigmas 0.5 0.3 0.2 0.1 --unguided --mean-of 4
"""
import argparse
import dataclasses
import sys

import numpy as np

from apex_ros.cli.bench import environment, write_json
from apex_ros.config.run import load_run_config
from apex_ros.deploy.bundle import PolicyBundle
from apex_ros.deploy.export import task_signature
from apex_ros.learning.apex import apex_settings
from apex_ros.planners import make_planner
from apex_ros.sim.episodes import planner_actor, run_episode


def expert_episode(task, experts, policy, seed, steps):
    """One episode executing the mean action of `experts` (planner actors) -> (return, mean
    squared gap to the policy's action, mean std of the experts' actions)."""
    gaps, spreads = [], []

    def act(sim):
        actions = np.array([expert(sim)[0] for expert in experts])
        action = actions.mean(axis=0)
        guide = np.clip(policy(task.observe(sim.state()[None]))[0], task.action_low,
                        task.action_high)
        gaps.append(float(np.mean((action - guide) ** 2)))
        spreads.append(float(actions.std(axis=0).mean()))
        return action, None
    ep = run_episode(task, act, seed, steps=steps)
    return ep.ret, float(np.mean(gaps)), float(np.mean(spreads))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('out', help='JSON file to write')
    ap.add_argument('--task', default='halfcheetah_run')
    ap.add_argument('--config', help='YAML config (default: config/<task>.yaml)')
    ap.add_argument('--policy', required=True, help='policy bundle that guides the expert')
    ap.add_argument('--sigmas', type=float, nargs='+', default=[0.5, 0.3, 0.2, 0.1])
    ap.add_argument('--episodes', type=int, default=1, help='guided episodes per sigma')
    ap.add_argument('--steps', type=int, help='episode length (default: the task\'s)')
    ap.add_argument('--unguided', action='store_true', help='also plain iCEM at each sigma')
    ap.add_argument('--mean-of', type=int, default=0, metavar='K',
                    help='also the mean action of K guided experts at each sigma')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--seed', type=int, default=7)
    args = ap.parse_args(argv)
    cfg = load_run_config(args.task, args.config)
    task = cfg.make_task()
    _, base = apex_settings(cfg)
    policy = PolicyBundle(args.policy)
    policy.check_signature(task_signature(task))
    results = []
    for sigma in args.sigmas:
        runs = [('guided', policy, 1, args.seed + e) for e in range(args.episodes)]
        if args.unguided:
            runs.append(('unguided', None, 1, args.seed))
        if args.mean_of > 1:
            runs.append((f'mean of {args.mean_of} guided', policy, args.mean_of, args.seed))
        for name, guide, k, seed in runs:
            experts = []
            for j in range(k):
                planner = make_planner(task, cfg.planner_name,
                                       dataclasses.replace(base, sigma=sigma),
                                       threads=args.threads)
                planner.set_policy(guide)
                experts.append(planner_actor(planner, seed + 1000 * j))
            ret, gap, spread = expert_episode(task, experts, policy, seed, args.steps)
            row = {'sigma': sigma, 'expert': name, 'seed': seed, 'return': ret,
                   'action_gap_to_policy': gap, 'action_std_between_experts': spread}
            results.append(row)
            print(f'sigma {sigma:.2f} {name:18s} seed {seed}: return {ret:8.1f}  '
                  f'gap to policy {gap:.4f}  std between experts {spread:.3f}', flush=True)
    write_json(args.out, {'benchmark': 'expert_sigma', 'environment': environment(),
                          'settings': vars(args), 'results': results})
    return 0


if __name__ == '__main__':
    sys.exit(main())

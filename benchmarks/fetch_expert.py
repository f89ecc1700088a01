"""Fetch Pick&Place expert baselines against APEX Table 1, in one run per command:

  definitions (default)  unguided iCEM planning with and acting on the task's action (batched
                         rollouts, one mujoco.rollout call per control step: 'task') and on
                         the env's own code path (GymnasiumStepped for the system,
                         SteppedRollouts for the planner, as the iCEM reference plans on env
                         copies: 'stepped'), on the same seeds: success rate of each (paper:
                         0.81 at budget 100, 0.67 at 45), per-step planning time and the
                         physics time inside it
  --guide reach          the paper's Fig. 3 setting: a weak policy (ReachOnlyPolicy: reaches
                         for the box, never grasps) alone, and guiding the expert with fixed
                         lambda (planner.guidance_lambda) and with adaptive lambda (Eq. 4,
                         planner.guidance_c)

Episodes alternate between the variants seed by seed (load drift hits them alike); the JSON is
rewritten after every episode, so an interrupted run keeps what it measured, and the same
command with --resume continues it. Timings: medians over the episodes' per-step medians.
Seeds start at --first-seed (1000: none of them was used for tuning or tests).

    python benchmarks/fetch_expert.py benchmarks/fetch_expert_b100.json --episodes 40 \\
        --only task --resume
    python benchmarks/fetch_expert.py benchmarks/fetch_expert_b45.json --episodes 20 \\
        --config config/fetch_pick_and_place_b45.yaml --resume     # both variants
    python benchmarks/fetch_expert.py benchmarks/fetch_expert_b45.json --episodes 40 \\
        --config config/fetch_pick_and_place_b45.yaml --only task --resume
    python benchmarks/fetch_expert.py benchmarks/fetch_fig3_b45.json --episodes 40 \\
        --config config/fetch_pick_and_place_b45.yaml --guide reach --resume
"""
import argparse
import dataclasses
import math

import numpy as np

from apex_ros.cli.bench import earlier_episodes, environment, write_json
from apex_ros.config.run import load_run_config
from apex_ros.errors import ApexError
from apex_ros.planners import make_planner
from apex_ros.sim.episodes import planner_actor, policy_actor, run_episode
from apex_ros.tasks.fetch_pick_and_place import GymnasiumStepped, ReachOnlyPolicy, SteppedRollouts

# a goal at most this high above the table is met without lifting the box (success 0.05 m)
TABLE_GOAL = 0.05


def variants(run_cfg, guide: bool) -> dict:
    """name -> (planner config or None for the policy alone, policy or None, stepped?)"""
    cfg = run_cfg.planner
    if not guide:
        return {'task': (cfg, None, False), 'stepped': (cfg, None, True)}
    return {
        'policy': (None, 'reach', False),
        'fixed_lambda': (dataclasses.replace(cfg, lambda_mode='fixed'), 'reach', False),
        'adaptive_lambda': (dataclasses.replace(cfg, lambda_mode='adaptive'), 'reach', False),
    }


def rate(successes: list) -> dict:
    """Success rate with its binomial standard error."""
    n = len(successes)
    r = float(np.mean(successes)) if n else float('nan')
    return {'episodes': n, 'success_rate': r,
            'success_rate_stderr': math.sqrt(r * (1 - r) / n) if n else float('nan')}


def summary(episodes: list) -> dict:
    """Success rate with its binomial standard error (all goals; goals on or near the table,
    met without lifting; goals in the air), final distances, lifts, timings."""
    n = len(episodes)
    out = rate([e['success'] for e in episodes])
    out['table_goals'] = rate([e['success'] for e in episodes
                               if e['goal_height'] <= TABLE_GOAL])
    out['air_goals'] = rate([e['success'] for e in episodes if e['goal_height'] > TABLE_GOAL])
    out['air_goals_lifted'] = int(sum(e['box_lift'] > TABLE_GOAL for e in episodes
                                      if e['goal_height'] > TABLE_GOAL))
    out['final_distance_median'] = (float(np.median([e['final_distance'] for e in episodes]))
                                    if n else float('nan'))
    plan = np.array([e['plan_ms_median'] for e in episodes])   # per-episode medians
    sim = np.array([e['sim_ms_median'] for e in episodes])
    if plan.size:
        out['plan_ms_median'] = float(np.median(plan))
    if sim.size and np.median(sim) > 0:   # a planner (a policy alone simulates nothing)
        out.update(sim_ms_median=float(np.median(sim)),
                   overhead_ratio=float(np.median(plan) / np.median(sim)))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('json', help='where to write the result')
    p.add_argument('--config', default='config/fetch_pick_and_place.yaml')
    p.add_argument('--episodes', type=int, default=40)
    p.add_argument('--first-seed', type=int, default=1000)
    p.add_argument('--threads', type=int, default=1, help='rollout threads')
    p.add_argument('--guide', choices=['reach'], help='the Fig. 3 comparison with this guide')
    p.add_argument('--only', nargs='+', help='run only these variants (default: all of the '
                   'mode); with --resume the others measured so far stay in JSON')
    p.add_argument('--resume', action='store_true',
                   help='continue the run that wrote JSON (refused if it measured other settings)')
    args = p.parse_args()
    run_cfg = load_run_config(path=args.config)
    task = run_cfg.make_task()
    policy = ReachOnlyPolicy(task)
    runs = variants(run_cfg, args.guide is not None)
    unknown = set(args.only or ()) - set(runs)
    if unknown:
        p.error(f'--only: no variant {", ".join(sorted(unknown))} (this mode has: '
                f'{", ".join(runs)})')
    runs = {name: v for name, v in runs.items() if not args.only or name in args.only}
    identity = {'task': task.name, 'config': args.config, 'planner': run_cfg.planner_name,
                'planner_settings': dataclasses.asdict(run_cfg.planner), 'guide': args.guide,
                'first_seed': args.first_seed}
    try:   # a resumed run keeps the variants it measured, also those not run now (--only)
        defaults = {'planner_settings': dataclasses.asdict(type(run_cfg.planner)())}
        results = (earlier_episodes(args.json, identity, defaults) if args.resume
                   else None) or {}
    except ApexError as e:
        p.error(str(e))
    results.update({name: [] for name in runs if name not in results})
    done = min(len(results[name]) for name in runs)
    if done:
        print(f'{args.json}: resuming after {done} seeds', flush=True)
    for i in range(done, args.episodes):
        seed = args.first_seed + i
        for name, (planner_cfg, guide, stepped) in runs.items():
            if len(results[name]) > i:
                continue   # measured before the interruption
            sim = GymnasiumStepped(task) if stepped else None
            guide = policy if guide else None
            if planner_cfg is None:
                ep = run_episode(task, policy_actor(task, guide), seed, sim=sim)
            else:
                planner = make_planner(task, run_cfg.planner_name, planner_cfg,
                                       threads=args.threads, policy=guide, seed=seed,
                                       rollouts=SteppedRollouts(task) if stepped else None)
                ep = run_episode(task, planner_actor(planner, seed), seed, sim=sim)
                planner.rollouts.close()
            box_z = ep.states[:, task.layout.qpos.start + task.box_qpos.start + 2]
            results[name].append({
                'seed': seed, 'success': bool(ep.success),
                'final_distance': float(task.box_to_goal(ep.states[-1])),
                'goal_height': float(task.extra(ep.states[0], 'goal')[2] - task.table_height),
                'box_lift': float(box_z.max() - task.table_height),
                'plan_ms_median': float(np.median(ep.plan_seconds) * 1e3),
                'sim_ms_median': float(np.median(ep.sim_seconds) * 1e3),
                'minutes': float(ep.plan_seconds.sum()) / 60})
            out = {'identity': identity, 'threads': args.threads,
                   'seeds': [args.first_seed, seed],
                   'minutes': sum(e['minutes'] for eps in results.values() for e in eps),
                   'variants': {name: summary(eps) for name, eps in results.items()},
                   'episodes': results}
            out.update(environment())
            write_json(args.json, out)
        line = ', '.join(f'{name} {np.mean([e["success"] for e in eps]):.2f}'
                         for name, eps in results.items())
        print(f'{i + 1}/{args.episodes} seed {seed}: success {line}', flush=True)


if __name__ == '__main__':
    main()

"""The unguided iCEM expert against the APEX paper's Table 1 ("iCEM" rows): MPC episodes of a
task at a budget, their returns (mean ± std) and success rate, and per planning step the wall
time of plan() beside the physics time of its rollouts (overhead ratio). Writes one JSON
file, rewritten after every episode (a cut-short run keeps what it measured).

Seeds start at --seed-base (default 1000): none of the seeds used while tuning (0..99).

    python benchmarks/expert_baseline.py benchmarks/expert_adroit_door_b45.json \\
        --task adroit_door --episodes 20
    python benchmarks/expert_baseline.py OUT.json --task humanoid_standup --budget 45 \\
        --set planner.iterations=2 --episodes 5
"""
import argparse
import time

import numpy as np

from apex_ros.cli.bench import environment, write_json
from apex_ros.cli.common import add_config_args, load_config, positive_int
from apex_ros.sim.episodes import planner_actor, run_episode


def summary(task, planner, cfg, episodes, seeds, wall) -> dict:
    returns = np.array([ep.ret for ep in episodes])
    plan_ms = np.concatenate([ep.plan_seconds for ep in episodes]) * 1e3
    sim_ms = np.concatenate([ep.sim_seconds for ep in episodes]) * 1e3
    successes = [ep.success for ep in episodes]
    result = {
        'task': task.name, 'planner': cfg.planner_name, 'budget': planner.cfg.budget,
        'iterations': planner.cfg.iterations, 'elites': planner.cfg.elites,
        'populations': [int(n) for n in planner.cfg.populations],
        'samples_per_step': planner.samples_per_step, 'horizon': planner.cfg.horizon,
        'beta': planner.cfg.beta, 'sigma': planner.cfg.sigma,
        'sigma_relative': planner.cfg.sigma_relative,
        'threads': planner.rollouts.threads, 'episode_steps': task.episode_steps,
        'config': str(cfg.path), 'seeds': seeds[:len(episodes)],
        'episodes': len(episodes),
        'returns': [float(r) for r in returns],
        'return_mean': float(returns.mean()), 'return_std': float(returns.std()),
        'success': None if successes[0] is None else [bool(s) for s in successes],
        'success_rate': None if successes[0] is None else float(np.mean(successes)),
        'plan_ms_median': float(np.median(plan_ms)),
        'sim_ms_median': float(np.median(sim_ms)),
        'overhead_ratio': float(np.median(plan_ms) / np.median(sim_ms)),
        'wall_seconds': wall,
    }
    result.update(environment())
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('json', help='where to write the result')
    add_config_args(p)
    p.add_argument('--episodes', type=positive_int, default=5)
    p.add_argument('--seed-base', type=int, default=1000,
                   help='episode e runs seed seed_base + e (reset and planner)')
    args = p.parse_args(argv)
    cfg = load_config(args)
    task = cfg.make_task()
    planner = cfg.make_planner(task)
    seeds = [args.seed_base + e for e in range(args.episodes)]
    episodes, t0 = [], time.perf_counter()
    try:
        for e, seed in enumerate(seeds):
            ep = run_episode(task, planner_actor(planner, seed), seed)
            episodes.append(ep)
            result = summary(task, planner, cfg, episodes, seeds, time.perf_counter() - t0)
            write_json(args.json, result)
            print(f'episode {e + 1}/{len(seeds)} seed {seed}: return {ep.ret:.1f}'
                  + ('' if ep.success is None else f', success {ep.success}')
                  + f'; plan {np.median(ep.plan_seconds) * 1e3:.1f} ms, physics '
                  f'{np.median(ep.sim_seconds) * 1e3:.1f} ms per step', flush=True)
    finally:
        planner.rollouts.close()
    print(f'{task.name} budget {result["budget"]}: return {result["return_mean"]:.1f} ± '
          f'{result["return_std"]:.1f}'
          + ('' if result['success_rate'] is None else
             f', success rate {result["success_rate"]:.2f}')
          + f' over {len(episodes)} episodes; overhead {result["overhead_ratio"]:.3f} '
          f'-> {args.json}')


if __name__ == '__main__':
    main()

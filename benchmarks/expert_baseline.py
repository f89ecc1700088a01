"""The unguided iCEM expert against the APEX paper's Table 1 ("iCEM" rows): MPC episodes of a
task at a budget, their returns (mean ± std) and success rate, and per planning step the wall
time of plan() beside the physics time of its rollouts (overhead ratio; medians of the
episodes' per-step medians). Writes one JSON file, rewritten after every episode: a cut-short
run keeps what it measured, and the same command with --resume continues it.

Seeds start at --seed-base (default 1000): none of the seeds used while tuning (0..99).

    python benchmarks/expert_baseline.py benchmarks/expert_adroit_door_b45.json \\
        --task adroit_door --episodes 20 --resume
    python benchmarks/expert_baseline.py OUT.json --task humanoid_standup --budget 45 \\
        --set planner.iterations=2 --episodes 5 --resume
"""
import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from apex_ros.cli.bench import earlier_episodes, environment, write_json
from apex_ros.cli.common import add_config_args, load_config, positive_int
from apex_ros.errors import ApexError
from apex_ros.sim.episodes import planner_actor, run_episode


def shown_path(path) -> str:
    """`path` relative to the working directory (the checkout) when it is inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def identity(task, planner, cfg, seed_base) -> dict:
    """What the episodes measure: a resumed run must match it."""
    return {
        'task': task.name, 'planner': cfg.planner_name, 'budget': planner.cfg.budget,
        'iterations': planner.cfg.iterations, 'elites': planner.cfg.elites,
        'populations': [int(n) for n in planner.cfg.populations],
        'samples_per_step': planner.samples_per_step, 'horizon': planner.cfg.horizon,
        'beta': planner.cfg.beta, 'sigma': planner.cfg.sigma,
        'sigma_relative': planner.cfg.sigma_relative, 'episode_steps': task.episode_steps,
        'task_params': dataclasses.asdict(task.params), 'config': shown_path(cfg.path),
        'seed_base': seed_base}


def summary(ident: dict, threads: int, episodes: list) -> dict:
    """Returns (mean ± std), success, and the medians of the episodes' per-step plan and
    physics times."""
    returns = np.array([e['return'] for e in episodes])
    successes = [e['success'] for e in episodes]
    plan_ms = np.median([e['plan_ms_median'] for e in episodes])
    sim_ms = np.median([e['sim_ms_median'] for e in episodes])
    result = {
        'identity': ident, 'threads': threads, 'episodes_run': len(episodes),
        'return_mean': float(returns.mean()), 'return_std': float(returns.std()),
        'success_rate': None if successes[0] is None else float(np.mean(successes)),
        'plan_ms_median': float(plan_ms), 'sim_ms_median': float(sim_ms),
        'overhead_ratio': float(plan_ms / sim_ms),
        'wall_seconds': float(sum(e['wall_seconds'] for e in episodes)),
        'episodes': episodes,
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
    p.add_argument('--resume', action='store_true',
                   help='continue the run that wrote JSON (refused if it measured other settings)')
    args = p.parse_args(argv)
    cfg = load_config(args)
    task = cfg.make_task()
    planner = cfg.make_planner(task)
    ident = identity(task, planner, cfg, args.seed_base)
    try:
        defaults = {'task_params': dataclasses.asdict(type(task.params)())}
        episodes = earlier_episodes(args.json, ident, defaults) if args.resume else []
    except ApexError as e:
        p.error(str(e))
    try:
        for e in range(len(episodes), args.episodes):
            seed = args.seed_base + e
            t0 = time.perf_counter()
            ep = run_episode(task, planner_actor(planner, seed), seed)
            episodes.append({
                'seed': seed, 'return': float(ep.ret),
                'success': None if ep.success is None else bool(ep.success),
                'plan_ms_median': float(np.median(ep.plan_seconds) * 1e3),
                'sim_ms_median': float(np.median(ep.sim_seconds) * 1e3),
                'wall_seconds': time.perf_counter() - t0})
            write_json(args.json, summary(ident, planner.rollouts.threads, episodes))
            print(f'episode {e + 1}/{args.episodes} seed {seed}: return {ep.ret:.1f}'
                  + ('' if ep.success is None else f', success {ep.success}')
                  + f'; plan {np.median(ep.plan_seconds) * 1e3:.1f} ms, physics '
                  f'{np.median(ep.sim_seconds) * 1e3:.1f} ms per step', flush=True)
    finally:
        planner.rollouts.close()


if __name__ == '__main__':
    main()

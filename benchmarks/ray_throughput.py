"""Scale-out throughput: expert episodes and relabeled states per second in-process
(workers.backend: local) and on 1 and 2 Ray workers (workers.backend: ray, a local Ray
instance started by the pool as with `workers.address: null`), measured in one run; and
Ray's own overhead per episode. Writes one JSON file.

Workload: cart-pole, iCEM budget 100, horizon 30, 1 rollout thread per worker (the local
run too), an untrained student (bundle bytes) guiding the expert:
  expert    `--episodes` guided-expert episodes of `--steps` steps (APEX's expert phase)
  dagger    `--episodes` student episodes, each relabeled along its own trajectory
            (APEX's DAgger phase; relabeled states / s)
  overhead  `--tiny` student-only evaluation episodes: almost no work on the actor, so the
            time from handing an episode to an actor to having its result here, minus the
            actor's own time, is what Ray costs per episode
Every batch runs the same seeds and is checked identical to the local one. Pool start-up
(start Ray, build the actors) is reported separately, not in the rates. The three runs
alternate `--repeats` times (the machine's load drifts); the fastest repeat of each counts.

    python benchmarks/ray_throughput.py benchmarks/ray_throughput.json
    python benchmarks/ray_throughput.py OUT.json --episodes 2 --steps 20   # smoke test
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from apex_ros.cli.bench import environment, write_json
from apex_ros.config.run import load_run_config
from apex_ros.deploy.export import bundle_bytes
from apex_ros.learning.apex import apex_settings
from apex_ros.learning.student import MLPPolicy
from apex_ros.workers.config import WorkersConfig
from apex_ros.workers.episodes import EpisodeWorker, WorkerSpec


def batches(args):
    return {'expert': ('expert_episode', [(s, 0.0) for s in range(args.episodes)]),
            'dagger': ('dagger_episode', [(100 + s, False) for s in range(args.episodes)]),
            'overhead': ('evaluation_episode', [(200 + s,) for s in range(args.tiny)])}


def units(kind, results) -> int:
    """Episodes (expert, overhead) or relabeled states (dagger) in a batch's results."""
    return sum(len(r.states) for r in results) if kind == 'dagger' else len(results)


def same(a, b) -> bool:
    if hasattr(a, 'labels'):
        return np.array_equal(a.labels, b.labels) and same(a.episode, b.episode)
    return np.array_equal(a.states, b.states) and np.array_equal(a.actions, b.actions)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('json')
    ap.add_argument('--episodes', type=int, default=4, help='expert and DAgger episodes')
    ap.add_argument('--steps', type=int, default=100, help='control steps per episode')
    ap.add_argument('--tiny', type=int, default=40, help='episodes for the overhead figure')
    ap.add_argument('--budget', type=int, default=100)
    ap.add_argument('--horizon', type=int, default=30)
    ap.add_argument('--repeats', type=int, default=2, help='best of, interleaved')
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix='ray-bench-') as tmp:
        config = Path(tmp) / 'config.yaml'
        config.write_text(yaml.safe_dump({
            'task': {'name': 'cartpole_swingup', 'episode_steps': args.steps},
            'planner': {'name': 'icem', 'horizon': args.horizon, 'budget': args.budget},
            'rollout': {'threads': 1}, 'seed': 0}))
        cfg = load_run_config('cartpole_swingup', config)
    task = cfg.make_task()
    _, planner_cfg = apex_settings(cfg)
    torch.manual_seed(0)
    data = bundle_bytes(MLPPolicy(task.obs_dim, task.nu), task, 0)
    spec = WorkerSpec(cfg, cfg.planner_name, planner_cfg, 1)
    work = batches(args)

    from apex_ros.workers.ray_pool import RayPool
    local, runs = {}, {'local': {}, 'ray_1': {}, 'ray_2': {}}

    def record(name, kind, results, seconds, timings=None):
        """Keep the best (fastest) repeat of each batch."""
        best = runs[name].get(kind)
        if best is not None and best['seconds'] <= seconds:
            return
        runs[name][kind] = {'seconds': seconds, 'per_second': units(kind, results) / seconds}
        if timings is not None:
            overhead = [t[1] - t[0] for t in timings]
            runs[name][kind].update(
                actor_seconds_mean=float(np.mean([t[0] for t in timings])),
                ray_overhead_ms_per_episode_median=float(np.median(overhead) * 1e3),
                ray_overhead_ms_per_episode_mean=float(np.mean(overhead) * 1e3))

    for repeat in range(args.repeats):   # interleaved: the machine's load drifts
        worker = EpisodeWorker(spec, task)
        worker.prepare(planner_cfg, data, True)
        worker.evaluation_episode(999)   # warm-up, as each Ray actor gets below
        for kind, (method, items) in work.items():
            t0 = time.perf_counter()
            local[kind] = [getattr(worker, method)(*item) for item in items]
            record('local', kind, local[kind], time.perf_counter() - t0)
        worker.close()
        for count in (1, 2):
            name = f'ray_{count}'
            t0 = time.perf_counter()
            pool = RayPool(spec, WorkersConfig('ray', None, count, 1))
            startup = time.perf_counter() - t0
            runs[name]['startup_seconds'] = min(startup, runs[name].get('startup_seconds',
                                                                        startup))
            try:
                pool.use(planner_cfg, data, True)
                pool.map('evaluation_episode', [(999,)] * count)   # warm-up: one per actor
                for kind, (method, items) in work.items():
                    t0 = time.perf_counter()
                    results = pool.map(method, items)
                    seconds = time.perf_counter() - t0
                    assert all(same(a, b) for a, b in zip(results, local[kind])), (name, kind)
                    record(name, kind, results, seconds, pool.timings)
            finally:
                pool.close()
        print(f'best after repeat {repeat + 1}: ' + ', '.join(
            f'{name} {kind} {run[kind]["seconds"]:.1f} s' for name, run in runs.items()
            for kind in ('expert', 'dagger')), file=sys.stderr)

    ratios = {f'{name}_vs_local': {kind: runs[name][kind]['per_second']
                                   / runs['local'][kind]['per_second']
                                   for kind in ('expert', 'dagger')}
              for name in ('ray_1', 'ray_2')}
    result = {
        'benchmark': 'ray_throughput', 'task': task.name, 'episode_steps': args.steps,
        'episodes': args.episodes, 'tiny_episodes': args.tiny, 'repeats': args.repeats,
        'planner': {'name': 'icem', 'budget': args.budget, 'horizon': args.horizon,
                    'rollout_threads_per_worker': 1},
        'units': {'expert': 'episodes', 'dagger': 'relabeled states',
                  'overhead': 'student-only evaluation episodes'},
        'runs': runs, 'ratios': ratios,
        'identical_to_local': True,
        'load_average': os.getloadavg(),
        'environment': environment(),
    }
    write_json(args.json, result)
    r1, r2 = ratios['ray_1_vs_local'], ratios['ray_2_vs_local']
    print(f'expert episodes/s: local {runs["local"]["expert"]["per_second"]:.3f}, '
          f'1 worker x{r1["expert"]:.2f}, 2 workers x{r2["expert"]:.2f}; relabeled states/s: '
          f'local {runs["local"]["dagger"]["per_second"]:.1f}, 1 worker x{r1["dagger"]:.2f}, '
          f'2 workers x{r2["dagger"]:.2f}; Ray overhead per episode (median) '
          f'{runs["ray_1"]["overhead"]["ray_overhead_ms_per_episode_median"]:.2f} ms '
          f'-> {args.json}')


if __name__ == '__main__':
    main()

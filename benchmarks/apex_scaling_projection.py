"""APEX iteration time on 8, 32 and 128 cores, projected on paper from per-rollout costs
measured here, next to the paper's Table 4 (Xeon Gold 6154, 32 cores). Writes one JSON file.

Measured in this run (1 core unless said):
  halfcheetah   seconds per planning step of the APEX expert (iCEM, budget 100, h 30) with
                1 and 2 rollout threads, over `--steps` steps -> per-rollout cost (1000 steps)
                and the thread speedup
  training      one training of the paper's student (MLP 3x128, Adam, batch 1024, 1000 steps)
  Ray           overhead per episode, read from ray_throughput.json (benchmarks/ray_throughput.py)
Door and Fetch Pick&Place were not tasks here when this was written: their per-step cost is
the `mujoco.rollout` batch of 40 sequences x 30 actions on 1 thread that the project's
engineering notes measured (Door 0.34 s, Fetch 0.74 s), scaled to the budget
(budget / 40 batches per step), by the planner's measured plan/physics ratio, and by this
machine's speed now (halfcheetah physics measured here / the notes' 69 ms); episodes of
200 (Door) and 50 (Fetch) steps. Measured here since, per planning step on 1 thread: Door in
experiments/paper_tasks/cpu_cost.json, Fetch in benchmarks/fetch_expert_b45.json and
fetch_expert_b100.json (plan_ms_median).

The model (each phase's rollouts are independent; the expert and DAgger phases, with the
trainings between them, run one after another):
  w = min(n, cores) workers, t = min(8, cores // w) rollout threads each (a sample batch of
  ~40 sequences keeps up to ~8 threads busy), ceil(n / w) waves per phase;
  phase = waves x (steps x step cost(1 thread) / speedup(t) + Ray overhead per episode);
  speedup(t) = 1 / ((1 - p) + p / t), p from the measured 2-thread speedup (Amdahl);
  a DAgger rollout costs its relabeling (one planning step per state; the student's own
  steps are microseconds); iteration = expert + DAgger + 2 trainings (no evaluation, as
  Table 4's columns).

    python benchmarks/apex_scaling_projection.py benchmarks/apex_scaling_projection.json
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

from apex_ros.cli.bench import bench_planner, environment, write_json
from apex_ros.config.run import load_run_config
from apex_ros.learning.student import MLPPolicy, make_optimizer, train_policy
from apex_ros.learning.train_config import TrainConfig

CORES = (8, 32, 128)
MAX_THREADS = 8
NOTES = {   # /work/shared/ENGINEERING_NOTES.md
    'batch_40x30_seconds_1_thread': {'door': 0.34, 'fetch_pick_place': 0.74},
    'halfcheetah_physics_ms_N100_h30_1_thread': 69.0,
}
# APEX Table 4 (Pinneri et al. 2021): wall minutes per iteration on 32 cores, by (task,
# budget); the one copy (experiments/paper_tasks/ reads it from here)
TABLE_4 = {(task, budget): dict(zip(('expert', 'dagger', 'training', 'total'), minutes))
           for task, budget, *minutes in (
               ('halfcheetah_run', 45, 1.8, 2.0, 1.4, 5.6),
               ('halfcheetah_run', 100, 2.3, 2.5, 1.4, 6.5),
               ('halfcheetah_run', 300, 4.0, 4.2, 1.5, 10.1),
               ('humanoid_standup', 45, 1.7, 2.5, 0.9, 5.3),
               ('humanoid_standup', 300, 5.6, 6.9, 0.9, 13.8),
               ('fetch_pick_and_place', 45, 7.78, 8.7, 3.2, 20.0),
               ('fetch_pick_and_place', 100, 12.2, 13.5, 3.5, 29.5),
               ('adroit_door', 45, 9.7, 11.2, 3.9, 25.1))}
# the settings projected here -> their (task, budget)
PROJECTED = {'halfcheetah_run_b100': ('halfcheetah_run', 100), 'door_b45': ('adroit_door', 45),
             'fetch_pick_place_b45': ('fetch_pick_and_place', 45),
             'fetch_pick_place_b100': ('fetch_pick_and_place', 100)}
OBS_DIM = {'halfcheetah_run_b100': 17, 'door_b45': 39, 'fetch_pick_place_b45': 25,
           'fetch_pick_place_b100': 25}


def speedup(threads: int, p: float) -> float:
    return 1.0 / ((1.0 - p) + p / threads)


def phase_seconds(n, cores, step_seconds, steps, p, overhead):
    workers = min(n, cores)
    threads = min(MAX_THREADS, cores // workers)
    waves = math.ceil(n / workers)
    return waves * (steps * step_seconds / speedup(threads, p) + overhead), workers, threads


def training_seconds(obs_dim: int, nu: int = 6, samples: int = 50_000,
                     clock=time.perf_counter) -> float:
    """Seconds (by `clock`: wall, or time.process_time for CPU) of one student training on
    `samples` random pairs."""
    torch.manual_seed(0)
    cfg = TrainConfig()
    model = MLPPolicy(obs_dim, nu, cfg.hidden)
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((samples, obs_dim)).astype(np.float32)
    act = rng.standard_normal((samples, nu)).astype(np.float32)
    t0 = clock()
    train_policy(model, make_optimizer(model, cfg), obs, act, cfg,
                 torch.Generator().manual_seed(0))
    return clock() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('json')
    ap.add_argument('--steps', type=int, default=30, help='halfcheetah planning steps timed')
    ap.add_argument('--ray-json', default='benchmarks/ray_throughput.json',
                    help='ray_throughput.py output: Ray overhead per episode')
    args = ap.parse_args()

    cfg = load_run_config('halfcheetah_run')
    from apex_ros.learning.apex import apex_settings
    _, expert_cfg = apex_settings(cfg)
    cfg.planner = expert_cfg
    bench = {t: bench_planner(cfg, threads=t, steps=args.steps, progress=False) for t in (1, 2)}
    step_1 = bench[1]['plan_ms_median'] / 1e3
    s2 = bench[1]['plan_ms_median'] / bench[2]['plan_ms_median']
    p = min(1.0, max(0.0, 2.0 * (1.0 - 1.0 / s2)))
    plan_over_physics = bench[1]['overhead_ratio']
    machine = bench[1]['sim_ms_median'] / NOTES['halfcheetah_physics_ms_N100_h30_1_thread']
    print(f'halfcheetah step {step_1 * 1e3:.1f} ms (1 thread), 2-thread speedup {s2:.2f} '
          f'(p {p:.2f}), machine factor {machine:.2f}', file=sys.stderr)
    with open(args.ray_json) as f:
        ray = json.load(f)
    overhead = ray['runs']['ray_1']['overhead']['ray_overhead_ms_per_episode_median'] / 1e3

    envs = {
        'halfcheetah_run_b100': {'rollouts': 1, 'steps': 1000, 'step_seconds': step_1,
                                 'source': 'measured here'},
    }
    for name, budget in (('door', 45), ('fetch_pick_place', 45), ('fetch_pick_place', 100)):
        batch = NOTES['batch_40x30_seconds_1_thread'][name]
        envs[f'{name}_b{budget}'] = {
            'rollouts': 10 if name == 'door' else 25, 'steps': 200 if name == 'door' else 50,
            'step_seconds': budget / 40 * batch * plan_over_physics * machine,
            'source': f'ENGINEERING_NOTES batch 40x30 = {batch} s, x budget/40, x plan/physics '
                      f'{plan_over_physics:.3f}, x machine factor {machine:.2f}'}
    trainings = {}
    for env in envs:
        dim = OBS_DIM[env]
        if dim not in trainings:
            trainings[dim] = training_seconds(dim)
            print(f'training obs {dim}: {trainings[dim]:.1f} s', file=sys.stderr)
        envs[env]['training_seconds'] = trainings[dim]

    for env, e in envs.items():
        e['rollout_seconds_1_thread'] = e['steps'] * e['step_seconds']
        e['projected_minutes'] = {}
        for cores in CORES:
            phase, workers, threads = phase_seconds(e['rollouts'], cores, e['step_seconds'],
                                                    e['steps'], p, overhead)
            training = 2 * e['training_seconds']
            e['projected_minutes'][cores] = {
                'workers': workers, 'threads_per_worker': threads,
                'expert': phase / 60, 'dagger': phase / 60, 'training': training / 60,
                'total': (2 * phase + training) / 60}
        e['paper_table_4_minutes_32_cores'] = paper = TABLE_4[PROJECTED[env]]
        print(f'{env}: ' + ', '.join(f'{c} cores {e["projected_minutes"][c]["total"]:.2f} min'
                                     for c in CORES)
              + f' (paper, 32 cores: {paper["total"]} min)', file=sys.stderr)

    result = {
        'benchmark': 'apex_scaling_projection',
        'measured': {
            'halfcheetah_plan_ms_1_thread': bench[1]['plan_ms_median'],
            'halfcheetah_plan_ms_2_threads': bench[2]['plan_ms_median'],
            'halfcheetah_physics_ms_1_thread': bench[1]['sim_ms_median'],
            'thread_speedup_2': s2, 'amdahl_parallel_fraction': p,
            'plan_over_physics': plan_over_physics, 'machine_factor_vs_notes': machine,
            'ray_overhead_seconds_per_episode': overhead, 'ray_json': args.ray_json,
            'training_seconds_by_obs_dim': trainings},
        'notes_figures': NOTES,
        'model': {'max_threads_per_rollout': MAX_THREADS,
                  'phase': 'ceil(n / w) x (steps x step cost / speedup(t) + ray overhead)',
                  'iteration': 'expert + dagger + 2 trainings'},
        'environments': envs,
        'load_average': os.getloadavg(),
        'environment': environment(),
    }
    write_json(args.json, result)
    print(f'-> {args.json}')


if __name__ == '__main__':
    main()

"""CPU seconds per planning step (process time, so a loaded machine does not inflate it) of
the unguided iCEM expert on Door (budget 45), Humanoid Standup and Fetch Pick&Place (budgets
100 and 45), and of one training of the paper's student per task; then an APEX iteration
projected to 8, 32 and 128 cores with the model of benchmarks/apex_scaling_projection.py
(its phase_seconds: rollouts spread over workers, threads per worker with Amdahl's fraction
p) next to the paper's Table 4. Writes one JSON file.

    python experiments/paper_tasks/cpu_cost.py experiments/paper_tasks/cpu_cost.json
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from apex_ros.cli.bench import environment, write_json
from apex_ros.config.run import load_run_config
from apex_ros.sim.simulation import Simulation

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks import apex_scaling_projection as projection  # noqa: E402

# (name, task, --set items, APEX rollouts per iteration n)
SETTINGS = (
    ('adroit_door_b45', 'adroit_door', [], 10),
    ('humanoid_standup_b100', 'humanoid_standup', [], 1),
    ('humanoid_standup_b45', 'humanoid_standup',
     ['planner.budget=45', 'planner.iterations=2'], 1),
    ('fetch_pick_and_place_b100', 'fetch_pick_and_place', [], 25),
    ('fetch_pick_and_place_b45', 'fetch_pick_and_place',
     ['planner.budget=45', 'planner.iterations=2'], 25),
)


def planning_cpu(cfg, steps: int, seed: int):
    """(CPU s per plan() call, physics CPU share) over `steps` steps from a reset state."""
    task = cfg.make_task()
    planner = cfg.make_planner(task)
    sim = Simulation(task)
    sim.reset(seed)
    planner.reset(seed)
    plan_cpu, sim_wall, plan_wall = [], 0.0, 0.0
    try:
        for _ in range(steps):
            c0, w0 = time.process_time(), time.perf_counter()
            result = planner.plan(*sim.plan_inputs())
            plan_cpu.append(time.process_time() - c0)
            plan_wall += time.perf_counter() - w0
            sim_wall += result.info.get('sim_seconds', 0.0)
            sim.step(result.action)
    finally:
        planner.rollouts.close()
    return float(np.median(plan_cpu)), plan_wall / sim_wall, task


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('json')
    ap.add_argument('--steps', type=int, default=10, help='planning steps timed per setting')
    ap.add_argument('--seed', type=int, default=2000)
    ap.add_argument('--amdahl-p', type=float, default=1.0,
                    help='parallel fraction of a planning step over rollout threads (the '
                         'measured 2-thread speedup of 2.03 on halfcheetah: ~1)')
    args = ap.parse_args()
    torch.set_num_threads(1)
    results = {}
    for name, task_name, sets, n in SETTINGS:
        cfg = load_run_config(task_name, sets=['rollout.threads=1', *sets])
        table4 = projection.TABLE_4.get((task_name, cfg.planner.budget), {}).get('total')
        step_cpu, plan_over_physics, task = planning_cpu(cfg, args.steps, args.seed)
        train = projection.training_seconds(task.obs_dim, task.nu, clock=time.process_time)
        r = {'task': task_name, 'sets': sets, 'populations': [
                int(x) for x in cfg.planner.populations],
             'plan_cpu_seconds_per_step': step_cpu, 'plan_over_physics_wall': plan_over_physics,
             'episode_steps': task.episode_steps,
             'rollout_cpu_seconds': step_cpu * task.episode_steps,
             'rollouts_per_iteration': n, 'training_cpu_seconds': train,
             'iteration_cpu_seconds_1_core': 2 * n * step_cpu * task.episode_steps + 2 * train,
             'paper_table_4_minutes_32_cores': table4, 'projected_minutes': {}}
        for cores in projection.CORES:
            phase, workers, threads = projection.phase_seconds(
                n, cores, step_cpu, task.episode_steps, args.amdahl_p, 0.0)
            r['projected_minutes'][cores] = {
                'workers': workers, 'threads_per_worker': threads,
                'total': (2 * phase + 2 * train) / 60}
        results[name] = r
        print(f'{name}: {step_cpu:.3f} CPU s/step, rollout {r["rollout_cpu_seconds"]:.0f} s, '
              f'training {train:.1f} s, iteration on 1 core '
              f'{r["iteration_cpu_seconds_1_core"] / 60:.1f} min, on 32 cores '
              f'{r["projected_minutes"][32]["total"]:.2f} min (paper {table4})', flush=True)
    write_json(args.json, {'benchmark': 'paper_tasks_cpu_cost', 'steps': args.steps,
                           'amdahl_p': args.amdahl_p, 'settings': results,
                           'environment': environment()})
    print(f'-> {args.json}')


if __name__ == '__main__':
    main()

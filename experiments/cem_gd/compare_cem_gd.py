"""iCEM vs CEM-GD on halfcheetah_run and humanoid_standup, at (a) equal samples per step and
(b) equal wall time per step. Writes one JSON file.

(a) iCEM at --budget (its samples per step: e.g. 97 for budget 100), CEM-GD with `budget` set
    to exactly that many samples per step (plus its initial_budget at the first step).
(b) CEM-GD's median plan time from (a) is the target; iCEM's budget is scaled to it (plan time
    is close to linear in the budget: a proportional guess, then one short calibration run and
    a linear fit through both points), and iCEM runs again at that budget. The other direction
    is not useful: CEM-GD's time is dominated by its gradient steps, not by its budget.

Each run is `apex_ros.cli.bench.bench_planner` (MPC from the task's seeded start) for --steps
control steps, with the task's config/<task>.yaml settings and the overrides given here.

    python experiments/cem_gd/compare_cem_gd.py experiments/cem_gd/compare_cem_gd.json --steps 100
    python experiments/cem_gd/compare_cem_gd.py OUT.json --steps 5 --horizon 10 --threads 1
"""
import argparse
import sys
import time

import yaml

from apex_ros.cli.bench import bench_planner, environment, write_json
from apex_ros.config.run import load_run_config
from apex_ros.planners.icem import population_sizes

TASKS = ('halfcheetah_run', 'humanoid_standup')
KEPT = ('planner', 'budget', 'samples_per_step', 'return', 'plan_ms_median', 'plan_ms_p95',
        'sim_ms_median', 'planning_hz', 'steps', 'threads', 'seed')


def run(task, planner, settings, args, steps=None):
    cfg = load_run_config(task, overrides={'planner': settings}, planner=planner)
    threads = args.threads or cfg.rollout.threads
    label = f'{task} {planner} {settings}'
    print(f'-- {label}: {steps or args.steps} steps', file=sys.stderr, flush=True)
    result = bench_planner(cfg, threads, steps or args.steps, seed=args.seed,
                           progress=not args.quiet)
    summary = {k: result[k] for k in KEPT}
    if planner == 'cem_gd':
        summary['first_step_samples'] = max(cfg.planner.initial_budget, cfg.planner.budget)
    return summary


def icem_minimum_budget(task):
    cfg = load_run_config(task, planner='icem').planner
    return int(population_sizes(cfg.elites, cfg.iterations, cfg.gamma, 0).sum())


def equal_time_budget(task, first, target_ms, args):
    """iCEM budget whose median plan time is about `target_ms`, from the run `first`."""
    minimum = icem_minimum_budget(task)
    guess = max(minimum, round(first['budget'] * target_ms / first['plan_ms_median']))
    probe = run(task, 'icem', {**args.shared, 'budget': guess}, args,
                steps=args.calibration_steps)
    points = [(first['budget'], first['plan_ms_median']), (guess, probe['plan_ms_median'])]
    (b1, t1), (b2, t2) = points
    if b2 != b1 and t2 != t1:
        guess = round(b1 + (target_ms - t1) * (b2 - b1) / (t2 - t1))
    budget = max(minimum, guess)
    return budget, {'points': points, 'minimum': minimum, 'clamped': guess < minimum}


def compare(task, args):
    icem = run(task, 'icem', {**args.shared, 'budget': args.budget}, args)
    gd = run(task, 'cem_gd', {**args.shared, **args.cem_gd,
                              'budget': icem['samples_per_step']}, args)
    budget, calibration = equal_time_budget(task, icem, gd['plan_ms_median'], args)
    icem_timed = run(task, 'icem', {**args.shared, 'budget': budget}, args)
    return {'equal_samples': {'icem': icem, 'cem_gd': gd},
            'equal_time': {'icem': icem_timed, 'cem_gd': gd,
                           'target_plan_ms': gd['plan_ms_median'],
                           'calibration': calibration}}


def parse_setting(text):
    key, sep, value = text.partition('=')
    if not sep:
        raise argparse.ArgumentTypeError(f'expected KEY=VALUE, got {text!r}')
    return key, yaml.safe_load(value)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('out', help='JSON file to write')
    p.add_argument('--steps', type=int, default=100, help='MPC steps per run (default 100)')
    p.add_argument('--budget', type=int, default=100, help='iCEM budget of comparison (a)')
    p.add_argument('--horizon', type=int, help='planning horizon of both (default: config)')
    p.add_argument('--threads', type=int, help='rollout threads (default: from the config)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--tasks', nargs='+', default=list(TASKS), choices=TASKS)
    p.add_argument('--calibration-steps', type=int, default=10,
                   help='MPC steps of the equal-time calibration run (default 10)')
    p.add_argument('--set', dest='cem_gd', type=parse_setting, action='append', default=[],
                   metavar='KEY=VALUE', help='CEM-GD setting, e.g. --set refine=1 (repeatable)')
    p.add_argument('--quiet', action='store_true', help='no progress bars')
    args = p.parse_args(argv)
    args.cem_gd = dict(args.cem_gd)
    args.shared = {'horizon': args.horizon} if args.horizon else {}
    t0 = time.perf_counter()
    results = {'settings': {'steps': args.steps, 'budget': args.budget,
                            'horizon': args.horizon, 'threads': args.threads,
                            'seed': args.seed, 'cem_gd': args.cem_gd},
               'tasks': {}}
    for task in args.tasks:
        results['tasks'][task] = compare(task, args)
        write_json(args.out, {**results, **environment()})   # partial results survive
    results['wall_seconds'] = time.perf_counter() - t0
    write_json(args.out, {**results, **environment()})
    for task, r in results['tasks'].items():
        for kind in ('equal_samples', 'equal_time'):
            for planner in ('icem', 'cem_gd'):
                x = r[kind][planner]
                print(f'{task:17s} {kind:13s} {planner:6s} samples/step {x["samples_per_step"]:5d}'
                      f'  plan {x["plan_ms_median"]:8.1f} ms  return {x["return"]:10.2f}')
    print(f'-> {args.out} ({results["wall_seconds"]:.0f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())

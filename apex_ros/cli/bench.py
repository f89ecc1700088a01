"""`apex-ros bench ...`: benchmarks (never timed unit tests), measured numbers written as
JSON."""
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from ..config.diff import config_differences
from ..errors import ApexError
from ..files import atomic_write_text
from .common import add_config_args, config_sets, load_config, positive_int


def environment() -> dict:
    import mujoco
    return {'mujoco_version': mujoco.__version__, 'numpy_version': np.__version__,
            'python': platform.python_version(), 'machine': platform.machine(),
            'cpu_count': os.cpu_count(), 'command': ' '.join(sys.argv),
            'date': time.strftime('%Y-%m-%dT%H:%M:%S%z')}


def bench_planner(run_cfg, threads: int, steps: int, seed: int = 0,
                  progress: bool = True) -> dict:
    """Run MPC for `steps` control steps; time every plan() and the physics inside it."""
    from ..planners import make_planner
    from ..sim.episodes import run_mpc
    planner_cfg = run_cfg.planner
    task = run_cfg.make_task()
    planner = make_planner(task, run_cfg.planner_name, planner_cfg, threads=threads, seed=seed)
    label = f'bench {task.name} budget={getattr(planner_cfg, "budget", "?")} threads={threads}'
    ep = run_mpc(task, planner, seed=seed, steps=steps, progress=label if progress else None)
    planner.rollouts.close()
    plan_ms = ep.plan_seconds * 1e3
    sim_ms = ep.sim_seconds * 1e3
    result = {
        'task': task.name, 'planner': run_cfg.planner_name,
        'budget': getattr(planner_cfg, 'budget', None),
        'samples_per_step': planner.samples_per_step,
        'threads': threads, 'steps': steps, 'seed': seed,
        'plan_ms_median': float(np.median(plan_ms)),
        'plan_ms_p95': float(np.percentile(plan_ms, 95)),
        'sim_ms_median': float(np.median(sim_ms)),
        'overhead_ratio': float(np.median(plan_ms) / np.median(sim_ms)),
        'planning_hz': float(1e3 / np.median(plan_ms)),
        'return': ep.ret,
        'success': ep.success,
    }
    result.update(environment())
    return result


def write_json(path, data: dict):
    path = Path(path)
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + '\n')


def _with_defaults(stored, defaults):
    """`stored` with the settings it lacks taken from `defaults` (nested mappings)."""
    if not isinstance(stored, dict) or not isinstance(defaults, dict):
        return stored
    merged = dict(stored)
    for key, value in defaults.items():
        merged[key] = _with_defaults(stored[key], value) if key in stored else value
    return merged


def earlier_episodes(path, identity: dict, defaults: dict | None = None) -> list:
    """The episodes an interrupted run of an episode benchmark wrote to `path` (its JSON's
    'identity' and 'episodes'), to continue with `--resume`; [] if there is no such file.
    Refused, naming the settings that differ, if it measured something else. `defaults`:
    the identity's settings at their defaults; one added since the JSON was written, and at
    its default now, is no difference."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
        earlier, episodes = data['identity'], data['episodes']
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ApexError(f'{path}: cannot resume from it ({type(e).__name__}: {e}); '
                        'move it away to start afresh') from None
    differ = config_differences(_with_defaults(earlier, defaults or {}), identity)
    if differ:
        raise ApexError(f'{path}: measured with other settings ({"; ".join(differ)}); write '
                        'to another file or move it away')
    return episodes


def bench_apex(run_cfg, workdir=None, progress: bool = True) -> dict:
    """Run APEX iterations in `workdir` (a temp dir by default); time each phase."""
    import tempfile

    from ..learning.apex import ApexTrainer
    with tempfile.TemporaryDirectory(prefix='apex-bench-') as tmp:
        trainer = ApexTrainer(run_cfg, workdir or tmp, progress=progress)
        t0 = time.perf_counter()
        trainer.run()
        total = time.perf_counter() - t0
        metrics = trainer.metrics
    n = len(metrics)

    def mean_of(*keys):
        return float(np.mean([sum(m.get(k, 0.0) for k in keys) for m in metrics]))
    result = {
        'task': run_cfg.task.name, 'budget': getattr(run_cfg.planner, 'budget', None),
        'threads': run_cfg.rollout.threads, 'iterations': n,
        'seconds_per_iteration': total / n,
        'expert_seconds': mean_of('expert_seconds'),
        'dagger_seconds': mean_of('dagger_seconds'),
        'training_seconds': mean_of('train_expert_seconds', 'train_dagger_seconds'),
        'expert_return': [m['expert_return'] for m in metrics],
        'policy_return': [m['policy_return'] for m in metrics],
    }
    result.update(environment())
    return result


PHASE_KEYS = ('expert_seconds', 'train_expert_seconds', 'dagger_seconds',
              'train_dagger_seconds')


def _iteration_seconds(metrics: list) -> float:
    return float(np.mean([sum(m[k] for k in PHASE_KEYS) for m in metrics]))


def bench_graph(task: str, config: str | None, iterations: int, workdir: str,
                progress: bool = True, sets=()) -> dict:
    """APEX iterations through the ROS graph (lockstep) vs the same iterations in-process,
    both with the config `task`/`config` and its `sets` (['planner.budget=60', ...]).

    Compares the summed phase times (expert, training, DAgger, training) recorded in each
    run's metrics, so node start-up and evaluation are outside both figures."""
    from ..config.run import load_run_config
    from ..learning.apex import ApexTrainer
    from ..ros.launcher import Launcher, graph_argvs, parse_launch_arguments
    work = Path(workdir)
    cfg = load_run_config(task, config, {'apex': {'iterations': iterations}}, sets=sets)
    offline = ApexTrainer(cfg, work / 'in_process', progress=progress)
    offline.run()
    values = parse_launch_arguments('sim_apex', [
        f'task:={cfg.task.name}', f'config:={config or "default"}',
        f'out_dir:={work / "graph"}', f'iterations:={iterations}', f'set:={",".join(sets)}'])
    with open(work / 'graph.log', 'w') as log:
        status = Launcher(graph_argvs('sim_apex', values), out=log).run()
    if status != 0:
        raise ApexError(f'the sim_apex graph failed (status {status}); see {work / "graph.log"}')
    graph_metrics = [json.loads(line) for line in
                     (work / 'graph' / 'metrics.jsonl').read_text().splitlines()]
    in_process, graph = _iteration_seconds(offline.metrics), _iteration_seconds(graph_metrics)
    result = {'task': cfg.task.name, 'iterations': iterations,
              'in_process_seconds_per_iteration': in_process,
              'graph_seconds_per_iteration': graph, 'ratio': graph / in_process,
              'in_process_phases': {k: float(np.mean([m[k] for m in offline.metrics]))
                                    for k in PHASE_KEYS},
              'graph_phases': {k: float(np.mean([m[k] for m in graph_metrics]))
                               for k in PHASE_KEYS}}
    result.update(environment())
    return result


def bench_inference(bundle_path, calls: int = 20000) -> dict:
    """Batch-1 latency of a policy bundle through onnxruntime on one thread."""
    from ..deploy.bundle import PolicyBundle
    bundle = PolicyBundle(bundle_path, threads=1)
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((calls, 1, bundle.obs_dim)).astype(np.float32)
    for i in range(min(1000, calls)):  # warm-up
        bundle(obs[i])
    times = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter_ns()
        bundle(obs[i])
        times[i] = time.perf_counter_ns() - t0
    us = times / 1e3
    result = {'bundle': str(bundle_path), 'obs_dim': bundle.obs_dim, 'act_dim': bundle.act_dim,
              'calls': calls, 'threads': 1, 'p50_us': float(np.percentile(us, 50)),
              'p99_us': float(np.percentile(us, 99)), 'max_us': float(us.max()),
              'mean_us': float(us.mean())}
    result.update(environment())
    return result


def cmd_bench_planner(args):
    cfg = load_config(args)
    threads = cfg.rollout.threads
    result = bench_planner(cfg, threads, args.steps, seed=cfg.seed, progress=not args.quiet)
    write_json(args.json, result)
    print(f'{result["task"]} budget {result["budget"]} threads {threads}: plan '
          f'{result["plan_ms_median"]:.2f} ms median ({result["planning_hz"]:.1f} Hz), physics '
          f'{result["sim_ms_median"]:.2f} ms, overhead ratio {result["overhead_ratio"]:.3f}, '
          f'return {result["return"]:.1f} over {args.steps} steps -> {args.json}')
    return 0


def cmd_bench_apex(args):
    cfg = load_config(args)
    result = bench_apex(cfg, args.workdir, progress=not args.quiet)
    write_json(args.json, result)
    print(f'{result["task"]}: {result["seconds_per_iteration"]:.1f} s per APEX iteration '
          f'(expert {result["expert_seconds"]:.1f}, dagger {result["dagger_seconds"]:.1f}, '
          f'training {result["training_seconds"]:.1f}) -> {args.json}')
    return 0


def cmd_bench_graph(args):
    import tempfile
    load_config(args)   # a bad config fails here, before the in-process run
    with tempfile.TemporaryDirectory(prefix='apex-graph-bench-') as tmp:
        result = bench_graph(args.task, args.config, args.iterations, args.workdir or tmp,
                             progress=not args.quiet, sets=config_sets(args))
    write_json(args.json, result)
    print(f'{result["task"]}: {result["graph_seconds_per_iteration"]:.1f} s per APEX iteration '
          f'through the graph vs {result["in_process_seconds_per_iteration"]:.1f} s in-process '
          f'(ratio {result["ratio"]:.3f}) -> {args.json}')
    return 0


def cmd_bench_inference(args):
    result = bench_inference(args.policy, args.calls)
    write_json(args.json, result)
    print(f'{args.policy}: batch-1 onnxruntime (1 thread) p50 {result["p50_us"]:.1f} us, '
          f'p99 {result["p99_us"]:.1f} us over {args.calls} calls -> {args.json}')
    return 0


def add_parser(sub):
    p = sub.add_parser('bench', help='benchmarks that write JSON')
    bench = p.add_subparsers(dest='bench', metavar='BENCH', required=True)
    b = bench.add_parser('planner', help='MPC timing: plan vs physics time, overhead ratio')
    add_config_args(b)
    b.add_argument('--steps', type=positive_int, default=100,
                   help='MPC steps to time (default 100)')
    b.add_argument('--json', required=True, help='where to write the result')
    b.add_argument('--quiet', action='store_true', help='no progress bar')
    b.set_defaults(func=cmd_bench_planner)

    b = bench.add_parser('apex', help='wall time per APEX iteration and its phases')
    add_config_args(b)
    b.add_argument('--iterations', type=positive_int, default=1,
                   help='APEX iterations (= --set apex.iterations; default 1)')
    b.add_argument('--json', required=True, help='where to write the result')
    b.add_argument('--workdir', help='run directory (default: a temporary one)')
    b.add_argument('--quiet', action='store_true', help='no progress bars')
    b.set_defaults(func=cmd_bench_apex)

    b = bench.add_parser('graph', help='APEX iterations through the ROS graph vs in-process')
    add_config_args(b, planner=False)
    b.add_argument('--iterations', type=positive_int, default=1,
                   help='APEX iterations (= --set apex.iterations; default 1)')
    b.add_argument('--json', required=True, help='where to write the result')
    b.add_argument('--workdir', help='keep both runs here (default: a temporary directory)')
    b.add_argument('--quiet', action='store_true', help='no progress bars')
    b.set_defaults(func=cmd_bench_graph)

    b = bench.add_parser('inference', help='batch-1 policy latency through the bundle')
    b.add_argument('--policy', required=True, help='policy bundle (.onnx)')
    b.add_argument('--calls', type=positive_int, default=20000,
                   help='timed calls (default 20000)')
    b.add_argument('--json', required=True, help='where to write the result')
    b.set_defaults(func=cmd_bench_inference)

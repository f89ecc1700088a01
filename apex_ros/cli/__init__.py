"""`apex-ros`: the one command-line entry point (subcommands, --help on each)."""
import argparse
import sys
import time

import numpy as np

from ..errors import ApexError
from ..tasks import DEFAULT_TASK, TASKS


def _add_run_args(p, budget_help='sampled sequences per planning step (overrides the config)'):
    p.add_argument('--task', default=DEFAULT_TASK, help=f'task name (default: {DEFAULT_TASK}); '
                   f'known: {", ".join(sorted(TASKS))}')
    p.add_argument('--config', help='YAML config (default: config/<task>.yaml)')
    p.add_argument('--planner', help='planner to use instead of the config\'s planner.name')
    p.add_argument('--budget', type=int, help=budget_help)
    p.add_argument('--threads', type=int, help='rollout threads (default: from the config)')
    p.add_argument('--seed', type=int, help='random seed (default: from the config)')


def _load(args, overrides=None):
    from ..config.run import load_run_config
    overrides = dict(overrides or {})
    if args.budget is not None:
        overrides['planner'] = {'budget': args.budget}
    if args.threads is not None:
        overrides['rollout'] = {'threads': args.threads}
    if args.seed is not None:
        overrides['seed'] = args.seed
    return load_run_config(args.task, args.config, overrides, planner=args.planner)


def cmd_tasks(args):
    from ..tasks import make_task
    print(f'{"task":<20} {"obs":>4} {"act":>4} {"rate Hz":>8} {"steps":>6}  model')
    for name in sorted(TASKS):
        t = make_task(name)
        print(f'{name:<20} {t.obs_dim:>4} {t.nu:>4} {1 / t.dt:>8.1f} {t.episode_steps:>6}  '
              f'{t.model_file}')
    return 0


def cmd_mpc(args):
    from ..sim.episodes import run_mpc
    cfg = _load(args)
    task = cfg.make_task()
    planner = cfg.make_planner(task)
    steps = args.steps or task.episode_steps
    print(f'MPC: {cfg.planner_name} on {task.name}, {planner.samples_per_step} samples/step, '
          f'horizon {planner.cfg.horizon}, {planner.rollouts.threads} rollout thread(s), '
          f'{steps} steps of {task.dt * 1e3:.0f} ms (config {cfg.path})')
    returns, successes, hz = [], [], []
    t0 = time.perf_counter()
    for e in range(args.episodes):
        seed = cfg.seed + e
        ep = run_mpc(task, planner, seed=seed, steps=steps,
                     progress=None if args.quiet else f'episode {e + 1}/{args.episodes}')
        rate = 1.0 / np.median(ep.plan_seconds)
        returns.append(ep.ret)
        successes.append(ep.success)
        hz.append(rate)
        print(f'episode {e + 1}: return {ep.ret:.2f}'
              + ('' if ep.success is None else f', success {ep.success}')
              + f', planning {rate:.1f} Hz (median {np.median(ep.plan_seconds) * 1e3:.1f} ms, '
              f'physics {np.median(ep.sim_seconds) * 1e3:.1f} ms per step)')
    planner.rollouts.close()
    print(f'return {np.mean(returns):.2f} ± {np.std(returns):.2f} over {args.episodes} '
          f'episode(s)' + ('' if successes[0] is None else
                           f', success rate {np.mean(successes):.2f}')
          + f'; planning {np.mean(hz):.1f} Hz vs control rate {1 / task.dt:.1f} Hz; '
          f'wall {time.perf_counter() - t0:.1f} s')
    return 0


def cmd_bench_planner(args):
    from .bench import bench_planner, write_json
    cfg = _load(args)
    threads = args.threads or cfg.rollout.threads
    result = bench_planner(cfg, threads, args.steps, seed=cfg.seed,
                           progress=not args.quiet)
    write_json(args.json, result)
    print(f'{result["task"]} budget {result["budget"]} threads {threads}: plan '
          f'{result["plan_ms_median"]:.2f} ms median ({result["planning_hz"]:.1f} Hz), physics '
          f'{result["sim_ms_median"]:.2f} ms, overhead ratio {result["overhead_ratio"]:.3f}, '
          f'return {result["return"]:.1f} over {args.steps} steps -> {args.json}')
    return 0


def cmd_train(args):
    from ..learning.apex import ApexTrainer
    overrides = {}
    if args.iterations is not None:
        overrides['apex'] = {'iterations': args.iterations}
    cfg = _load(args, overrides)
    trainer = ApexTrainer(cfg, args.out, resume=args.resume, shards=args.dataset or (),
                          progress=not args.quiet)
    print(f'APEX on {trainer.task.name}: {trainer.apex.iterations} iterations, expert '
          f'{cfg.planner_name} budget {trainer.planner.samples_per_step}/step with '
          f'{cfg.rollout.threads} rollout thread(s), ablation {trainer.apex.ablation}; '
          f'run dir {trainer.out}')
    summary = trainer.run()
    median = summary['final_policy_return_median']
    print(f'final policy return {summary["final_policy_return"]:.2f} ± '
          f'{summary["final_policy_return_std"]:.2f}, median '
          + ('n/a' if median is None else f'{median:.2f}')
          + f' (expert {summary["final_expert_return"]:.2f})'
          + (f', success rate {summary["final_policy_success_rate"]:.2f}'
             if 'final_policy_success_rate' in summary else ''))
    print(f'bundle: {summary["policy_bundle"]}\nlearning curve: {summary["learning_curve"]}\n'
          f'metrics: {summary["metrics"]}')
    return 0


def cmd_eval(args):
    from ..deploy.bundle import PolicyBundle
    from ..deploy.export import task_signature
    from ..sim.episodes import planner_actor, policy_actor, run_episode
    cfg = _load(args)
    task = cfg.make_task()
    policy = None
    if args.policy:
        policy = PolicyBundle(args.policy)
        policy.check_signature(task_signature(task))
    if args.expert:
        planner = cfg.make_planner(task, policy=policy)
        what = f'expert {cfg.planner_name} ({planner.samples_per_step} samples/step)' + (
            f' guided by {args.policy}' if policy else '')
    elif policy is None:
        raise ApexError('eval needs --policy BUNDLE, or --expert for the planner alone')
    else:
        what = f'policy {args.policy} (APEX iteration {policy.meta["apex_iteration"]})'
    print(f'evaluating {what} on {task.name}, {args.episodes} episode(s)')
    returns, successes = [], []
    for e in range(args.episodes):
        seed = cfg.seed + 7919 * (e + 1)
        act = planner_actor(planner, seed) if args.expert else policy_actor(task, policy)
        ep = run_episode(task, act, seed, progress=None if args.quiet else
                         f'episode {e + 1}/{args.episodes}')
        returns.append(ep.ret)
        successes.append(ep.success)
        print(f'episode {e + 1}: return {ep.ret:.2f}'
              + ('' if ep.success is None else f', success {ep.success}'))
    print(f'return {np.mean(returns):.2f} ± {np.std(returns):.2f}'
          + ('' if successes[0] is None else f', success rate {np.mean(successes):.2f}'))
    return 0


def cmd_bench_apex(args):
    from .bench import bench_apex, write_json
    overrides = {'apex': {'iterations': args.iterations}}
    cfg = _load(args, overrides)
    result = bench_apex(cfg, args.workdir, progress=not args.quiet)
    write_json(args.json, result)
    print(f'{result["task"]}: {result["seconds_per_iteration"]:.1f} s per APEX iteration '
          f'(expert {result["expert_seconds"]:.1f}, dagger {result["dagger_seconds"]:.1f}, '
          f'training {result["training_seconds"]:.1f}) -> {args.json}')
    return 0


def cmd_polo(args):
    import dataclasses

    from ..config import from_dict
    from ..learning.polo import run_polo
    from ..learning.value import ValueConfig
    args.planner = 'polo'
    cfg = _load(args)
    value_cfg = from_dict(ValueConfig, cfg.extra.get('value'), f'{cfg.path}: value')
    task = cfg.make_task()
    steps = args.steps or 10 * task.episode_steps
    print(f'POLO on {task.name}: MPPI horizon {cfg.planner.horizon}, {cfg.planner.budget} '
          f'samples/step, {value_cfg.members} value networks, {steps} agent steps')

    def on_episode(i, ep):
        if not args.quiet:
            print(f'episode {i + 1}: return {ep.ret:.2f}', flush=True)
    run = run_polo(task, dataclasses.asdict(cfg.planner), value_cfg, steps, seed=cfg.seed,
                   threads=cfg.rollout.threads, on_episode=on_episode)
    run.ensemble.export(task, args.out)
    print(f'value ensemble -> {args.out}; to use it as the terminal value of a planner, set '
          f'value_model: {args.out} in its settings (planner: or planners.<name>:)')
    return 0


def cmd_launch(args):
    from ..ros.graph import GRAPHS
    from ..ros.launcher import Launcher, graph_argvs, parse_launch_arguments
    if args.graph is None or args.graph not in GRAPHS:
        def shown(a):
            return f'{a.name}:=' + ('(required)' if a.default is None else a.default)
        known = ', '.join(f'{g} ({", ".join(shown(a) for a in GRAPHS[g][1])})'
                          for g in sorted(GRAPHS))
        if args.graph is None:
            print(f'graphs: {known}')
            return 0
        raise ApexError(f'unknown graph {args.graph!r}; known graphs: {known}')
    if '--print' in args.arguments:  # REMAINDER swallows flags given after the graph
        args.arguments.remove('--print')
        args.print = True
    values = parse_launch_arguments(args.graph, args.arguments)
    nodes = graph_argvs(args.graph, values)
    if args.print:
        for spec, argv in nodes:
            print(' '.join(argv))
        return 0
    return Launcher(nodes).run()


def cmd_bench_graph(args):
    import tempfile

    from .bench import bench_graph, write_json
    with tempfile.TemporaryDirectory(prefix='apex-graph-bench-') as tmp:
        result = bench_graph(args.task, args.config, args.iterations, args.workdir or tmp,
                             progress=not args.quiet)
    write_json(args.json, result)
    print(f'{result["task"]}: {result["graph_seconds_per_iteration"]:.1f} s per APEX iteration '
          f'through the graph vs {result["in_process_seconds_per_iteration"]:.1f} s in-process '
          f'(ratio {result["ratio"]:.3f}) -> {args.json}')
    return 0


def cmd_record(args):
    from ..ros.nodes.common import spin
    from ..ros.nodes.recorder_node import RecorderNode
    settings = {'topics': args.topics or [''], 'sim': args.sim, 'controller': args.controller,
                'output': args.output or '', 'max_bag_size': args.max_bag_size,
                'max_bag_duration': args.max_bag_duration, 'flush_period': args.flush_period}

    def recorder():
        return RecorderNode(**settings)
    recorder.__name__ = 'apex-ros record'   # how spin() names us in an error
    return spin(recorder, ['apex-ros'])


def cmd_relabel(args):
    from ..bags.relabel import relabel_bags
    cfg = _load(args)
    summary = relabel_bags(args.bags, cfg, args.policy, args.out, workers=args.workers,
                           source=args.source, full_state_topic=args.full_state_topic,
                           joint_states_topic=args.joint_states_topic,
                           episode_gap=args.episode_gap, ignore_joints=args.ignore_joint or (),
                           threads=args.threads, progress=not args.quiet)
    print(f'relabeled {summary["episodes"]} episode(s), {summary["states"]} states in '
          f'{summary["seconds"]:.1f} s ({summary["states_per_second"]:.1f} states/s on '
          f'{summary["workers"]} worker process(es)) -> {summary["out"]}\n'
          f'train on it: apex-ros train --task {cfg.task.name} --dataset {summary["out"]} ...')
    return 0


def cmd_bench_inference(args):
    from .bench import bench_inference, write_json
    result = bench_inference(args.policy, args.calls)
    write_json(args.json, result)
    print(f'{args.policy}: batch-1 onnxruntime (1 thread) p50 {result["p50_us"]:.1f} us, '
          f'p99 {result["p99_us"]:.1f} us over {args.calls} calls -> {args.json}')
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog='apex-ros', description='APEX policy extraction from an iCEM_pi MuJoCo planner.')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')

    p = sub.add_parser('tasks', help='list the registered tasks')
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser('mpc', help='run the planner as an MPC controller and report return '
                       'and planning rate')
    _add_run_args(p)
    p.add_argument('--steps', type=int, help='control steps per episode (default: the task\'s)')
    p.add_argument('--episodes', type=int, default=1)
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.set_defaults(func=cmd_mpc)

    p = sub.add_parser('train', help='extract a policy with APEX (guided expert + DAgger)')
    _add_run_args(p)
    p.add_argument('--out', required=True, help='run directory (bundles, metrics, plot, '
                   'checkpoint)')
    p.add_argument('--resume', action='store_true', help='continue the run in --out')
    p.add_argument('--iterations', type=int, help='APEX iterations (overrides the config)')
    p.add_argument('--dataset', nargs='+', metavar='SHARD', help='dataset shards to add')
    p.add_argument('--quiet', action='store_true', help='no progress bars')
    p.set_defaults(func=cmd_train)

    p = sub.add_parser('eval', help='evaluate a policy bundle, or the expert planner')
    _add_run_args(p)
    p.add_argument('--policy', help='policy bundle (.onnx)')
    p.add_argument('--expert', action='store_true', help='evaluate the planner (guided by '
                   '--policy if given)')
    p.add_argument('--episodes', type=int, default=5)
    p.add_argument('--quiet', action='store_true')
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser('polo', help='POLO: MPPI + value-ensemble learning; exports the '
                       'value ensemble (ONNX)')
    _add_run_args(p)
    p.add_argument('--steps', type=int, help='agent steps (default: 10 episodes)')
    p.add_argument('--out', required=True, help='value ensemble file (.onnx)')
    p.add_argument('--quiet', action='store_true')
    p.set_defaults(func=cmd_polo)

    p = sub.add_parser('launch', help='start a node graph (same processes and argv as '
                       '`ros2 launch apex_ros GRAPH.launch.py`)')
    p.add_argument('graph', nargs='?', help='sim_apex | policy (omit to list them)')
    p.add_argument('arguments', nargs=argparse.REMAINDER, metavar='name:=value',
                   help='launch arguments')
    p.add_argument('--print', action='store_true', help='print each node\'s argv and exit')
    p.set_defaults(func=cmd_launch)

    p = sub.add_parser('record', help='record topics to a rosbag2 bag (MCAP, metadata.yaml v9), '
                       'like `ros2 bag record`; Ctrl-C closes it')
    p.add_argument('topics', nargs='*', metavar='TOPIC', help='topics (default: '
                   '/joint_states, /<controller>/commands, and with --sim the full-state topic)')
    p.add_argument('-o', '--output', help='bag directory to create (default: '
                   'rosbag2_<date>-<time>)')
    p.add_argument('--sim', action='store_true', help='also record the simulation\'s full '
                   'physics state (exact relabeling)')
    p.add_argument('--controller', default='effort_controller', help='controller whose '
                   'commands topic is recorded by default')
    p.add_argument('--max-bag-size', type=int, default=0, metavar='BYTES',
                   help='start a new file at this size (0: never)')
    p.add_argument('--max-bag-duration', type=float, default=0.0, metavar='SECONDS',
                   help='start a new file after this long (0: never)')
    p.add_argument('--flush-period', type=float, default=1.0, metavar='SECONDS',
                   help='write data out at least this often: the most a hard kill can lose')
    p.set_defaults(func=cmd_record)

    p = sub.add_parser('relabel', help='offline DAgger: label the states in bags with the '
                       'guided expert, write a dataset shard for `train --dataset`')
    p.add_argument('bags', nargs='+', metavar='BAG', help='bag directories or .mcap files')
    _add_run_args(p)
    p.add_argument('--policy', required=True, help='the policy that ran (guides the expert)')
    p.add_argument('--out', required=True, help='dataset shard to write (.npz)')
    p.add_argument('--workers', type=int, help='relabeling processes (default: cores / '
                   'rollout threads)')
    p.add_argument('--source', choices=('auto', 'full_state', 'joint_states'), default='auto',
                   help='where states come from (auto: the full-state topic if recorded)')
    p.add_argument('--full-state-topic', default=None, help='default /apex/full_state')
    p.add_argument('--joint-states-topic', default=None, help='default /joint_states')
    p.add_argument('--episode-gap', type=float, default=1.0, metavar='SECONDS',
                   help='/joint_states: a longer gap between stamps starts a new episode')
    p.add_argument('--ignore-joint', action='append', metavar='NAME',
                   help='/joint_states: a joint the model lacks to ignore (repeatable)')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.set_defaults(func=cmd_relabel)

    p = sub.add_parser('bench', help='benchmarks that write JSON')
    bench = p.add_subparsers(dest='bench', metavar='BENCH', required=True)
    b = bench.add_parser('planner', help='MPC timing: plan vs physics time, overhead ratio')
    _add_run_args(b)
    b.add_argument('--steps', type=int, default=100, help='MPC steps to time (default 100)')
    b.add_argument('--json', required=True, help='where to write the result')
    b.add_argument('--quiet', action='store_true')
    b.set_defaults(func=cmd_bench_planner)
    b = bench.add_parser('apex', help='wall time per APEX iteration and its phases')
    _add_run_args(b)
    b.add_argument('--iterations', type=int, default=1)
    b.add_argument('--json', required=True, help='where to write the result')
    b.add_argument('--workdir', help='run directory (default: a temporary one)')
    b.add_argument('--quiet', action='store_true')
    b.set_defaults(func=cmd_bench_apex)
    b = bench.add_parser('graph', help='one APEX iteration through the ROS graph vs in-process')
    b.add_argument('--task', default=DEFAULT_TASK)
    b.add_argument('--config', help='YAML config (default: config/<task>.yaml)')
    b.add_argument('--iterations', type=int, default=1)
    b.add_argument('--json', required=True)
    b.add_argument('--workdir', help='keep both runs here (default: a temporary directory)')
    b.add_argument('--quiet', action='store_true')
    b.set_defaults(func=cmd_bench_graph)
    b = bench.add_parser('inference', help='batch-1 policy latency through the bundle')
    b.add_argument('--policy', required=True, help='policy bundle (.onnx)')
    b.add_argument('--calls', type=int, default=20000)
    b.add_argument('--json', required=True)
    b.set_defaults(func=cmd_bench_inference)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except ApexError as e:
        print(f'apex-ros: error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('apex-ros: interrupted', file=sys.stderr)
        return 130

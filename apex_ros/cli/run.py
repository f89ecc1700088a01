"""Commands that run the stack in-process: tasks, mpc, eval, train, polo."""
import time

import numpy as np

from ..errors import ApexError
from ..tasks import known_tasks
from .common import add_config_args, load_config, positive_int


def cmd_tasks(args):
    """Every known task; the model of a task from another package with its full path (where
    it was installed); a registered task that cannot load, with why."""
    from ..sim.models import resolve_model_file
    from ..tasks import make_task
    print(f'{"task":<20} {"obs":>4} {"act":>4} {"rate Hz":>8} {"steps":>6}  model')
    for name in known_tasks():
        try:
            t = make_task(name)
        except ApexError as e:     # a broken package's entry point: say so, list the others
            print(f'{name:<20} cannot load: {e}')
            continue
        model = (t.model_file if t.files_dir() is None
                 else resolve_model_file(t.model_file, t.files_dir()))
        print(f'{name:<20} {t.obs_dim:>4} {t.nu:>4} {1 / t.dt:>8.1f} {t.episode_steps:>6}  '
              f'{model}')
    return 0


def episode_line(e: int, ep, detail=None) -> str:
    return (f'episode {e + 1}: return {ep.ret:.2f}'
            + ('' if ep.success is None else f', success {ep.success}')
            + (detail(ep) if detail else ''))


def summary_line(episodes) -> str:
    returns = [ep.ret for ep in episodes]
    return (f'return {np.mean(returns):.2f} ± {np.std(returns):.2f} over {len(episodes)} '
            'episode(s)' + ('' if episodes[0].success is None else
                            f', success rate {np.mean([ep.success for ep in episodes]):.2f}'))


def run_episodes(task, act_for, seeds, quiet: bool, steps=None, detail=None) -> list:
    """One episode per seed, driven by act_for(seed); prints a line per episode (plus
    detail(ep)) and the summary line; -> the episodes."""
    from ..sim.episodes import run_episode
    episodes = []
    for e, seed in enumerate(seeds):
        ep = run_episode(task, act_for(seed), seed, steps,
                         progress=None if quiet else f'episode {e + 1}/{len(seeds)}')
        episodes.append(ep)
        print(episode_line(e, ep, detail))
    print(summary_line(episodes))
    return episodes


def write_episodes_json(path, what: str, cfg, episodes, extra: dict | None = None):
    """The episodes' returns and successes with their summary, the config and the machine,
    as JSON (--json of mpc and eval)."""
    from .bench import environment, write_json
    returns = [ep.ret for ep in episodes]
    success = [ep.success for ep in episodes]
    data = {'what': what, 'task': cfg.task.name, 'config': str(cfg.path), 'seed': cfg.seed,
            'episodes': len(episodes), 'return_mean': float(np.mean(returns)),
            'return_std': float(np.std(returns)), 'returns': returns,
            'success_rate': None if success[0] is None else float(np.mean(success)),
            'success': success, **(extra or {})}
    data.update(environment())
    write_json(path, data)
    print(f'-> {path}')


def cmd_mpc(args):
    from ..sim.episodes import planner_actor
    cfg = load_config(args)
    task = cfg.make_task()
    planner = cfg.make_planner(task)
    steps = args.steps or task.episode_steps
    print(f'MPC: {cfg.planner_name} on {task.name}, {planner.samples_per_step} samples/step, '
          f'horizon {planner.cfg.horizon}, {planner.rollouts.threads} rollout thread(s), '
          f'{steps} steps of {task.dt * 1e3:.0f} ms (config {cfg.path})')

    def planning(ep):
        return (f', planning {1.0 / np.median(ep.plan_seconds):.1f} Hz (median '
                f'{np.median(ep.plan_seconds) * 1e3:.1f} ms, physics '
                f'{np.median(ep.sim_seconds) * 1e3:.1f} ms per step)')
    t0 = time.perf_counter()
    episodes = run_episodes(task, lambda seed: planner_actor(planner, seed),
                            [cfg.seed + e for e in range(args.episodes)], args.quiet, steps,
                            detail=planning)
    planner.rollouts.close()
    hz = np.mean([1.0 / np.median(ep.plan_seconds) for ep in episodes])
    wall = time.perf_counter() - t0
    print(f'planning {hz:.1f} Hz vs control rate {1 / task.dt:.1f} Hz; wall {wall:.1f} s')
    if args.json:
        write_episodes_json(args.json, f'expert {cfg.planner_name} (MPC)', cfg, episodes, {
            'planner': cfg.planner_name, 'samples_per_step': planner.samples_per_step,
            'horizon': planner.cfg.horizon, 'steps': steps, 'planning_hz': float(hz),
            'sim_ms_median': float(np.median(np.concatenate([ep.sim_seconds
                                                             for ep in episodes])) * 1e3),
            'wall_seconds': wall})
    return 0


def cmd_train(args):
    from ..learning.apex import ApexTrainer
    cfg = load_config(args)
    trainer = ApexTrainer(cfg, args.out, resume=args.resume, shards=args.dataset or (),
                          progress=not args.quiet,
                          allow_config_change=args.allow_config_change)
    where = (f'budget {trainer.planner.samples_per_step}/step with {cfg.rollout.threads} '
             'rollout thread(s)' if cfg.workers.backend == 'local' else
             f'budget {cfg.planner.budget}/step on {trainer.source.describe()}')
    print(f'APEX on {trainer.task.name}: {trainer.apex.iterations} iterations, expert '
          f'{cfg.planner_name} {where}, ablation {trainer.apex.ablation}; run dir {trainer.out}')
    try:
        summary = trainer.run()
    finally:
        trainer.close()
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
    from ..sim.episodes import planner_actor, policy_actor
    cfg = load_config(args)
    task = cfg.make_task()
    policy = None
    if args.policy:
        policy = PolicyBundle(args.policy)
        policy.check_signature(task_signature(task))
    planner = None
    if args.expert:
        if cfg.workers.backend == 'local':
            planner = cfg.make_planner(task, policy=policy)
        budget = (f'{planner.samples_per_step} samples/step' if planner is not None
                  else f'budget {cfg.planner.budget}')
        what = f'expert {cfg.planner_name} ({budget})' + (
            f' guided by {args.policy}' if policy else '')
    elif policy is None:
        raise ApexError('eval needs --policy BUNDLE, or --expert for the planner alone')
    else:
        what = f'policy {args.policy} (APEX iteration {policy.meta["apex_iteration"]})'
    seeds = [cfg.seed + 7919 * (e + 1) for e in range(args.episodes)]
    if cfg.workers.backend == 'ray':
        print(f'evaluating {what} on {task.name}, {args.episodes} episode(s) on Ray workers')
        episodes = _eval_on_ray(cfg, args, seeds)
        for e, ep in enumerate(episodes):
            print(episode_line(e, ep))
        print(summary_line(episodes))
    else:
        print(f'evaluating {what} on {task.name}, {args.episodes} episode(s)')
        episodes = run_episodes(task, lambda seed: (planner_actor(planner, seed) if args.expert
                                                    else policy_actor(task, policy)),
                                seeds, args.quiet)
        if planner is not None:
            planner.rollouts.close()
    if args.json:
        write_episodes_json(args.json, what, cfg, episodes)
    return 0


def _eval_on_ray(cfg, args, seeds) -> list:
    """The evaluation episodes of `seeds` on Ray workers (workers.backend: ray)."""
    from ..workers.episodes import WorkerSpec
    from ..workers.ray_pool import RayPool
    pool = RayPool(WorkerSpec(cfg, cfg.planner_name, cfg.planner,
                              cfg.workers.threads_per_worker), cfg.workers, f'{cfg.path}: ')
    try:
        data = open(args.policy, 'rb').read() if args.policy else None
        pool.use(cfg.planner, data, guided=data is not None)
        return pool.map('evaluation_episode', [(seed, args.expert) for seed in seeds],
                        None if args.quiet else 'episodes')
    finally:
        pool.close()


def cmd_polo(args):
    import dataclasses

    from ..learning.polo import run_polo
    cfg = load_config(args, planner='polo')
    task = cfg.make_task()
    steps = args.steps or 10 * task.episode_steps
    print(f'POLO on {task.name}: MPPI horizon {cfg.planner.horizon}, {cfg.planner.budget} '
          f'samples/step, {cfg.value.members} value networks, {steps} agent steps')

    def on_episode(i, ep):
        if not args.quiet:
            print(f'episode {i + 1}: return {ep.ret:.2f}', flush=True)
    run = run_polo(task, dataclasses.asdict(cfg.planner), cfg.value, steps, seed=cfg.seed,
                   threads=cfg.rollout.threads, on_episode=on_episode)
    run.ensemble.export(task, args.out)
    print(f'value ensemble -> {args.out}; to use it as the terminal value of a planner, set '
          f'value_model: {args.out} in its settings (planner: or planners.<name>:)')
    return 0


def add_parsers(sub):
    p = sub.add_parser('tasks', help='list the registered tasks')
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser('mpc', help='run the planner as an MPC controller and report return '
                       'and planning rate')
    add_config_args(p)
    p.add_argument('--steps', type=positive_int,
                   help='control steps per episode (default: the task\'s)')
    p.add_argument('--episodes', type=positive_int, default=1, help='episodes (default 1)')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.add_argument('--json', metavar='FILE', help='also write the returns and successes, '
                   'planning rate and machine as JSON')
    p.set_defaults(func=cmd_mpc)

    p = sub.add_parser('train', help='extract a policy with APEX (guided expert + DAgger)')
    add_config_args(p)
    p.add_argument('--out', required=True, help='run directory (bundles, metrics, plot, '
                   'checkpoint)')
    p.add_argument('--resume', action='store_true', help='continue the run in --out '
                   '(starts it if --out holds none: one command for start and restart)')
    p.add_argument('--allow-config-change', action='store_true', help='with --resume: continue '
                   'even if the config differs from the one the run was started with')
    p.add_argument('--iterations', type=positive_int,
                   help='APEX iterations (= --set apex.iterations)')
    p.add_argument('--dataset', nargs='+', metavar='SHARD', help='dataset shards to add')
    p.add_argument('--quiet', action='store_true', help='no progress bars')
    p.set_defaults(func=cmd_train)

    p = sub.add_parser('eval', help='evaluate a policy bundle, or the expert planner')
    add_config_args(p)
    p.add_argument('--policy', help='policy bundle (.onnx)')
    p.add_argument('--expert', action='store_true', help='evaluate the planner (guided by '
                   '--policy if given)')
    p.add_argument('--episodes', type=positive_int, default=5, help='episodes (default 5)')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.add_argument('--json', metavar='FILE', help='also write the returns, successes and '
                   'machine as JSON')
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser('polo', help='POLO: MPPI + value-ensemble learning; exports the '
                       'value ensemble (ONNX)')
    add_config_args(p, planner=False, budget_help='MPPI samples per planning step '
                    '(= --set planners.polo.budget)')
    p.add_argument('--steps', type=positive_int, help='agent steps (default: 10 episodes)')
    p.add_argument('--out', required=True, help='value ensemble file (.onnx)')
    p.add_argument('--quiet', action='store_true', help='no progress output')
    p.set_defaults(func=cmd_polo)

"""Where the APEX runs on the paper's tasks stand, against Tables 1 and 4: per run directory
the learning curve in figures (expert and policy per iteration), the wall time per iteration
and per rollout, and the policy against the paper's. With --snapshot, each run's
metrics.jsonl and learning_curve.png are copied to experiments/paper_tasks/apex/<run>/ and the
figures written to experiments/paper_tasks/apex/progress.json (a run directory keeps only the
latest bundle in git, so the per-bundle figures are kept there).
With --episodes N, every iteration's bundle (RUN/bundles/iter_NNN.onnx, the deployed ONNX
policy) is also driven for N episodes on seeds EVAL_SEED + e (not the run's own evaluation
seeds): a steadier curve than the run's own evaluation where that has 1 episode. For Door
and Fetch, how far short of success their episodes got (Door: latch turned, door moved;
Fetch: box moved, box lifted) is read from those episodes and, per iteration, from the
run's expert and DAgger rollouts in the dataset (DAgger's driven by the policy trained on that
iteration's expert rollouts); with --snapshot those stages are also drawn to
apex/<run>/stages.png beside the expert's pace.

    python experiments/paper_tasks/apex_progress.py experiments/paper_tasks/runs/door_b45 \
        --episodes 5 --snapshot
"""
import argparse
import io
import json
import statistics
import sys
from pathlib import Path

import numpy as np

from apex_ros.deploy.bundle import PolicyBundle
from apex_ros.deploy.observation import parse_term
from apex_ros.files import atomic_write_bytes, atomic_write_text
from apex_ros.learning.apex.checkpoint import read_checkpoint
from apex_ros.sim.episodes import run_episode
from apex_ros.sim.simulation import Simulation
from apex_ros.tasks import make_task

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.apex_scaling_projection import TABLE_4  # noqa: E402 (task, budget) -> min

HERE = Path(__file__).resolve().parent
# APEX Table 1 (policy; success rate where the task has one, else return), by (task, budget)
TABLE_1 = {('fetch_pick_and_place', 100): 0.770, ('fetch_pick_and_place', 45): 0.031,
           ('adroit_door', 45): 0.99, ('humanoid_standup', 100): 80.5e3,
           ('humanoid_standup', 45): 73.5e3, ('halfcheetah_run', 100): 5596.0}
PHASES = ('expert', 'train_expert', 'dagger', 'train_dagger')
EVAL_SEED = 50_000


# How far a task's episodes got short of success: per stage, a per-step series of the state
# and the value it must pass. Door: the latch turned far enough to free the door, the door
# moved (DAPG's first bounty); Fetch: the box moved 2 cm (pushed or carried), the box 2 cm up.
THRESHOLDS = {'latch_turned': 1.0, 'door_moved': 0.2,     # rad
              'box_moved': 0.02, 'box_lifted': 0.02}     # m


def door_series(task, states) -> dict:
    latch = task.layout.qpos.start + task.model.joint('latch').qposadr[0]
    return {'latch_turned': states[:, latch], 'door_moved': states[:, task.hinge_column]}


def fetch_series(task, states) -> dict:
    x = task.layout.qpos.start + task.box_qpos.start   # the box's free joint: x, y, z, quat
    box = states[:, x:x + 3]
    return {'box_moved': np.linalg.norm(box - box[0], axis=1),
            'box_lifted': box[:, 2] - box[0, 2]}


SERIES = {'adroit_door': door_series, 'fetch_pick_and_place': fetch_series}


def stages(task, states_per_episode) -> dict:
    """How many episodes passed each stage of the task (SERIES, THRESHOLDS) and the median
    step they first did (over the episodes that did); for Door also the mean of the
    episodes' widest openings."""
    series = [SERIES[task.name](task, states) for states in states_per_episode]
    out = {}
    for stage, past in THRESHOLDS.items():
        if stage in series[0]:
            steps = [int(np.argmax(s[stage] > past)) for s in series if s[stage].max() > past]
            out[stage] = len(steps)
            out[f'{stage}_median_step'] = float(np.median(steps)) if steps else None
    if task.name == 'adroit_door':
        out['max_hinge_mean'] = float(np.mean([s['door_moved'].max() for s in series]))
    return out


def episode_stages(task, runs) -> dict:
    return stages(task, [ep.states for ep in runs])


def rollout_stages(task, rollouts) -> dict:
    """stages of dataset rollouts, from their observations: the joint and extra-state terms
    are written back into states (the joints Door's and Fetch's stages read are among them)."""
    obs = task.observation
    read = [i for i, term in enumerate(obs.terms)
            if parse_term(term).kind in ('qpos', 'qvel', 'extra')]
    states = []
    for r in rollouts:
        x = np.zeros((len(r.obs), task.layout.size))
        x[:, obs.columns[read]] = r.obs[:, read]
        states.append(x)
    return stages(task, states)


def bundle_episodes(task, path: Path, episodes: int) -> dict | None:
    """The bundle at `path` driving `episodes` episodes: mean, std, success rate (and for
    Door and Fetch how far short of success: stages); None when it observes otherwise than the
    task does now."""
    bundle = PolicyBundle(path)
    if bundle.obs_dim != task.obs_dim:
        return None
    sim = Simulation(task)
    runs = [run_episode(task, lambda sim: (bundle.act(task.observe(sim.state())), None),
                        seed=EVAL_SEED + e, sim=sim) for e in range(episodes)]
    returns = [ep.ret for ep in runs]
    success = None if runs[0].success is None else float(np.mean([ep.success for ep in runs]))
    got = episode_stages(task, runs) if task.name in SERIES else {}
    return {'episodes': episodes, 'return_mean': float(np.mean(returns)),
            'return_std': float(np.std(returns)), 'success_rate': success, **got}


def progress(run_dir: Path, episodes: int = 0, known: dict | None = None) -> dict:
    """The run's figures; with `episodes`, each iteration's bundle driven that many episodes,
    or, where `known` (this run's entry in progress.json) holds that iteration's bundle figures
    over as many episodes for the same expert and policy returns, those figures: a bundle is
    driven once, and a run directory cloned without its bundles/ keeps its earlier figures."""
    ckpt = read_checkpoint(run_dir)
    earlier = {(r['iteration'], r['expert_return'], r['policy_return']): r.get('bundle')
               for r in (known or {}).get('iterations', [])}
    cfg = ckpt.config
    budget = cfg['planner']['budget']
    task = make_task(ckpt.task, cfg['task'].get('params'), cfg['task'].get('episode_steps'))
    rows = []
    for m in ckpt.metrics:
        rows.append({
            'iteration': m['iteration'],
            'expert_return': m['expert_return'],
            'expert_success_rate': m.get('expert_success_rate'),
            'policy_return': m['policy_return'], 'policy_return_std': m['policy_return_std'],
            'policy_success_rate': m.get('policy_success_rate'),
            'minutes': sum(m.get(f'{p}_seconds', 0.0) for p in PHASES) / 60,
            'expert_seconds_per_rollout': m['expert_seconds'] / len(m['expert_returns']),
        })
        for kind in ('expert', 'dagger'):   # the policy drove the DAgger rollouts too
            made = [r for r in ckpt.dataset.rollouts
                    if r.kind == kind and r.iteration == m['iteration'] - 1]  # 0-based
            if task.name in SERIES and made:
                rows[-1][f'{kind}_rollouts'] = {'episodes': len(made),
                                                **rollout_stages(task, made)}
        if episodes:
            seen = earlier.get((m['iteration'], m['expert_return'], m['policy_return']))
            path = run_dir / 'bundles' / f'iter_{m["iteration"]:03d}.onnx'
            if seen and seen['episodes'] == episodes:
                rows[-1]['bundle'] = seen
            elif path.exists():
                rows[-1]['bundle'] = bundle_episodes(task, path, episodes)
            else:
                print(f'{path}: missing, and no figures of it over {episodes} episodes in '
                      f'{HERE / "apex" / "progress.json"}: iteration {m["iteration"]} is '
                      'left without them', file=sys.stderr)
    key = (ckpt.task, budget)
    success = bool(rows) and rows[-1]['policy_success_rate'] is not None
    return {
        'run': run_dir.name, 'task': ckpt.task, 'budget': budget,
        'rollouts_per_iteration': [cfg['apex']['expert_rollouts'], cfg['apex']['dagger_rollouts']],
        'rollout_threads': cfg['rollout']['threads'],
        'iterations_done': len(rows), 'iterations_planned': cfg['apex']['iterations'],
        'in_progress': {'iteration': ckpt.iteration + 1, 'phase_done': ckpt.phase},
        'paper_policy': TABLE_1.get(key), 'paper_measure': 'success' if success else 'return',
        'paper_minutes_per_iteration_32_cores': TABLE_4.get(key, {}).get('total'),
        # wall times include whatever else the machine ran (and any pause): the median
        'median_minutes_per_iteration': statistics.median(r['minutes'] for r in rows)
        if rows else None,
        'median_expert_seconds_per_rollout': statistics.median(
            r['expert_seconds_per_rollout'] for r in rows) if rows else None,
        'iterations': rows,
    }


def plot_stages(p: dict, path: Path):
    """How far the students got, per iteration, beside the expert's pace: the share of
    episodes that passed each stage (Door: the latch turned, the door moved; Fetch: the box
    moved, the box lifted) and that succeeded, for the bundle's episodes and the DAgger
    rollouts; the expert's median step of each stage."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    rows = p['iterations']
    names = [s for s in THRESHOLDS if any(s in (r.get('expert_rollouts') or {}) for r in rows)]
    colors = dict(zip(names, ('tab:green', 'tab:orange')))
    fig, (ax, ax_expert) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110,
                                        gridspec_kw={'width_ratios': [3, 2]})
    for key, style, label in (('bundle', '-o', 'bundle episodes'),
                              ('dagger_rollouts', ':s', 'DAgger rollouts')):
        for stage, color in (*colors.items(), ('successes', 'tab:red')):
            points = [(r['iteration'], share(r[key], stage)) for r in rows if r.get(key)]
            points = [(i, v) for i, v in points if v is not None]
            if points:
                ax.plot(*zip(*points), style, color=color, ms=4,
                        label=f'{stage.replace("_", " ")} ({label})')
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel('share of episodes')
    ax.set_title('the student')
    for stage, color in colors.items():
        points = [(r['iteration'], r['expert_rollouts'][f'{stage}_median_step']) for r in rows
                  if r.get('expert_rollouts')]
        if points:
            ax_expert.plot(*zip(*points), '--o', color=color, ms=4,
                           label=f'{stage.replace("_", " ")} (median step)')
    ax_expert.set_ylabel('step of the episode')
    ax_expert.set_title('the expert')
    for a in (ax, ax_expert):
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.set_xlabel('APEX iteration')
        a.grid(alpha=0.3)
        a.legend(loc='best', fontsize='small')
    fig.suptitle(f'{p["run"]}: how far {p["task"]}\'s episodes got')
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format='png')
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def share(stages: dict, stage: str):
    if stage == 'successes':   # DAgger rollouts record none
        return stages.get('success_rate')
    return stages[stage] / stages['episodes']


def show(p: dict):
    print(f'{p["run"]}: APEX on {p["task"]} at budget {p["budget"]}, '
          f'{p["iterations_done"]}/{p["iterations_planned"]} iterations '
          f'(n = {p["rollouts_per_iteration"][0]} + {p["rollouts_per_iteration"][1]}, '
          f'{p["rollout_threads"]} rollout thread(s)); paper policy {p["paper_policy"]} '
          f'({p["paper_measure"]})')
    for r in p['iterations']:
        def succ(key):
            return f' ({r[key]:.2f})' if r[key] is not None else ''
        print(f'  {r["iteration"]:3d}: expert {r["expert_return"]:10.1f}'
              f'{succ("expert_success_rate")}  policy {r["policy_return"]:10.1f} ± '
              f'{r["policy_return_std"]:8.1f}{succ("policy_success_rate")}  '
              f'{r["minutes"]:6.1f} min', end='')
        b = r.get('bundle')
        if b:
            rate = '' if b['success_rate'] is None else f' ({b["success_rate"]:.2f})'
            print(f'  bundle over {b["episodes"]}: {b["return_mean"]:10.1f} ± '
                  f'{b["return_std"]:8.1f}{rate}', end='')
            print(''.join(f', {stage.replace("_", " ")} {b[stage]}'
                          for stage in THRESHOLDS if stage in b), end='')
        for kind in ('dagger', 'expert'):
            d = r.get(f'{kind}_rollouts')
            if d:
                print(f'  {kind} rollouts of {d["episodes"]}:' + ','.join(
                    f' {stage.replace("_", " ")} {d[stage]} (median step '
                    f'{d[stage + "_median_step"]})' for stage in THRESHOLDS if stage in d),
                    end='')
        print()
    if p['iterations']:
        print(f'  median {p["median_minutes_per_iteration"]:.1f} min per iteration '
              f'(paper, 32 cores: {p["paper_minutes_per_iteration_32_cores"]}), '
              f'{p["median_expert_seconds_per_rollout"]:.0f} s per expert rollout')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('runs', nargs='+', type=Path, help='APEX run directories')
    ap.add_argument('--snapshot', action='store_true',
                    help='copy each run\'s metrics and curve to experiments/paper_tasks/apex/')
    ap.add_argument('--episodes', type=int, default=0,
                    help='also drive every iteration\'s bundle for this many episodes')
    args = ap.parse_args()
    out = HERE / 'apex'
    path = out / 'progress.json'
    known = json.loads(path.read_text()) if path.exists() else {}
    results = {}
    for run in args.runs:
        p = progress(run, args.episodes, known.get(run.name))
        show(p)
        results[p['run']] = p
        if args.snapshot:
            for name in ('metrics.jsonl', 'learning_curve.png'):
                if (run / name).exists():
                    atomic_write_bytes(out / p['run'] / name, (run / name).read_bytes())
            if p['task'] in SERIES and p['iterations']:
                plot_stages(p, out / p['run'] / 'stages.png')
    if args.snapshot:
        atomic_write_text(path, json.dumps({**known, **results}, indent=1) + '\n')
        print(f'-> {path}')


if __name__ == '__main__':
    main()

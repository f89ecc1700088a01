"""Where does Door's guided expert have nothing to go on? Along a student's own episode (the
states DAgger relabels), the guided expert (the run's config, guided by the same bundle,
carried along as in DAgger) plans at every step; per step: the spread R(J) of the main cost
over its elites (APEX Eq. 4: lambda = c R(J) / R(C), so where R(J) = 0 the guidance weighs
nothing and the best sample is a tie among the elites), the latch angle, and how far the
label is from the student's own action (per arm action, in half its range).

    python experiments/paper_tasks/door_guidance.py \
        experiments/paper_tasks/door_b45_iter_004.onnx experiments/paper_tasks/door_guidance.json
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from apex_ros.config.run import load_run_config  # noqa: E402
from apex_ros.deploy.bundle import PolicyBundle  # noqa: E402
from apex_ros.files import atomic_write_text  # noqa: E402
from apex_ros.learning.apex.config import apex_settings  # noqa: E402
from apex_ros.planners import costs, make_planner  # noqa: E402
from apex_ros.planners import evaluate as planner_evaluate  # noqa: E402
from apex_ros.sim.episodes import policy_actor, run_episode  # noqa: E402

SEED = 900_100
ARM = slice(0, 4)
TIE = 1e-9   # R(J) below this: the elites share one main cost


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('bundle', type=Path, help='the student (.onnx) that drives and guides')
    p.add_argument('out', type=Path)
    p.add_argument('--steps', type=int, default=100, help='relabel the first STEPS states')
    args = p.parse_args()
    cfg = load_run_config('adroit_door')
    task = cfg.make_task()
    bundle = PolicyBundle(args.bundle)
    spreads = []

    def recording(J, C, elites, c, eps):   # the planner's own Eq. 4, its R(J) noted
        finite = np.flatnonzero(np.isfinite(J))
        k = min(elites, finite.size)
        spreads.append(float(np.ptp(J[finite[np.argpartition(J[finite], k - 1)[:k]]])))
        return costs.adaptive_lambdas(J, C, elites, c, eps)
    planner_evaluate.adaptive_lambdas = recording
    _, planner_cfg = apex_settings(cfg)
    planner = make_planner(task, 'icem', planner_cfg, threads=1, policy=bundle)
    episode = run_episode(task, policy_actor(task, bundle), SEED)
    latch = task.layout.qpos.start + task.model.joint('latch').qposadr[0]
    half = (task.action_high - task.action_low) / 2
    planner.reset(SEED)
    rows = []
    for t in range(args.steps):
        spreads.clear()
        state = episode.states[t]
        label = planner.plan(state).action
        own = np.clip(bundle.act(task.observe(state)), task.action_low, task.action_high)
        rows.append({'step': t, 'latch': float(state[latch]), 'elite_J_spread': spreads[-1],
                     'label_minus_student_arm': (np.abs(label - own)[ARM] / half[ARM]).tolist()})
        print(rows[-1], flush=True)
    tied = [r['elite_J_spread'] < TIE for r in rows]
    first_nonzero = next((r['step'] for r in rows if r['elite_J_spread'] >= TIE), None)
    out = {'bundle': str(args.bundle), 'seed': SEED, 'steps': args.steps,
           'steps_elites_tied': int(sum(tied)), 'first_step_not_tied': first_nonzero,
           'steps_elite_J_spread_below_0.01': int(sum(r['elite_J_spread'] < 0.01 for r in rows)),
           'label_minus_student_arm_median_tied': float(np.median(
               [r['label_minus_student_arm'] for r, t in zip(rows, tied) if t] or [np.nan])),
           'label_minus_student_arm_median_not_tied': float(np.median(
               [r['label_minus_student_arm'] for r, t in zip(rows, tied) if not t] or [np.nan])),
           'rows': rows}
    print(json.dumps({k: v for k, v in out.items() if k != 'rows'}, indent=1))
    atomic_write_text(args.out, json.dumps(out, indent=1) + '\n')


if __name__ == '__main__':
    main()

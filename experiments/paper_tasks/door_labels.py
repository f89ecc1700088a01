"""How noisy are Door's expert labels? On one APEX run's dataset: the share of each action's
variance the run's own student explains (R²), and how much the expert's executed actions
change from one step to the next against their spread (white noise: sqrt(2) = 1.41; a smooth
signal: near 0), arm actions (ARTz, ARRx, ARRy, ARRz) of the expert rollouts.

    python experiments/paper_tasks/door_labels.py runs/door_b45_jointobs \
        experiments/paper_tasks/door_labels.json
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from apex_ros.files import atomic_write_text  # noqa: E402
from apex_ros.learning.apex.checkpoint import read_checkpoint  # noqa: E402

ARM = slice(0, 4)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('run')
    p.add_argument('out')
    args = p.parse_args()
    ckpt = read_checkpoint(args.run)
    obs, actions = ckpt.dataset.arrays()
    with torch.no_grad():
        predicted = ckpt.student()(torch.as_tensor(obs)).numpy()
    r2 = 1 - ((predicted - actions) ** 2).mean(0) / actions.var(0)
    ratios = {kind: [] for kind in ('expert', 'dagger')}
    for r in ckpt.dataset.rollouts:
        steps = np.diff(r.actions[:, ARM], axis=0)
        ratios[r.kind].append(steps.std(0) / r.actions[:, ARM].std(0))
    out = {'run': args.run, 'samples': len(obs), 'iteration': ckpt.iteration,
           'r2_per_action': r2.round(3).tolist(),
           'r2_arm': [float(r2[ARM].min()), float(r2[ARM].max())],
           'r2_range': [float(r2.min()), float(r2.max())],
           'step_change_over_spread_arm': {
               kind: {'min': float(np.min(v)), 'median': float(np.median(v)),
                      'max': float(np.max(v))} for kind, v in ratios.items() if v}}
    print(json.dumps(out, indent=1))
    atomic_write_text(args.out, json.dumps(out, indent=1) + '\n')


if __name__ == '__main__':
    main()

"""How much of Door's expert labels can a student learn at all? Students distilled from one
APEX iteration's rollouts (APEX Table 3 settings, fresh) predict the labels of the next
iteration's rollouts, which they never saw: the share of each arm action's variance they
explain there (R², held out), beside the same on the rollouts they were trained on.

    python experiments/paper_tasks/door_label_signal.py \
        experiments/paper_tasks/door_b45_iter1-2.npz experiments/paper_tasks/door_label_signal.json
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from apex_ros.files import atomic_write_text  # noqa: E402
from apex_ros.learning.dataset import Dataset  # noqa: E402
from apex_ros.learning.student import MLPPolicy, make_optimizer, train_policy  # noqa: E402
from apex_ros.learning.train_config import TrainConfig  # noqa: E402

ARM = slice(0, 4)   # ARTz, ARRx, ARRy, ARRz: where the hand goes


def r2_arm(model, rollouts) -> list:
    obs = torch.as_tensor(np.concatenate([r.obs for r in rollouts]))
    labels = np.concatenate([r.actions for r in rollouts])
    with torch.no_grad():
        predicted = model(obs).numpy()
    r2 = 1 - ((predicted - labels) ** 2).mean(0) / labels.var(0)
    return [round(float(v), 3) for v in r2[ARM]]


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('shard', help='a dataset shard (.npz) of at least two APEX iterations')
    p.add_argument('out')
    p.add_argument('--seeds', default='0,1,2', help='training seeds')
    args = p.parse_args()
    rollouts = Dataset.load(args.shard).rollouts
    first, second = sorted({r.iteration for r in rollouts})[:2]
    train = [r for r in rollouts if r.iteration == first]
    held = {kind: [r for r in rollouts if r.iteration == second and r.kind == kind]
            for kind in ('expert', 'dagger')}
    seen = {kind: [r for r in train if r.kind == kind] for kind in ('expert', 'dagger')}
    cfg = TrainConfig()
    obs = np.concatenate([r.obs for r in train])
    actions = np.concatenate([r.actions for r in train])
    rows = []
    for seed in map(int, args.seeds.split(',')):
        torch.manual_seed(seed)
        model = MLPPolicy(obs.shape[1], actions.shape[1], cfg.hidden)
        train_policy(model, make_optimizer(model, cfg), obs, actions, cfg,
                     torch.Generator().manual_seed(seed))
        rows.append({'seed': seed,
                     'r2_arm_trained_on': {k: r2_arm(model, v) for k, v in seen.items()},
                     'r2_arm_held_out': {k: r2_arm(model, v) for k, v in held.items()}})
        print(rows[-1], flush=True)
    out = {'shard': args.shard, 'trained_on_iteration': first, 'held_out_iteration': second,
           'samples': len(obs), 'students': rows,
           'median_r2_arm': {
               f'{where}_{kind}': float(np.median([r[f'r2_arm_{where}'][kind] for r in rows]))
               for where in ('trained_on', 'held_out') for kind in ('expert', 'dagger')}}
    print(json.dumps(out['median_r2_arm'], indent=1))
    atomic_write_text(args.out, json.dumps(out, indent=1) + '\n')


if __name__ == '__main__':
    main()

"""How should Door's student be trained? Students distilled from the same Door APEX data (the
first two iterations of `runs/door_b45`: 10 expert + 10 DAgger rollouts each, DAPG's
observation), trained several ways, each driven for --episodes episodes (seeds 777+, not the
run's evaluation seeds), with how far short of success they got (apex_progress.stages):

  continued       the run's regime: one student trained 1000 steps after each phase on the
                  rollouts so far (10, 20, 30, 40), constant learning rate (APEX Table 3)
  fresh           one fresh student, 1000 steps on all 40 rollouts
  fresh_cosine    one fresh student, 3000 steps, cosine learning rate
  fresh_expert    one fresh student, 1000 steps on the 20 expert rollouts alone (no DAgger)
  *_norm          the same with train.normalize_actions (actions scaled to [-1, 1])

    python experiments/paper_tasks/door_student.py \
        experiments/paper_tasks/door_b45_iter1-2.npz experiments/paper_tasks/door_student.json

Variants already in the JSON (same shard, episodes and seeds) are kept; --variants NAME runs
one more. The shard (committed) holds those 40 rollouts in the order the run added them; it
was written from the run's checkpoint with `--save-shard` (runs/door_b45 at fff0b91, after 2
iterations).
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from apex_progress import episode_stages  # noqa: E402

from apex_ros.files import atomic_write_text  # noqa: E402
from apex_ros.learning.apex.checkpoint import read_checkpoint  # noqa: E402
from apex_ros.learning.dataset import Dataset  # noqa: E402
from apex_ros.learning.student import MLPPolicy, make_optimizer, train_policy  # noqa: E402
from apex_ros.learning.train_config import TrainConfig  # noqa: E402
from apex_ros.sim.episodes import run_episode  # noqa: E402
from apex_ros.sim.simulation import Simulation  # noqa: E402
from apex_ros.tasks import make_task  # noqa: E402

EVAL_SEED = 777
ROLLOUTS = 40
# name -> (trainings on the first k rollouts, steps, schedule, kinds of rollout used)
BOTH = ('expert', 'dagger')
REGIMES = {'continued': ((10, 20, 30, 40), 1000, 'constant', BOTH),
           'fresh': ((40,), 1000, 'constant', BOTH),
           'fresh_cosine': ((40,), 3000, 'cosine', BOTH),
           'fresh_expert': ((40,), 1000, 'constant', ('expert',))}


def student(task, rollouts, variant: str, seed: int):
    trainings, steps, schedule, kinds = REGIMES[variant.removesuffix('_norm')]
    cfg = TrainConfig(steps=steps, lr_schedule=schedule,
                      normalize_actions=variant.endswith('_norm'))
    torch.manual_seed(seed)
    model = MLPPolicy(task.obs_dim, task.nu, cfg.hidden)
    optimizer, generator = make_optimizer(model, cfg), torch.Generator().manual_seed(seed)
    for k in trainings:
        used = [r for r in rollouts[:k] if r.kind in kinds]
        obs = np.concatenate([r.obs for r in used])
        actions = np.concatenate([r.actions for r in used])
        mse = train_policy(model, optimizer, obs, actions, cfg, generator,
                           action_bounds=(task.action_low, task.action_high))
    return model, mse


def drive(task, model, episodes: int) -> dict:
    """A torch student driving `episodes` Door episodes (seeds EVAL_SEED + e): its successes
    and how far short of success the rest got."""
    def act(sim):
        with torch.no_grad():
            return model(torch.as_tensor(task.observe(sim.state()[None]))).numpy()[0], None
    sim = Simulation(task)
    runs = [run_episode(task, act, seed=EVAL_SEED + e, sim=sim) for e in range(episodes)]
    return {'successes': int(sum(ep.success for ep in runs)), **episode_stages(task, runs)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('data', help='the dataset shard (.npz), or with --save-shard a run directory')
    p.add_argument('out', help='JSON to write (with --save-shard: the shard to write)')
    p.add_argument('--save-shard', action='store_true',
                   help='write the run\'s first 40 rollouts as a compressed shard and stop')
    p.add_argument('--variants', default='continued,continued_norm,fresh,fresh_norm,'
                                          'fresh_cosine,fresh_cosine_norm')
    p.add_argument('--seeds', default='0,1,2,3,4', help='training seeds')
    p.add_argument('--episodes', type=int, default=10)
    args = p.parse_args()
    if args.save_shard:
        shard = Dataset(ROLLOUTS)
        for r in read_checkpoint(args.data).dataset.rollouts[:ROLLOUTS]:
            shard.add(r)
        shard.save(args.out, compress=True)
        print(f'-> {args.out}')
        return
    task = make_task('adroit_door')
    rollouts = Dataset.load(args.data).rollouts
    results = {'data': args.data, 'rollouts': len(rollouts), 'episodes': args.episodes,
               'eval_seed0': EVAL_SEED, 'variants': {}}
    out = Path(args.out)
    if out.exists():   # keep the variants not run now, when measured the same way
        known = json.loads(out.read_text())
        if all(known.get(k) == results[k] for k in ('data', 'episodes', 'eval_seed0')):
            results['variants'] = known['variants']
    for variant in args.variants.split(','):
        rows = []
        for seed in map(int, args.seeds.split(',')):
            model, mse = student(task, rollouts, variant, seed)

            row = {'seed': seed, 'train_mse': mse, **drive(task, model, args.episodes)}
            print(variant, row, flush=True)
            rows.append(row)
        results['variants'][variant] = {
            'students': rows,
            **{f'total_{k}': int(sum(r[k] for r in rows))
               for k in ('successes', 'latch_turned', 'door_moved')}}
    atomic_write_text(args.out, json.dumps(results, indent=1) + '\n')
    print(f'-> {args.out}')


if __name__ == '__main__':
    main()

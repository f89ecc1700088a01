"""Our bundles in gymnasium's own MuJoCo envs: does `apex-ros eval` report what gymnasium's
HalfCheetah-v5 / HumanoidStandup-v5 (their reward, their reset, their stepping) give?

For each evaluation seed of `apex-ros eval` (config seed + 7919 (e + 1)):
- ours: `run_episode` of the bundle on the apex_ros task, as `apex-ros eval` runs it;
- gymnasium: `gymnasium.make(ID, max_episode_steps=steps)`, `reset(seed=...)`; each step the
  bundle sees *our* observation, computed from the gymnasium env's MjData (its physics state
  through `Task.observe`), and its action (clipped to the task's bounds) goes to `env.step`.
  Per episode: gymnasium's return, our `Task.reward` summed over gymnasium's own trajectory,
  the sum of gymnasium's reward terms absent from ours (HumanoidStandup's `reward_impact`),
  whether the reset states agree exactly, and the first step where the trajectories part.

    python experiments/gymnasium_crosscheck/crosscheck.py OUT.json
    python experiments/gymnasium_crosscheck/crosscheck.py OUT.json --halfcheetah-episodes 2 \
        --humanoid-episodes 1                                              # a quick look
"""
import argparse
import sys
import time
from pathlib import Path

import gymnasium
import numpy as np

from apex_ros.cli.bench import environment, write_json
from apex_ros.config.run import load_run_config
from apex_ros.deploy.bundle import PolicyBundle
from apex_ros.deploy.export import task_signature
from apex_ros.sim.episodes import policy_actor, run_episode
from apex_ros.sim.state import get_state

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CASES = {   # task -> (gymnasium id, bundle)
    'halfcheetah_run': ('HalfCheetah-v5', ROOT / 'experiments/halfcheetah/run_160/policy.onnx'),
    'humanoid_standup': ('HumanoidStandup-v5', HERE / 'humanoid_tiny/policy.onnx'),
}
EXTRA_TERMS = ('reward_impact',)   # gymnasium reward terms our tasks leave out


def eval_seeds(config_seed: int, episodes: int) -> list:
    """The seeds of `apex-ros eval`'s episodes (cli/run.py cmd_eval)."""
    return [config_seed + 7919 * (e + 1) for e in range(episodes)]


def gymnasium_episode(env, task, policy, seed: int, steps: int) -> dict:
    """One episode of `policy` in the gymnasium env `env`, observing our observation of its
    MjData. -> returns, the trajectory's states (steps+1, nstate) and per-step rewards."""
    their_obs, _ = env.reset(seed=seed)
    model, data = env.unwrapped.model, env.unwrapped.data
    states = [get_state(model, data)]
    rewards, ours, extra, obs_diff = [], [], 0.0, 0.0
    for _ in range(steps):
        obs = task.observe(states[-1][None])
        # gymnasium's observation starts with the same qpos/qvel entries as ours (then, for
        # the humanoid, com inertias, velocities and forces our observation lacks)
        obs_diff = max(obs_diff, float(np.abs(their_obs[:obs.shape[1]] - obs[0]).max()))
        action = np.clip(policy(obs)[0], task.action_low, task.action_high)
        their_obs, reward, terminated, truncated, info = env.step(action)
        states.append(get_state(model, data))
        rewards.append(reward)
        ours.append(task.reward(np.stack(states[-2:])[None], action[None, None])[0, 0])
        extra += sum(info.get(term, 0.0) for term in EXTRA_TERMS)
        if terminated:
            break
    return {'return': float(np.sum(rewards)), 'our_reward_return': float(np.sum(ours)),
            'left_out_terms': float(extra), 'steps': len(rewards),
            'observation_prefix_max_abs_diff': obs_diff,
            'terminated': bool(terminated), 'states': np.array(states)}


def compare(task_name: str, episodes: int, steps: int | None, seed: int | None = None,
            progress: bool = True) -> dict:
    gym_id, bundle_path = CASES[task_name]
    overrides = {'task': {'episode_steps': steps}} if steps else None
    cfg = load_run_config(task_name, overrides=overrides)
    task = cfg.make_task()
    policy = PolicyBundle(bundle_path)
    policy.check_signature(task_signature(task))
    env = gymnasium.make(gym_id, max_episode_steps=task.episode_steps)
    rows = []
    for e, s in enumerate(eval_seeds(cfg.seed if seed is None else seed, episodes)):
        t0 = time.perf_counter()
        ours = run_episode(task, policy_actor(task, policy), s)
        theirs = gymnasium_episode(env, task, policy, s, task.episode_steps)
        n = min(len(ours.states), len(theirs['states']))
        physics = task.layout.physics
        apart = np.flatnonzero(np.abs(ours.states[:n, 1:physics]
                                      - theirs['states'][:n, 1:physics]).max(axis=1) > 1e-9)
        rows.append({'seed': s, 'apex_ros': ours.ret, 'gymnasium': theirs['return'],
                     'our_reward_on_gymnasium_trajectory': theirs['our_reward_return'],
                     'left_out_terms': theirs['left_out_terms'],
                     'gymnasium_steps': theirs['steps'], 'terminated': theirs['terminated'],
                     'observation_prefix_max_abs_diff':
                         theirs['observation_prefix_max_abs_diff'],
                     'reset_equal': bool(apart.size == 0 or apart[0] > 0),
                     'first_step_apart': int(apart[0]) if apart.size else None})
        if progress:
            r = rows[-1]
            print(f'{task_name} episode {e + 1}/{episodes} seed {s}: apex_ros '
                  f'{r["apex_ros"]:.2f} gymnasium {r["gymnasium"]:.2f} (ours on its '
                  f'trajectory {r["our_reward_on_gymnasium_trajectory"]:.2f}, left-out terms '
                  f'{r["left_out_terms"]:.2f}) apart from step {r["first_step_apart"]} '
                  f'({time.perf_counter() - t0:.1f} s)', file=sys.stderr)
    env.close()
    return {'task': task_name, 'gymnasium_env': gym_id,
            'bundle': str(bundle_path.relative_to(ROOT)), 'episode_steps': task.episode_steps,
            'episodes': episodes, 'summary': summarize(rows), 'per_episode': rows}


def summarize(rows) -> dict:
    """Mean, std and standard error of each return; the paired difference gymnasium - ours
    against the spread of the episodes."""
    def stats(key):
        x = np.array([r[key] for r in rows])
        return {'mean': float(x.mean()), 'std': float(x.std()),
                'stderr': float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else None}
    diff = np.array([r['gymnasium'] - r['apex_ros'] for r in rows])
    spread = float(np.std([r['apex_ros'] for r in rows]))
    return {
        'apex_ros': stats('apex_ros'), 'gymnasium': stats('gymnasium'),
        'our_reward_on_gymnasium_trajectory': stats('our_reward_on_gymnasium_trajectory'),
        'left_out_terms': stats('left_out_terms'),
        'difference_gymnasium_minus_apex_ros': {
            'mean': float(diff.mean()), 'max_abs': float(np.abs(diff).max()),
            'mean_over_episode_std': float(diff.mean() / spread) if spread else None},
        'observation_prefix_max_abs_diff':
            max(r['observation_prefix_max_abs_diff'] for r in rows),
        'resets_equal': int(sum(r['reset_equal'] for r in rows)),
        'trajectories_identical': int(sum(r['first_step_apart'] is None for r in rows)),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('out', help='JSON file to write')
    p.add_argument('--halfcheetah-episodes', type=int, default=200,
                   help="as README's figure of the final halfcheetah policy")
    p.add_argument('--humanoid-episodes', type=int, default=10)
    p.add_argument('--humanoid-steps', type=int, nargs='+', default=[1000, 500],
                   help='HumanoidStandup episode lengths to compare at (gymnasium: 1000, the '
                        'APEX paper: 500)')
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    results = [compare('halfcheetah_run', args.halfcheetah_episodes, None)]
    results += [compare('humanoid_standup', args.humanoid_episodes, steps)
                for steps in args.humanoid_steps]
    write_json(args.out, {'environment': environment(), 'gymnasium': gymnasium.__version__,
                          'seconds': time.perf_counter() - t0, 'results': results})
    for r in results:
        s = r['summary']
        print(f'{r["task"]} ({r["episode_steps"]} steps, {r["episodes"]} episodes): apex_ros '
              f'{s["apex_ros"]["mean"]:.2f} ± {s["apex_ros"]["std"]:.2f}, {r["gymnasium_env"]} '
              f'{s["gymnasium"]["mean"]:.2f} ± {s["gymnasium"]["std"]:.2f}, left-out terms '
              f'{s["left_out_terms"]["mean"]:.2f}; identical trajectories '
              f'{s["trajectories_identical"]}/{r["episodes"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

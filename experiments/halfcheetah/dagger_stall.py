"""What DAgger teaches a student that has stalled (APEX on halfcheetah: nose-up, ~1.2 rad).

Runs --policy until |obs[INDEX]| > LIMIT for --hold consecutive steps (a stall), then
  1. relabels the policy's next --states states with the APEX expert (guided by the policy,
     one planner along the trajectory, as the DAgger phase does), --seeds times, and compares
     the labels' time-average with the policy's own actions there;
  2. drives --drive-steps steps from the stalled state with the policy alone and with the
     guided expert in control, reporting the return and the final |obs[INDEX]|.
Writes one JSON file.

    python experiments/halfcheetah/dagger_stall.py OUT.json --task halfcheetah_run \\
        --config CONFIG_OF_THE_RUN.yaml --policy BUNDLE
"""
import argparse
import sys

import numpy as np

from apex_ros.cli.bench import environment, write_json
from apex_ros.config.run import load_run_config
from apex_ros.deploy.bundle import PolicyBundle
from apex_ros.learning.apex import apex_settings
from apex_ros.planners import make_planner
from apex_ros.sim.episodes import planner_actor, policy_actor, run_episode
from apex_ros.sim.simulation import Simulation


def find_stall(task, policy, index, limit, hold, episodes):
    for e in range(episodes):
        ep = run_episode(task, policy_actor(task, policy), 500 + e)
        beyond = np.abs(task.observe(ep.states)[:, index]) > limit
        held = np.convolve(beyond, np.ones(hold), 'valid') >= hold
        if held.any():
            return ep, int(np.argmax(held)), 500 + e
    return None, None, None


def drive(task, act, start, steps, index):
    sim = Simulation(task)
    sim.reset(state=start)
    total = 0.0
    for _ in range(steps):
        action, _ = act(sim)
        reward, state = sim.step(action)
        total += reward
    return {'return': total, 'final_abs_obs': float(abs(task.observe(state[None])[0, index]))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('out', help='JSON file to write')
    ap.add_argument('--task', default='halfcheetah_run')
    ap.add_argument('--config', help='YAML config (default: config/<task>.yaml)')
    ap.add_argument('--policy', required=True, help='policy bundle (guides the expert too)')
    ap.add_argument('--obs-index', type=int, default=1, help='halfcheetah: 1 = root pitch')
    ap.add_argument('--limit', type=float, default=1.0)
    ap.add_argument('--hold', type=int, default=30, help='steps beyond the limit = a stall')
    ap.add_argument('--states', type=int, default=100, help='stalled states relabelled')
    ap.add_argument('--seeds', type=int, default=2)
    ap.add_argument('--drive-steps', type=int, default=150)
    ap.add_argument('--search-episodes', type=int, default=20)
    ap.add_argument('--threads', type=int, default=2)
    args = ap.parse_args(argv)
    cfg = load_run_config(args.task, args.config)
    task = cfg.make_task()
    _, expert_cfg = apex_settings(cfg)  # the APEX expert's planner settings
    policy = PolicyBundle(args.policy)
    ep, t, seed = find_stall(task, policy, args.obs_index, args.limit, args.hold,
                             args.search_episodes)
    if ep is None:
        print(f'no stall in {args.search_episodes} episodes', file=sys.stderr)
        return 1
    states = ep.states[t:t + args.states]
    own = np.clip(policy(task.observe(states)), task.action_low, task.action_high)

    def expert(planner_seed):
        planner = make_planner(task, cfg.planner_name, expert_cfg, threads=args.threads,
                               seed=planner_seed)
        planner.set_policy(policy)
        return planner

    labels = np.array([expert(s).relabel(states, None, seed=s)
                       for s in range(1, args.seeds + 1)])
    relabel = {
        'label_time_mean': labels.mean(axis=(0, 1)).tolist(),
        'policy_time_mean': own.mean(axis=0).tolist(),
        'abs_gap_of_time_means': float(np.abs(labels.mean(axis=(0, 1)) - own.mean(0)).mean()),
        'label_std_over_time': float(labels.std(axis=1).mean()),
        'label_std_across_seeds': float(np.sqrt(labels.var(axis=0).mean())),
        'label_abs_mean': float(np.abs(labels).mean()),
        'policy_abs_mean': float(np.abs(own).mean()),
    }
    driven = {'policy': drive(task, policy_actor(task, policy), ep.states[t],
                              args.drive_steps, args.obs_index)}
    for s in range(1, args.seeds + 1):
        driven[f'guided_expert_seed{s}'] = drive(task, planner_actor(expert(s), s),
                                                 ep.states[t], args.drive_steps, args.obs_index)
    result = {'episode_seed': seed, 'episode_return': ep.ret, 'stall_step': t,
              'obs_at_stall': float(task.observe(ep.states[t][None])[0, args.obs_index]),
              'relabel': relabel, 'drive': driven}
    print(result)
    write_json(args.out, {'benchmark': 'dagger_stall', 'environment': environment(),
                          'settings': vars(args), 'result': result})
    return 0


if __name__ == '__main__':
    sys.exit(main())

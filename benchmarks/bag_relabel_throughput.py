"""Relabeling throughput: states per second relabeled from a bag (`apex-ros relabel`'s path:
read the bag, rebuild the states, relabel, save the shard) vs the same expert planning the
same states in-process (what ApexTrainer.relabel does). Writes one JSON file.

A weak policy (an untrained MLP) drives `--episodes` episodes of cart-pole; the recorded
states go into a bag exactly as the recorder writes them (full-state and joint-state topics).
Then, each `--repeats` times, alternating:
  in_process   one Expert (the APEX expert, guided by the policy) relabels every episode
  bag_1        relabel_bags(..., workers=1): whole pipeline in this process
  bag_parallel relabel_bags(..., workers=cores): episodes over worker processes
Rates are states / wall seconds; the best repeat of each counts (shared machines are noisy).
ratio = bag_1 / in_process (the cost of going through a bag; target >= 0.9).

    python benchmarks/bag_relabel_throughput.py benchmarks/bag_relabel_throughput.json
    python benchmarks/bag_relabel_throughput.py OUT.json --episodes 2 --steps 40   # smoke test
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from rclpy.serialization import serialize_message
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from apex_ros.bags import metadata as md
from apex_ros.bags.relabel import Expert, expert_settings, relabel_bags
from apex_ros.bags.writer import BagWriter
from apex_ros.cli.bench import environment, write_json
from apex_ros.config.run import load_run_config
from apex_ros.deploy.bundle import PolicyBundle
from apex_ros.deploy.export import export_bundle
from apex_ros.learning.student import MLPPolicy
from apex_ros.ros import protocol
from apex_ros.sim.observation import joint_columns
from apex_ros.sim.simulation import Simulation


def record(path, task, policy, episodes):
    """Policy rollouts into a bag as the recorder stores them; -> states per episode."""
    cols = joint_columns(task.model)
    sim, t, out = Simulation(task), time.time_ns(), []
    with BagWriter(path) as w:
        w.add_topic(protocol.FULL_STATE, 'std_msgs/msg/Float64MultiArray', [md.qos_profile()])
        w.add_topic(protocol.JOINT_STATES, 'sensor_msgs/msg/JointState', [md.qos_profile()])
        for e in range(episodes):
            sim.reset(1000 + e)
            states = []
            for step in range(task.episode_steps + 1):
                state = sim.state()
                t += 1_000_000
                full = protocol.pack_full_state(
                    protocol.FullState(e, step, state, sim.warmstart()))
                w.write(protocol.FULL_STATE, serialize_message(Float64MultiArray(data=full.data)),
                        t)
                js = JointState(name=list(cols), position=[float(state[c[0]]) for c in
                                                           cols.values()],
                                velocity=[float(state[c[1]]) for c in cols.values()])
                w.write(protocol.JOINT_STATES, serialize_message(js), t)
                if step < task.episode_steps:
                    states.append((state, sim.warmstart()))
                    sim.step(policy(task.observe(state[None]))[0])
            out.append(states)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('json')
    ap.add_argument('--episodes', type=int, default=4)
    ap.add_argument('--steps', type=int, default=100, help='control steps per episode')
    ap.add_argument('--budget', type=int, default=100)
    ap.add_argument('--horizon', type=int, default=30)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--workers', type=int, default=os.cpu_count())
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix='bag-relabel-bench-') as tmp:
        tmp = Path(tmp)
        config = tmp / 'config.yaml'
        config.write_text(yaml.safe_dump({
            'task': {'name': 'cartpole_swingup', 'episode_steps': args.steps},
            'planner': {'name': 'icem', 'horizon': args.horizon, 'budget': args.budget},
            'rollout': {'threads': 1}, 'seed': 0}))
        cfg = load_run_config('cartpole_swingup', config)
        task = cfg.make_task()
        torch.manual_seed(0)
        export_bundle(MLPPolicy(task.obs_dim, task.nu), task, tmp / 'weak.onnx', 0)
        episodes = record(tmp / 'bag', task, PolicyBundle(tmp / 'weak.onnx'), args.episodes)
        n = sum(len(e) for e in episodes)
        settings = expert_settings(cfg, tmp / 'weak.onnx')

        def in_process():
            expert = Expert(settings, task)
            t0 = time.perf_counter()
            for i, ep in enumerate(episodes):
                expert.relabel(np.array([s for s, _ in ep]), np.array([w for _, w in ep]),
                               cfg.seed + i)
            seconds = time.perf_counter() - t0
            expert.close()
            return seconds

        def from_bag(workers):
            t0 = time.perf_counter()
            summary = relabel_bags([tmp / 'bag'], cfg, tmp / 'weak.onnx', tmp / 'shard.npz',
                                   workers=workers, progress=False, log=lambda *a: None)
            assert summary['states'] == n
            return time.perf_counter() - t0

        runs = {'in_process': [], 'bag_1': [], 'bag_parallel': []}
        for r in range(args.repeats):
            runs['in_process'].append(in_process())
            runs['bag_1'].append(from_bag(1))
            runs['bag_parallel'].append(from_bag(args.workers))
            rates = ', '.join(f'{k} {n / v[-1]:.1f} states/s' for k, v in runs.items())
            print(f'repeat {r + 1}: {rates}', file=sys.stderr)
    rates = {k: n / min(v) for k, v in runs.items()}
    result = {
        'benchmark': 'bag_relabel_throughput', 'task': task.name, 'states': n,
        'episodes': args.episodes, 'episode_steps': args.steps,
        'planner': {'name': 'icem', 'budget': args.budget, 'horizon': args.horizon,
                    'rollout_threads': 1},
        'workers_parallel': args.workers,
        'states_per_second': rates,
        'seconds_per_repeat': runs,
        'ratio_bag_1_vs_in_process': rates['bag_1'] / rates['in_process'],
        'ratio_bag_parallel_vs_in_process': rates['bag_parallel'] / rates['in_process'],
        'load_average': os.getloadavg(),
        'environment': environment(),
    }
    write_json(args.json, result)
    print(f'{n} states: in-process {rates["in_process"]:.1f}/s, from bag {rates["bag_1"]:.1f}/s '
          f'(ratio {result["ratio_bag_1_vs_in_process"]:.3f}), from bag on {args.workers} '
          f'workers {rates["bag_parallel"]:.1f}/s (ratio '
          f'{result["ratio_bag_parallel_vs_in_process"]:.3f}) -> {args.json}')


if __name__ == '__main__':
    main()

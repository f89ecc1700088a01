"""Trainer node: runs APEX iterations across the graph.

The loop, persistence and resume are the offline ApexTrainer's; only where rollouts come
from differs: it resets the simulation and lets the planner drive (expert rollouts), lets the
executor drive (policy rollouts) and has the planner relabel their states, trains, exports
each bundle atomically and hands it to the planner (parameter `policy`) and announces it on
/apex/policy_bundle. At the end the executor drives the simulation with the final bundle and
the node prints expert vs policy return, then exits (which ends the launch).
"""
import sys
import threading
from pathlib import Path

import numpy as np
from rclpy.node import Node

from ...config.layers import split_sets
from ...config.run import load_run_config
from ...files import atomic_write_bytes
from ...learning.apex import ApexTrainer
from ...sim.episodes import Episode
from .common import spin
from .graph_client import GraphClient


class GraphApexTrainer(ApexTrainer):
    adds_expert_action_noise = False   # the planner node commands the simulation itself

    def __init__(self, node, run_cfg, out_dir, resume=False, timeout=300.0, **kwargs):
        self.graph = None
        super().__init__(run_cfg, out_dir, resume=resume, **kwargs)
        self.bundle_path = self.out / 'current_policy.onnx'
        self.graph = GraphClient(node, self.task, timeout=timeout)
        self.graph.wait_ready()
        self._refresh_policy(self.iteration + (self.phase in ('dagger', 'train_dagger')))

    def _refresh_policy(self, version):
        super()._refresh_policy(version)
        if self.graph is None:
            return
        atomic_write_bytes(self.bundle_path, self.policy_bytes)
        self.graph.set_planner_policy(str(self.bundle_path) if self.apex.guided else '')
        self.graph.announce_bundle(str(self.bundle_path))

    def _episode(self, states, actions, ret):
        rewards = self.task.reward(states[None], actions[None])[0]
        steps = len(actions)
        return Episode(states, actions, rewards, np.zeros(steps), np.zeros(steps),
                       self.task.success(states))

    def expert_rollout(self, seed, label):
        self.graph.executor_stop()
        self.graph.set_planner_active(True)
        try:
            states, _, demos, ret = self.graph.run_episode(demos=True)
        finally:
            self.graph.set_planner_active(False)
        actions = np.array([demos[t][1] for t in range(len(states) - 1)])
        return self._episode(states, actions, ret)

    def policy_rollout(self, seed):
        self.graph.set_planner_active(False)
        self.graph.executor_drive(str(self.bundle_path))
        self.graph.set_recording(True)
        try:
            states, warmstarts, _, ret = self.graph.run_episode()
        finally:
            self.graph.set_recording(False)
            self.graph.executor_stop()
        actions = np.clip(self.policy(self.task.observe(states[:-1])),
                          self.task.action_low, self.task.action_high)
        return self._episode(states, actions, ret), list(warmstarts[:-1])

    def relabel(self, states, warmstarts, seed, progress=None):
        return self.planner.relabel(states, warmstarts, seed)


class TrainerNode(Node):
    def __init__(self):
        super().__init__('trainer')
        p = self.declare_parameter
        task = p('task', 'cartpole_swingup').value
        config = p('config', 'default').value
        self.out_dir = Path(p('out_dir', 'runs/sim_apex').value)
        iterations = p('iterations', 0).value
        self.resume = p('resume', False).value
        self.final_episodes = p('final_episodes', 1).value
        self.timeout = p('timeout', 300.0).value
        overrides = {'apex': {'iterations': iterations}} if iterations > 0 else None
        self.allow_config_change = p('allow_config_change', False).value
        self.run_cfg = load_run_config(task, None if config in ('', 'default') else config,
                                       overrides, sets=split_sets(p('set', '').value))
        self.status = None
        self.finished = threading.Event()   # spin() returns once it is set
        self.worker = threading.Thread(target=self.work, daemon=True)
        self.worker.start()

    def work(self):
        trainer = None
        try:
            trainer = GraphApexTrainer(self, self.run_cfg, self.out_dir, resume=self.resume,
                                       timeout=self.timeout,
                                       allow_config_change=self.allow_config_change,
                                       log=lambda msg: print(msg, flush=True))
            summary = trainer.run()
            returns = []
            for _ in range(self.final_episodes):
                ep, _ = trainer.policy_rollout(0)
                returns.append(ep.ret)
            print(f'expert return {summary["final_expert_return"]:.2f} vs policy return '
                  f'{np.mean(returns):.2f} (executor driving the simulation through ROS, '
                  f'{len(returns)} episode(s)); in-process evaluation '
                  f'{summary["final_policy_return"]:.2f}', flush=True)
            print(f'bundle: {summary["policy_bundle"]}\nlearning curve: '
                  f'{summary["learning_curve"]}', flush=True)
            self.status = 0
        except Exception as e:  # report, then end the launch with a failure
            self.get_logger().error(f'training failed: {type(e).__name__}: {e}')
            self.status = 1
        finally:
            if trainer is not None:
                trainer.planner.rollouts.close()
            self.finished.set()

    def on_shutdown(self):
        if self.worker.is_alive() and not self.finished.is_set():
            self.get_logger().warning('interrupted: the run resumes with resume:=true')


def main(argv=None):
    node_status = {}

    def factory():
        node = TrainerNode()
        node_status['node'] = node
        return node
    status = spin(factory, argv)
    node = node_status.get('node')
    sys.exit(status or (node.status if node is not None and node.status is not None else 1))


if __name__ == '__main__':
    main()

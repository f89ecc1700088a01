"""Trainer node: runs APEX iterations across the graph.

The loop, persistence and resume are the offline ApexTrainer's; its rollouts come from a
GraphRolloutSource (graph_source.py): it resets the simulation and lets the planner drive
(expert rollouts), lets the executor drive (policy rollouts) and relabels their states with
the planner node's expert in-process; every new student is written atomically, handed to the
planner (parameter `policy`) and announced on /apex/policy_bundle. At the end the executor
drives the simulation with the final bundle and the node prints expert vs policy return,
then exits (which ends the launch). Its iteration, phase and which node drives the simulation
are published on /apex/status for viewers. Stopped (SIGINT/SIGTERM), it lets the write in progress
finish and starts no other, so the run directory holds only complete files.
"""
import dataclasses
import sys
import threading
from pathlib import Path

import numpy as np
from rclpy.node import Node
from std_msgs.msg import String

from ...config.layers import split_sets
from ...config.run import load_run_config
from ...files import block_writes
from ...learning.apex.loop import ApexTrainer, RunStopped
from .. import protocol, qos
from .common import spin
from .graph_source import GraphRolloutSource

WRITE_GRACE = 5.0   # s an atomic write in progress may take to finish when stopped


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
        self.pub_status = self.create_publisher(String, protocol.STATUS, qos.STATUS)
        self.progress = protocol.Status(0, self.run_cfg.apex.iterations, 'expert', 'none')
        self.status_lock = threading.Lock()
        self.finished = threading.Event()   # spin() returns once it is set
        self.stop_requested = threading.Event()
        self.worker = threading.Thread(target=self.work, daemon=True)
        self.worker.start()

    def publish_status(self, **changes):
        """Publish the status with `changes` (Status fields) applied; any thread."""
        with self.status_lock:
            self.progress = dataclasses.replace(self.progress, **changes)
            self.pub_status.publish(String(data=protocol.pack_status(self.progress)))

    def on_phase(self, iteration, phase, last):
        returns = {} if last is None else {'expert_return': last['expert_return'],
                                           'policy_return': last['policy_return']}
        self.publish_status(iteration=iteration, phase=phase, **returns)

    def work(self):
        trainer = None
        try:
            source = GraphRolloutSource(self, self.out_dir / 'current_policy.onnx',
                                        timeout=self.timeout,
                                        on_driver=lambda d: self.publish_status(driver=d))
            trainer = ApexTrainer(self.run_cfg, self.out_dir, resume=self.resume,
                                  log=lambda msg: print(msg, flush=True), source=source,
                                  allow_config_change=self.allow_config_change,
                                  stop_requested=self.stop_requested,
                                  on_phase=self.on_phase)
            summary = trainer.run()
            self.publish_status(phase='final', expert_return=summary['final_expert_return'],
                                policy_return=summary['final_policy_return'])
            returns = []
            for _ in range(self.final_episodes):
                ep, _ = source.policy_rollout(0)
                returns.append(ep.ret)
            print(f'expert return {summary["final_expert_return"]:.2f} vs policy return '
                  f'{np.mean(returns):.2f} (executor driving the simulation through ROS, '
                  f'{len(returns)} episode(s)); in-process evaluation '
                  f'{summary["final_policy_return"]:.2f}', flush=True)
            print(f'bundle: {summary["policy_bundle"]}\nlearning curve: '
                  f'{summary["learning_curve"]}', flush=True)
            self.status = 0
        except RunStopped as e:
            self.get_logger().warning(str(e))
            self.status = 1
        except Exception as e:  # report, then end the launch with a failure
            self.get_logger().error(f'training failed: {type(e).__name__}: {e}')
            self.status = 1
        finally:
            if trainer is not None:
                trainer.close()
            self.finished.set()

    def on_shutdown(self):
        """Interrupted: the worker stops after its phase if it gets there; the process exits
        now, but never inside an atomic write."""
        if self.worker.is_alive() and not self.finished.is_set():
            self.stop_requested.set()
            if not block_writes(WRITE_GRACE):
                self.get_logger().error(f'a file write did not finish within {WRITE_GRACE} s')
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

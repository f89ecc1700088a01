"""APEX rollouts across the ROS graph: the simulation node steps the physics, the planner
node drives expert rollouts, the policy executor drives policy rollouts; the trainer only
resets, switches drivers and records (graph_client.GraphClient).

Relabeling runs here, in-process, with a planner built exactly as the planner node builds
its own (the APEX expert's settings, apex_settings, and the node's seed 0), guided by the
same bundle: the relabel resets it with the episode's seed, so its labels are those the
planner node would give for the same states.
"""
import numpy as np

from ...errors import ApexError
from ...files import atomic_write_bytes
from ...learning.apex.config import apex_settings
from ...learning.apex.sources import RolloutSource
from ...planners import make_planner
from ...sim.episodes import Episode
from .graph_client import GraphClient

PLANNER_NODE_SEED = 0   # planner_node's `seed` parameter in the sim_apex graph (its default)


class GraphRolloutSource(RolloutSource):
    """`node`: the rclpy node (spun by another thread) the graph client uses; `bundle_path`:
    where the current student is written for the planner node and the executor to load;
    `on_driver(driver)` (protocol.DRIVERS) is told whenever the node driving the simulation
    changes."""
    executes_expert_noise = False     # the planner node commands the simulation itself
    follows_planner_settings = False  # the planner node holds its own settings

    def __init__(self, node, bundle_path, timeout: float = 300.0, on_driver=None):
        self.node, self.bundle_path, self.timeout = node, bundle_path, timeout
        self.on_driver = on_driver or (lambda driver: None)
        self.graph = None

    def open(self, task, run_cfg):
        self.task = task
        self.planner = make_planner(task, run_cfg.planner_name, apex_settings(run_cfg)[1],
                                    threads=run_cfg.rollout.threads, seed=PLANNER_NODE_SEED)
        self.graph = GraphClient(self.node, task, timeout=self.timeout)
        self.graph.wait_ready()

    def set_policy(self, policy, data, guide_expert):
        """Write the bundle, hand it to the planner node (parameter `policy`) and announce it
        on /apex/policy_bundle (the executor loads it at its next configure)."""
        self.policy = policy
        self.planner.set_policy(policy if guide_expert else None)
        atomic_write_bytes(self.bundle_path, data)
        self.graph.set_planner_policy(str(self.bundle_path) if guide_expert else '')
        self.graph.announce_bundle(str(self.bundle_path))

    def _episode(self, states, actions):
        rewards = self.task.reward(states[None], actions[None])[0]
        steps = len(actions)
        return Episode(states, actions, rewards, np.zeros(steps), np.zeros(steps),
                       self.task.success(states))

    def expert_rollout(self, seed, label, action_noise=0.0):
        if action_noise:
            raise ApexError('expert action noise: the planner node executes its own actions')
        self.graph.executor_stop()
        self.graph.set_planner_active(True)
        self.on_driver('planner')
        try:
            states, _, demos, _ = self.graph.run_episode(demos=True)
        finally:
            self.graph.set_planner_active(False)
            self.on_driver('none')
        actions = np.array([demos[t][1] for t in range(len(states) - 1)])
        return self._episode(states, actions)

    def policy_rollout(self, seed):
        self.graph.set_planner_active(False)
        self.graph.executor_drive(str(self.bundle_path))
        self.on_driver('executor')
        self.graph.set_recording(True)
        try:
            states, warmstarts, _, _ = self.graph.run_episode()
        finally:
            self.graph.set_recording(False)
            self.graph.executor_stop()
            self.on_driver('none')
        actions = np.clip(self.policy(self.task.observe(states[:-1])),
                          self.task.action_low, self.task.action_high)
        return self._episode(states, actions), list(warmstarts[:-1])

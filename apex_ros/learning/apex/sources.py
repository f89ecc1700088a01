"""Where the APEX loop's rollouts come from.

A RolloutSource runs the two kinds of episode an iteration needs and relabels visited
states with the guided expert; the loop (loop.ApexTrainer) calls it and never asks how.
InProcessSource runs everything here, on the MuJoCo model of the task;
apex_ros.ros.nodes.graph_source.GraphRolloutSource lets the nodes of the ROS graph drive
the simulation.
"""
import dataclasses

import numpy as np

from ...errors import ApexError
from ...progress import Progress
from ...sim.episodes import Episode, planner_actor, policy_actor, run_episode
from .config import apex_settings


class RolloutSource:
    """The loop's view of rollouts. Lifecycle: open() once the run's settings are checked,
    set_policy() whenever the student changes (also right after open), close() at the end.

    `planner` is the expert that relabels in-process; it is guided by the student."""
    executes_expert_noise = False     # expert_rollout(action_noise > 0) is possible (DART)
    follows_planner_settings = False  # set_planner_config() may change the expert mid-run
    planner = None

    def open(self, task, run_cfg):
        """Get ready to run episodes of `task`; `run_cfg` holds the settings of the APEX
        iteration the run starts in (RunConfig.at_iteration)."""
        raise NotImplementedError

    def set_policy(self, policy, data: bytes, guide_expert: bool):
        """The student changed: `policy` (deploy.bundle.PolicyBundle loaded from `data`, the
        bundle's bytes) drives policy rollouts from now on and, with `guide_expert`, guides
        the expert (APEX's iCEM_pi: warm start, policy samples, guidance cost)."""
        raise NotImplementedError

    def set_planner_config(self, planner_cfg):
        """Plan with `planner_cfg` from now on (a schedule changed the expert's settings);
        only called where follows_planner_settings."""
        raise ApexError(f'{type(self).__name__} cannot change the expert planner settings')

    def expert_rollout(self, seed: int, label: str | None, action_noise: float = 0.0) -> Episode:
        """One episode driven by the guided expert -> Episode whose actions are the
        planner's (the labels), also where N(0, action_noise^2) noise was added to what it
        executed. `label`: progress bar text, or None for no bar."""
        raise NotImplementedError

    def policy_rollout(self, seed: int) -> tuple[Episode, list]:
        """One episode driven by the current policy -> (Episode, qacc warm start (nv,) of
        each of its T steps, for relabeling the visited states exactly)."""
        raise NotImplementedError

    def relabel(self, states, warmstarts, seed: int, progress: str | None = None) -> np.ndarray:
        """Expert actions (T, nu) for visited states (T, nstate): one planner reset with
        `seed` and carried along the sequence, its step-to-step memory kept (as in the
        paper)."""
        bar = Progress(progress or '', len(states), enabled=progress is not None)
        labels = self.planner.relabel(states, warmstarts, seed, on_step=bar.update)
        bar.close()
        return labels

    def close(self):
        if self.planner is not None:
            self.planner.rollouts.close()


class InProcessSource(RolloutSource):
    """Rollouts on this process's copy of the task: the APEX expert (the run's planner with
    the action-norm cost and ablation applied) and the student both act here."""
    executes_expert_noise = True
    follows_planner_settings = True

    def open(self, task, run_cfg):
        from ...planners import make_planner
        self.task = task
        _, planner_cfg = apex_settings(run_cfg)
        self.planner = make_planner(task, run_cfg.planner_name, planner_cfg,
                                    threads=run_cfg.rollout.threads, seed=run_cfg.seed)
        self.policy, self.guide = None, None

    def set_policy(self, policy, data, guide_expert):
        self.policy = policy
        self.guide = policy if guide_expert else None
        self.planner.set_policy(self.guide)

    def set_planner_config(self, planner_cfg):
        from ...planners import make_planner
        old = self.planner
        self.planner = make_planner(self.task, old.name, planner_cfg, policy=self.guide,
                                    seed=old.seed, rollouts=old.rollouts)

    def expert_rollout(self, seed, label, action_noise=0.0):
        act = planner_actor(self.planner, seed)
        if action_noise == 0:
            return run_episode(self.task, act, seed, progress=label)
        rng = np.random.default_rng(seed)
        labels = []
        low, high = self.task.action_low, self.task.action_high

        def act_noisy(sim):
            action, result = act(sim)
            labels.append(np.clip(action, low, high))
            return action + action_noise * rng.standard_normal(action.shape), result
        ep = run_episode(self.task, act_noisy, seed, progress=label)
        return dataclasses.replace(ep, actions=np.array(labels))

    def policy_rollout(self, seed):
        warmstarts = []
        act = policy_actor(self.task, self.policy)

        def act_recording(sim):
            warmstarts.append(sim.warmstart())
            return act(sim)
        return run_episode(self.task, act_recording, seed), warmstarts

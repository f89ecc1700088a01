"""The episodes a worker runs: one task, one expert planner with its persistent rollout pool,
and the current student, reused from episode to episode.

An EpisodeWorker is what runs episodes in-process (learning.apex.sources.InProcessSource)
and inside every Ray actor (ray_pool.py): the same code on both backends, so the same seed
gives the same episode wherever it runs. Every episode depends only on its seed, the task,
the planner settings and the student (the planner is reset with the seed at its start), not
on what the worker ran before. Imports neither torch nor ray.
"""
import dataclasses

import numpy as np

from ..sim.episodes import Episode, planner_actor, policy_actor, run_episode


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    """What builds an EpisodeWorker; picklable (each Ray actor is built from it, also when
    Ray restarts it)."""
    run_cfg: object       # config.run.RunConfig: the task (and the planner's base seed)
    planner_name: str
    planner_cfg: object   # the expert's planner Config
    threads: int          # rollout threads of the planner


@dataclasses.dataclass
class DaggerEpisode:
    """A policy rollout and its relabeling: `episode` as driven by the student, the visited
    `states` (T', nstate) that were relabeled (T' <= T: cut after the first failed state with
    apex.dagger_until_failure) and the expert's `labels` (T', nu) for them."""
    episode: Episode
    states: np.ndarray
    labels: np.ndarray


def dagger_states(task, states, warmstarts, until_failure: bool):
    """The visited states (T, nstate) to relabel and their warm starts: all of them, or with
    `until_failure` those up to and including the first the task calls failed."""
    if until_failure:
        failed = np.flatnonzero(task.failed(states))
        if failed.size:   # keep the first failed state: where correction matters
            return states[:failed[0] + 1], warmstarts[:failed[0] + 1]
    return states, warmstarts


class EpisodeWorker:
    """Runs expert, policy, DAgger and evaluation episodes of `spec`'s task."""

    def __init__(self, spec: WorkerSpec, task=None):
        from ..planners import make_planner
        self.task = task or spec.run_cfg.make_task()
        self.planner = make_planner(self.task, spec.planner_name, spec.planner_cfg,
                                    threads=spec.threads, seed=spec.run_cfg.seed)
        self.policy, self.policy_bytes, self.guided = None, None, False

    # --- what the episodes run with -------------------------------------------------------
    def use_policy(self, policy, data: bytes | None, guided: bool):
        """`policy` (a deploy.bundle.PolicyBundle loaded from `data`, or None) drives policy
        episodes and, with `guided`, guides the expert."""
        self.policy, self.policy_bytes, self.guided = policy, data, guided
        self.planner.set_policy(policy if guided else None)

    def use_planner_config(self, planner_cfg):
        """Plan with `planner_cfg` from now on (the rollout pool is kept)."""
        from ..planners import make_planner
        old = self.planner
        if planner_cfg == old.cfg:
            return
        self.planner = make_planner(self.task, old.name, planner_cfg,
                                    policy=self.policy if self.guided else None,
                                    seed=old.seed, rollouts=old.rollouts)

    def prepare(self, planner_cfg, data: bytes | None, guided: bool):
        """Make sure the next episode runs with these settings; loads the bundle `data` only
        when it differs from the one held (no model reloading per episode)."""
        from ..deploy.bundle import PolicyBundle
        self.use_planner_config(planner_cfg)
        if data != self.policy_bytes:
            self.use_policy(PolicyBundle(data) if data is not None else None, data, guided)
        elif guided != self.guided:
            self.use_policy(self.policy, data, guided)

    # --- episodes ------------------------------------------------------------------------
    def expert_episode(self, seed: int, action_noise: float = 0.0,
                       progress: str | None = None) -> Episode:
        """Driven by the (guided) expert; its actions are the planner's (the labels), also
        where N(0, action_noise^2) noise was added to what it executed (DART)."""
        act = planner_actor(self.planner, seed)
        if action_noise == 0:
            return run_episode(self.task, act, seed, progress=progress)
        rng = np.random.default_rng(seed)
        labels = []
        low, high = self.task.action_low, self.task.action_high

        def act_noisy(sim):
            action, result = act(sim)
            labels.append(np.clip(action, low, high))
            return action + action_noise * rng.standard_normal(action.shape), result
        ep = run_episode(self.task, act_noisy, seed, progress=progress)
        return dataclasses.replace(ep, actions=np.array(labels))

    def policy_episode(self, seed: int) -> tuple[Episode, list]:
        """Driven by the student -> (Episode, qacc warm start (nv,) of each of its T steps,
        for relabeling the visited states exactly)."""
        warmstarts = []
        act = policy_actor(self.task, self.policy)

        def act_recording(sim):
            warmstarts.append(sim.warmstart())
            return act(sim)
        return run_episode(self.task, act_recording, seed), warmstarts

    def relabel(self, states, warmstarts, seed: int, on_step=None) -> np.ndarray:
        """Expert actions (T, nu) for visited states (T, nstate): the planner reset with
        `seed` and carried along the sequence (its step-to-step memory kept, as in APEX).
        on_step(done) after each state."""
        return self.planner.relabel(states, warmstarts, seed, on_step=on_step)

    def dagger_episode(self, seed: int, until_failure: bool) -> DaggerEpisode:
        """A student episode relabeled along its own trajectory, with the same seed."""
        ep, warmstarts = self.policy_episode(seed)
        states, warmstarts = dagger_states(self.task, ep.states[:-1], warmstarts,
                                           until_failure)
        return DaggerEpisode(ep, states, self.relabel(states, warmstarts, seed))

    def evaluation_episode(self, seed: int, expert: bool = False) -> Episode:
        """Driven by the student, or with `expert` by the (guided) planner."""
        act = planner_actor(self.planner, seed) if expert else policy_actor(self.task,
                                                                            self.policy)
        return run_episode(self.task, act, seed)

    def close(self):
        self.planner.rollouts.close()

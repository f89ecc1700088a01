"""Where the APEX loop's rollouts come from.

A RolloutSource runs the kinds of episode an iteration needs (expert rollouts, policy
rollouts relabeled with the guided expert, evaluation episodes), a batch at a time; the loop
(loop.ApexTrainer) calls it and never asks how. InProcessSource runs them one after another
here, on the MuJoCo model of the task; RaySource fans them out to Ray actors
(workers.backend: ray, apex_ros/workers/ray_pool.py) with identical results;
apex_ros.ros.nodes.graph_source.GraphRolloutSource lets the nodes of the ROS graph drive the
simulation.
"""
import numpy as np

from ...errors import ApexError
from ...progress import Progress
from ...sim.episodes import Episode, policy_actor, run_episode
from ...workers.episodes import DaggerEpisode, EpisodeWorker, WorkerSpec, dagger_states
from .config import apex_settings


def _numbered(progress: str | None, j: int, n: int) -> str | None:
    return None if progress is None else f'{progress} {j + 1}/{n}'


def _report(on_result, index, result):
    if on_result is not None:
        on_result(index, result)


class RolloutSource:
    """The loop's view of rollouts. Lifecycle: open() once the run's settings are checked,
    set_policy() whenever the student changes (also right after open), close() at the end.

    The batch methods (expert_rollouts, policy_rollouts_relabeled, evaluate_policy) return
    one result per seed, in the seeds' order; here they run the single-episode methods one
    after another. `planner` is the expert that relabels in-process (None where episodes
    run elsewhere); it is guided by the student."""
    executes_expert_noise = False     # expert_rollout(action_noise > 0) is possible (DART)
    follows_planner_settings = False  # set_planner_config() may change the expert mid-run
    workers_backend = 'local'         # the workers.backend this source is (run config)
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

    # --- single episodes ----------------------------------------------------------------
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

    # --- batches -------------------------------------------------------------------------
    def expert_rollouts(self, seeds, action_noise: float = 0.0, progress: str | None = None,
                        on_result=None) -> list[Episode]:
        """expert_rollout for each seed; `progress`: bar label (numbered per episode);
        on_result(index, episode) as each episode finishes (in any order)."""
        out = []
        for j, seed in enumerate(seeds):
            out.append(self.expert_rollout(seed, _numbered(progress, j, len(seeds)),
                                           action_noise))
            _report(on_result, j, out[-1])
        return out

    def policy_rollouts_relabeled(self, seeds, until_failure: bool = False,
                                  progress: str | None = None,
                                  on_result=None) -> list[DaggerEpisode]:
        """For each seed a policy rollout relabeled along its own trajectory with the same
        seed (with `until_failure` up to its first failed state); on_result as above."""
        out = []
        for j, seed in enumerate(seeds):
            ep, warmstarts = self.policy_rollout(seed)
            states, warmstarts = dagger_states(self.task, ep.states[:-1], warmstarts,
                                               until_failure)
            labels = self.relabel(states, warmstarts, seed, _numbered(progress, j, len(seeds)))
            out.append(DaggerEpisode(ep, states, labels))
            _report(on_result, j, out[-1])
        return out

    def evaluate_policy(self, seeds) -> list[Episode]:
        """One episode per seed driven by the current policy, in this process."""
        return [run_episode(self.task, policy_actor(self.task, self.policy), seed)
                for seed in seeds]

    def close(self):
        if self.planner is not None:
            self.planner.rollouts.close()


class InProcessSource(RolloutSource):
    """Rollouts on this process's copy of the task: the APEX expert (the run's planner with
    the action-norm cost and ablation applied) and the student both act here, in an
    EpisodeWorker (the code each Ray actor runs too)."""
    executes_expert_noise = True
    follows_planner_settings = True

    def open(self, task, run_cfg):
        self.task = task
        _, planner_cfg = apex_settings(run_cfg)
        self.worker = EpisodeWorker(WorkerSpec(run_cfg, run_cfg.planner_name, planner_cfg,
                                               run_cfg.rollout.threads), task)
        self.policy = None

    @property
    def planner(self):
        return self.worker.planner

    def set_policy(self, policy, data, guide_expert):
        self.policy = policy
        self.worker.use_policy(policy, data, guide_expert)

    def set_planner_config(self, planner_cfg):
        self.worker.use_planner_config(planner_cfg)

    def expert_rollout(self, seed, label, action_noise=0.0):
        return self.worker.expert_episode(seed, action_noise, progress=label)

    def policy_rollout(self, seed):
        return self.worker.policy_episode(seed)

    def evaluate_policy(self, seeds):
        return [self.worker.evaluation_episode(seed) for seed in seeds]

    def close(self):
        if getattr(self, 'worker', None) is not None:
            self.worker.close()


class RaySource(RolloutSource):
    """Rollouts on Ray actors (workers.backend: ray): each batch is fanned out, one episode
    per task, to long-lived actors that each hold the task, the APEX expert with its rollout
    pool, and the student (sent as bundle bytes when it changes). A DAgger rollout is
    relabeled on the actor that ran it. Results are those of InProcessSource for the same
    seeds, whatever the number of workers."""
    executes_expert_noise = True
    follows_planner_settings = True
    workers_backend = 'ray'

    def __init__(self):
        self.pool = None

    def open(self, task, run_cfg):
        from ...workers.ray_pool import RayPool
        self.task = task
        _, self.planner_cfg = apex_settings(run_cfg)
        workers = run_cfg.workers
        self.pool = RayPool(WorkerSpec(run_cfg, run_cfg.planner_name, self.planner_cfg,
                                       workers.threads_per_worker),
                            workers, where=f'{run_cfg.path}: ')
        self.policy, self.data, self.guided = None, None, False

    def describe(self) -> str:
        nodes = {node for node, _ in self.pool.workers()}
        return (f'{len(self.pool.actors)} Ray worker(s) on {len(nodes)} node(s) of '
                f'{self.pool.description}')

    def set_policy(self, policy, data, guide_expert):
        self.policy, self.data, self.guided = policy, data, guide_expert
        self.pool.use(self.planner_cfg, data, guide_expert)

    def set_planner_config(self, planner_cfg):
        self.planner_cfg = planner_cfg
        self.pool.use(planner_cfg, self.data, self.guided)

    def expert_rollout(self, seed, label, action_noise=0.0):
        return self.expert_rollouts([seed], action_noise, label)[0]

    def policy_rollout(self, seed):
        return self.pool.map('policy_episode', [(seed,)])[0]

    def relabel(self, states, warmstarts, seed, progress=None):
        return self.pool.map('relabel', [(states, warmstarts, seed)], progress)[0]

    def expert_rollouts(self, seeds, action_noise=0.0, progress=None, on_result=None):
        return self.pool.map('expert_episode', [(seed, action_noise) for seed in seeds],
                             progress, on_result)

    def policy_rollouts_relabeled(self, seeds, until_failure=False, progress=None,
                                  on_result=None):
        return self.pool.map('dagger_episode', [(seed, until_failure) for seed in seeds],
                             progress, on_result)

    def evaluate_policy(self, seeds):
        return self.pool.map('evaluation_episode', [(seed,) for seed in seeds])

    def close(self):
        if self.pool is not None:
            self.pool.close()
            self.pool = None


def make_source(run_cfg) -> RolloutSource:
    """The source `run_cfg.workers.backend` names."""
    return RaySource() if run_cfg.workers.backend == 'ray' else InProcessSource()

"""Offline DAgger: relabel the states of recorded episodes with the guided expert.

On hardware the expert cannot be queried live: the policy runs, a bag records the states,
and afterwards every recorded state gets the action the guided iCEM_pi expert would take
there. Same expert as APEX's DAgger phase (apex.ApexTrainer.relabel): the run config's
planner with the APEX action-norm cost and ablation applied, guided by the given policy,
one planner carried along each episode and reset with the episode's seed at its start.

Episodes are spread over worker processes ('spawn': MuJoCo's thread pools and fork do not
mix), each with its own planner, or with workers.backend: ray over the actors of a Ray
cluster (workers/ray_pool.py). The result is a dataset shard (apex_ros.learning.dataset, written
atomically) whose rollouts say where they came from: bag, topic, stamps, planner settings.
This module imports no torch at import time, so workers start light.
"""
import dataclasses
import hashlib
import multiprocessing
import os
import queue
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import numpy as np

from ..progress import Progress
from ..workers.episodes import EpisodeWorker, WorkerSpec
from .episodes import load_episodes
from .reader import BagReader
from .writer import BagError

REPORT_EVERY = 5   # states between progress messages from a worker


@dataclasses.dataclass
class ExpertSettings:
    """Everything a worker needs to build the expert; picklable."""
    run_cfg: object
    planner_name: str
    planner_cfg: object
    threads: int
    policy_bytes: bytes
    guided: bool

    def spec(self, threads: int) -> WorkerSpec:
        return WorkerSpec(self.run_cfg, self.planner_name, self.planner_cfg, threads)

    def describe(self) -> dict:
        return {'name': self.planner_name, 'config': dataclasses.asdict(self.planner_cfg),
                'rollout_threads': self.threads, 'guided': self.guided}


def expert_settings(run_cfg, policy_path, threads: int | None = None) -> ExpertSettings:
    """The APEX expert of `run_cfg` (action-norm cost, ablation) guided by `policy_path`."""
    from ..deploy.bundle import PolicyBundle
    from ..deploy.export import task_signature
    from ..learning.apex import apex_settings
    apex, planner_cfg = apex_settings(run_cfg)
    try:
        policy_bytes = open(policy_path, 'rb').read()
    except OSError as e:
        raise BagError(f'policy bundle {policy_path}: {e.strerror}') from None
    bundle = PolicyBundle(policy_bytes)
    bundle.path = str(policy_path)
    bundle.check_signature(task_signature(run_cfg.make_task()))
    return ExpertSettings(run_cfg, run_cfg.planner_name, planner_cfg,
                          threads or run_cfg.rollout.threads, policy_bytes, apex.guided)


class Expert:
    """One planner, guided by the policy, relabeling whole episodes (an EpisodeWorker, the
    code a Ray actor runs too)."""

    def __init__(self, settings: ExpertSettings, task=None):
        self.worker = EpisodeWorker(settings.spec(settings.threads), task)
        self.worker.prepare(settings.planner_cfg, settings.policy_bytes, settings.guided)

    def relabel(self, states, warmstarts, seed, on_progress=None) -> np.ndarray:
        def on_step(done):
            if on_progress is not None and (done % REPORT_EVERY == 0 or done == len(states)):
                on_progress(done)
        return self.worker.relabel(states, warmstarts, seed, on_step)

    def close(self):
        self.worker.close()


# --- worker processes ---------------------------------------------------------------------------
_worker = {}


def _init_worker(settings, progress_queue):
    _worker['expert'] = Expert(settings)
    _worker['queue'] = progress_queue


def _relabel_in_worker(index, states, warmstarts, seed):
    done = [0]

    def report(n):
        _worker['queue'].put(n - done[0])
        done[0] = n
    t0 = time.perf_counter()
    labels = _worker['expert'].relabel(states, warmstarts, seed, report)
    return index, labels, time.perf_counter() - t0


def relabel_episodes(episodes, settings: ExpertSettings, seeds, workers: int = 1,
                     progress: bool = True, task=None):
    """-> [(labels (T, nu), seconds)] per episode, in order. workers == 1: in this process."""
    total = sum(len(e.states) for e in episodes)
    bar = Progress(f'relabel {len(episodes)} episode(s)', total, enabled=progress)
    done = 0
    results = [None] * len(episodes)
    if workers <= 1:
        expert = Expert(settings, task)
        try:
            for i, (ep, seed) in enumerate(zip(episodes, seeds)):
                t0 = time.perf_counter()
                labels = expert.relabel(ep.states, ep.warmstarts, seed,
                                        lambda n, base=done: bar.update(base + n))
                results[i] = (labels, time.perf_counter() - t0)
                done += len(ep.states)
        finally:
            expert.close()
        bar.close()
        return results
    ctx = multiprocessing.get_context('spawn')
    progress_queue = ctx.Queue()
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(settings, progress_queue)) as pool:
        pending = {pool.submit(_relabel_in_worker, i, ep.states, ep.warmstarts, seed)
                   for i, (ep, seed) in enumerate(zip(episodes, seeds))}
        while pending:
            finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in finished:
                i, labels, seconds = future.result()
                results[i] = (labels, seconds)
            done += _drain(progress_queue)
            bar.update(done)
    done += _drain(progress_queue)
    bar.update(total)
    bar.close()
    return results


def relabel_on_ray(episodes, settings: ExpertSettings, seeds, workers: int | None = None,
                   progress: bool = True):
    """relabel_episodes on Ray workers (workers.backend: ray; `workers`, if given, replaces
    workers.num_workers), each with settings.threads rollout threads -> (results, the number
    of workers)."""
    from ..workers.ray_pool import RayPool
    cfg = settings.run_cfg
    workers_cfg = dataclasses.replace(cfg.workers, num_workers=workers or cfg.workers.num_workers)
    pool = RayPool(settings.spec(settings.threads), workers_cfg, f'{cfg.path}: ')
    try:
        pool.use(settings.planner_cfg, settings.policy_bytes, settings.guided)
        labels = pool.map('relabel', [(ep.states, ep.warmstarts, seed)
                                      for ep, seed in zip(episodes, seeds)],
                          f'relabel {len(episodes)} episode(s)' if progress else None)
        return [(lab, seconds) for lab, (seconds, _) in zip(labels, pool.timings)], \
            len(pool.actors)
    finally:
        pool.close()


def _drain(q) -> int:
    n = 0
    while True:
        try:
            n += q.get_nowait()
        except queue.Empty:
            return n


def default_workers(threads: int, episodes: int) -> int:
    return max(1, min(episodes, (os.cpu_count() or 1) // max(1, threads)))


# --- bags -> shard ------------------------------------------------------------------------------
def relabel_bags(bag_paths, run_cfg, policy_path, out, workers: int | None = None,
                 source: str = 'auto', full_state_topic=None, joint_states_topic=None,
                 episode_gap: float = 1.0, ignore_joints=(), input_topics=None,
                 threads: int | None = None,
                 progress: bool = True, log=print) -> dict:
    """Read `bag_paths`, relabel every episode, save the shard to `out`; returns a summary."""
    from ..learning.dataset import Dataset, LabeledRollout
    from ..ros import protocol
    settings = expert_settings(run_cfg, policy_path, threads)
    task = run_cfg.make_task()
    episodes, bag_notes = [], {}
    for path in bag_paths:
        reader = BagReader(path)
        found, notes = load_episodes(
            reader, task, source, full_state_topic or protocol.FULL_STATE,
            joint_states_topic or protocol.JOINT_STATES, episode_gap, ignore_joints,
            input_topics)
        lines = reader.report() + notes
        bag_notes[str(reader.path)] = lines
        for line in lines:
            log(f'{path}: {line}' if not line.startswith(str(path)) else line)
        log(f'{path}: {len(found)} episode(s), {sum(len(e.states) for e in found)} states '
            f'from {found[0].source["topic"] if found else "no topic"}')
        episodes += found
    if not episodes:
        raise BagError(f'no episode with states in {", ".join(map(str, bag_paths))}')
    seeds = [run_cfg.seed + i for i in range(len(episodes))]
    t0 = time.perf_counter()
    if run_cfg.workers.backend == 'ray':
        settings = dataclasses.replace(settings, threads=run_cfg.workers.threads_per_worker)
        results, workers = relabel_on_ray(episodes, settings, seeds, workers, progress)
    else:
        workers = workers or default_workers(settings.threads, len(episodes))
        results = relabel_episodes(episodes, settings, seeds, workers, progress, task)
    seconds = time.perf_counter() - t0
    shard = Dataset(max(1, len(episodes)))
    policy = {'path': str(policy_path),
              'sha256': hashlib.sha256(settings.policy_bytes).hexdigest()}
    for ep, seed, (labels, ep_seconds) in zip(episodes, seeds, results):
        info = dict(ep.source, seed=seed, planner=settings.describe(), policy=policy,
                    task=task.name, config=str(run_cfg.path), relabel_seconds=ep_seconds,
                    state_source='full_state' if ep.warmstarts is not None else 'joint_states',
                    bag_report=bag_notes[ep.source['bag']])
        shard.add(LabeledRollout(task.observe(ep.states), labels.astype(np.float32), 'bag', 0,
                                 info))
    shard.save(out)
    states = sum(len(e.states) for e in episodes)
    return {'episodes': len(episodes), 'states': states, 'seconds': seconds,
            'states_per_second': states / seconds if seconds > 0 else float('inf'),
            'workers': workers, 'out': str(out)}

"""Episodes on a Ray cluster (workers.backend: ray).

A RayPool holds long-lived actors, each an EpisodeWorker (episodes.py: a task, a planner and
its persistent rollout pool), and fans a batch of episodes out to them: one task in flight
per actor, the next handed to whichever actor finishes first, results returned in the
batch's order. The policy travels once per change as bundle bytes in Ray's object store;
each actor loads it only when it differs from the one it holds.

Faults: an actor whose process dies is restarted by Ray (constructed again from its
WorkerSpec) and the episode it was running is retried there (max_restarts /
max_task_retries). Every task carries the settings it runs with, so a restarted actor needs
nothing replayed, and since an episode depends only on its seed and those settings the retry
gives the same result. An address nobody answers on fails before any work, naming it.
This module imports ray; only the ray backend imports it.
"""
import os
import socket
import time

from ..errors import ApexError, ConfigError
from ..progress import Progress
from .episodes import EpisodeWorker, WorkerSpec

# Quiet by default: no usage-stats prompt or upload. Set before ray is imported.
os.environ.setdefault('RAY_USAGE_STATS_ENABLED', '0')

import ray  # noqa: E402
from ray.exceptions import (  # noqa: E402
    AuthenticationError,
    GetTimeoutError,
    RayActorError,
    RayTaskError,
)

MAX_RESTARTS = 3          # per actor: how often Ray restarts it (and retries its episode)
CONNECT_TIMEOUT = 5.0     # s, to find the head of a given address listening
START_TIMEOUT = 300.0     # s, for the actors to be constructed (imports, task, planner)


class _Actor:
    """One Ray actor: an EpisodeWorker and the settings of the task it last ran."""

    def __init__(self, spec: WorkerSpec):
        self.worker = EpisodeWorker(spec)

    def where(self) -> tuple:
        """(node id, pid): which machine and process this actor is."""
        return ray.get_runtime_context().get_node_id(), os.getpid()

    def run(self, planner_cfg, policy_bytes, guided, method: str, args: tuple):
        """worker.method(*args) with these settings -> (result, seconds it took here)."""
        t0 = time.perf_counter()
        self.worker.prepare(planner_cfg, policy_bytes, guided)
        result = getattr(self.worker, method)(*args)
        return result, time.perf_counter() - t0


_RemoteActor = ray.remote(max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)(_Actor)


def _check_reachable(address: str, where: str):
    host, sep, port = address.rpartition(':')
    if not sep or not port.isdigit():
        raise ConfigError(f'{where}workers.address: expected HOST:PORT of a Ray head (or auto, '
                          f'or null), got {address!r}')
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as e:
        raise ApexError(f'{where}workers.address: no Ray cluster reachable at {address} '
                        f'({e.strerror or e}); start one there with `ray start --head '
                        f'--port {port}` or fix the address') from None


def connect(workers_cfg, where: str = '') -> str:
    """Connect this process to the cluster `workers_cfg.address` names, or start a local Ray
    instance when it is None -> a description for logs. `where` ('file.yaml: ') prefixes
    errors."""
    address = workers_cfg.address
    if address not in (None, 'auto'):
        _check_reachable(address, where)
    if ray.is_initialized():
        ray.shutdown()
    try:
        ray.init(address=address or 'local', include_dashboard=False, log_to_driver=False,
                 logging_level='ERROR', configure_logging=True)
    except (ConnectionError, RuntimeError, AuthenticationError) as e:
        raise ApexError(f'{where}workers.address: cannot connect to the Ray cluster at '
                        f'{address or "(a local instance)"}: {e}') from None
    return f'Ray cluster at {address}' if address else 'a local Ray instance'


class RayPool:
    """`num_workers` actors built from `spec` on the cluster of `workers_cfg`.

    use() sets what the next episodes run with; map() runs a batch; close() ends the actors
    and disconnects (stopping a local Ray instance it started)."""

    def __init__(self, spec: WorkerSpec, workers_cfg, where: str = ''):
        self.description = connect(workers_cfg, where)
        try:
            threads = workers_cfg.threads_per_worker
            cpus = int(ray.cluster_resources().get('CPU', 0))
            count = workers_cfg.num_workers or max(1, cpus // threads)
            if count * threads > cpus:
                raise ConfigError(f'{where}workers.num_workers: {count} workers of '
                                  f'{threads} thread(s) need {count * threads} CPUs, the '
                                  f'cluster has {cpus}')
            self.actors = [_RemoteActor.options(num_cpus=threads).remote(spec)
                           for _ in range(count)]
            self.workers()   # constructed before any work: a worker that cannot build fails here
        except BaseException:
            ray.shutdown()
            raise
        self.settings = (spec.planner_cfg, None, False)
        self.timings = []

    def workers(self) -> list:
        """[(node id, pid)] of each actor (waits for the actors' current tasks)."""
        try:
            return ray.get([a.where.remote() for a in self.actors], timeout=START_TIMEOUT)
        except GetTimeoutError:
            raise ApexError(f'Ray workers not ready after {START_TIMEOUT:.0f} s') from None
        except RayTaskError as e:
            raise ApexError(f'a Ray worker failed to start: {e.cause}') from None

    def use(self, planner_cfg, policy_bytes: bytes | None, guided: bool):
        """Episodes from now on: plan with `planner_cfg`; the student is the bundle
        `policy_bytes` (or none), guiding the expert if `guided`."""
        data = ray.put(policy_bytes) if policy_bytes is not None else None
        self.settings = (planner_cfg, data, guided)

    def map(self, method: str, items: list, progress: str | None = None,
            on_result=None) -> list:
        """[EpisodeWorker.method(*args) for args in items], run on the actors; in the order
        of `items`. `progress`: a bar label (None: no bar); on_result(index, result) as each
        result arrives. self.timings: per item (seconds on the actor, seconds from handing
        it to the actor to having its result here)."""
        results, self.timings = [None] * len(items), [None] * len(items)
        todo, idle, running = list(enumerate(items)), list(self.actors), {}
        bar = Progress(progress or '', len(items), enabled=progress is not None)
        while todo or running:
            while todo and idle:
                index, args = todo.pop(0)
                actor = idle.pop(0)
                ref = actor.run.remote(*self.settings, method, tuple(args))
                running[ref] = (index, actor, time.perf_counter())
            (ref,), _ = ray.wait(list(running), num_returns=1)
            index, actor, started = running.pop(ref)
            results[index], seconds = self._result(ref, f'{method} of item {index}')
            self.timings[index] = (seconds, time.perf_counter() - started)
            idle.append(actor)
            bar.update(len(items) - len(todo) - len(running))
            if on_result is not None:
                on_result(index, results[index])
        bar.close()
        return results

    @staticmethod
    def _result(ref, what: str):
        try:
            return ray.get(ref)
        except RayTaskError as e:
            if isinstance(e.cause, ApexError):
                raise type(e.cause)(str(e.cause)) from None
            raise
        except RayActorError as e:
            raise ApexError(f'{what}: the Ray worker running it died '
                            f'{MAX_RESTARTS + 1} times ({e})') from None

    def close(self):
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
        ray.shutdown()

"""The `workers:` section of a run config: where episodes run.

Imports neither torch nor ray: the config loader reads WorkersConfig from here."""
import dataclasses

from ..config import require

BACKENDS = ('local', 'ray')


@dataclasses.dataclass
class WorkersConfig:
    backend: str = 'local'        # local: episodes one after another in this process;
    #                               ray: fanned out to Ray actors (workers/ray_pool.py)
    address: str | None = None    # ray: a running cluster ('HOST:PORT' of its head, or 'auto');
    #                               None: start a local Ray instance for this command
    num_workers: int = 0          # ray: actors; 0: as many as the cluster's CPUs hold
    threads_per_worker: int = 1   # ray: rollout threads of each actor's planner (and the CPUs
    #                               it reserves); local runs use rollout.threads

    def validate(self, where='workers'):
        require(self.backend in BACKENDS, f'{where}.backend',
                f'must be one of {", ".join(BACKENDS)}, got {self.backend!r}')
        require(self.address is None or self.address.strip() != '', f'{where}.address',
                'must be HOST:PORT, auto, or null (start a local Ray instance)')
        require(self.num_workers >= 0, f'{where}.num_workers',
                f'must be >= 0 (0: as many as the cluster holds), got {self.num_workers}')
        require(self.threads_per_worker >= 1, f'{where}.threads_per_worker',
                f'must be >= 1, got {self.threads_per_worker}')

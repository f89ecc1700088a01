"""The aggregated APEX dataset: whole rollouts of (observation, expert action) pairs, of which
training uses the latest `window` rollouts (APEX Table 3: "# latest rollouts used")."""
import dataclasses
import io
import json

import numpy as np

from ..errors import ApexError
from ..files import atomic_write_bytes


@dataclasses.dataclass
class LabeledRollout:
    obs: np.ndarray          # (T, obs_dim) float32
    actions: np.ndarray      # (T, nu) float32, expert labels
    kind: str                # 'expert' | 'dagger' | 'shard'
    iteration: int
    info: dict = dataclasses.field(default_factory=dict)  # provenance, returns ...


class Dataset:
    def __init__(self, window: int):
        if window < 1:
            raise ApexError(f'dataset window must be >= 1 rollouts, got {window}')
        self.window = window
        self.rollouts: list[LabeledRollout] = []

    def add(self, rollout: LabeledRollout):
        if len(rollout.obs) != len(rollout.actions):
            raise ApexError(f'rollout has {len(rollout.obs)} observations but '
                            f'{len(rollout.actions)} actions')
        self.rollouts.append(rollout)
        del self.rollouts[:-self.window]

    def __len__(self):
        return len(self.rollouts)

    @property
    def num_samples(self) -> int:
        return sum(len(r.obs) for r in self.rollouts)

    def arrays(self):
        if not self.rollouts:
            raise ApexError('the dataset is empty')
        return (np.concatenate([r.obs for r in self.rollouts]).astype(np.float32),
                np.concatenate([r.actions for r in self.rollouts]).astype(np.float32))

    # --- persistence: one .npz, written atomically ----------------------------------------
    def to_bytes(self) -> bytes:
        arrays = {}
        meta = {'window': self.window, 'rollouts': []}
        for i, r in enumerate(self.rollouts):
            arrays[f'obs_{i}'] = r.obs
            arrays[f'actions_{i}'] = r.actions
            meta['rollouts'].append({'kind': r.kind, 'iteration': r.iteration, 'info': r.info})
        arrays['meta'] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, source: str = 'dataset'):
        try:
            npz = np.load(io.BytesIO(data))
            meta = json.loads(bytes(npz['meta']).decode())
            ds = cls(meta['window'])
            for i, r in enumerate(meta['rollouts']):
                ds.rollouts.append(LabeledRollout(npz[f'obs_{i}'], npz[f'actions_{i}'],
                                                  r['kind'], r['iteration'], r.get('info', {})))
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
            raise ApexError(f'{source}: not a readable apex_ros dataset: {e}') from None
        return ds

    def save(self, path):
        atomic_write_bytes(path, self.to_bytes())

    @classmethod
    def load(cls, path):
        try:
            data = open(path, 'rb').read()
        except OSError as e:
            raise ApexError(f'{path}: cannot read dataset: {e.strerror}') from None
        return cls.from_bytes(data, str(path))

"""The aggregated APEX dataset: whole rollouts of (observation, expert action) pairs, of which
training uses the latest `window` rollouts (APEX Table 3: "# latest rollouts used")."""
import dataclasses
import io
import json
import zipfile

import numpy as np

from ..errors import ApexError
from ..files import atomic_write_bytes

NPZ_MAGIC = b'PK'   # an .npz is a zip archive


@dataclasses.dataclass
class LabeledRollout:
    obs: np.ndarray          # (T, obs_dim) float32
    actions: np.ndarray      # (T, nu) float32, expert labels
    kind: str                # 'expert' | 'dagger' | 'shard'
    iteration: int           # the APEX iteration that made it, 0-based
    info: dict = dataclasses.field(default_factory=dict)  # provenance, returns ...


class Dataset:
    def __init__(self, window: int):
        self.rollouts: list[LabeledRollout] = []
        self.set_window(window)

    def set_window(self, window: int):
        """Keep the latest `window` rollouts from now on (and drop older ones now)."""
        if window < 1:
            raise ApexError(f'dataset window must be >= 1 rollouts, got {window}')
        self.window = window
        del self.rollouts[:-window]

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
    def to_bytes(self, compress: bool = False) -> bytes:
        arrays = {}
        meta = {'window': self.window, 'rollouts': []}
        for i, r in enumerate(self.rollouts):
            arrays[f'obs_{i}'] = r.obs
            arrays[f'actions_{i}'] = r.actions
            meta['rollouts'].append({'kind': r.kind, 'iteration': r.iteration, 'info': r.info})
        arrays['meta'] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        (np.savez_compressed if compress else np.savez)(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, source: str = 'dataset'):
        def refuse(why):
            return ApexError(f'{source}: not an apex_ros dataset shard ({why})')
        if not data.startswith(NPZ_MAGIC):
            raise refuse('not an .npz archive')
        try:
            npz = np.load(io.BytesIO(data), allow_pickle=False)
            if 'meta' not in npz:
                raise refuse('a zip archive without the dataset description `meta`')
            try:
                meta = json.loads(bytes(npz['meta']).decode())
            except ValueError:   # also numpy's refusal of object arrays (pickles)
                raise refuse('its `meta` entry is not a dataset description') from None
            ds = cls(meta['window'])
            for i, r in enumerate(meta['rollouts']):
                ds.rollouts.append(LabeledRollout(npz[f'obs_{i}'], npz[f'actions_{i}'],
                                                  r['kind'], r['iteration'], r.get('info', {})))
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as e:
            raise refuse(f'{type(e).__name__}: {e}') from None
        return ds

    def save(self, path, compress: bool = False):
        atomic_write_bytes(path, self.to_bytes(compress))

    @classmethod
    def load(cls, path):
        try:
            data = open(path, 'rb').read()
        except OSError as e:
            raise ApexError(f'{path}: cannot read dataset: {e.strerror}') from None
        return cls.from_bytes(data, str(path))

"""A bundle's observation rebuilt from a robot's joint states, by joint name.

Light on purpose (numpy only): the policy executor uses it on the robot. Terms are the
bundle's `obs.terms` (qpos:J, qvel:J, cos:J, sin:J); multi-coordinate terms (J[i], free or
ball joints) have no sensor_msgs/JointState equivalent and are refused.
"""
import numpy as np

from ..errors import ApexError

_KINDS = ('qpos', 'qvel', 'cos', 'sin')


class JointObservation:
    def __init__(self, obs_terms):
        self.terms = list(obs_terms)
        self._kinds, self._joints = [], []
        for term in self.terms:
            kind, _, joint = term.partition(':')
            if kind not in _KINDS or not joint:
                raise ApexError(f'observation term {term!r}: expected qpos|qvel|cos|sin:JOINT')
            if '[' in joint:
                raise ApexError(f'observation term {term!r} reads one coordinate of a '
                                'multi-coordinate joint; /joint_states cannot provide it')
            self._kinds.append(kind)
            self._joints.append(joint)
        self.joints = list(dict.fromkeys(self._joints))
        self._uses_velocity = np.array([k == 'qvel' for k in self._kinds])
        self._cos = np.array([k == 'cos' for k in self._kinds])
        self._sin = np.array([k == 'sin' for k in self._kinds])
        self._cache_names, self._cache_index = None, None

    def missing(self, names) -> list:
        have = set(names)
        return [j for j in self.joints if j not in have]

    def _index(self, names):
        names = tuple(names)
        if names != self._cache_names:
            lookup = {n: i for i, n in enumerate(names)}
            missing = self.missing(names)
            if missing:
                raise ValueError(f'joint state lacks joints {missing}')
            self._cache_names = names
            self._cache_index = np.array([lookup[j] for j in self._joints], dtype=np.int64)
        return self._cache_index

    def __call__(self, names, positions, velocities) -> np.ndarray:
        """-> observation (obs_dim,) float32. Raises ValueError saying what is wrong (missing
        joints, arrays shorter than the names, non-finite values)."""
        n = len(names)
        positions = np.asarray(positions, dtype=np.float64)
        velocities = np.asarray(velocities, dtype=np.float64)
        if len(positions) != n or (self._uses_velocity.any() and len(velocities) != n):
            raise ValueError(f'joint state has {n} names but {len(positions)} positions and '
                             f'{len(velocities)} velocities')
        idx = self._index(names)
        x = positions[idx]
        if self._uses_velocity.any():
            x = np.where(self._uses_velocity, velocities[np.minimum(idx, len(velocities) - 1)], x)
        if not np.all(np.isfinite(x)):
            bad = [t for t, ok in zip(self.terms, np.isfinite(x)) if not ok]
            raise ValueError(f'non-finite joint state for {bad}')
        x = np.where(self._cos, np.cos(x), x)
        x = np.where(self._sin, np.sin(x), x)
        return x.astype(np.float32)

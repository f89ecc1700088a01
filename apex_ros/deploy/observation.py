"""Observation terms, and a bundle's observation rebuilt from a robot's joint states by name.

Light on purpose (numpy only): the policy executor uses it on the robot, the simulation
(apex_ros.sim.observation) parses the same terms with the same function.

A term is KIND:NAME or KIND:NAME[i]:
  qpos, qvel   the joint NAME's position / velocity
  cos, sin     cos / sin of the joint's position
  extra        the task's extra-state block NAME (a goal, the door's position: state beyond
               the joints; apex_ros.sim.state)
  site         the world position of the model's site NAME (a palm, a handle): not a state
               coordinate but a function of it (forward kinematics in simulation; on a robot
               its TF or perception sends it as an input, apex_ros.deploy.inputs); always
               with [i], i in 0..2 (x, y, z)
  offset       NAME is A>B: the position of site B minus that of site A, in world axes (the
               palm-to-handle vector); [i] as for site. Deployed, it is computed from the
               inputs that carry site:A[i] and site:B[i]
  [i]          coordinate i of a multi-coordinate joint (free: 7 qpos, 6 qvel; ball: 4, 3),
               of an extra block or of a site's position
"""
import dataclasses
import re

import numpy as np

from ..errors import ApexError

KINDS = ('qpos', 'qvel', 'cos', 'sin', 'extra', 'site', 'offset')
JOINT_KINDS = ('qpos', 'qvel', 'cos', 'sin')   # the kinds that read a joint
# names may hold ':' (gymnasium-robotics' 'robot0:slide0'); the kind ends at the first one
_TERM = re.compile(r'^([^:]*):([A-Za-z0-9_./:>-]+)(?:\[(\d+)\])?$')


@dataclasses.dataclass(frozen=True)
class ObsTerm:
    kind: str                # one of KINDS
    joint: str               # joint name (extra: the block's; site: the site's; offset: A>B)
    index: int | None = None  # coordinate of a multi-coordinate joint or block; None: the only one

def parse_term(term: str) -> ObsTerm:
    """'cos:hinge' -> ObsTerm('cos', 'hinge', None); 'qvel:root[2]' -> ObsTerm('qvel', 'root', 2).
    Raises ApexError naming the term and what is wrong with it."""
    m = _TERM.match(term) if isinstance(term, str) else None
    if m is None or m.group(1) not in KINDS:
        what = (f'unknown kind {m.group(1)!r}; ' if m is not None else '')
        raise ApexError(f'observation term {term!r}: {what}expected '
                        f'{"|".join(KINDS)}:NAME, optionally NAME[i]')
    kind, name = m.group(1), m.group(2)
    index = None if m.group(3) is None else int(m.group(3))
    if kind in ('site', 'offset') and (index is None or index > 2):
        raise ApexError(f'observation term {term!r}: a {kind} term is one coordinate of a '
                        f'position: {kind}:NAME[i] with i in 0..2')
    if (kind == 'offset') != (name.count('>') == 1) or name.startswith('>') or \
            name.endswith('>'):
        raise ApexError(f'observation term {term!r}: \'>\' belongs in offset terms only, '
                        'once: offset:SITE_A>SITE_B[i]')
    return ObsTerm(kind, name, index)


def offset_sites(term: ObsTerm) -> tuple:
    """An offset term's two site terms: offset:A>B[i] -> ('site:A[i]', 'site:B[i]')."""
    a, b = term.joint.split('>')
    return f'site:{a}[{term.index}]', f'site:{b}[{term.index}]'


class JointObservation:
    """obs_terms -> a callable (names, positions, velocities) -> observation, for 1-dof joints
    (multi-coordinate terms have no sensor_msgs/JointState equivalent and are refused)."""

    def __init__(self, obs_terms):
        self.terms = list(obs_terms)
        self._kinds, self._joints = [], []
        for term in self.terms:
            parsed = parse_term(term)
            if parsed.kind in ('extra', 'site', 'offset'):
                what = 'the task\'s extra state' if parsed.kind == 'extra' else 'a site position'
                raise ApexError(f'observation term {term!r} reads {what}; '
                                '/joint_states cannot provide it')
            if parsed.index is not None:
                raise ApexError(f'observation term {term!r} reads one coordinate of a '
                                'multi-coordinate joint; /joint_states cannot provide it')
            self._kinds.append(parsed.kind)
            self._joints.append(parsed.joint)
        self.joints = list(dict.fromkeys(self._joints))
        # Which observation slots read a velocity, a position, its cos, its sin.
        slots = {kind: np.array([i for i, k in enumerate(self._kinds) if k in kinds],
                                dtype=np.int64)
                 for kind, kinds in (('vel', ('qvel',)), ('pos', ('qpos', 'cos', 'sin')),
                                     ('cos', ('cos',)), ('sin', ('sin',)))}
        self._vel, self._pos, self._cos, self._sin = (
            slots[k] for k in ('vel', 'pos', 'cos', 'sin'))
        self._uses_velocity = len(self._vel) > 0
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
            index = np.array([lookup[j] for j in self._joints], dtype=np.int64)
            self._cache_index = index[self._pos], index[self._vel]
        return self._cache_index

    def __call__(self, names, positions, velocities) -> np.ndarray:
        """-> observation (obs_dim,) float32. Raises ValueError saying what is wrong (missing
        joints, arrays shorter than the names, non-finite values)."""
        n = len(names)
        if len(positions) != n or (self._uses_velocity and len(velocities) != n):
            raise ValueError(f'joint state has {n} names but {len(positions)} positions and '
                             f'{len(velocities)} velocities')
        pos_index, vel_index = self._index(names)
        x = np.empty(len(self.terms))
        x[self._pos] = np.asarray(positions, dtype=np.float64)[pos_index]
        if self._uses_velocity:
            x[self._vel] = np.asarray(velocities, dtype=np.float64)[vel_index]
        finite = np.isfinite(x)
        if not finite.all():
            bad = [t for t, ok in zip(self.terms, finite) if not ok]
            raise ValueError(f'non-finite joint state for {bad}')
        x[self._cos] = np.cos(x[self._cos])
        x[self._sin] = np.sin(x[self._sin])
        return x.astype(np.float32)

"""External inputs beyond /joint_states: an object's pose, a goal, as a bundle declares them.

Light on purpose (numpy only): the policy executor, the simulation node, export and bag
relabeling share it. An input is one stamped geometry_msgs message on one topic:

  geometry_msgs/PointStamped  3 values: point x, y, z
  geometry_msgs/PoseStamped   7 values: position x, y, z, then orientation w, x, y, z (MuJoCo's
                              quaternion order, as a free joint's qpos[3:7] holds it)
  geometry_msgs/TwistStamped  6 values: linear x, y, z, then angular x, y, z (as a free
                              joint's qvel holds them: angular in the object's own frame)

and `fills` names, value by value, the state coordinates it carries, as observation terms
(apex_ros.deploy.observation.parse_term) of kind qpos, qvel or extra: a goal's PointStamped
fills ('extra:goal[0]', 'extra:goal[1]', 'extra:goal[2]'); an object's PoseStamped fills
('qpos:object0:joint[0]', ..., 'qpos:object0:joint[6]'). Or it carries a site's position
('site:S_handle[0]', ...): a function of the state, not a coordinate of it (a simulation
computes it, a robot measures it), so it feeds observations but never a rebuilt state
(`InputSpec.fills_state`). An observation term equal to one of them is taken from the
latest message of that input. `frame` is the frame_id every message
must carry; `max_age` (s) how old (receive time, local monotonic clock) the latest message may
be; 0: no limit (a goal is sent once and holds until replaced).
"""
import dataclasses
import math

import numpy as np

from ..errors import ApexError
from .observation import JOINT_KINDS, JointObservation, offset_sites, parse_term

# message type -> the attribute paths of its values, in `fills` order
FIELDS = {
    'geometry_msgs/PointStamped': (('point', 'x'), ('point', 'y'), ('point', 'z')),
    'geometry_msgs/PoseStamped': (
        ('pose', 'position', 'x'), ('pose', 'position', 'y'), ('pose', 'position', 'z'),
        ('pose', 'orientation', 'w'), ('pose', 'orientation', 'x'),
        ('pose', 'orientation', 'y'), ('pose', 'orientation', 'z')),
    'geometry_msgs/TwistStamped': tuple(
        ('twist', part, axis) for part in ('linear', 'angular') for axis in 'xyz'),
}
FILL_KINDS = ('qpos', 'qvel', 'extra', 'site')
STATUSES = ('ok', 'missing', 'stale', 'non_finite', 'wrong_frame')


@dataclasses.dataclass(frozen=True)
class InputSpec:
    name: str           # the input's name (parameters inputs.<name>.topic)
    type: str           # one of FIELDS
    topic: str          # default topic
    frame: str          # required header.frame_id
    fills: tuple        # state coordinates as terms, one per message value
    max_age: float = 0.0  # s; 0: no limit

    @property
    def fills_state(self) -> bool:
        """Whether the values are state coordinates (else site positions, derived from it)."""
        return parse_term(self.fills[0]).kind != 'site'

    def to_meta(self) -> dict:
        return {'name': self.name, 'type': self.type, 'topic': self.topic, 'frame': self.frame,
                'max_age': self.max_age, 'fills': list(self.fills)}

    @classmethod
    def from_meta(cls, meta, where: str = 'inputs') -> 'InputSpec':
        """Parse and check one declaration (bundle metadata); ApexError naming `where` and
        the field."""
        if not isinstance(meta, dict):
            raise ApexError(f'{where}: expected a mapping, got {meta!r}')
        missing = [k for k in ('name', 'type', 'topic', 'frame', 'fills') if k not in meta]
        if missing:
            raise ApexError(f'{where}: lacks field(s) {", ".join(missing)}')
        unknown = sorted(set(meta) - {'name', 'type', 'topic', 'frame', 'fills', 'max_age'})
        if unknown:
            raise ApexError(f'{where}: unknown field(s) {", ".join(unknown)}')
        fills = meta['fills']
        if isinstance(fills, str) or not isinstance(fills, (list, tuple)):
            raise ApexError(f'{where}.fills: expected a list of terms, got {fills!r}')
        spec = cls(meta['name'], meta['type'], meta['topic'], meta['frame'], tuple(fills),
                   meta.get('max_age', 0.0))
        spec.check(where)
        return spec

    def check(self, where: str = 'inputs'):
        for field in ('name', 'topic', 'frame'):
            value = getattr(self, field)
            if not isinstance(value, str) or not value:
                raise ApexError(f'{where}.{field}: expected a non-empty string, got {value!r}')
        if not all(c.isalnum() or c == '_' for c in self.name):
            raise ApexError(f'{where}.name: {self.name!r} is not a parameter name '
                            '(letters, digits, _)')
        if self.type not in FIELDS:
            raise ApexError(f'{where}.type: {self.type!r}; supported: {", ".join(FIELDS)}')
        width = len(FIELDS[self.type])
        if len(self.fills) != width:
            raise ApexError(f'{where}.fills: {self.type} carries {width} values, '
                            f'{len(self.fills)} terms given')
        for term in self.fills:
            try:
                kind = parse_term(term).kind
            except ApexError as e:
                raise ApexError(f'{where}.fills: {e}') from None
            if kind not in FILL_KINDS:
                raise ApexError(f'{where}.fills: {term!r} is neither a state coordinate '
                                f'nor a site position ({"|".join(FILL_KINDS)}:NAME[i])')
        if len({parse_term(t).kind == 'site' for t in self.fills}) > 1:
            raise ApexError(f'{where}.fills: an input carries state coordinates or site '
                            f'positions, not both: {list(self.fills)}')
        if len(set(self.fills)) != width:
            raise ApexError(f'{where}.fills: a term is repeated in {list(self.fills)}')
        age = self.max_age
        if isinstance(age, bool) or not isinstance(age, (int, float)) or not age >= 0:
            raise ApexError(f'{where}.max_age: expected seconds >= 0 (0: no limit), got {age!r}')


def check_inputs(specs, where: str = 'inputs') -> list:
    """Check a list of InputSpec together: unique names, no term filled twice."""
    names, filled = set(), {}
    for i, spec in enumerate(specs):
        spec.check(f'{where}[{i}]')
        if spec.name in names:
            raise ApexError(f'{where}[{i}].name: {spec.name!r} is declared twice')
        names.add(spec.name)
        for term in spec.fills:
            if term in filled:
                raise ApexError(f'{where}[{i}].fills: {term!r} is filled by input '
                                f'{filled[term]!r} too')
            filled[term] = spec.name
    return list(specs)


def message_values(spec: InputSpec, msg) -> np.ndarray:
    """The values (len(spec.fills),) of a message of spec.type (a rclpy message or a decoded
    bag message: anything with the attributes)."""
    out = np.empty(len(FIELDS[spec.type]))
    for i, path in enumerate(FIELDS[spec.type]):
        value = msg
        for attr in path:
            value = getattr(value, attr)
        out[i] = value
    return out


def fill_message(spec: InputSpec, msg, values):
    """Write `values` into a message of spec.type (the sim node publishes inputs with it)."""
    for path, value in zip(FIELDS[spec.type], values):
        target = msg
        for attr in path[:-1]:
            target = getattr(target, attr)
        setattr(target, path[-1], float(value))
    msg.header.frame_id = spec.frame
    return msg


def joint_state_term(term: str) -> bool:
    """Whether sensor_msgs/JointState can provide `term` (a 1-dof joint's qpos/qvel/cos/sin)."""
    parsed = parse_term(term)
    return parsed.kind in JOINT_KINDS and parsed.index is None


def _offset_of_filled(term: str, filled) -> bool:
    parsed = parse_term(term)
    return parsed.kind == 'offset' and all(t in filled for t in offset_sites(parsed))


def uncovered_terms(obs_terms, specs) -> list:
    """Observation terms neither /joint_states nor a declared input provides (an offset
    term is provided when inputs carry both its sites)."""
    filled = {t for s in specs for t in s.fills}
    return [t for t in obs_terms if t not in filled and not joint_state_term(t)
            and not _offset_of_filled(t, filled)]


@dataclasses.dataclass(frozen=True)
class InputStatus:
    name: str
    topic: str
    age: float          # s since the latest message (inf: none yet)
    limit: float        # max_age (0: no limit)
    status: str         # one of STATUSES
    why: str            # '' when ok

    def describe(self) -> str:
        return f'input {self.name} ({self.topic}): {self.why or self.status}'


def received(spec: InputSpec, now: float, msg) -> tuple:
    """What InputObservation keeps of a message: (receive time, values, frame_id, finite)."""
    values = message_values(spec, msg)
    return now, values, msg.header.frame_id, bool(np.all(np.isfinite(values)))


class InputObservation:
    """A bundle's observation from joint states plus its declared inputs.

    The caller keeps the latest message of each input as `latest` {name: received(...)} (it
    outlives a bundle swap); `status(latest, now)` tells per input whether it is usable;
    `__call__(names, positions, velocities, latest, now)` -> the observation (obs_dim,)
    float32, or ValueError naming the first input that is missing, stale, in the wrong frame
    or non-finite (never a partial observation).
    """

    def __init__(self, obs_terms, specs, topics: dict | None = None):
        self.terms = list(obs_terms)
        self.specs = check_inputs(list(specs))
        self.topics = {s.name: (topics or {}).get(s.name, s.topic) for s in self.specs}
        uncovered = uncovered_terms(self.terms, self.specs)
        if uncovered:
            raise ApexError(f'observation terms {uncovered}: neither /joint_states nor a '
                            'declared input provides them')
        source = {t: (k, j) for k, s in enumerate(self.specs) for j, t in enumerate(s.fills)}
        # offset terms: (slot, (input, value) of site A, (input, value) of site B)
        self._offsets = [(i, *(source[site] for site in offset_sites(parse_term(t))))
                         for i, t in enumerate(self.terms)
                         if t not in source and _offset_of_filled(t, source)]
        computed = source.keys() | {self.terms[i] for i, _, _ in self._offsets}
        self.joints = JointObservation([t for t in self.terms if t not in computed])
        self._joint_slots = np.array([i for i, t in enumerate(self.terms) if t not in computed],
                                     dtype=np.int64)
        # per input: (its observation slots, the indices of its values that go there)
        self._slots = []
        for k in range(len(self.specs)):
            used = [(i, source[t][1]) for i, t in enumerate(self.terms)
                    if source.get(t, (None,))[0] == k]
            self._slots.append((np.array([i for i, _ in used], dtype=np.int64),
                                np.array([j for _, j in used], dtype=np.int64)))

    def _status(self, spec, got, now) -> InputStatus:
        topic = self.topics[spec.name]
        if got is None:
            return InputStatus(spec.name, topic, math.inf, spec.max_age, 'missing',
                               f'no {spec.type} received on {topic}')
        stamp, values, frame, finite = got
        age = now - stamp
        if spec.max_age and age > spec.max_age:
            state, why = 'stale', (f'latest message is {age * 1e3:.0f} ms old '
                                   f'(max_age {spec.max_age * 1e3:g} ms)')
        elif frame != spec.frame:
            state, why = 'wrong_frame', f'frame_id {frame!r}, expected {spec.frame!r}'
        elif not finite:
            state, why = 'non_finite', f'non-finite values {values.tolist()}'
        else:
            state, why = 'ok', ''
        return InputStatus(spec.name, topic, age, spec.max_age, state, why)

    def status(self, latest: dict, now: float) -> list:
        """-> [InputStatus] per declared input, in declaration order."""
        return [self._status(spec, latest.get(spec.name), now) for spec in self.specs]

    def problem(self, latest: dict, now: float):
        """-> None, or the InputStatus of the first unusable input (cheap when all are ok: it
        runs on every control step)."""
        for spec in self.specs:
            got = latest.get(spec.name)
            if (got is None or (spec.max_age and now - got[0] > spec.max_age)
                    or got[2] != spec.frame or not got[3]):
                return self._status(spec, got, now)
        return None

    def __call__(self, names, positions, velocities, latest: dict, now: float) -> np.ndarray:
        if not self.specs:
            return self.joints(names, positions, velocities)
        problem = self.problem(latest, now)
        if problem is not None:
            raise ValueError(problem.describe())
        obs = np.empty(len(self.terms), dtype=np.float32)
        obs[self._joint_slots] = self.joints(names, positions, velocities)
        for spec, (slots, values_at) in zip(self.specs, self._slots):
            obs[slots] = latest[spec.name][1][values_at]
        for slot, (ka, ja), (kb, jb) in self._offsets:
            obs[slot] = (latest[self.specs[kb].name][1][jb]
                         - latest[self.specs[ka].name][1][ja])
        return obs

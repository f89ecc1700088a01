"""What a task is: a MuJoCo model, a control rate, bounds, a vectorized reward over batched
(states, actions), an observation function of the state, and optionally a success metric, a
failure test and planning-only shaping (`planning_reward`).

States are MuJoCo FULLPHYSICS state vectors ([time, qpos, qvel, act, ...]), as returned by
`mujoco.rollout`. Rewards see a whole batch of trajectories at once:
`reward(states (B, H+1, nstate), actions (B, H, nu)) -> (B, H)`, where states[:, t] is the
state before actions[:, t] and states[:, t+1] the state after it (frame_skip substeps later).
"""
import dataclasses
import importlib.util
import re
from pathlib import Path

import mujoco
import numpy as np

from ..config import from_dict
from ..errors import ApexError
from ..resources import model_path

STATE_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS


def resolve_model_file(model_file: str) -> Path:
    """'cartpole.xml' -> models/cartpole.xml; 'gymnasium:half_cheetah.xml' -> the file shipped
    inside the installed gymnasium package."""
    if model_file.startswith('gymnasium:'):
        spec = importlib.util.find_spec('gymnasium')
        if spec is None:
            raise ApexError(f'model {model_file}: the gymnasium package is not installed')
        assets = Path(spec.origin).parent / 'envs' / 'mujoco' / 'assets'
        path = assets / model_file.split(':', 1)[1]
    else:
        path = Path(model_file) if Path(model_file).is_absolute() else model_path(model_file)
    if not path.is_file():
        raise ApexError(f'model file not found: {path}')
    return path


def load_model(model_file: str) -> mujoco.MjModel:
    path = resolve_model_file(model_file)
    text = path.read_text()
    # gymnasium's half_cheetah.xml uses the deprecated compiler attribute settotalmass; apply
    # it after compiling, as MuJoCo advises (gives identical masses and inertias, no warning).
    total = re.search(r'settotalmass="([^"]+)"', text)
    try:
        if total is None:
            return mujoco.MjModel.from_xml_path(str(path))
        spec = mujoco.MjSpec.from_string(re.sub(r'\s*settotalmass="[^"]+"', '', text))
        spec.modelfiledir = str(path.parent)
        model = spec.compile()
    except ValueError as e:
        raise ApexError(f'{path}: MuJoCo cannot load this model: {e}') from None
    mujoco.mj_setTotalmass(model, float(total.group(1)))
    mujoco.mj_setConst(model, mujoco.MjData(model))
    return model


@dataclasses.dataclass(frozen=True)
class StateLayout:
    """Column indices of the FULLPHYSICS state vector."""
    size: int
    time: int
    qpos: slice
    qvel: slice
    act: slice

    @classmethod
    def of(cls, model):
        nq, nv, na = model.nq, model.nv, model.na
        return cls(size=mujoco.mj_stateSize(model, STATE_SPEC), time=0,
                   qpos=slice(1, 1 + nq), qvel=slice(1 + nq, 1 + nq + nv),
                   act=slice(1 + nq + nv, 1 + nq + nv + na))


def get_state(model, data) -> np.ndarray:
    state = np.empty(mujoco.mj_stateSize(model, STATE_SPEC))
    mujoco.mj_getState(model, data, state, STATE_SPEC)
    return state


def set_state(model, data, state):
    mujoco.mj_setState(model, data, np.asarray(state, dtype=np.float64), STATE_SPEC)


_TERM = re.compile(r'^(qpos|qvel|cos|sin):([A-Za-z0-9_./-]+)(?:\[(\d+)\])?$')


class Observation:
    """Observation as a named layout of state quantities, e.g. ('qpos:slider', 'cos:hinge').

    Terms: qpos:J, qvel:J, cos:J, sin:J (cos/sin of a joint position); J[i] picks coordinate i
    of a multi-coordinate joint (free, ball). The names are what a robot's /joint_states
    carries, so the same layout can be rebuilt on hardware from joint names alone.
    """

    def __init__(self, model, terms):
        layout = StateLayout.of(model)
        cols, funcs = [], []
        for term in terms:
            m = _TERM.match(term)
            if m is None:
                raise ApexError(f'observation term {term!r}: expected qpos|qvel|cos|sin:JOINT[i]')
            kind, joint, coord = m.group(1), m.group(2), m.group(3)
            jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, joint)
            if jid < 0:
                raise ApexError(f'observation term {term!r}: the model has no joint {joint!r}')
            if kind == 'qvel':
                start, width = model.jnt_dofadr[jid], _joint_width(model, jid, 'qvel')
                base = layout.qvel.start
            else:
                start, width = model.jnt_qposadr[jid], _joint_width(model, jid, 'qpos')
                base = layout.qpos.start
            i = int(coord or 0)
            if i >= width or (coord is None and width > 1):
                raise ApexError(f'observation term {term!r}: joint {joint!r} has {width} '
                                f'{"velocity" if kind == "qvel" else "position"} coordinates; '
                                f'write {kind}:{joint}[i] with i < {width}')
            cols.append(base + start + i)
            funcs.append(kind)
        self.terms = tuple(terms)
        self.columns = np.array(cols, dtype=np.int64)
        funcs = np.array(funcs)
        self._cos = np.flatnonzero(funcs == 'cos')
        self._sin = np.flatnonzero(funcs == 'sin')

    @property
    def size(self) -> int:
        return len(self.terms)

    def __call__(self, states: np.ndarray) -> np.ndarray:
        """states (..., nstate) -> observations (..., size), float32."""
        x = states[..., self.columns]
        if self._cos.size:
            x[..., self._cos] = np.cos(x[..., self._cos])
        if self._sin.size:
            x[..., self._sin] = np.sin(x[..., self._sin])
        return x.astype(np.float32)


def _joint_width(model, jid, kind):
    jtype = int(model.jnt_type[jid])  # numpy ints and mujoco enums compare unreliably
    if jtype == int(mujoco.mjtJoint.mjJNT_FREE):
        return 7 if kind == 'qpos' else 6
    if jtype == int(mujoco.mjtJoint.mjJNT_BALL):
        return 4 if kind == 'qpos' else 3
    return 1


def joint_terms(model, kind, skip=()):
    """All observation terms of one kind for every joint coordinate, except `skip` terms."""
    terms = []
    for jid in range(model.njnt):
        name = model.joint(jid).name
        width = _joint_width(model, jid, kind)
        for i in range(width):
            term = f'{kind}:{name}' if width == 1 else f'{kind}:{name}[{i}]'
            if term not in skip:
                terms.append(term)
    return tuple(terms)


class Task:
    """Base class. A task file subclasses it, sets the class attributes and writes `reward`.

    Reward weights and other tunables live in the nested dataclass `Params`; their values come
    from the task's YAML (`task.params`) and are validated key by key.
    """
    name: str = ''
    model_file: str = ''          # under models/, or 'gymnasium:<file>.xml'
    frame_skip: int = 1           # physics substeps per control step
    episode_steps: int = 100      # control steps per episode
    reset_noise: float = 0.0      # uniform noise on qpos and qvel at reset

    @dataclasses.dataclass
    class Params:
        pass

    def __init__(self, params: dict | None = None, episode_steps: int | None = None,
                 where: str = 'task.params'):
        self.params = from_dict(self.Params, params or {}, where)
        if episode_steps is not None:
            if episode_steps < 1:
                raise ApexError(f'task.episode_steps: must be >= 1, got {episode_steps}')
            self.episode_steps = episode_steps
        self.model = load_model(self.model_file)
        self.layout = StateLayout.of(self.model)
        self.observation = Observation(self.model, self.obs_terms())
        m = self.model
        if m.nu == 0:
            raise ApexError(f'task {self.name}: model has no actuators')
        if not np.all(m.actuator_ctrllimited):
            raise ApexError(f'task {self.name}: every actuator needs a ctrlrange (action bounds)')
        self.action_low = m.actuator_ctrlrange[:, 0].copy()
        self.action_high = m.actuator_ctrlrange[:, 1].copy()
        self.dt = m.opt.timestep * self.frame_skip

    # --- what a task file provides -------------------------------------------------------
    def obs_terms(self) -> tuple:
        """Observation layout; default: every qpos then every qvel coordinate."""
        return joint_terms(self.model, 'qpos') + joint_terms(self.model, 'qvel')

    def reward(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """The task's reward: what an episode's return sums (and what papers report)."""
        raise NotImplementedError

    def planning_reward(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """What planners maximize: `reward` plus any shaping that keeps the planner from an
        exploit and that returns do not count. Default: `reward`."""
        return self.reward(states, actions)

    def reset(self, data, rng: np.random.Generator):
        """Put `data` in a (randomized) initial state."""
        m = self.model
        mujoco.mj_resetData(m, data)
        n = self.reset_noise
        data.qpos[:] = m.qpos0 + rng.uniform(-n, n, m.nq)
        data.qvel[:] = rng.uniform(-n, n, m.nv)
        mujoco.mj_forward(m, data)

    def success(self, states: np.ndarray):
        """Whether an episode's states (T+1, nstate) count as success; None if undefined."""
        return None

    def failed(self, states: np.ndarray):
        """Per state (..., nstate) -> bool: a state the task cannot usefully go on from (a
        fallen or stalled robot); None if undefined. APEX can end DAgger relabelling there."""
        return None

    # --- derived -------------------------------------------------------------------------
    @property
    def nu(self) -> int:
        return self.model.nu

    @property
    def obs_dim(self) -> int:
        return self.observation.size

    def observe(self, states: np.ndarray) -> np.ndarray:
        return self.observation(states)

    def actuated_joints(self) -> list:
        """Joint names in actuator order (the order of the command vector)."""
        m = self.model
        names = []
        for a in range(m.nu):
            if int(m.actuator_trntype[a]) != int(mujoco.mjtTrn.mjTRN_JOINT):
                raise ApexError(f'task {self.name}: actuator {m.actuator(a).name} does not '
                                'drive a joint')
            names.append(m.joint(m.actuator_trnid[a, 0]).name)
        return names

    def qpos(self, states):
        return states[..., self.layout.qpos]

    def qvel(self, states):
        return states[..., self.layout.qvel]

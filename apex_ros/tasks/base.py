"""What a task is: a MuJoCo model, a control rate, bounds, a vectorized reward over batched
(states, actions), an observation function of the state, and optionally a success metric, a
failure test and planning-only shaping (`planning_reward`).

States are MuJoCo FULLPHYSICS state vectors ([time, qpos, qvel, act, ...]), as returned by
`mujoco.rollout`. Rewards see a whole batch of trajectories at once:
`reward(states (B, H+1, nstate), actions (B, H, nu)) -> (B, H)`, where states[:, t] is the
state before actions[:, t] and states[:, t+1] the state after it (frame_skip substeps later).
"""
import dataclasses

import mujoco
import numpy as np

from ..config import from_dict
from ..errors import ApexError
from ..sim.models import load_model
from ..sim.observation import Observation, joint_terms
from ..sim.state import StateLayout


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

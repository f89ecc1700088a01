"""What a task is: a MuJoCo model, a control rate, bounds, a vectorized reward over batched
(states, actions), an observation function of the state, and optionally a success metric, a
failure test and planning-only shaping (`planning_reward`).

States are MuJoCo FULLPHYSICS state vectors ([time, qpos, qvel, act, ...]), as returned by
`mujoco.rollout`, followed by the task's extra state (`extra_state`): what the task's state
holds beyond MjData, such as a goal, a per-episode model parameter (written into the model by
`prepare`) or targets integrated from the actions (`actuate`). Every rollout, planner,
observation, dataset, bag and node carries the whole vector. Rewards see a whole batch of
trajectories at once:
`reward(states (B, H+1, nstate), actions (B, H, nu)) -> (B, H)`, where states[:, t] is the
state before actions[:, t] and states[:, t+1] the state after it (frame_skip substeps later).
"""
import dataclasses
import importlib
from pathlib import Path

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
    model_file: str = ''          # under models/ (a task of another package: relative to its
                                  # module), 'gymnasium[_robotics]:<file>.xml', or an absolute
                                  # path
    config_file: str = ''         # a task of another package: its default config, relative to
                                  # its module ('' = the defaults); apex_ros's: config/<name>.yaml
    frame_skip: int = 1           # physics substeps per control step
    episode_steps: int = 100      # control steps per episode
    reset_noise: float = 0.0      # uniform noise on qpos and qvel at reset
    extra_state: dict = {}        # {block name: size} appended to the physics state
    # What the action commands on a robot (a bundle's `command`, apex_ros.deploy.command,
    # without low/high). {} = derived from the actuators: effort for motors, position for
    # position servos. A task whose `actuate` maps end-effector displacements declares
    # {'interface': 'cartesian', 'message': 'geometry_msgs/TwistStamped', 'frame': ...,
    #  'axes': ['x', 'y', 'z'], 'scale': metres per unit action}.
    command_interface: dict = {}

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
        self.model = self.build_model()
        self.layout = StateLayout.of(self.model, self.extra_state)
        self.observation = Observation(self.model, self.obs_terms(), self.layout, self.prepare)
        m = self.model
        if m.nu == 0:
            raise ApexError(f'task {self.name}: model has no actuators')
        self.action_low, self.action_high = (np.array(b, dtype=np.float64)
                                             for b in self.action_bounds())
        self.dt = m.opt.timestep * self.frame_skip

    # --- what a task file provides -------------------------------------------------------
    def build_model(self) -> mujoco.MjModel:
        """The task's model; a task that edits the loaded model (gains, weld poses) overrides
        this and calls super()."""
        return load_model(self.model_file, self.files_dir())

    @classmethod
    def files_dir(cls, attribute: str = 'model_file') -> Path | None:
        """The directory `attribute` (model_file, config_file) is relative to: the module of
        the class that sets it, when that class is outside apex_ros (a task of another package
        keeps its files beside its module); None for apex_ros's own (models/, config/)."""
        owner = next(c for c in cls.__mro__ if attribute in vars(c))
        if owner.__module__.split('.')[0] == 'apex_ros':
            return None
        return Path(importlib.import_module(owner.__module__).__file__).parent

    def action_bounds(self) -> tuple:
        """(low, high) of the task's action. Default: the actuators' ctrlrange (the action is
        the control); a task whose action is something else (an end-effector displacement)
        overrides this together with `actuate`."""
        m = self.model
        if not np.all(m.actuator_ctrllimited):
            raise ApexError(f'task {self.name}: every actuator needs a ctrlrange (action bounds)')
        return m.actuator_ctrlrange[:, 0].copy(), m.actuator_ctrlrange[:, 1].copy()

    def actuate(self, states0: np.ndarray, actions: np.ndarray):
        """What the physics takes for `actions` (B, H, nu) from start states (B, nstate):
        (ctrl (B, H, model.nu), mocap_pos (B, H, nmocap, 3) or None, extra state after each
        step (B, H, extra size)). Must depend on the start state's extra columns only (not on
        MjData), so one batched `mujoco.rollout` call can simulate it. Default: the action is
        the control, the extra state stays as it is."""
        extra = np.broadcast_to(states0[:, None, self.layout.physics:],
                                actions.shape[:2] + (self.layout.extra_size,))
        return actions, None, extra

    def actuate_feedback(self, states: np.ndarray, actions: np.ndarray):
        """For a task whose command is relative to where the robot is (an end-effector
        displacement from the current pose): one control step's (ctrl (B, model.nu),
        mocap_pos (B, nmocap, 3) or None, mocap_quat (B, nmocap, 4) or None) from the states
        (B, nstate) it starts from and the actions (B, nu). Rollouts then run one batched
        `mujoco.rollout` call per control step, each from a zero solver warm start, and the
        Simulation zeroes it before each step too, so the two agree bitwise. The extra state
        stays as it is. Default: not such a task (`actuate` maps the action, or it is the
        control)."""
        raise NotImplementedError

    def prepare(self, model: mujoco.MjModel, state: np.ndarray):
        """Write the model parameters that live in the extra state of `state` (nstate,) into
        `model` (a copy owned by the caller) before simulating from it. Default: none."""

    def nominal_action(self, state: np.ndarray) -> np.ndarray:
        """The action (nu,) a planner's first nominal sequence repeats from `state` (nstate,),
        before it has a plan or a policy. Default: the middle of the action bounds; a task
        whose action is a position target returns the current position (hold)."""
        return (self.action_low + self.action_high) / 2

    def initial_extra(self) -> np.ndarray:
        """Extra state of a state built from joints alone (a robot's /joint_states)."""
        return np.zeros(self.layout.extra_size)

    def inputs(self) -> tuple:
        """The external inputs a deployment reads besides /joint_states
        (apex_ros.deploy.inputs.InputSpec: an object's pose, a goal), mapped into state
        coordinates. Every observation term /joint_states cannot carry (extra:*, coordinates of
        free or ball joints) must be filled by one, else export refuses the task. Default:
        none."""
        return ()

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
        """Put `data` in a (randomized) initial state; return the extra state (None if the
        task has none). The caller writes it into its model (`prepare`) and runs mj_forward."""
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
        """Size of the task's action (the model's actuators unless `actuate` maps it)."""
        return len(self.action_low)

    @property
    def feedback(self) -> bool:
        """Whether the controls of a step depend on the state it starts from
        (`actuate_feedback`)."""
        return type(self).actuate_feedback is not Task.actuate_feedback

    @property
    def drives_targets(self) -> bool:
        """Whether the action is mapped by `actuate` or `actuate_feedback` (rather than being
        the control)."""
        return type(self).actuate is not Task.actuate or self.feedback

    def extra(self, states: np.ndarray, name: str) -> np.ndarray:
        """The extra-state block `name` of states (..., nstate)."""
        return states[..., self.layout.extra[name]]

    def check_states(self, states, what: str = 'state'):
        """`states` as an array, or an ApexError naming the task and the expected layout."""
        return self.layout.check(states, f'task {self.name}: {what}')

    @property
    def obs_dim(self) -> int:
        return self.observation.size

    def observe(self, states: np.ndarray) -> np.ndarray:
        return self.observation(states)

    def actuated_joints(self) -> list:
        """Joint names in actuator order (the order of the command vector)."""
        m = self.model
        if self.drives_targets:
            raise ApexError(f'task {self.name}: its action is not one control per joint '
                            '(it is mapped by the task\'s actuate)')
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

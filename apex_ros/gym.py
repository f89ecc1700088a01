"""Every apex_ros task as a gymnasium environment, for RL tooling (SAC, PPO, ...):

    import gymnasium
    import apex_ros.gym  # registers apex_ros/<task>-v0 for every task in the registry
    env = gymnasium.make('apex_ros/halfcheetah_run-v0')
    # or, without the import: gymnasium.make('apex_ros.gym:apex_ros/halfcheetah_run-v0')

gymnasium 1.x loads no plugins through entry points; importing the module that registers the
ids (or naming it before the id, as above) is its documented way. The ids are the registry's
tasks when this module is imported: the built-in ones and those of the `apex_ros.tasks`
entry-point group; a `module:Class` task is made directly with `ApexEnv('module:Class')`.

The task is built as `apex-ros eval` builds it: its config (config/<task>.yaml, or `config=`)
with `episode_steps=` and `params=` applied as `--set task.*` would. Then
- observation: `Task.observe` of the task's state, float32, Box(-inf, inf, (obs_dim,));
- action: Box(task.action_low, task.action_high) (the task's action, which may differ from
  the model's actuators); actions are clipped to it, as in every apex_ros episode;
- reward: `Task.reward` of the step (what `apex-ros eval` sums), not `planning_reward`;
- terminated: always False (no task has a terminal state; failure is reported in info);
- truncated: after `task.episode_steps` steps;
- info: `is_success` (Task.success of the episode so far) and `failed` (Task.failed of the
  current state), each only where the task defines it;
- reset(seed=s): `Simulation.reset(s)`, the initial state of `apex-ros eval`'s episode with
  seed s; reset() without a seed draws one from the env's generator (`np_random`);
- render_mode 'rgb_array': MuJoCo's offscreen renderer (headless: MUJOCO_GL=egl).
`env.unwrapped.sim` is the apex_ros Simulation (its full state: `.state()`).
"""
import gymnasium
import mujoco
import numpy as np

from .config.run import load_run_config
from .errors import ApexError
from .sim.simulation import Simulation
from .tasks import Task, known_tasks

NAMESPACE = 'apex_ros'
VERSION = 0


def env_id(task_name: str) -> str:
    """'halfcheetah_run' -> 'apex_ros/halfcheetah_run-v0'."""
    return f'{NAMESPACE}/{task_name}-v{VERSION}'


def configured_task(task: str, config=None, episode_steps: int | None = None,
              params: dict | None = None) -> Task:
    """The task as `apex-ros eval --task TASK [--config CONFIG] --set task.*=...` makes it."""
    task_section = {key: value for key, value in
                    (('episode_steps', episode_steps), ('params', params)) if value is not None}
    overrides = {'task': task_section} if task_section else None
    return load_run_config(task, config, overrides=overrides).make_task()


class ApexEnv(gymnasium.Env):
    """One apex_ros task (a name, or a Task instance) as a gymnasium Env; see the module."""
    metadata = {'render_modes': ['rgb_array']}

    def __init__(self, task, config=None, episode_steps: int | None = None,
                 params: dict | None = None, render_mode: str | None = None,
                 width: int = 480, height: int = 480):
        self.task = task if isinstance(task, Task) else configured_task(task, config,
                                                                       episode_steps, params)
        self.sim = Simulation(self.task)
        self.metadata = {**self.metadata, 'render_fps': round(1 / self.task.dt)}
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (self.task.obs_dim,),
                                                      np.float32)
        self.action_space = gymnasium.spaces.Box(self.task.action_low.astype(np.float32),
                                                 self.task.action_high.astype(np.float32),
                                                 dtype=np.float32)
        if render_mode is not None and render_mode not in self.metadata['render_modes']:
            raise ApexError(f'render_mode {render_mode!r}: supported: rgb_array')
        self.render_mode = render_mode
        self._size = (height, width)
        self._renderer = self._camera = None
        self._states = []

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(2 ** 63))
        self._states = [self.sim.reset(seed)]
        return self._observe(), self._info()

    def step(self, action):
        reward, state = self.sim.step(np.asarray(action, dtype=np.float64))
        self._states.append(state)
        return self._observe(), reward, False, self.sim.done, self._info()

    def _observe(self) -> np.ndarray:
        return self.task.observe(self._states[-1][None])[0]

    def _info(self) -> dict:
        info = {}
        if type(self.task).success is not Task.success:
            success = self.task.success(np.array(self._states))
            if success is not None:
                info['is_success'] = bool(success)
        if type(self.task).failed is not Task.failed:
            failed = self.task.failed(self._states[-1])
            if failed is not None:
                info['failed'] = bool(failed)
        return info

    def render(self):
        if self.render_mode is None:
            return None
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.sim.model, *self._size)
            self._camera = mujoco.MjvCamera()
            mujoco.mjv_defaultFreeCamera(self.sim.model, self._camera)
            if self.sim.model.nbody > 1:  # follow the robot's first body (a running cheetah)
                self._camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
                self._camera.trackbodyid = 1
                # the default distance frames the floor; frame the robot's geoms instead
                m, d = self.sim.model, self.sim.data
                robot = m.geom_bodyid > 0
                reach = (np.linalg.norm(d.geom_xpos[robot] - d.xpos[1], axis=1)
                         + m.geom_rbound[robot])
                self._camera.distance = 2.5 * reach.max()
        self._renderer.update_scene(self.sim.data, self._camera)
        return self._renderer.render()

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def register_all():
    """Register `apex_ros/<task>-v0` for every task the registry knows now."""
    for name in known_tasks():
        if env_id(name) not in gymnasium.registry:
            gymnasium.register(env_id(name), entry_point=f'{__name__}:ApexEnv',
                               kwargs={'task': name})


register_all()

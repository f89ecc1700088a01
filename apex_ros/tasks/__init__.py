"""Task registry. Adding a task: one file in this folder and one line in TASKS."""
from ..errors import ApexError
from .adroit_door import AdroitDoor
from .base import Task
from .cartpole import CartpoleSwingup
from .halfcheetah import HalfCheetahRun
from .humanoid_standup import HumanoidStandup

TASKS = {cls.name: cls for cls in (
    AdroitDoor,
    CartpoleSwingup,
    HalfCheetahRun,
    HumanoidStandup,
)}
DEFAULT_TASK = CartpoleSwingup.name


def task_class(name: str) -> type:
    if name not in TASKS:
        raise ApexError(f'unknown task {name!r}; known tasks: {", ".join(sorted(TASKS))}')
    return TASKS[name]


def make_task(name: str, params: dict | None = None, episode_steps: int | None = None) -> Task:
    return task_class(name)(params, episode_steps=episode_steps)


__all__ = ['TASKS', 'DEFAULT_TASK', 'Task', 'make_task', 'task_class']

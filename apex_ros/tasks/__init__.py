"""Task registry. Adding a task to apex_ros: one file in this folder and one line in TASKS.

A task kept in another package needs no edit here; any command, config or node takes it as
  - a `module:Class` name (`--task my_robot.tasks:Reach`, `task:=my_robot.tasks:Reach`), or
  - a name the package registers in the entry-point group `apex_ros.tasks`
    (pyproject: [project.entry-points."apex_ros.tasks"] reach = "my_robot.tasks:Reach").
Its default config is the file its class names in `config_file` (relative to its module),
else the dataclass defaults.
"""
import importlib
import importlib.metadata
from pathlib import Path

from ..errors import ApexError
from ..resources import config_path
from .adroit_door import AdroitDoor
from .base import Task
from .cartpole import CartpoleSwingup
from .fetch_pick_and_place import FetchPickAndPlace
from .halfcheetah import HalfCheetahRun
from .humanoid_standup import HumanoidStandup
from .ur5e_reach import UR5eReach

TASKS = {cls.name: cls for cls in (
    AdroitDoor,
    CartpoleSwingup,
    HalfCheetahRun,
    HumanoidStandup,
    FetchPickAndPlace,
    UR5eReach,
)}
DEFAULT_TASK = CartpoleSwingup.name
ENTRY_POINT_GROUP = 'apex_ros.tasks'


def _entry_points() -> dict:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def known_tasks() -> list:
    """Built-in task names and those registered by installed packages."""
    return sorted(set(TASKS) | set(_entry_points()))


def _checked(cls, name: str) -> type:
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ApexError(f'task {name!r}: {cls!r} is not a subclass of apex_ros.tasks.Task')
    return cls


def task_class(name: str) -> type:
    if name in TASKS:
        return TASKS[name]
    if ':' in name:
        module, _, attr = name.partition(':')
        try:
            return _checked(getattr(importlib.import_module(module), attr), name)
        except (ImportError, AttributeError) as e:
            raise ApexError(f'task {name!r}: cannot load {attr!r} from module {module!r}: '
                            f'{e}') from None
    entry = _entry_points().get(name)
    if entry is None:
        raise ApexError(f'unknown task {name!r}; known tasks: {", ".join(known_tasks())} '
                        '(or MODULE:CLASS for a task in your own package)')
    try:
        return _checked(entry.load(), name)
    except (ImportError, AttributeError) as e:
        raise ApexError(f'task {name!r} (entry point {entry.value} of '
                        f'{ENTRY_POINT_GROUP}): cannot load it: {e}') from None


def task_config_file(name: str) -> Path | None:
    """The default config of a task defined outside apex_ros: its class's `config_file`
    (relative to the module of the class that sets it; config/ for apex_ros's), or None."""
    cls = task_class(name)
    if not cls.config_file:
        return None
    directory = cls.files_dir('config_file')
    path = directory / cls.config_file if directory else config_path(cls.config_file)
    if not path.is_file():
        raise ApexError(f'task {name!r}: its config_file {path} does not exist')
    return path


def make_task(name: str, params: dict | None = None, episode_steps: int | None = None) -> Task:
    return task_class(name)(params, episode_steps=episode_steps)


__all__ = ['TASKS', 'DEFAULT_TASK', 'ENTRY_POINT_GROUP', 'Task', 'known_tasks', 'make_task',
           'task_class', 'task_config_file']

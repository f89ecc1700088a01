"""A bundle's command interface: what the policy's action becomes on the robot side.

numpy only (the robot-side executor reads it). Stored in a bundle's metadata as `command`:
  interface   'effort' | 'position' (one value per joint: std_msgs/Float64MultiArray on
              /<controller>/commands, a ros2_control forward controller) | 'cartesian'
              (end-effector displacement per control step)
  message     'std_msgs/Float64MultiArray' for joint interfaces; 'geometry_msgs/TwistStamped'
              (velocity = displacement x control rate) or 'geometry_msgs/PoseStamped' (the
              displacement as a pose relative to `frame`, the end effector's frame: a
              Cartesian controller resolves it to current pose + displacement) for 'cartesian'
  controller  default controller name (the topic is /<controller>/commands)
  frame       (cartesian) the header's frame_id
  axes        (cartesian) per action component: one of AXES (x y z linear, rx ry rz rotation)
              or GRIPPER: a gripper command sent on its own, as std_msgs/Float64MultiArray
              (one value, unscaled) on /<gripper_controller>/commands (a ros2_control
              forward controller for the fingers; its hold is 0)
  scale       (cartesian) metres (radians) of displacement per unit of action
  gripper_controller  (cartesian with a GRIPPER axis) the gripper's controller name
  low, high   per command value: the bundle's action bounds intersected with the model's joint
              limits (position range, or actuator force range for effort), in command units
              (cartesian: action units, before `scale`); null = unbounded. The executor clamps
              every command it publishes, holds included, to these.
Bundles of format version 1 have no `command` block: they are effort bundles on
effort_controller limited by their action bounds (LEGACY).
"""
import dataclasses

import numpy as np

from ..errors import ApexError

INTERFACES = ('effort', 'position', 'cartesian')
JOINT_MESSAGE = 'std_msgs/Float64MultiArray'
CARTESIAN_MESSAGES = ('geometry_msgs/TwistStamped', 'geometry_msgs/PoseStamped')
AXES = ('x', 'y', 'z', 'rx', 'ry', 'rz')
GRIPPER = 'gripper'
DEFAULT_GRIPPER_CONTROLLER = 'gripper_controller'
DEFAULT_CONTROLLERS = {'effort': 'effort_controller', 'position': 'forward_position_controller',
                       'cartesian': 'cartesian_controller'}
# The interface's own hold: zero effort; the measured positions; no displacement.
NATURAL_HOLD = {'effort': 'zero', 'position': 'position', 'cartesian': 'zero'}


@dataclasses.dataclass(frozen=True)
class CommandInterface:
    interface: str
    message: str
    controller: str
    low: np.ndarray           # (n,) command limits, -inf where unbounded
    high: np.ndarray          # (n,)
    frame: str = ''
    axes: tuple = ()
    scale: float = 1.0
    gripper_controller: str = ''   # '' without a GRIPPER axis

    @property
    def joint_space(self) -> bool:
        return self.interface != 'cartesian'

    @property
    def gripper(self) -> int | None:
        """Index of the GRIPPER component in the command vector, or None."""
        return self.axes.index(GRIPPER) if GRIPPER in self.axes else None

    @property
    def motion_axes(self) -> list:
        """[(command index, index in AXES)] of the end-effector displacement components."""
        return [(i, AXES.index(a)) for i, a in enumerate(self.axes) if a != GRIPPER]

    def describe(self) -> str:
        """'position (std_msgs/Float64MultiArray to forward_position_controller)'."""
        frame = f' in frame {self.frame!r}' if self.frame else ''
        axes = f', axes {list(self.axes)}' if self.axes else ''
        gripper = (f', gripper {JOINT_MESSAGE} to {self.gripper_controller}'
                   if self.gripper is not None else '')
        return f'{self.interface} ({self.message}{frame} to {self.controller}{axes}{gripper})'

    def same_as(self, other) -> bool:
        fields = ('interface', 'message', 'frame', 'axes', 'scale', 'gripper_controller')
        return all(getattr(self, f) == getattr(other, f) for f in fields)

    def clamp(self, command: np.ndarray) -> np.ndarray:
        return np.minimum(np.maximum(command, self.low), self.high)

    def to_meta(self) -> dict:
        meta = {'interface': self.interface, 'message': self.message,
                'controller': self.controller, 'low': bounds_to_json(self.low),
                'high': bounds_to_json(self.high)}
        if not self.joint_space:
            meta.update(frame=self.frame, axes=list(self.axes), scale=self.scale)
        if self.gripper is not None:
            meta['gripper_controller'] = self.gripper_controller
        return meta


def bounds_to_json(values) -> list:
    return [None if not np.isfinite(v) else float(v) for v in values]


def _bounds_from_json(values, sign) -> np.ndarray:
    return np.array([sign * np.inf if v is None else float(v) for v in values])


def from_meta(command: dict, size: int, where: str) -> CommandInterface:
    """A bundle's `command` block -> CommandInterface; ApexError naming `where` and the field."""
    try:
        kind, message = command['interface'], command['message']
        controller = command.get('controller') or DEFAULT_CONTROLLERS.get(kind, '')
        low = _bounds_from_json(command['low'], -1)
        high = _bounds_from_json(command['high'], 1)
    except (KeyError, TypeError, ValueError) as e:
        raise ApexError(f'{where}: command interface metadata lacks or mangles {e}') from None
    if kind not in INTERFACES:
        raise ApexError(f'{where}: command.interface {kind!r}, expected one of {INTERFACES}')
    if low.shape != (size,) or high.shape != (size,):
        raise ApexError(f'{where}: command.low/high need {size} values, got {low.size}/'
                        f'{high.size}')
    if kind != 'cartesian':
        if message != JOINT_MESSAGE:
            raise ApexError(f'{where}: command.message {message!r}: a {kind} interface sends '
                            f'{JOINT_MESSAGE}')
        return CommandInterface(kind, message, controller, low, high)
    axes = tuple(command.get('axes') or ())
    if message not in CARTESIAN_MESSAGES:
        raise ApexError(f'{where}: command.message {message!r}: a cartesian interface sends '
                        f'one of {CARTESIAN_MESSAGES}')
    allowed = AXES + (GRIPPER,)
    if len(axes) != size or not set(axes) <= set(allowed) or len(set(axes)) != len(axes):
        raise ApexError(f'{where}: command.axes {list(axes)}: one distinct axis of {allowed} '
                        f'per action component ({size})')
    if axes == (GRIPPER,):
        raise ApexError(f'{where}: command.axes {list(axes)}: a cartesian interface needs at '
                        f'least one of {AXES} besides {GRIPPER!r}')
    if not command.get('frame'):
        raise ApexError(f'{where}: command.frame: a cartesian interface needs the frame its '
                        'displacements are expressed in')
    try:
        scale = float(command.get('scale', 1.0))
    except (TypeError, ValueError):
        scale = float('nan')
    if not np.isfinite(scale) or scale <= 0:
        raise ApexError(f'{where}: command.scale {command.get("scale")!r}: expected a finite '
                        'number > 0 (metres or radians per unit of action)')
    gripper_controller = ''
    if GRIPPER in axes:
        gripper_controller = command.get('gripper_controller', DEFAULT_GRIPPER_CONTROLLER)
        if not isinstance(gripper_controller, str) or not gripper_controller:
            raise ApexError(f'{where}: command.gripper_controller {gripper_controller!r}: '
                            'expected the name of the gripper\'s forward controller')
        if gripper_controller == controller:
            raise ApexError(f'{where}: command.gripper_controller {gripper_controller!r} is '
                            'the Cartesian controller\'s name: they need their own topics')
    elif 'gripper_controller' in command:
        raise ApexError(f'{where}: command.gripper_controller without a {GRIPPER!r} axis in '
                        'command.axes')
    return CommandInterface(kind, message, controller, low, high, str(command['frame']), axes,
                            scale, gripper_controller)


def declared_cartesian(task) -> CommandInterface | None:
    """The cartesian interface `task` declares (Task.command_interface), its limits the
    task's action bounds; None if it declares none (a joint-space task)."""
    declared = dict(getattr(task, 'command_interface', None) or {})
    if declared.get('interface') != 'cartesian':
        return None
    declared.update(low=task.action_low.tolist(), high=task.action_high.tolist())
    return from_meta(declared, task.nu, f'task {task.name}: command_interface')


def legacy(action_low, action_high) -> CommandInterface:
    """What a format-version-1 bundle (no `command` block) commands."""
    return CommandInterface('effort', JOINT_MESSAGE, DEFAULT_CONTROLLERS['effort'],
                            np.asarray(action_low, float), np.asarray(action_high, float))

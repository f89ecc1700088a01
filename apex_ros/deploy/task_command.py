"""The command interface a task's actuators imply (torch-free: the sim node uses it to
choose its hold, the exporter writes it into a bundle's metadata)."""
import mujoco
import numpy as np

from ..errors import ApexError
from . import command


def actuator_kind(model, a: int) -> str | None:
    """'effort' for a motor (fixed gain, no bias), 'position' for a position-style servo
    (fixed gain kp > 0, affine bias -kv' * length with kv' > 0: the command is a joint target;
    kv' = kp for MuJoCo's <position>, DAPG's Adroit arm has kp 500 against 200), else None."""
    gaintype, biastype = int(model.actuator_gaintype[a]), int(model.actuator_biastype[a])
    kp, bias = model.actuator_gainprm[a, 0], model.actuator_biasprm[a, :3]
    if gaintype != mujoco.mjtGain.mjGAIN_FIXED:
        return None
    if biastype == mujoco.mjtBias.mjBIAS_NONE:
        return 'effort'
    if biastype == mujoco.mjtBias.mjBIAS_AFFINE and bias[0] == 0 and kp > 0 and bias[1] < 0:
        return 'position'
    return None


def joint_command_limits(task, kind: str) -> tuple:
    """(low, high) per actuator in command (ctrl) units from the model's joints: a position
    servo's target = gear x joint position, limited by the joint's range; a motor's force =
    gain x gear x ctrl, limited by the joint's actuator force range; +-inf where unlimited."""
    m = task.model
    low, high = np.full(m.nu, -np.inf), np.full(m.nu, np.inf)
    for a in range(m.nu):
        j, gear = m.actuator_trnid[a, 0], m.actuator_gear[a, 0]
        if kind == 'position' and m.jnt_limited[j]:
            bounds = gear * m.jnt_range[j]
        elif kind == 'effort' and m.jnt_actfrclimited[j]:
            bounds = m.jnt_actfrcrange[j] / (m.actuator_gainprm[a, 0] * gear)
        else:
            continue
        low[a], high[a] = bounds.min(), bounds.max()
    return low, high


def command_interface(task) -> command.CommandInterface:
    """The task's declared `command_interface` (a dict of the bundle's `command` fields
    without low/high), else one derived from its actuators: effort for motors, position for
    position servos. Limits: the action bounds intersected with the joints' limits
    (cartesian: the action bounds)."""
    cartesian = command.declared_cartesian(task)
    if cartesian is not None:
        return cartesian
    declared = dict(getattr(task, 'command_interface', None) or {})
    where = f'task {task.name}: command_interface'
    if task.drives_targets:
        raise ApexError(f'{where}: the task maps its action by actuate, so it must declare '
                        'its command interface (e.g. cartesian end-effector displacements)')
    kinds = [actuator_kind(task.model, a) for a in range(task.model.nu)]
    kind = declared.get('interface') or kinds[0]
    odd = [task.model.actuator(a).name for a, k in enumerate(kinds) if k != kind]
    if kind not in ('effort', 'position') or odd:
        raise ApexError(f'{where}: the actuators {odd or kinds} are not all {kind or "motors"} '
                        f'(effort) or all position servos; declare the interface')
    joint_low, joint_high = joint_command_limits(task, kind)
    declared.update(interface=kind, message=command.JOINT_MESSAGE,
                    low=command.bounds_to_json(np.maximum(task.action_low, joint_low)),
                    high=command.bounds_to_json(np.minimum(task.action_high, joint_high)))
    return command.from_meta(declared, task.nu, where)

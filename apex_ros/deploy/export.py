"""Export a trained MLPPolicy to a self-describing ONNX policy bundle (see bundle.py)."""
import io
import json
import time
import warnings

import mujoco
import numpy as np
import onnx
import torch

from .. import __version__
from ..errors import ApexError
from ..files import atomic_write_bytes
from . import command
from .bundle import FORMAT, FORMAT_VERSION, METADATA_KEY, PolicyBundle
from .inputs import check_inputs, uncovered_terms


def task_inputs(task) -> list:
    """The task's declared inputs, checked against its model and observation: each filled
    term is a state coordinate of the task and, when the task declares inputs, every
    observation term /joint_states cannot carry is filled by one (else ApexError naming the
    terms). A task declaring none (humanoid_standup: simulation only) keeps its bundles as
    before; an executor refuses those naming the terms it cannot observe."""
    from ..sim.observation import Observation
    specs = check_inputs(list(task.inputs()), f'task {task.name}: inputs')
    for i, spec in enumerate(specs):
        try:
            Observation(task.model, spec.fills, task.layout)
        except ApexError as e:
            raise ApexError(f'task {task.name}: inputs[{i}] ({spec.name}).fills: {e}') from None
    uncovered = uncovered_terms(task.observation.terms, specs)
    if specs and uncovered:
        raise ApexError(f'task {task.name}: observation terms {uncovered} come neither from '
                        '/joint_states nor from a declared input (Task.inputs); a deployed '
                        'policy could not observe them')
    return specs


def task_signature(task) -> dict:
    """The parts of a bundle's metadata that must match the task it runs on."""
    interface = command_interface(task)
    return {
        'task': task.name,
        'obs': {'terms': list(task.observation.terms), 'dim': task.obs_dim},
        'action': {'joints': (task.actuated_joints() if interface.joint_space
                              else list(interface.axes)), 'dim': task.nu,
                   'low': task.action_low.tolist(), 'high': task.action_high.tolist()},
        'control': {'rate_hz': 1.0 / task.dt, 'frame_skip': task.frame_skip},
        'inputs': [spec.to_meta() for spec in task_inputs(task)],
        'command': interface.to_meta(),
    }


def actuator_kind(model, a: int) -> str | None:
    """'effort' for a motor (fixed gain, no bias), 'position' for a position servo (fixed
    gain kp, affine bias -kp * length), else None."""
    gaintype, biastype = int(model.actuator_gaintype[a]), int(model.actuator_biastype[a])
    kp, bias = model.actuator_gainprm[a, 0], model.actuator_biasprm[a, :3]
    if gaintype != mujoco.mjtGain.mjGAIN_FIXED:
        return None
    if biastype == mujoco.mjtBias.mjBIAS_NONE:
        return 'effort'
    if (biastype == mujoco.mjtBias.mjBIAS_AFFINE and bias[0] == 0 and kp > 0
            and np.isclose(bias[1], -kp)):
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


def bundle_metadata(model, task, iteration: int, extra: dict | None = None) -> dict:
    meta = {'format': FORMAT, 'format_version': FORMAT_VERSION, 'package_version': __version__,
            'created': time.strftime('%Y-%m-%dT%H:%M:%S%z'), 'apex_iteration': iteration}
    meta.update(task_signature(task))
    meta['obs'].update(normalization='folded', mean=model.obs_mean.tolist(),
                       std=model.obs_std.tolist())
    meta['extra'] = extra or {}
    return meta


def bundle_bytes(model, task, iteration: int, extra: dict | None = None) -> bytes:
    """The serialized ONNX bundle of `model` (graph with folded normalization + metadata)."""
    model.eval()
    buf = io.BytesIO()
    dummy = torch.zeros(1, task.obs_dim)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo, which needs the extra
        # onnxscript package; for a plain MLP both give the same graph and speed.
        warnings.simplefilter('ignore', DeprecationWarning)
        torch.onnx.export(model, (dummy,), buf, dynamo=False, input_names=['obs'],
                          output_names=['action'],
                          dynamic_axes={'obs': {0: 'batch'}, 'action': {0: 'batch'}})
    proto = onnx.load_from_string(buf.getvalue())
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(bundle_metadata(model, task, iteration, extra))
    proto.doc_string = f'apex_ros policy for {task.name}, APEX iteration {iteration}'
    return proto.SerializeToString()


def export_bundle(model, task, path, iteration: int, extra: dict | None = None):
    """Write the bundle atomically (temp file + rename); returns the loaded PolicyBundle."""
    atomic_write_bytes(path, bundle_bytes(model, task, iteration, extra))
    return PolicyBundle(path)

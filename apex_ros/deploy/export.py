"""Export a trained MLPPolicy to a self-describing ONNX policy bundle (see bundle.py)."""
import io
import json
import time
import warnings

import onnx
import torch

from .. import __version__
from ..errors import ApexError
from ..files import atomic_write_bytes
from .bundle import FORMAT, FORMAT_VERSION, METADATA_KEY, PolicyBundle
from .inputs import check_inputs, uncovered_terms
from .task_command import command_interface


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

"""Bring apex_run/policy.onnx (written before bundles declared their inputs and command
interface: format version 1, read as an effort bundle without the goal) to the current bundle
format: the same ONNX graph and normalization, the task's current signature (goal input on
/goal, position interface on forward_position_controller). Run once from the repository root:

    python experiments/ur5e_reach/restamp.py experiments/ur5e_reach/apex_run/policy.onnx
"""
import json
import sys

import onnx

from apex_ros.deploy.bundle import FORMAT_VERSION, METADATA_KEY, PolicyBundle
from apex_ros.deploy.export import task_signature
from apex_ros.errors import ApexError
from apex_ros.files import atomic_write_bytes
from apex_ros.tasks import make_task


def restamp(path):
    proto = onnx.load(path)
    entry = next(e for e in proto.metadata_props if e.key == METADATA_KEY)
    meta = json.loads(entry.value)
    signature = task_signature(make_task(meta['task']))
    if meta['obs']['terms'] != signature['obs']['terms']:
        raise ApexError(f'{path}: observation terms differ from task {meta["task"]}\'s')
    signature['obs'] = {**meta['obs'], **signature['obs']}   # keeps the normalization
    entry.value = json.dumps({**meta, **signature, 'format_version': FORMAT_VERSION})
    atomic_write_bytes(path, proto.SerializeToString())
    PolicyBundle(path)   # loads and validates


if __name__ == '__main__':
    restamp(sys.argv[1])

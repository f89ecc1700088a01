"""The one place an onnxruntime session is made (policy bundles, plain ONNX policies, value
ensembles). numpy/onnxruntime only: the robot-side executor loads bundles through it.

Sessions run on the CPU provider with `threads` intra-op threads and one inter-op thread
(the planners call them from their own worker threads).
"""
import json
from pathlib import Path

from ..errors import ApexError


def make_session(source, threads: int = 1, what: str = 'ONNX model'):
    """An onnxruntime.InferenceSession of `source` (a path, or the model's bytes).

    Raises ApexError naming the file (or '<memory>') and what is wrong: a directory, a missing
    file, bytes that are not an ONNX model, or onnxruntime's own reason."""
    import onnxruntime as ort
    if isinstance(source, (bytes, bytearray)):
        name, model = '<memory>', bytes(source)
    else:
        name = model = str(source)
        path = Path(source)
        if path.is_dir():
            raise ApexError(f'{name}: is a directory, expected an .onnx file ({what})')
        if not path.exists():
            raise ApexError(f'{name}: no such file ({what})')
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(model, opts, providers=['CPUExecutionProvider'])
    except Exception as e:  # onnxruntime raises one pybind type per status code
        if type(e).__name__ == 'InvalidProtobuf':
            raise ApexError(f'{name}: cannot load {what}: not an ONNX model (the content does '
                            'not parse as an ONNX protobuf)') from None
        raise ApexError(f'{name}: cannot load {what}: {e}') from None


def read_metadata(session, key: str, name: str, what: str) -> dict:
    """The JSON object stored under `key` in the model's custom metadata; ApexError naming
    the file (`name`) when it is absent or not valid JSON ("not an apex_ros <what>")."""
    props = session.get_modelmeta().custom_metadata_map
    if key not in props:
        raise ApexError(f'{name}: not an apex_ros {what} (no {key!r} metadata)')
    try:
        return json.loads(props[key])
    except json.JSONDecodeError as e:
        raise ApexError(f'{name}: {what} metadata is not valid JSON: {e}') from None

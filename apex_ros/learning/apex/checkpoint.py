"""The APEX run checkpoint, RUN_DIR/checkpoint.pt: the whole training state after a phase
or a rollout.

Written after every phase and rollout (atomically) and read back only through this module;
scripts that want a run's dataset, metrics or student call `read_checkpoint(run_dir)`.

The file is a torch.save'd dict of plain containers, numbers, bytes and tensors (loaded with
weights_only=True: nothing in it can run code). Format 2, field by field:
  format     2
  task       name of the task the run trains on; resuming under another task is refused
  iteration  0-based APEX iteration the next phase belongs to (= finished iterations)
  phase      the next phase to run: 'expert' | 'train_expert' | 'dagger' | 'train_dagger'
  record     {metric: value} of the iteration in progress, filled phase by phase
  metrics    one {metric: value} per finished iteration: the lines of metrics.jsonl
  model      state_dict of the student MLPPolicy: obs_mean, obs_std (obs_dim,),
             mlp.{2k}.weight (out, in) and mlp.{2k}.bias (out,) of its Linear layers
  optimizer  state_dict of its Adam optimizer
  generator  state (uint8 tensor) of the torch.Generator drawing the minibatches
  dataset    the aggregated dataset: bytes of learning.dataset.Dataset.to_bytes (.npz)
  config     JSON text of the RunConfig.to_dict() the run was started or last resumed
             with; a resume compares it with the new config
  partial    (optional) the finished rollouts of the rollout phase in progress, as dataset
             bytes whose rollouts' info holds their index in the phase ('item'); a resume
             runs only the others. Absent or None between phases.
Format 1 (written before the config was stored) has the same fields but `config`; it is
read as a format-2 checkpoint with config None.
"""
import dataclasses
import io
import json
from pathlib import Path

import torch

from ...errors import ApexError
from ...files import atomic_write_bytes
from ..dataset import Dataset, LabeledRollout
from ..student import MLPPolicy

CHECKPOINT = 'checkpoint.pt'
FORMAT = 2
READABLE_FORMATS = (1, 2)


@dataclasses.dataclass
class Checkpoint:
    task: str
    iteration: int
    phase: str
    record: dict
    metrics: list
    model: dict
    optimizer: dict
    generator: torch.Tensor
    dataset: Dataset
    config: dict | None      # None: a format-1 checkpoint, which did not store it
    partial: dict[int, LabeledRollout] = dataclasses.field(default_factory=dict)
    #                          the phase in progress's finished rollouts by their index in it
    format: int = FORMAT     # the format the file was read in

    def student(self) -> MLPPolicy:
        """The student policy with the checkpoint's weights (layer sizes from the weights)."""
        weights = [v for k, v in self.model.items() if k.endswith('.weight')]
        model = MLPPolicy(weights[0].shape[1], weights[-1].shape[0],
                          [w.shape[0] for w in weights[:-1]])
        model.load_state_dict(self.model)
        model.eval()
        return model


def config_json(config: dict) -> dict:
    """`config` as it reads back from a checkpoint (JSON types: tuples become lists ...)."""
    return json.loads(json.dumps(config, default=str))


def save_checkpoint(path, ckpt: Checkpoint):
    state = {'format': FORMAT, 'task': ckpt.task, 'iteration': ckpt.iteration,
             'phase': ckpt.phase, 'record': ckpt.record, 'metrics': ckpt.metrics,
             'model': ckpt.model, 'optimizer': ckpt.optimizer, 'generator': ckpt.generator,
             'dataset': ckpt.dataset.to_bytes(),
             'config': json.dumps(ckpt.config, default=str),
             'partial': _partial_bytes(ckpt.partial) if ckpt.partial else None}
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path) -> Checkpoint:
    """Read a checkpoint file (format 1 or 2); ApexError naming the file if it cannot."""
    try:
        state = torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise ApexError(f'{path}: no such checkpoint') from None
    except Exception as e:  # torch raises several types for damaged files
        raise ApexError(f'{path}: cannot read checkpoint: {e}') from None
    version = state.get('format') if isinstance(state, dict) else None
    if version not in READABLE_FORMATS:
        raise ApexError(f'{path}: checkpoint format {version!r} is not one this apex_ros '
                        f'reads ({", ".join(map(str, READABLE_FORMATS))})')
    try:
        return Checkpoint(
            task=state['task'], iteration=state['iteration'], phase=state['phase'],
            record=state['record'], metrics=state['metrics'], model=state['model'],
            optimizer=state['optimizer'], generator=state['generator'],
            dataset=Dataset.from_bytes(state['dataset'], f'{path}: dataset'),
            config=json.loads(state['config']) if version >= 2 else None,
            partial=_partial_rollouts(state.get('partial'), f'{path}: partial'),
            format=version)
    except KeyError as e:
        raise ApexError(f'{path}: checkpoint (format {version}) lacks the field {e}') from None


def _partial_bytes(partial: dict[int, LabeledRollout]) -> bytes:
    ds = Dataset(len(partial))
    for item, r in sorted(partial.items()):
        ds.add(dataclasses.replace(r, info={**r.info, 'item': item}))
    return ds.to_bytes()


def _partial_rollouts(data: bytes | None, source: str) -> dict[int, LabeledRollout]:
    if data is None:
        return {}
    partial = {}
    for r in Dataset.from_bytes(data, source).rollouts:
        info = dict(r.info)
        partial[info.pop('item')] = dataclasses.replace(r, info=info)
    return partial


def read_checkpoint(run_dir) -> Checkpoint:
    """The checkpoint of the APEX run in `run_dir` (its dataset, metrics, student ...)."""
    return load_checkpoint(Path(run_dir) / CHECKPOINT)

"""Policy bundles: one ONNX file whose metadata describes everything needed to run it.

Loading needs only numpy and onnxruntime (this module imports nothing else of ours that
pulls in torch or mujoco), so the robot-side executor can use it. The metadata, stored as
JSON under the ONNX metadata key `apex_ros`, holds:
  format, format_version, package_version, task, apex_iteration, created,
  obs:     {terms: ['qpos:slider', 'cos:hinge', ...], dim, normalization: 'folded',
            mean, std}          (normalization is part of the graph; mean/std for reference)
  action:  {joints: [...actuated joint names, command order (cartesian: the axes)...], dim,
            low, high}
  control: {rate_hz, frame_skip}
  inputs:  [{name, type, topic, frame, max_age, fills}, ...]  external inputs besides
            /joint_states (apex_ros.deploy.inputs); absent in older bundles: none
  command: the command interface (apex_ros.deploy.command): interface, message, controller,
           low/high (joint limits included), frame/axes/scale for Cartesian targets
Version 1 bundles (no `command`) still load, as effort bundles (command.legacy).
"""

import numpy as np

from ..errors import ApexError
from . import command
from .inputs import InputSpec, check_inputs
from .observation import JOINT_KINDS, parse_term
from .onnx_session import make_session, read_metadata

FORMAT = 'apex_ros.policy_bundle'
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # 2 added the command interface
METADATA_KEY = 'apex_ros'


class BundleError(ApexError):
    """A bundle that cannot be loaded, or does not fit the task/robot; says what differs."""


def signature_differences(meta: dict, expected: dict) -> list[str]:
    """What differs between a bundle's metadata and the expected task signature."""
    diffs = []
    if meta['task'] != expected['task']:
        diffs.append(f'task: bundle {meta["task"]!r}, expected {expected["task"]!r}')
    if list(meta['obs']['terms']) != list(expected['obs']['terms']):
        diffs.append(f'observation terms: bundle {meta["obs"]["terms"]}, '
                     f'expected {expected["obs"]["terms"]}')
    if list(meta['action']['joints']) != list(expected['action']['joints']):
        diffs.append(f'actuated joints: bundle {meta["action"]["joints"]}, '
                     f'expected {expected["action"]["joints"]}')
    for key in ('low', 'high'):
        a, b = np.asarray(meta['action'][key]), np.asarray(expected['action'][key])
        if a.shape != b.shape or not np.allclose(a, b):
            diffs.append(f'action {key}: bundle {a.tolist()}, expected {b.tolist()}')
    ia, ib = meta.get('inputs', []), expected.get('inputs', [])
    if ia != ib:
        diffs.append(f'inputs: bundle {ia}, expected {ib}')
    ours, theirs = (m.get('command', {}).get('interface', 'effort') for m in (meta, expected))
    if ours != theirs:
        diffs.append(f'command interface: bundle {ours}, expected {theirs}')
    ra, rb = meta['control']['rate_hz'], expected['control']['rate_hz']
    if not np.isclose(ra, rb):
        diffs.append(f'control rate: bundle {ra} Hz, expected {rb} Hz')
    return diffs


class PolicyBundle:
    """A loaded bundle: `bundle(obs (B, obs_dim)) -> actions (B, act_dim)` (not clamped)."""

    def __init__(self, path, threads: int = 1):
        """`path`: an .onnx file, or the bundle's bytes (then shown as '<memory>')."""
        self.path = '<memory>' if isinstance(path, bytes) else str(path)
        try:
            self.session = make_session(path, threads, 'ONNX policy bundle')
            self.meta = read_metadata(self.session, METADATA_KEY, self.path, 'policy bundle')
        except ApexError as e:
            raise BundleError(str(e)) from None
        self._validate_schema()
        self._input = self.session.get_inputs()[0].name
        self.obs_dim = int(self.meta['obs']['dim'])
        self.act_dim = int(self.meta['action']['dim'])
        self.action_low = np.asarray(self.meta['action']['low'], dtype=np.float64)
        self.action_high = np.asarray(self.meta['action']['high'], dtype=np.float64)
        self.inputs = self._parse_inputs()
        # act()'s one-row buffers, bound to the session by address (onnxruntime IOBinding):
        # no input/output allocation or feed-dict handling per call (17 -> 10 us per call).
        self._obs_row = np.zeros((1, self.obs_dim), dtype=np.float32)
        self._act_row = np.zeros((1, self.act_dim), dtype=np.float32)
        self._binding = self.session.io_binding()
        for bind, name, row in ((self._binding.bind_input, self._input, self._obs_row),
                                (self._binding.bind_output,
                                 self.session.get_outputs()[0].name, self._act_row)):
            bind(name, 'cpu', 0, np.float32, list(row.shape), row.ctypes.data)

    def _validate_schema(self):
        m = self.meta
        if m.get('format') != FORMAT:
            raise BundleError(f'{self.path}: metadata format {m.get("format")!r}, '
                              f'expected {FORMAT!r}')
        if m.get('format_version') not in READABLE_VERSIONS:
            raise BundleError(f'{self.path}: bundle format version {m.get("format_version")}, '
                              f'this apex_ros reads versions {READABLE_VERSIONS}')
        try:
            terms, dim = m['obs']['terms'], m['obs']['dim']
            joints, adim = m['action']['joints'], m['action']['dim']
            low, high = m['action']['low'], m['action']['high']
            m['control']['rate_hz'], m['task']
        except (KeyError, TypeError) as e:
            raise BundleError(f'{self.path}: bundle metadata lacks field {e}') from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        problems = []
        if len(terms) != dim:
            problems.append(f'obs.dim {dim} but {len(terms)} obs.terms')
        if not (len(joints) == len(low) == len(high) == adim):
            problems.append(f'action.dim {adim} vs {len(joints)} joints, {len(low)} low, '
                            f'{len(high)} high')
        if inputs[0].shape[-1] != dim:
            problems.append(f'graph input size {inputs[0].shape[-1]} != obs.dim {dim}')
        if outputs[0].shape[-1] != adim:
            problems.append(f'graph output size {outputs[0].shape[-1]} != action.dim {adim}')
        if problems:
            raise BundleError(f'{self.path}: inconsistent bundle: ' + '; '.join(problems))
        if m['format_version'] == 1:
            self.command = command.legacy(low, high)
        elif not isinstance(m.get('command'), dict):
            raise BundleError(f'{self.path}: bundle metadata lacks field \'command\' (the '
                              'command interface, required since format version 2)')
        else:
            try:
                self.command = command.from_meta(m['command'], adim, self.path)
            except ApexError as e:
                raise BundleError(str(e)) from None

    def _parse_inputs(self) -> list:
        declared = self.meta.get('inputs', [])
        if not isinstance(declared, list):
            raise BundleError(f'{self.path}: metadata field inputs: expected a list, got '
                              f'{declared!r}')
        try:
            return check_inputs([InputSpec.from_meta(d, f'inputs[{i}]')
                                 for i, d in enumerate(declared)])
        except ApexError as e:
            raise BundleError(f'{self.path}: metadata field {e}') from None

    def __call__(self, obs) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float32)
        return self.session.run(None, {self._input: x})[0].astype(np.float64)

    def act(self, obs_row) -> np.ndarray:
        """One observation (obs_dim,) -> one action (act_dim,) float64 clamped to the
        bundle's limits. Reuses bound buffers: one caller at a time."""
        self._obs_row[0] = obs_row
        self.session.run_with_iobinding(self._binding)
        return np.minimum(np.maximum(self._act_row[0], self.action_low), self.action_high)

    @property
    def task(self) -> str:
        return self.meta['task']

    @property
    def obs_terms(self) -> list:
        return list(self.meta['obs']['terms'])

    @property
    def joints(self) -> list:
        return list(self.meta['action']['joints'])

    def required_joints(self) -> list:
        """Every joint the policy reads (observation) or commands (action), in first-use order."""
        filled = {t for spec in self.inputs for t in spec.fills}
        names = [parse_term(t).joint for t in self.obs_terms
                 if t not in filled and parse_term(t).kind in JOINT_KINDS]
        names += self.joints if self.command.joint_space else []  # cartesian: axis labels
        return list(dict.fromkeys(names))

    def check_signature(self, expected: dict):
        """Raise BundleError listing every difference from `expected` (a task signature)."""
        diffs = signature_differences(self.meta, expected)
        if diffs:
            raise BundleError(f'{self.path} does not fit {expected["task"]}: ' + '; '.join(diffs))

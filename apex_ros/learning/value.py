"""POLO's value-function ensemble (Lowrey et al. 2019, Sec. 2.4-2.5) and the terminal value
a planner adds to its objective.

Ensemble: K MLPs (tanh), each V_k = trained net + prior_scale * a fixed random prior net
(randomized priors, Osband et al. 2018), fitted to noisy targets with an L2 penalty (Eq. 5).
Inputs are normalized and outputs de-normalized inside the model, so the priors act on a
scale-free problem and disagree in value units away from the data.

Aggregate with optimism kappa > 0:
    V(s) = (1/kappa) log( (1/K) sum_k exp(kappa V_k(s)) )
The paper's Eq. 6 is log sum_k exp(kappa V_k). Dividing by kappa and averaging instead of
summing keeps V in the units of the V_k (a planner adds it to a sum of rewards) and only removes
the constant log K and the overall factor kappa. As the paper says, for small kappa it is
about mean + (kappa/2) variance; kappa -> 0 gives the mean, large kappa the max.

The inference side (ValueBundle, TerminalValue) needs numpy and onnxruntime only: torch is
imported by the training side (ValueEnsemble) when one is built.
"""
import copy
import dataclasses
import io
import json
import math
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..config import require
from ..deploy.bundle import METADATA_KEY, BundleError
from ..deploy.onnx_session import make_session, read_metadata
from ..errors import ApexError
from ..files import atomic_write_bytes

FORMAT = 'apex_ros.value_ensemble'
FORMAT_VERSION = 1
AGGREGATE = '(1/kappa) * log(mean_k exp(kappa * V_k(obs)))'


@dataclasses.dataclass
class ValueConfig:
    members: int = 6             # K (paper: 6)
    hidden: list[int] = dataclasses.field(default_factory=lambda: [64, 64])
    kappa: float = 0.1           # optimism of the aggregate, in 1 / value units
    prior_scale: float = 1.0     # weight of the random prior net, in normalized value units
    target_noise: float = 0.1    # std of the target noise (Eq. 5), in normalized value units
    discount: float = 0.99       # gamma
    target_steps: int = 16       # N of the N-step targets (Eq. 7), <= the planning horizon
    update_every: int = 16       # Z: agent steps between value updates
    gradient_steps: int = 64     # G per update
    batch_size: int = 256        # n per gradient step and member (paper: 32; 256 fits better)
    buffer_size: int = 20000     # replay buffer of visited states (oldest dropped)
    lr: float = 1e-3
    l2: float = 1e-5             # sigma^2 / lambda of Eq. 5, on the trained weights
    obs_std_floor: float = 0.1   # input normalization std is at least this
    value_std_floor: float = 1.0  # output normalization std is at least this
    threads: int = 1             # torch intra-op threads

    def validate(self, where='value'):
        require(self.members >= 1, f'{where}.members', f'K must be >= 1, got {self.members}')
        require(len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden), f'{where}.hidden',
                f'must be a non-empty list of positive layer sizes, got {self.hidden}')
        require(self.kappa > 0, f'{where}.kappa', f'must be > 0, got {self.kappa}')
        for key in ('prior_scale', 'target_noise', 'l2'):
            require(getattr(self, key) >= 0, f'{where}.{key}',
                    f'must be >= 0, got {getattr(self, key)}')
        require(0 < self.discount <= 1, f'{where}.discount',
                f'must be in (0, 1], got {self.discount}')
        for key in ('target_steps', 'update_every', 'batch_size', 'buffer_size', 'threads'):
            require(getattr(self, key) >= 1, f'{where}.{key}',
                    f'must be >= 1, got {getattr(self, key)}')
        require(self.gradient_steps >= 0, f'{where}.gradient_steps',
                f'must be >= 0, got {self.gradient_steps}')
        require(self.lr > 0, f'{where}.lr', f'must be > 0, got {self.lr}')
        require(self.obs_std_floor > 0, f'{where}.obs_std_floor', 'must be > 0')
        require(self.value_std_floor > 0, f'{where}.value_std_floor', 'must be > 0')


def aggregate(members: np.ndarray, kappa: float, axis: int = 0) -> np.ndarray:
    """The optimistic aggregate of member values along `axis` (numpy, stable)."""
    z = kappa * np.asarray(members, dtype=np.float64)
    top = np.max(z, axis=axis, keepdims=True)
    lme = np.log(np.mean(np.exp(z - top), axis=axis, keepdims=True)) + top
    return np.squeeze(lme, axis=axis) / kappa


# --- inference: numpy + onnxruntime ------------------------------------------------------------

class ValueBundle:
    """A value ensemble exported to ONNX: `bundle(obs (B, obs_dim)) -> V (B,)`,
    `bundle.members(obs) -> (B, K)`. Needs onnxruntime and numpy only."""

    def __init__(self, source, threads: int = 1):
        """`source`: an .onnx path or the file's bytes."""
        self.path = '<memory>' if isinstance(source, bytes) else str(source)
        try:
            self.session = make_session(source, threads, 'ONNX value model')
            self.meta = read_metadata(self.session, METADATA_KEY, self.path, 'value ensemble')
        except ApexError as e:
            raise BundleError(str(e)) from None
        if self.meta.get('format') != FORMAT or self.meta.get('format_version') != FORMAT_VERSION:
            raise BundleError(f'{self.path}: format {self.meta.get("format")!r} version '
                              f'{self.meta.get("format_version")}, expected {FORMAT!r} version '
                              f'{FORMAT_VERSION}')
        self._input = self.session.get_inputs()[0].name
        self.obs_dim = int(self.meta['obs']['dim'])
        self.kappa = float(self.meta['kappa'])
        self.discount = float(self.meta['discount'])

    def _run(self, obs):
        return self.session.run(None, {self._input: np.asarray(obs, dtype=np.float32)})

    def __call__(self, obs) -> np.ndarray:
        return self._run(obs)[0].astype(np.float64)

    def members(self, obs) -> np.ndarray:
        return self._run(obs)[1].astype(np.float64)

    def check_task(self, task):
        """Raise BundleError unless the bundle was trained on `task`'s observation layout."""
        diffs = []
        if self.meta['task'] != task.name:
            diffs.append(f'task: bundle {self.meta["task"]!r}, expected {task.name!r}')
        if list(self.meta['obs']['terms']) != list(task.observation.terms):
            diffs.append(f'observation terms: bundle {self.meta["obs"]["terms"]}, '
                         f'expected {list(task.observation.terms)}')
        if diffs:
            raise BundleError(f'{self.path} does not fit {task.name}: ' + '; '.join(diffs))


class TerminalValue:
    """A value function as a planner's terminal reward.

    `terminal(final_states (B, nstate)) -> V (B,)`;
    `terminal.reward(states (B, H+1, nstate)) -> discount^H V(states[:, H])`, the term a
    planner subtracts from a rollout's cost. Non-finite states give non-finite values, which
    planners already treat as failed samples.
    """

    def __init__(self, task, value_fn, discount: float = 1.0, source: str = ''):
        """`value_fn`: observations (B, obs_dim) float32 -> values (B,)."""
        self.task = task
        self.value_fn = value_fn
        self.discount = float(discount)
        self.source = source

    @classmethod
    def load(cls, path, task, threads: int = 1, kappa: float | None = None):
        """From an exported ValueBundle (.onnx path or bytes); checks it fits `task`.
        `kappa` re-aggregates the members with another optimism than the exported one (e.g.
        a small kappa, about the ensemble mean, to exploit rather than explore)."""
        bundle = ValueBundle(path, threads)
        bundle.check_task(task)
        if kappa is None:
            return cls(task, bundle, bundle.discount, bundle.path)
        if kappa <= 0:
            raise ValueError(f'kappa must be > 0, got {kappa}')
        return cls(task, lambda obs: aggregate(bundle.members(obs), kappa, axis=1),
                   bundle.discount, bundle.path)

    def __call__(self, final_states) -> np.ndarray:
        obs = self.task.observe(np.asarray(final_states))
        return np.asarray(self.value_fn(obs), dtype=np.float64).reshape(len(obs))

    def reward(self, states) -> np.ndarray:
        horizon = states.shape[1] - 1
        return self.discount ** horizon * self(states[:, -1])


def as_terminal_value(obj, task):
    """None, a TerminalValue, or an exported value bundle (path or bytes) -> TerminalValue."""
    if obj is None or isinstance(obj, TerminalValue):
        return obj
    if isinstance(obj, (str, Path, bytes)):
        return TerminalValue.load(obj, task)
    raise TypeError(f'not a terminal value: {type(obj).__name__} (expected a TerminalValue '
                    'or the path of an exported value ensemble)')


# --- training: torch ---------------------------------------------------------------------------

def _init_layers(torch, sizes, members, generator):
    """Stacked per-member Linear layers [(W (K, in, out), b (K, 1, out))], torch's default
    Linear initialization (uniform +-1/sqrt(fan_in))."""
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / math.sqrt(fan_in)
        w = (torch.rand(members, fan_in, fan_out, generator=generator) * 2 - 1) * bound
        b = (torch.rand(members, 1, fan_out, generator=generator) * 2 - 1) * bound
        layers += [w, b]
    return layers


def _mlp(torch, layers, x):
    """x (B, d) -> (K, B) with every member on the same inputs, or (K, B, d) -> (K, B) with
    member k on x[k]."""
    h = x
    n = len(layers) // 2
    for i in range(n):
        h = torch.matmul(h, layers[2 * i]) + layers[2 * i + 1]
        if i < n - 1:
            h = torch.tanh(h)
    return h.squeeze(-1)


class ValueEnsemble:
    """K value MLPs with randomized priors, stacked so one batched matmul evaluates all."""

    def __init__(self, obs_dim: int, cfg: ValueConfig, seed: int = 0):
        import torch
        self.torch = torch
        self.cfg = cfg
        self.obs_dim = obs_dim
        self.generator = torch.Generator().manual_seed(seed)
        sizes = [obs_dim, *cfg.hidden, 1]
        self.trained = [p.requires_grad_() for p in
                        _init_layers(torch, sizes, cfg.members, self.generator)]
        self.prior = _init_layers(torch, sizes, cfg.members, self.generator)
        self.obs_mean = torch.zeros(obs_dim)
        self.obs_std = torch.ones(obs_dim)
        self.value_mean = torch.zeros(())
        self.value_std = torch.ones(())
        self.optimizer = torch.optim.Adam(self.trained, lr=cfg.lr)

    # --- evaluation ----------------------------------------------------------------------------
    def _normalized_members(self, obs):
        x = (obs - self.obs_mean) / self.obs_std
        return (_mlp(self.torch, self.trained, x)
                + self.cfg.prior_scale * _mlp(self.torch, self.prior, x))

    def members_torch(self, obs):
        """Member values (K, B) of obs (B, d); or of obs (K, B, d), member k on obs[k]."""
        return self.value_mean + self.value_std * self._normalized_members(obs)

    def aggregate_torch(self, members):
        torch, kappa = self.torch, self.cfg.kappa
        return (torch.logsumexp(kappa * members, dim=0) - math.log(self.cfg.members)) / kappa

    def members(self, obs) -> np.ndarray:
        """(B, obs_dim) -> member values (K, B), float64."""
        with self.torch.no_grad():
            x = self.torch.as_tensor(np.asarray(obs, dtype=np.float32))
            return self.members_torch(x).numpy().astype(np.float64)

    def __call__(self, obs) -> np.ndarray:
        """(B, obs_dim) -> the aggregated value V (B,), float64."""
        with self.torch.no_grad():
            x = self.torch.as_tensor(np.asarray(obs, dtype=np.float32))
            return self.aggregate_torch(self.members_torch(x)).numpy().astype(np.float64)

    def terminal_value(self, task) -> TerminalValue:
        return TerminalValue(task, self, self.cfg.discount, 'live ensemble')

    # --- training ------------------------------------------------------------------------------
    def set_normalization(self, obs: np.ndarray, values: np.ndarray):
        """Normalize inputs with the statistics of `obs`, outputs with those of `values`."""
        torch, cfg = self.torch, self.cfg
        self.obs_mean = torch.as_tensor(obs.mean(axis=0), dtype=torch.float32)
        self.obs_std = torch.as_tensor(np.maximum(obs.std(axis=0), cfg.obs_std_floor),
                                       dtype=torch.float32)
        self.value_mean = torch.tensor(float(np.mean(values)))
        self.value_std = torch.tensor(float(max(np.std(values), cfg.value_std_floor)))

    def train_step(self, obs, targets) -> float:
        """One Adam step on obs (K, n, d) with per-member targets (K, n) (value units): the
        squared error of Eq. 5 in normalized units, noise added to the targets, plus the L2
        penalty on the trained weights. Returns the mean squared error."""
        torch, cfg = self.torch, self.cfg
        x = torch.as_tensor(obs, dtype=torch.float32)
        y = (torch.as_tensor(targets, dtype=torch.float32) - self.value_mean) / self.value_std
        if cfg.target_noise > 0:
            y = y + cfg.target_noise * torch.randn(y.shape, generator=self.generator)
        mse = ((self._normalized_members(x) - y) ** 2).mean(dim=1).sum()
        loss = mse + cfg.l2 * sum((w ** 2).sum() for w in self.trained[::2])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(mse.detach()) / cfg.members

    def fit(self, obs: np.ndarray, targets: np.ndarray, steps: int) -> float:
        """Plain regression of every member on fixed (obs (N, d), targets (N,)), minibatches
        drawn independently per member. Returns the last step's mean squared error."""
        torch, cfg = self.torch, self.cfg
        torch.set_num_threads(cfg.threads)
        self.set_normalization(obs, targets)
        mse = float('nan')
        for _ in range(steps):
            idx = torch.randint(0, len(obs), (cfg.members, min(cfg.batch_size, len(obs))),
                                generator=self.generator).numpy()
            mse = self.train_step(obs[idx], targets[idx])
        return mse

    # --- export --------------------------------------------------------------------------------
    def onnx_bytes(self, task, extra: dict | None = None) -> bytes:
        """One ONNX graph obs (B, obs_dim) -> (value (B,), members (B, K)) + JSON metadata."""
        import onnx
        torch = self.torch
        ensemble = copy.copy(self)  # tracing stores weights as constants: they must be detached
        ensemble.trained = [p.detach() for p in self.trained]

        class Graph(torch.nn.Module):
            def forward(self, obs):
                members = ensemble.members_torch(obs)
                return ensemble.aggregate_torch(members), members.transpose(0, 1)

        buf = io.BytesIO()
        with torch.no_grad():
            torch.onnx.export(Graph(), (torch.zeros(2, self.obs_dim),), buf, dynamo=False,
                              input_names=['obs'], output_names=['value', 'members'],
                              dynamic_axes={'obs': {0: 'batch'}, 'value': {0: 'batch'},
                                            'members': {0: 'batch'}})
        proto = onnx.load_from_string(buf.getvalue())
        entry = proto.metadata_props.add()
        entry.key = METADATA_KEY
        entry.value = json.dumps(self.metadata(task, extra))
        proto.doc_string = f'apex_ros POLO value ensemble for {task.name}'
        return proto.SerializeToString()

    def metadata(self, task, extra: dict | None = None) -> dict:
        cfg = self.cfg
        return {
            'format': FORMAT, 'format_version': FORMAT_VERSION, 'package_version': __version__,
            'created': time.strftime('%Y-%m-%dT%H:%M:%S%z'), 'task': task.name,
            'obs': {'terms': list(task.observation.terms), 'dim': task.obs_dim,
                    'mean': self.obs_mean.tolist(), 'std': self.obs_std.tolist()},
            'members': cfg.members, 'kappa': cfg.kappa, 'aggregate': AGGREGATE,
            'discount': cfg.discount, 'hidden': list(cfg.hidden),
            'prior_scale': cfg.prior_scale,
            'value': {'mean': float(self.value_mean), 'std': float(self.value_std)},
            'extra': extra or {}}

    def export(self, task, path, extra: dict | None = None) -> ValueBundle:
        """Write the ONNX value bundle atomically; returns it loaded."""
        atomic_write_bytes(path, self.onnx_bytes(task, extra))
        return ValueBundle(path)

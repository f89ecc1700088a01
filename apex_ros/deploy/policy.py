"""The one small policy interface the planners use: a callable from a batch of observations
(B, obs_dim) to a batch of actions (B, act_dim), with `obs_dim` and `act_dim`.

`as_policy` adapts what users have: None (no policy), a torch module, an onnxruntime
session, a path to an .onnx file, or anything already following the interface.
"""
import sys

import numpy as np

from ..errors import ApexError
from .onnx_session import make_session


class TorchPolicy:
    def __init__(self, module, obs_dim=None, act_dim=None):
        import torch  # imported here: the executor side never needs torch
        self._torch = torch
        self.module = module.eval()
        linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
        self.obs_dim = obs_dim or (linears[0].in_features if linears else None)
        self.act_dim = act_dim or (linears[-1].out_features if linears else None)
        if self.obs_dim is None or self.act_dim is None:
            raise ApexError('torch policy: cannot infer obs_dim/act_dim; pass them explicitly')

    def __call__(self, obs):
        with self._torch.no_grad():
            x = self._torch.as_tensor(np.asarray(obs, dtype=np.float32))
            return self.module(x).numpy().astype(np.float64)


class OnnxPolicy:
    def __init__(self, session_or_path):
        import onnxruntime as ort
        if isinstance(session_or_path, ort.InferenceSession):
            self.session = session_or_path
        else:
            self.session = make_session(session_or_path, what='ONNX policy')
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self._input = inp.name
        self.obs_dim = inp.shape[-1]
        self.act_dim = out.shape[-1]
        if not isinstance(self.obs_dim, int) or not isinstance(self.act_dim, int):
            raise ApexError('ONNX policy: the last input and output dimensions must be fixed')

    def __call__(self, obs):
        x = np.asarray(obs, dtype=np.float32)
        return self.session.run(None, {self._input: x})[0].astype(np.float64)


def as_policy(obj, task=None):
    """Wrap `obj` as a policy; with `task`, check its input/output sizes fit the task."""
    if obj is None:
        return None
    policy = obj
    torch = sys.modules.get('torch')  # a torch module can only exist if torch is loaded
    if torch is not None and isinstance(obj, torch.nn.Module):
        policy = TorchPolicy(obj)
    if isinstance(obj, str) or type(obj).__name__ == 'PosixPath' or \
            type(obj).__name__ == 'InferenceSession':
        policy = OnnxPolicy(obj)
    if not callable(policy) or not hasattr(policy, 'obs_dim') or not hasattr(policy, 'act_dim'):
        raise ApexError(f'not a policy: {type(obj).__name__} (needs __call__, obs_dim, act_dim)')
    if task is not None:
        check_policy_fits(policy, task)
    return policy


def check_policy_fits(policy, task):
    if policy.obs_dim != task.obs_dim:
        raise ApexError(f'policy expects observations of size {policy.obs_dim}, but task '
                        f'{task.name} produces {task.obs_dim} '
                        f'({", ".join(task.observation.terms)})')
    if policy.act_dim != task.nu:
        raise ApexError(f'policy outputs actions of size {policy.act_dim}, but task {task.name} '
                        f'has {task.nu} actuators')

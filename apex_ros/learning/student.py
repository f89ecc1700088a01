"""The student: an MLP policy (APEX Table 3: 3 x 128 ReLU) with observation normalization
(and optionally action scaling) inside the module, and its supervised training (Adam, l1 + l2
weight penalties)."""
import numpy as np
import torch
from torch import nn

from ..errors import ApexError
from .train_config import TrainConfig, learning_rate


class MLPPolicy(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden=(128, 128, 128)):
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.register_buffer('obs_mean', torch.zeros(obs_dim))
        self.register_buffer('obs_std', torch.ones(obs_dim))
        # outputs = mlp * act_scale + act_mid (identity unless train.normalize_actions)
        self.register_buffer('act_mid', torch.zeros(act_dim))
        self.register_buffer('act_scale', torch.ones(act_dim))
        layers, width = [], obs_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, act_dim))
        self.mlp = nn.Sequential(*layers)

    def forward(self, obs):
        return self.mlp((obs - self.obs_mean) / self.obs_std) * self.act_scale + self.act_mid

    def _load_from_state_dict(self, state_dict, prefix, *args):
        # students saved before action scaling existed: the identity
        for name, value in (('act_mid', 0.0), ('act_scale', 1.0)):
            state_dict.setdefault(prefix + name, torch.full((self.act_dim,), value))
        super()._load_from_state_dict(state_dict, prefix, *args)

    def set_action_scale(self, low=None, high=None):
        """The network's outputs in [-1, 1] span [low, high] (None: outputs are actions)."""
        if low is None:
            self.act_mid.zero_()
            self.act_scale.fill_(1.0)
            return
        low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
        self.act_mid.copy_(torch.as_tensor((low + high) / 2, dtype=torch.float32))
        self.act_scale.copy_(torch.as_tensor((high - low) / 2, dtype=torch.float32))

    def set_normalization(self, obs: np.ndarray):
        """Normalize inputs with the mean/std of `obs` (std floored so constants stay finite)."""
        self.obs_mean.copy_(torch.as_tensor(obs.mean(axis=0), dtype=torch.float32))
        self.obs_std.copy_(torch.as_tensor(np.maximum(obs.std(axis=0), 1e-3),
                                           dtype=torch.float32))


def weight_penalty(model, l1: float, l2: float):
    weights = [p for name, p in model.named_parameters() if name.endswith('weight')]
    loss = 0.0
    if l1:
        loss = loss + l1 * sum(w.abs().sum() for w in weights)
    if l2:
        loss = loss + l2 * sum((w ** 2).sum() for w in weights)
    return loss


def train_policy(model: MLPPolicy, optimizer, obs: np.ndarray, actions: np.ndarray,
                 cfg: TrainConfig, generator: torch.Generator, progress=None,
                 action_bounds=None) -> float:
    """`cfg.steps` Adam steps on minibatches of (obs, actions) at the learning rates of
    `cfg.lr_schedule`; returns the mean MSE of the last 10 % of steps (of actions scaled to
    [-1, 1] with `cfg.normalize_actions`, which needs the task's `action_bounds` (low,
    high)). Normalization is refit to `obs` first."""
    torch.set_num_threads(cfg.threads)
    model.set_normalization(obs)
    if cfg.normalize_actions:
        if action_bounds is None:
            raise ApexError('train.normalize_actions: training was not given the task\'s '
                            'action bounds')
        model.set_action_scale(*action_bounds)
    else:
        model.set_action_scale()
    model.train()
    x = torch.as_tensor(obs, dtype=torch.float32)
    y = torch.as_tensor(actions, dtype=torch.float32)
    n = len(x)
    tail = []
    for step in range(cfg.steps):
        for group in optimizer.param_groups:
            group['lr'] = learning_rate(cfg, step)
        idx = torch.randint(0, n, (min(cfg.batch_size, n),), generator=generator)
        mse = (((model(x[idx]) - y[idx]) / model.act_scale) ** 2).mean()
        loss = mse + weight_penalty(model, cfg.l1, cfg.l2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= cfg.steps * 0.9:
            tail.append(mse.item())
        if progress is not None and (step % 100 == 99 or step == cfg.steps - 1):
            progress(step + 1, mse.item())
    model.eval()
    return float(np.mean(tail)) if tail else float('nan')


def make_optimizer(model, cfg: TrainConfig):
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)

"""The student: an MLP policy (APEX Table 3: 3 x 128 ReLU) with observation normalization
inside the module, and its supervised training (Adam, l1 + l2 weight penalties)."""
import dataclasses
import math

import numpy as np
import torch
from torch import nn

from ..config import require

LR_SCHEDULES = ('constant', 'cosine')


@dataclasses.dataclass
class TrainConfig:
    hidden: list[int] = dataclasses.field(default_factory=lambda: [128, 128, 128])
    lr: float = 5e-4
    l1: float = 1e-6
    l2: float = 1e-5
    batch_size: int = 1024
    steps: int = 1000          # gradient steps per training
    threads: int = 1           # torch intra-op threads (2 thrash when another process is busy)
    reinit: bool = False       # fresh weights and optimizer for every training (else continue)
    lr_schedule: str = 'constant'  # or 'cosine': every training decays the learning rate from
    #                                `lr` to 0 (half a cosine), ending at a settled student
    #                                rather than one noisy minibatch step (benchmarks/README.md)

    def validate(self, where='train'):
        require(len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden), f'{where}.hidden',
                f'must be a non-empty list of positive layer sizes, got {self.hidden}')
        require(self.lr > 0, f'{where}.lr', f'must be > 0, got {self.lr}')
        require(self.l1 >= 0 and self.l2 >= 0, f'{where}.l1/l2', 'must be >= 0')
        require(self.batch_size >= 1, f'{where}.batch_size', 'must be >= 1')
        require(self.steps >= 0, f'{where}.steps', 'must be >= 0')
        require(self.threads >= 1, f'{where}.threads', 'must be >= 1')
        require(self.lr_schedule in LR_SCHEDULES, f'{where}.lr_schedule',
                f'must be one of {", ".join(LR_SCHEDULES)}, got {self.lr_schedule!r}')


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Learning rate of gradient step `step` (0-based) of a training of cfg.steps steps."""
    if cfg.lr_schedule == 'cosine':
        return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * step / cfg.steps))
    return cfg.lr


class MLPPolicy(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden=(128, 128, 128)):
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.register_buffer('obs_mean', torch.zeros(obs_dim))
        self.register_buffer('obs_std', torch.ones(obs_dim))
        layers, width = [], obs_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, act_dim))
        self.mlp = nn.Sequential(*layers)

    def forward(self, obs):
        return self.mlp((obs - self.obs_mean) / self.obs_std)

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
                 cfg: TrainConfig, generator: torch.Generator, progress=None) -> float:
    """`cfg.steps` Adam steps on minibatches of (obs, actions) at the learning rates of
    `cfg.lr_schedule`; returns the mean MSE of the last 10 % of steps. Normalization is refit
    to `obs` first."""
    torch.set_num_threads(cfg.threads)
    model.set_normalization(obs)
    model.train()
    x = torch.as_tensor(obs, dtype=torch.float32)
    y = torch.as_tensor(actions, dtype=torch.float32)
    n = len(x)
    tail = []
    for step in range(cfg.steps):
        for group in optimizer.param_groups:
            group['lr'] = learning_rate(cfg, step)
        idx = torch.randint(0, n, (min(cfg.batch_size, n),), generator=generator)
        mse = ((model(x[idx]) - y[idx]) ** 2).mean()
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

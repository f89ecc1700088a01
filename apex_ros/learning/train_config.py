"""How a student is trained (APEX Table 3), as the `train:` config section. No torch here:
loading a config must not pay for importing it."""
import dataclasses
import math

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
    #                                rather than one noisy minibatch step
    #                                (experiments/halfcheetah/NOTES.md)
    normalize_actions: bool = False  # fit actions scaled to [-1, 1] by the task's bounds, so
    #                                  every action dimension weighs alike in the loss (the
    #                                  bundle still outputs actions)

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

"""MPPI (Williams et al. 2016), and POLO's planner: MPPI with a value-ensemble terminal value.

Per control step:
  mean    <- the previous mean shifted left, its last action repeated (first step: the middle
             of the action bounds);
  samples  = clip(mean + sigma * noise), `budget` of them; noise is white (beta = 0) or
             colored along time; sample 0 is the mean itself;
  cost     = J - value_weight * discount^H V(s_H)          (objective; J = negative return)
             + sum_j lambda_j C_j                          (APEX auxiliary costs, adaptive)
  weights  = softmax(-(cost - min cost) / temperature), zero for failed (diverged) samples;
  mean    <- sum_i w_i samples_i;  execute mean[0].
The updated mean is rolled out once more: its cost, predicted states and rewards go into the
PlanResult (POLO builds its value targets from them), so a step simulates budget + 1 sequences.
"""
import dataclasses
import time
from pathlib import Path

import numpy as np

from ..config import require
from .base import Planner, PlanResult
from .costs import adaptive_lambdas, aux_costs
from .noise import colored_noise


@dataclasses.dataclass
class MPPIConfig:
    horizon: int = 30
    budget: int = 100            # sampled sequences per step (the mean is rolled out once more)
    temperature: float = 0.2     # in cost units (negative return); lower = greedier
    sigma: float = 0.5           # std of the action perturbations
    beta: float = 0.0            # colored-noise exponent; 0 = white noise as in MPPI
    value_weight: float = 1.0    # weight of the terminal value in the objective, when one is set
    guidance_c: float = 0.025    # c_j of the guidance cost (needs a policy)
    action_norm_c: float = 0.0   # c_j of the action-norm cost
    lambda_samples: int = 10     # k: spread of the k best samples by objective sets lambda_j
    epsilon: float = 1e-6

    def validate(self, where='planner'):
        require(self.horizon >= 1, f'{where}.horizon', f'must be >= 1, got {self.horizon}')
        require(self.budget >= 1, f'{where}.budget', f'must be >= 1, got {self.budget}')
        require(self.temperature > 0, f'{where}.temperature',
                f'must be > 0, got {self.temperature}')
        require(self.sigma >= 0, f'{where}.sigma', f'must be >= 0, got {self.sigma}')
        require(self.beta >= 0, f'{where}.beta', f'must be >= 0, got {self.beta}')
        for key in ('value_weight', 'guidance_c', 'action_norm_c'):
            require(getattr(self, key) >= 0, f'{where}.{key}',
                    f'must be >= 0, got {getattr(self, key)}')
        require(self.lambda_samples >= 2, f'{where}.lambda_samples',
                f'must be >= 2 (a spread needs two samples), got {self.lambda_samples}')
        require(self.epsilon > 0, f'{where}.epsilon', 'must be > 0')


def mppi_weights(costs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(-cost / temperature) over the finite costs, zero elsewhere; sums to 1.
    With no finite cost at all the weights are uniform (the caller keeps its mean then)."""
    finite = np.isfinite(costs)
    if not finite.any():
        return np.full(len(costs), 1.0 / len(costs))
    z = np.full(len(costs), -np.inf)
    z[finite] = -(costs[finite] - costs[finite].min()) / temperature  # max exponent 0
    w = np.exp(z)
    return w / w.sum()


class MPPI(Planner):
    name = 'mppi'
    Config = MPPIConfig

    def __init__(self, task, config, rollouts, policy=None, seed: int = 0, terminal_value=None):
        super().__init__(task, config, rollouts, policy=policy, seed=seed)
        self.set_terminal_value(terminal_value)

    def reset(self, seed=None):
        super().reset(seed)
        self.mean = None

    @property
    def samples_per_step(self) -> int:
        return self.cfg.budget + 1

    def _shifted_mean(self):
        task, horizon = self.task, self.cfg.horizon
        if self.mean is None:
            return np.tile((task.action_low + task.action_high) / 2, (horizon, 1))
        return np.concatenate([self.mean[1:], self.mean[-1:]])

    def _evaluate(self, state, warmstart, mocap, actions):
        """-> objective (B,), aux costs (B, 2), terminal rewards discount^H V(s_H) (B,), states,
        rewards (B, H). Failed samples get an infinite objective and zero aux costs."""
        cfg, task = self.cfg, self.task
        states, ok = self.rollouts.run(state, actions, warmstart, mocap)
        rewards = task.planning_reward(states, actions)
        objective = -rewards.sum(axis=1)  # costs.main_cost, without evaluating rewards twice
        terminal = np.zeros(len(actions))
        if self.terminal_value is not None and cfg.value_weight > 0:
            terminal = self.terminal_value.reward(states)
            objective = objective - cfg.value_weight * terminal
        use_guidance = self.policy is not None and cfg.guidance_c > 0
        C = aux_costs(task, self.policy, states, actions, use_guidance, cfg.action_norm_c > 0)
        bad = ~ok | ~np.isfinite(objective) | ~np.isfinite(C).all(axis=1)
        objective[bad] = np.inf
        C[bad] = 0.0
        return objective, C, terminal, states, rewards

    def plan(self, state, warmstart=None, mocap=None) -> PlanResult:
        cfg, task = self.cfg, self.task
        sim_before = self.rollouts.sim_seconds
        t_start = time.perf_counter()
        mean = self._shifted_mean()
        beta = cfg.beta if cfg.horizon > 1 else 0.0  # one step has no time correlation
        noise = colored_noise(beta, (cfg.budget, task.nu, cfg.horizon), self.rng)
        noise = cfg.sigma * noise.transpose(0, 2, 1)
        noise[0] = 0.0
        samples = np.clip(mean + noise, task.action_low, task.action_high)

        objective, C, _, _, _ = self._evaluate(state, warmstart, mocap, samples)
        c = np.array([cfg.guidance_c if self.policy is not None else 0.0, cfg.action_norm_c])
        lambdas = adaptive_lambdas(objective, C, cfg.lambda_samples, c, cfg.epsilon)
        cost = objective + C @ lambdas
        weights = mppi_weights(cost, cfg.temperature)
        all_failed = not np.isfinite(cost).any()
        if not all_failed:
            # a convex combination of clipped samples stays within the action bounds
            mean = np.tensordot(weights, samples, axes=1)
        self.mean = mean

        m_obj, m_C, m_terminal, m_states, m_rewards = self._evaluate(
            state, warmstart, mocap, mean[None])
        return PlanResult(
            action=mean[0].copy(), sequence=mean.copy(),
            cost=float(m_obj[0] + m_C[0] @ lambdas),
            main_cost=float(-m_rewards[0].sum()),
            info={'lambdas': lambdas, 'weights_ess': float(1.0 / np.sum(weights ** 2)),
                  'best_sample_cost': float(cost.min()), 'terminal_reward': float(m_terminal[0]),
                  'plan_states': m_states[0], 'plan_rewards': m_rewards[0],
                  'plan_ok': bool(np.isfinite(m_obj[0])),
                  'sim_seconds': self.rollouts.sim_seconds - sim_before,
                  'plan_seconds': time.perf_counter() - t_start,
                  'all_failed': all_failed})


@dataclasses.dataclass
class POLOConfig(MPPIConfig):
    value_model: str = ''        # exported value ensemble (.onnx); '' = none until one is set

    def validate(self, where='planner'):
        super().validate(where)
        require(not self.value_model or Path(self.value_model).is_file(),
                f'{where}.value_model', f'file not found: {self.value_model}')


class POLO(MPPI):
    """MPPI whose terminal reward is a POLO value ensemble: loaded from `value_model`, or set
    by the POLO training loop (apex_ros.learning.polo) with `set_terminal_value`."""
    name = 'polo'
    Config = POLOConfig

    def __init__(self, task, config, rollouts, policy=None, seed: int = 0, terminal_value=None):
        if terminal_value is None and config.value_model:
            terminal_value = config.value_model
        super().__init__(task, config, rollouts, policy=policy, seed=seed,
                         terminal_value=terminal_value)

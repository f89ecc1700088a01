"""The evaluation step every planner uses: action sequences -> rollouts -> costs.

For actions (B, H, nu) from one start state:
  states, ok = OpenLoopRollouts.run                               (B, H+1, nstate), (B,)
  J   = -sum_t Task.planning_reward(s_t, a_t, s_t+1)               main cost
        - value_weight * discount^H V(s_H)                         with a terminal value (POLO)
  C_j = auxiliary costs on each sequence's own rolled-out states    (costs.py; APEX Eq. 3)
  failed samples (diverged rollout, non-finite J or C): J = inf, C = 0.
The weights of the auxiliary costs, lambda_j, are APEX Eq. 4 over the k best by J (adaptive)
or fixed; a planner computes them over the sample set it ranks (`lambdas`).
"""
import dataclasses

import numpy as np

from .costs import adaptive_lambdas, aux_costs


@dataclasses.dataclass
class Evaluation:
    J: np.ndarray           # (B,) main cost, terminal value included; inf for failed samples
    C: np.ndarray           # (B, len(costs.AUX_NAMES)) auxiliary costs; 0 for failed samples
    states: np.ndarray      # (B, H+1, nstate) rolled out, start state included
    rewards: np.ndarray     # (B, H) planning rewards
    terminal: np.ndarray    # (B,) discount^H V(s_H), zeros without a terminal value
    ok: np.ndarray          # (B,) the rollout did not diverge


def aux_weights(cfg, guided: bool) -> np.ndarray:
    """(guidance, action_norm): c_j (adaptive) or lambda_j (fixed); guidance needs a policy."""
    if cfg.lambda_mode == 'fixed':
        return np.array([cfg.guidance_lambda if guided else 0.0, cfg.action_norm_lambda])
    return np.array([cfg.guidance_c if guided else 0.0, cfg.action_norm_c])


def evaluate_sequences(task, rollouts, start, actions, cfg, policy=None,
                       terminal_value=None) -> Evaluation:
    """Roll out `actions` (B, H, nu) from `start` (base.Start) and cost them per `cfg`
    (base.PlannerConfig)."""
    states, ok = rollouts.run(start.state, actions, start.warmstart)
    rewards = task.planning_reward(states, actions)
    J = -np.sum(rewards, axis=1)          # costs.main_cost, keeping the rewards
    terminal = np.zeros(len(actions))
    if terminal_value is not None and cfg.value_weight > 0:
        terminal = terminal_value.reward(states)
        J = J - cfg.value_weight * terminal
    weights = aux_weights(cfg, policy is not None)
    C = aux_costs(task, policy, states, actions, weights[0] > 0, weights[1] > 0)
    failed = ~ok | ~np.isfinite(J) | ~np.isfinite(C).all(axis=1)
    J[failed] = np.inf
    C[failed] = 0.0
    return Evaluation(J, C, states, rewards, terminal, ok)


def lambdas(cfg, J, C, k: int, guided: bool) -> np.ndarray:
    """lambda_j: APEX Eq. 4 over the `k` best finite samples by J (adaptive), or fixed."""
    weights = aux_weights(cfg, guided)
    if cfg.lambda_mode == 'fixed':
        return weights
    return adaptive_lambdas(J, C, k, weights, cfg.epsilon)

"""Main and auxiliary costs of an action sequence, and the APEX adaptive weights (Eq. 3-5).

f = J + sum_j lambda_j C_j, with J the negative planning return (Task.planning_reward) over the
horizon and C_j:
  guidance     sum_t |a_t - pi(s_t)|^2, pi evaluated on the sequence's own rolled-out states
  action_norm  sum_t |a_t|^2
Adaptive weights: lambda_j = c_j R(J) / (R(C_j) + eps), R = max - min over the elite set
(the k best sequences by J), so auxiliary costs can move the ranking by at most a fraction
c_j of the main cost's spread, and not at all when the elites share one main cost.
"""
import numpy as np

AUX_NAMES = ('guidance', 'action_norm')


def main_cost(task, states, actions):
    return -np.sum(task.planning_reward(states, actions), axis=1)


def aux_costs(task, policy, states, actions, use_guidance: bool, use_action_norm: bool):
    """(B, len(AUX_NAMES)); an unused cost is a column of zeros."""
    batch, horizon, nu = actions.shape
    costs = np.zeros((batch, len(AUX_NAMES)))
    if use_guidance and policy is not None:
        obs = task.observe(states[:, :horizon]).reshape(batch * horizon, -1)
        guide = np.clip(policy(obs), task.action_low, task.action_high)
        costs[:, 0] = np.sum((actions - guide.reshape(batch, horizon, nu)) ** 2, axis=(1, 2))
    if use_action_norm:
        costs[:, 1] = np.sum(actions ** 2, axis=(1, 2))
    return costs


def adaptive_lambdas(J, C, elites: int, c, eps: float):
    """lambda_j = c_j R(J) / (R(C_j) + eps) over the `elites` best finite samples by J."""
    c = np.asarray(c, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(J))
    if finite.size < 2:
        return np.zeros_like(c)
    k = min(elites, finite.size)
    top = finite[np.argpartition(J[finite], k - 1)[:k]]
    range_j = np.ptp(J[top])
    range_c = np.ptp(C[top], axis=0)
    return c * range_j / (range_c + eps)


def total_cost(J, C, lambdas):
    f = J + C @ lambdas
    f[~np.isfinite(J)] = np.inf
    return f

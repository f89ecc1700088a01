"""CEM-GD (Huang et al., CEM with gradient descent, Alg. 1) on the true MuJoCo model.

Per control step:
  mean <- mid-range actions at the first step of an episode (the policy's closed-loop sequence
          with warm_start and a policy), else last step's executed sequence shifted left with
          its last action repeated; std <- sigma.
  CEM:    max(initial_budget, budget) samples at the first step after reset(), `budget`
          afterwards, split evenly over `iterations`. Samples clip(mean + noise * std) with
          colored noise (beta, 0 = white); iteration 0 replaces one sample by the mean (the
          shifted optimum) and, with a policy, one by the policy's sequence. Every iteration
          refits mean and std to the `elites` best of all samples so far (momentum alpha).
  GD:     the `refine` best samples are refined by up to `grad_updates` projected gradient
          ascent steps on the horizon return R. Each step tries eta_init * rho^j, j < J =
          line_search_trials, and accepts the first trial that strictly increases R (all
          trials are simulated in one batch); if none does, that sequence stops.
  act:    the first action of the refined sequence with the highest R.

Gradients. dR/da by an adjoint pass over the horizon: per control step, the transition
Jacobians A = dx'/dx, B = dx'/da in MuJoCo's tangent space x = [dqpos (nv), qvel, act], from
`mujoco.mjd_transitionFD` per physics substep, chained over frame_skip substeps with the
control held. mjd_transitionFD rejects the RK4 integrator (humanoid_standup uses it): there
the Jacobians of the whole control step are finite differences of mj_step. The reward terms
r_t = f(s_t, a_t, s_{t+1}) are differentiated by central differences of task.planning_reward
(`reward_gradients`), qpos perturbed through mj_integratePos so quaternion joints are exact.

Step size. With normalize_gradient (default) a step moves the action that changes most by
eta * (high - low) / 2, so eta_init means the same on every task; without it the step is
eta * dR/da as in the paper (whose eta_init 0.01 suits returns of order one per step).

Policy and auxiliary costs. The CEM stage ranks samples by f = J + sum_j lambda_j C_j
exactly as iCEM does (guidance and action-norm costs, adaptive or fixed lambdas), and a policy
adds warm start (first step) and a policy sample (every step). The gradient stage and the
final choice optimize the main return only: the guidance cost is not differentiated (that
would need the policy's input gradient). PlanResult.cost reports f of the chosen sequence.

"Budget" (samples_per_step) counts CEM samples; the line search's rollouts are extra and
reported in info['rollouts']. info['sim_seconds'] is rollout physics; info['grad_seconds'] is
the gradient computation (nominal mj_step, Jacobians, reward derivatives, adjoint pass);
info['refine_returns'] / ['refine_steps'] list, per refined sequence, its return after each
accepted step and the accepted step sizes.
"""
import dataclasses
import time

import mujoco
import numpy as np

from ..config import require
from ..sim.rollout import closed_loop_rollout
from ..sim.state import STATE_SPEC, set_state
from .base import Planner, PlanResult
from .costs import adaptive_lambdas, aux_costs, main_cost, total_cost
from .noise import colored_noise


@dataclasses.dataclass
class CEMGDConfig:
    horizon: int = 30
    budget: int = 50             # N_r: CEM samples per step after the first
    initial_budget: int = 500    # N_init: CEM samples at the first step (never below budget)
    iterations: int = 3          # CEM iterations; the samples are split evenly over them
    elites: int = 5              # samples the CEM mean and std are fitted to
    sigma: float = 0.5           # initial std of the sampling distribution
    alpha: float = 0.1           # momentum: weight of the old mean and std
    beta: float = 0.0            # colored-noise exponent (0: white noise)
    add_mean: bool = True        # sample the mean itself (the shifted optimum)
    refine: int = 2              # k: sequences refined by gradient ascent
    grad_updates: int = 2        # G: gradient steps per refined sequence
    line_search_trials: int = 4  # J: step sizes tried per gradient step
    eta_init: float = 0.3        # first step size tried
    rho: float = 0.3             # step size shrink factor: 4 trials span 0.3 ... 0.008
    normalize_gradient: bool = True  # eta in units of the action half-range (see docstring)
    fd_eps: float = 1e-6         # finite-difference step of the dynamics Jacobians
    fd_centered: bool = False    # centered differences: ~2x the Jacobian cost
    reward_eps: float = 1e-6     # finite-difference step of the reward derivatives
    warm_start: bool = True      # first step's mean from the policy (needs a policy)
    policy_samples: bool = True  # add the policy's sequence as a sample (needs a policy)
    lambda_mode: str = 'adaptive'  # as iCEM: 'adaptive' (APEX Eq. 4) or 'fixed'
    guidance_c: float = 0.025
    action_norm_c: float = 0.0
    guidance_lambda: float = 1.0
    action_norm_lambda: float = 0.0
    epsilon: float = 1e-6

    def validate(self, where='planner'):
        for key in ('horizon', 'budget', 'initial_budget', 'iterations', 'elites', 'refine',
                    'line_search_trials'):
            value = getattr(self, key)
            require(value >= 1, f'{where}.{key}', f'must be >= 1, got {value}')
        require(self.grad_updates >= 0, f'{where}.grad_updates',
                f'must be >= 0, got {self.grad_updates}')
        require(self.budget >= self.iterations * self.elites, f'{where}.budget',
                f'{self.budget} is below iterations x elites = {self.iterations} x '
                f'{self.elites}; raise the budget or lower iterations/elites')
        require(self.refine <= self.budget, f'{where}.refine',
                f'{self.refine} refined sequences > budget {self.budget} samples')
        require(self.sigma >= 0, f'{where}.sigma', f'must be >= 0, got {self.sigma}')
        require(0 <= self.alpha < 1, f'{where}.alpha', f'must be in [0, 1), got {self.alpha}')
        require(self.beta >= 0, f'{where}.beta', f'must be >= 0, got {self.beta}')
        require(self.eta_init > 0, f'{where}.eta_init', f'must be > 0, got {self.eta_init}')
        require(0 < self.rho < 1, f'{where}.rho', f'must be in (0, 1), got {self.rho}')
        for key in ('fd_eps', 'reward_eps', 'epsilon'):
            require(getattr(self, key) > 0, f'{where}.{key}', f'must be > 0, got '
                    f'{getattr(self, key)}')
        require(self.lambda_mode in ('adaptive', 'fixed'), f'{where}.lambda_mode',
                f"must be 'adaptive' or 'fixed', got {self.lambda_mode!r}")
        for key in ('guidance_c', 'action_norm_c', 'guidance_lambda', 'action_norm_lambda'):
            require(getattr(self, key) >= 0, f'{where}.{key}', 'must be >= 0')


# --- derivatives ---------------------------------------------------------------------------

def tangent_dim(model) -> int:
    return 2 * model.nv + model.na


def perturbed_states(model, layout, states, eps):
    """States (M, nstate) moved by +-eps along each tangent direction [dqpos, qvel, act].

    Returns (plus, minus), each (M, ndx, nstate). Hinge, slide and free-joint translation
    coordinates are shifted directly; quaternion (free and ball rotation) directions go
    through mj_integratePos, one state at a time.
    """
    nv = model.nv
    ndx = tangent_dim(model)
    plus = np.repeat(states[:, None], ndx, axis=1)
    minus = plus.copy()
    linear = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
    free = int(mujoco.mjtJoint.mjJNT_FREE)
    rotational = []
    for dof in range(nv):
        joint = model.dof_jntid[dof]
        kind = int(model.jnt_type[joint])   # a numpy int is never `in` a tuple of enums
        offset = dof - model.jnt_dofadr[joint]
        if kind in linear or (kind == free and offset < 3):
            col = layout.qpos.start + model.jnt_qposadr[joint] + offset
            plus[:, dof, col] += eps
            minus[:, dof, col] -= eps
        else:
            rotational.append(dof)
    velocity = np.zeros(nv)
    for dof in rotational:
        for sign, out in ((eps, plus), (-eps, minus)):
            velocity[dof] = sign
            for row in range(len(states)):
                qpos = states[row, layout.qpos].copy()
                mujoco.mj_integratePos(model, qpos, velocity, 1.0)
                out[row, dof, layout.qpos] = qpos
        velocity[dof] = 0.0
    rest = np.arange(nv + model.na)
    cols = np.concatenate([np.arange(layout.qvel.start, layout.qvel.stop),
                           np.arange(layout.act.start, layout.act.stop)])
    plus[:, nv + rest, cols] += eps
    minus[:, nv + rest, cols] -= eps
    return plus, minus


def reward_gradients(task, states, actions, eps=1e-6):
    """Central-difference derivatives of each reward term r_t = f(s_t, a_t, s_{t+1}).

    states (B, H+1, nstate), actions (B, H, nu) -> d r_t / d s_t (B, H, ndx),
    d r_t / d s_{t+1} (B, H, ndx), d r_t / d a_t (B, H, nu); state derivatives are in the
    tangent space of mjd_transitionFD. All perturbed transitions go through one planning_reward
    call, each as a one-step trajectory. A task may instead provide analytic derivatives as
    an optional method `reward_gradients(states, actions)` with the same returns.
    """
    analytic = getattr(task, 'reward_gradients', None)
    if analytic is not None:
        return analytic(states, actions)
    batch, horizon, nu = actions.shape
    nstate = states.shape[-1]
    ndx = tangent_dim(task.model)
    now = states[:, :-1].reshape(-1, nstate)
    nxt = states[:, 1:].reshape(-1, nstate)
    act = actions.reshape(-1, nu)
    n = len(act)
    n_dir = 2 * ndx + nu
    # [transition, direction, sign (+, -), (s_t, s_t+1)]
    pert_states = np.empty((n, n_dir, 2, 2, nstate))
    pert_states[..., 0, :] = now[:, None, None]
    pert_states[..., 1, :] = nxt[:, None, None]
    pert_actions = np.empty((n, n_dir, 2, 1, nu))
    pert_actions[...] = act[:, None, None, None]
    for which, base in ((0, now), (1, nxt)):
        plus, minus = perturbed_states(task.model, task.layout, base, eps)
        block = slice(which * ndx, (which + 1) * ndx)
        pert_states[:, block, 0, which] = plus
        pert_states[:, block, 1, which] = minus
    pert_actions[:, 2 * ndx:, 0, 0] += eps * np.eye(nu)
    pert_actions[:, 2 * ndx:, 1, 0] -= eps * np.eye(nu)
    r = task.planning_reward(pert_states.reshape(-1, 2, nstate),
                             pert_actions.reshape(-1, 1, nu)).reshape(n, n_dir, 2)
    d = ((r[..., 0] - r[..., 1]) / (2 * eps)).reshape(batch, horizon, n_dir)
    return d[..., :ndx], d[..., ndx:2 * ndx], d[..., 2 * ndx:]


def _substep_chain(model, data, frame_skip, eps, centered, A_sub, B_sub):
    """Advance `data` one control step; its Jacobians, mjd_transitionFD chained per substep."""
    A = np.eye(len(A_sub))
    B = np.zeros(B_sub.shape)
    for _ in range(frame_skip):
        mujoco.mjd_transitionFD(model, data, eps, centered, A_sub, B_sub, None, None)
        B = A_sub @ B + B_sub
        A = A_sub @ A
        mujoco.mj_step(model, data)
    return A, B


def _control_step_fd(model, data, frame_skip, eps, centered):
    """Advance `data` one control step; its Jacobians by finite differences of mj_step over
    the whole step (for integrators mjd_transitionFD rejects). Controls at a ctrlrange bound
    are differenced one-sided, inward, as mjd_transitionFD does."""
    nv, nu = model.nv, model.nu
    ndx = tangent_dim(model)
    ctrl = data.ctrl.copy()
    spec = mujoco.mjtState.mjSTATE_INTEGRATION   # includes ctrl and qacc_warmstart
    saved = np.empty(mujoco.mj_stateSize(model, spec))
    mujoco.mj_getState(model, data, saved, spec)

    def step(dx=None, du=None):
        mujoco.mj_setState(model, data, saved, spec)
        if dx is not None:
            mujoco.mj_integratePos(model, data.qpos, dx[:nv], 1.0)
            data.qvel[:] += dx[nv:2 * nv]
            data.act[:] += dx[2 * nv:]
        if du is not None:
            data.ctrl[:] += du
        mujoco.mj_step(model, data, nstep=frame_skip)
        return data.qpos.copy(), np.concatenate([data.qvel, data.act])

    def tangent(a, b):
        """Tangent-space difference a - b of two (qpos, [qvel, act]) results."""
        dq = np.empty(nv)
        mujoco.mj_differentiatePos(model, dq, 1.0, b[0], a[0])
        return np.concatenate([dq, a[1] - b[1]])

    nominal = step()
    after = np.empty(mujoco.mj_stateSize(model, spec))
    mujoco.mj_getState(model, data, after, spec)
    A = np.empty((ndx, ndx))
    B = np.empty((ndx, nu))
    for i in range(ndx):
        e = np.zeros(ndx)
        e[i] = eps
        up = step(dx=e)
        A[:, i] = (tangent(up, step(dx=-e)) / (2 * eps) if centered
                   else tangent(up, nominal) / eps)
    low, high = model.actuator_ctrlrange.T
    limited = model.actuator_ctrllimited.astype(bool)
    for j in range(nu):
        e = np.zeros(nu)
        e[j] = eps
        can_up = not limited[j] or ctrl[j] + eps <= high[j]
        can_down = not limited[j] or ctrl[j] - eps >= low[j]
        if centered and can_up and can_down:
            B[:, j] = tangent(step(du=e), step(du=-e)) / (2 * eps)
        elif can_up:
            B[:, j] = tangent(step(du=e), nominal) / eps
        else:
            B[:, j] = tangent(nominal, step(du=-e)) / eps
    mujoco.mj_setState(model, data, after, spec)
    return A, B


def linearize(task, data, state0, actions, warmstart=None, mocap=None, eps=1e-6,
              centered=False):
    """Simulate `actions` (H, nu) from `state0` with mj_step, as OpenLoopRollouts does.

    Returns states (H+1, nstate) and the per-control-step transition Jacobians
    A (H, ndx, ndx), B (H, ndx, nu) in tangent space.
    """
    m = task.model
    horizon, nu = actions.shape
    ndx = tangent_dim(m)
    mujoco.mj_resetData(m, data)
    set_state(m, data, state0)
    if warmstart is not None:
        data.qacc_warmstart[:] = warmstart
    if mocap is not None:
        data.mocap_pos[:], data.mocap_quat[:] = mocap
    states = np.empty((horizon + 1, task.layout.size))
    states[0] = state0
    A = np.empty((horizon, ndx, ndx))
    B = np.empty((horizon, ndx, nu))
    A_sub, B_sub = np.empty((ndx, ndx)), np.empty((ndx, nu))
    per_substep = int(m.opt.integrator) != int(mujoco.mjtIntegrator.mjINT_RK4)
    for t in range(horizon):
        data.ctrl[:] = actions[t]
        if per_substep:
            A[t], B[t] = _substep_chain(m, data, task.frame_skip, eps, centered, A_sub, B_sub)
        else:
            A[t], B[t] = _control_step_fd(m, data, task.frame_skip, eps, centered)
        mujoco.mj_getState(m, data, states[t + 1], STATE_SPEC)
    return states, A, B


def adjoint_gradient(A, B, dr_now, dr_next, dr_action):
    """dR/da (H, nu) of R = sum_t r_t(s_t, a_t, s_{t+1}) from per-step Jacobians and reward
    derivatives (one sequence: A (H, ndx, ndx), B (H, ndx, nu), dr_* (H, .))."""
    horizon = len(A)
    grad = np.empty((horizon, B.shape[-1]))
    costate = np.zeros(A.shape[-1])   # d(sum_{tau >= t+1} r_tau) / d x_{t+1}
    for t in reversed(range(horizon)):
        through_next = dr_next[t] + costate
        grad[t] = dr_action[t] + B[t].T @ through_next
        costate = dr_now[t] + A[t].T @ through_next
    return grad


def return_gradient(task, data, state0, actions, warmstart=None, mocap=None, eps=1e-6,
                    centered=False, reward_eps=1e-6):
    """(R, dR/da (H, nu)) of one action sequence (H, nu) from `state0`."""
    states, A, B = linearize(task, data, state0, actions, warmstart, mocap, eps, centered)
    dr_now, dr_next, dr_action = reward_gradients(task, states[None], actions[None],
                                                  reward_eps)
    ret = float(np.sum(task.planning_reward(states[None], actions[None])))
    return ret, adjoint_gradient(A, B, dr_now[0], dr_next[0], dr_action[0])


# --- planner -------------------------------------------------------------------------------

class CEMGD(Planner):
    """CEM-GD: few CEM samples seed projected gradient ascent with a backtracking line search."""
    name = 'cem_gd'
    Config = CEMGDConfig

    def __init__(self, task, config, rollouts, policy=None, seed: int = 0):
        self._data = mujoco.MjData(task.model)
        super().__init__(task, config, rollouts, policy=policy, seed=seed)

    def reset(self, seed=None):
        super().reset(seed)
        self.mean = None          # (H, nu) shifted optimum; None until the first plan()

    @property
    def samples_per_step(self) -> int:
        return self.cfg.budget

    # -- CEM stage --
    def _initial_mean(self, policy_seq):
        cfg, task = self.cfg, self.task
        if self.mean is not None:
            return np.concatenate([self.mean[1:], self.mean[-1:]])
        if policy_seq is not None and cfg.warm_start:
            return policy_seq.copy()
        return np.tile((task.action_low + task.action_high) / 2, (cfg.horizon, 1))

    def _uses_aux(self):
        cfg = self.cfg
        if cfg.lambda_mode == 'adaptive':
            return self.policy is not None and cfg.guidance_c > 0, cfg.action_norm_c > 0
        return self.policy is not None and cfg.guidance_lambda > 0, cfg.action_norm_lambda > 0

    def _evaluate(self, state, warmstart, mocap, actions):
        """(J (B,), C (B, n_aux)) with J = inf for failed rollouts."""
        states, ok = self.rollouts.run(state, actions, warmstart, mocap)
        J = main_cost(self.task, states, actions)
        C = aux_costs(self.task, self.policy, states, actions, *self._uses_aux())
        bad = ~ok | ~np.isfinite(J) | ~np.isfinite(C).all(axis=1)
        J[bad] = np.inf
        C[bad] = 0.0
        return J, C

    def _lambdas(self, J, C):
        cfg = self.cfg
        with_policy = self.policy is not None
        if cfg.lambda_mode == 'fixed':
            return np.array([cfg.guidance_lambda if with_policy else 0.0,
                             cfg.action_norm_lambda])
        c = np.array([cfg.guidance_c if with_policy else 0.0, cfg.action_norm_c])
        return adaptive_lambdas(J, C, cfg.elites, c, cfg.epsilon)

    def _cem(self, state, warmstart, mocap, n_samples, mean, policy_seq):
        """All CEM samples (N, H, nu), their J, C, and the final lambdas."""
        cfg, task, rng = self.cfg, self.task, self.rng
        H, nu = cfg.horizon, task.nu
        low, high = task.action_low, task.action_high
        std = np.full((H, nu), cfg.sigma)
        sizes = np.full(cfg.iterations, n_samples // cfg.iterations)
        sizes[:n_samples % cfg.iterations] += 1
        seqs, Js, Cs = [], [], []
        for i, n_i in enumerate(sizes):
            noise = colored_noise(cfg.beta, (n_i, nu, H), rng).transpose(0, 2, 1)
            samples = np.clip(mean + noise * std, low, high)
            if i == 0:
                extra = ([np.clip(mean, low, high)] if cfg.add_mean else []) + (
                    [policy_seq] if policy_seq is not None and cfg.policy_samples else [])
                samples[:len(extra)] = extra[:n_i]
            J, C = self._evaluate(state, warmstart, mocap, samples)
            seqs.append(samples)
            Js.append(J)
            Cs.append(C)
            pool, J_all, C_all = np.concatenate(seqs), np.concatenate(Js), np.concatenate(Cs)
            lambdas = self._lambdas(J_all, C_all)
            elites = pool[np.argsort(total_cost(J_all, C_all, lambdas),
                                     kind='stable')[:cfg.elites]]
            mean = (1 - cfg.alpha) * elites.mean(axis=0) + cfg.alpha * mean
            std = (1 - cfg.alpha) * elites.std(axis=0) + cfg.alpha * std
        return pool, J_all, C_all, lambdas

    # -- gradient stage --
    def _ascent_direction(self, seq, grad):
        """Projected gradient, scaled per the config; None if it cannot move the sequence."""
        task = self.task
        if not np.all(np.isfinite(grad)):
            return None
        outward = (((seq >= task.action_high) & (grad > 0))
                   | ((seq <= task.action_low) & (grad < 0)))
        grad = np.where(outward, 0.0, grad)
        largest = np.max(np.abs(grad))
        if largest == 0:
            return None
        if not self.cfg.normalize_gradient:
            return grad
        return grad / largest * (task.action_high - task.action_low) / 2

    def _refine(self, state, warmstart, mocap, seqs, returns):
        """Up to G line-searched gradient steps per sequence. Returns the refined sequences,
        their returns, per sequence the returns after each accepted step and the accepted
        step sizes, the line search's rollout count and the gradient time."""
        cfg, task = self.cfg, self.task
        seqs, returns = seqs.copy(), returns.copy()
        history = [[float(r)] for r in returns]
        accepted = [[] for _ in returns]
        etas = cfg.eta_init * cfg.rho ** np.arange(cfg.line_search_trials)
        active = list(np.flatnonzero(np.isfinite(returns)))
        rollouts, grad_seconds = 0, 0.0
        for _ in range(cfg.grad_updates):
            trials, owners = [], []
            for i in active:
                t0 = time.perf_counter()
                _, grad = return_gradient(task, self._data, state, seqs[i], warmstart, mocap,
                                          cfg.fd_eps, cfg.fd_centered, cfg.reward_eps)
                grad_seconds += time.perf_counter() - t0
                direction = self._ascent_direction(seqs[i], grad)
                if direction is None:
                    continue
                trials.append(np.clip(seqs[i] + etas[:, None, None] * direction,
                                      task.action_low, task.action_high))
                owners.append(i)
            if not owners:
                break
            J, _ = self._evaluate(state, warmstart, mocap, np.concatenate(trials))
            rollouts += len(J)
            trial_returns = -J.reshape(len(owners), len(etas))
            active = []
            for i, candidates, R in zip(owners, trials, trial_returns):
                better = np.flatnonzero(R > returns[i])
                if better.size == 0:
                    continue            # no step size improved: this sequence is done
                seqs[i], returns[i] = candidates[better[0]], R[better[0]]
                history[i].append(float(returns[i]))
                accepted[i].append(float(etas[better[0]]))
                active.append(i)
        return seqs, returns, history, accepted, rollouts, grad_seconds

    def plan(self, state, warmstart=None, mocap=None) -> PlanResult:
        cfg, task = self.cfg, self.task
        sim_before = self.rollouts.sim_seconds
        t_start = time.perf_counter()
        first = self.mean is None
        n_samples = max(cfg.initial_budget, cfg.budget) if first else cfg.budget

        policy_seq = None
        if self.policy is not None and (cfg.policy_samples or (cfg.warm_start and first)):
            policy_seq = closed_loop_rollout(task, self.policy, state, cfg.horizon,
                                             warmstart, mocap)[1][0]
        mean = self._initial_mean(policy_seq)
        pool, J, C, lambdas = self._cem(state, warmstart, mocap, n_samples, mean, policy_seq)

        top = np.argsort(total_cost(J, C, lambdas), kind='stable')[:cfg.refine]
        seqs, returns, history, steps, ls_rollouts, grad_seconds = self._refine(
            state, warmstart, mocap, pool[top], -J[top])
        best = int(np.argmax(returns))
        chosen = seqs[best]
        J_best, C_best = self._evaluate(state, warmstart, mocap, chosen[None])
        self.mean = chosen.copy()
        return PlanResult(
            action=chosen[0].copy(), sequence=chosen.copy(),
            cost=float(total_cost(J_best, C_best, lambdas)[0]), main_cost=float(J_best[0]),
            info={'lambdas': lambdas.copy(),
                  'samples': n_samples,
                  'rollouts': n_samples + ls_rollouts + 1,
                  'refine_returns': history,
                  'refine_steps': steps,
                  'cem_best_return': float(-J.min()),
                  'sim_seconds': self.rollouts.sim_seconds - sim_before,
                  'grad_seconds': grad_seconds,
                  'plan_seconds': time.perf_counter() - t_start,
                  'all_failed': not np.isfinite(J_best[0])})

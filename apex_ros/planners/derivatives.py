"""MuJoCo derivatives for gradient-based planning (CEM-GD): the gradient of an action
sequence's objective R = sum_t r_t(s_t, a_t, s_t+1) + w discount^H V(s_H) w.r.t. its actions.

Transition Jacobians A = dx'/dx, B = dx'/da per control step, in MuJoCo's tangent space
x = [dqpos (nv), qvel, act]: `mujoco.mjd_transitionFD` per physics substep, chained over
frame_skip substeps with the control held (`linearize`). mjd_transitionFD rejects the RK4
integrator (humanoid_standup uses it): there the Jacobians of the whole control step are finite
differences of mj_step. Reward terms are differentiated by central differences of
task.planning_reward (`reward_gradients`), qpos perturbed through mj_integratePos so quaternion
joints are exact; a terminal value likewise (`terminal_gradient`). The adjoint pass:
    lambda_H = w dV/dx_H,   dR/da_t = dr_t/da_t + B_t^T (dr_t/dx_t+1 + lambda_t+1),
    lambda_t = dr_t/dx_t + A_t^T (dr_t/dx_t+1 + lambda_t+1).
"""
import mujoco
import numpy as np

from ..sim.state import STATE_SPEC, set_state


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


def linearize(task, data, state0, actions, warmstart=None, eps=1e-6,
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


def terminal_gradient(task, terminal, states, eps=1e-3):
    """d terminal / d x_H (ndx,) of one trajectory `states` (H+1, nstate), by central
    differences of its final state in tangent space; `terminal` maps trajectories
    (B, H+1, nstate) to (B,), e.g. w * TerminalValue.reward."""
    plus, minus = perturbed_states(task.model, task.layout, states[-1:], eps)
    ndx = plus.shape[1]
    batch = np.repeat(states[None], 2 * ndx, axis=0)
    batch[:ndx, -1] = plus[0]
    batch[ndx:, -1] = minus[0]
    values = terminal(batch)
    return (values[:ndx] - values[ndx:]) / (2 * eps)


def adjoint_gradient(A, B, dr_now, dr_next, dr_action, terminal_grad=None):
    """dR/da (H, nu) of R = sum_t r_t(s_t, a_t, s_{t+1}) (+ a terminal term with derivative
    `terminal_grad` (ndx,) at x_H) from per-step Jacobians and reward derivatives (one
    sequence: A (H, ndx, ndx), B (H, ndx, nu), dr_* (H, .))."""
    horizon = len(A)
    grad = np.empty((horizon, B.shape[-1]))
    # d(sum_{tau >= t+1} r_tau + terminal) / d x_{t+1}
    costate = np.zeros(A.shape[-1]) if terminal_grad is None else terminal_grad
    for t in reversed(range(horizon)):
        through_next = dr_next[t] + costate
        grad[t] = dr_action[t] + B[t].T @ through_next
        costate = dr_now[t] + A[t].T @ through_next
    return grad


def return_gradient(task, data, state0, actions, warmstart=None, eps=1e-6,
                    centered=False, reward_eps=1e-6, terminal=None, terminal_eps=1e-3):
    """(R, dR/da (H, nu)) of one action sequence (H, nu) from `state0`; with `terminal`
    (trajectories (B, H+1, nstate) -> (B,)), R includes terminal(trajectory)."""
    states, A, B = linearize(task, data, state0, actions, warmstart, eps, centered)
    dr_now, dr_next, dr_action = reward_gradients(task, states[None], actions[None],
                                                  reward_eps)
    ret = float(np.sum(task.planning_reward(states[None], actions[None])))
    terminal_grad = None
    if terminal is not None:
        ret += float(terminal(states[None])[0])
        terminal_grad = terminal_gradient(task, terminal, states, terminal_eps)
    return ret, adjoint_gradient(A, B, dr_now[0], dr_next[0], dr_action[0], terminal_grad)

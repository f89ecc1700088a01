"""POLO's training loop (Lowrey et al. 2019, Alg. 1): act with MPPI whose terminal reward is
the optimistic value ensemble, keep every visited state, and every Z steps take G gradient
steps on the value ensemble.

Targets (Eq. 7): y_k(s) = sum_{t<N} gamma^t r_t + gamma^N V_k(s_N), member by member, along
the N first steps of the plan the planner optimized at s while acting. Re-optimizing every
replayed state at update time, as the paper does, would cost a full planning step per target;
the acting-time plan is that optimization, done once. The bootstrap values V_k(s_N) are
recomputed at every update, with the ensemble as it was before the update (fixed for its G
steps, like a target network), so the regression targets do not move under the optimizer.
"""
import dataclasses
import time

import numpy as np

from ..config import require
from ..planners import make_planner
from ..sim.episodes import run_episode
from ..sim.simulation import Simulation
from .value import ValueConfig, ValueEnsemble


class ReplayBuffer:
    """Visited states with what their N-step targets need: the observation, the discounted
    N-step return of the plan optimized there, and the observation N plan steps later.
    Holds the latest `capacity` entries."""

    def __init__(self, capacity: int, obs_dim: int):
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.nstep_return = np.zeros(capacity)
        self.end_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.capacity, self.size, self._next = capacity, 0, 0

    def add(self, obs, nstep_return: float, end_obs):
        i = self._next
        self.obs[i], self.nstep_return[i], self.end_obs[i] = obs, nstep_return, end_obs
        self._next = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def add_plan(self, task, state, result, steps: int, discount: float) -> bool:
        """Add `state` with the targets of the plan in `result` (an MPPI PlanResult); False
        (nothing added) when that plan's rollout failed."""
        info = result.info
        if not info['plan_ok']:
            return False
        rewards = info['plan_rewards'][:steps]
        ret = float(np.sum(discount ** np.arange(len(rewards)) * rewards))
        obs = task.observe(np.stack([state, info['plan_states'][steps]]))
        self.add(obs[0], ret, obs[1])
        return True


def update_value(ensemble: ValueEnsemble, buffer: ReplayBuffer) -> float:
    """G gradient steps on minibatches of the buffer (one independent minibatch per member).
    Returns the mean squared error (normalized units) of the last step."""
    cfg = ensemble.cfg
    n = buffer.size
    obs, end_obs = buffer.obs[:n], buffer.end_obs[:n]
    bootstrap = cfg.discount ** cfg.target_steps * ensemble.members(end_obs)
    targets = buffer.nstep_return[:n][None] + bootstrap          # (K, n), Eq. 7 per member
    ensemble.set_normalization(obs, targets.mean(axis=0))
    members = np.arange(cfg.members)[:, None]
    mse = float('nan')
    for _ in range(cfg.gradient_steps):
        idx = ensemble.torch.randint(0, n, (cfg.members, min(cfg.batch_size, n)),
                                     generator=ensemble.generator).numpy()
        mse = ensemble.train_step(obs[idx], targets[members, idx])
    return mse


@dataclasses.dataclass
class PoloRun:
    ensemble: ValueEnsemble
    returns: list            # per episode
    successes: list          # per episode (task-defined, may be None)
    losses: list             # value mse per update
    steps: int
    seconds: float


def run_polo(task, planner_settings, value_cfg: ValueConfig, steps: int, seed: int = 0,
             threads: int = 1, on_episode=None) -> PoloRun:
    """POLO for `steps` agent steps, in episodes of task.episode_steps (the agent resets).

    planner_settings: MPPI/POLO settings (dict or config); value_cfg: the ensemble and its
    training; on_episode(index, Episode) is called after every episode.
    """
    import torch
    if dataclasses.is_dataclass(planner_settings):
        planner_settings = dataclasses.asdict(planner_settings)
    planner = make_planner(task, 'polo', planner_settings, threads=threads, seed=seed)
    horizon = planner.cfg.horizon
    require(value_cfg.target_steps <= horizon, 'value.target_steps',
            f'N = {value_cfg.target_steps} exceeds the planning horizon {horizon}: the N-step '
            'targets follow the planned trajectory')
    require(steps >= 1, 'steps', f'must be >= 1, got {steps}')
    torch.set_num_threads(value_cfg.threads)
    ensemble = ValueEnsemble(task.obs_dim, value_cfg, seed)
    planner.set_terminal_value(ensemble.terminal_value(task))
    buffer = ReplayBuffer(value_cfg.buffer_size, task.obs_dim)
    run = PoloRun(ensemble, [], [], [], 0, 0.0)
    t_start = time.perf_counter()

    def act(sim):
        state = sim.state()
        result = planner.plan(state, sim.warmstart())
        buffer.add_plan(task, state, result, value_cfg.target_steps, value_cfg.discount)
        return result.action, result

    def on_step(t, sim, action, result):
        run.steps += 1
        if run.steps % value_cfg.update_every == 0 and buffer.size > 0:
            run.losses.append(update_value(ensemble, buffer))

    sim = Simulation(task)
    try:
        while run.steps < steps:
            episode = len(run.returns)
            planner.reset(seed + episode)
            ep = run_episode(task, act, seed + episode,
                             steps=min(task.episode_steps, steps - run.steps), sim=sim,
                             on_step=on_step)
            run.returns.append(ep.ret)
            run.successes.append(ep.success)
            if on_episode is not None:
                on_episode(episode, ep)
    finally:
        planner.rollouts.close()
    run.seconds = time.perf_counter() - t_start
    return run

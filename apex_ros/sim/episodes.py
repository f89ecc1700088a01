"""Closed-loop episodes: a planner (MPC) or a policy drives the simulation."""
import dataclasses
import time

import numpy as np

from ..progress import Progress
from .simulation import Simulation


@dataclasses.dataclass
class Episode:
    states: np.ndarray        # (T+1, nstate)
    actions: np.ndarray       # (T, nu)
    rewards: np.ndarray       # (T,)
    plan_seconds: np.ndarray  # (T,) wall time of each plan() call (0 for a policy)
    sim_seconds: np.ndarray   # (T,) of which inside the physics rollouts
    success: object = None    # task-defined, or None

    @property
    def ret(self) -> float:
        return float(self.rewards.sum())


def run_episode(task, act, seed: int = 0, steps: int | None = None, progress: str | None = None,
                sim: Simulation | None = None, on_step=None) -> Episode:
    """Drive a fresh episode with `act(sim) -> (action, PlanResult or None)` each step."""
    sim = sim or Simulation(task)
    sim.reset(seed)
    steps = task.episode_steps if steps is None else steps
    states = [sim.state()]
    actions, rewards, plan_s, sim_s = [], [], [], []
    bar = Progress(progress or '', steps, enabled=progress is not None)
    for t in range(steps):
        t0 = time.perf_counter()
        action, result = act(sim)
        plan_s.append(time.perf_counter() - t0)
        sim_s.append(result.info.get('sim_seconds', 0.0) if result is not None else 0.0)
        reward, state = sim.step(action)
        actions.append(np.clip(action, task.action_low, task.action_high))
        rewards.append(reward)
        states.append(state)
        if on_step is not None:
            on_step(t, sim, action, result)
        bar.update(t + 1, f'return {sum(rewards):9.2f}')
    bar.close()
    states = np.array(states)
    return Episode(states, np.array(actions), np.array(rewards), np.array(plan_s),
                   np.array(sim_s), task.success(states))


def planner_actor(planner, seed: int = 0):
    """An `act` for run_episode that plans every step; resets the planner first."""
    planner.reset(seed)

    def act(sim):
        result = planner.plan(*sim.plan_inputs())
        return result.action, result
    return act


def policy_actor(task, policy):
    def act(sim):
        obs = task.observe(sim.state()[None])
        return policy(obs)[0], None
    return act


def run_mpc(task, planner, seed: int = 0, steps: int | None = None, progress=None) -> Episode:
    return run_episode(task, planner_actor(planner, seed), seed, steps, progress)

"""The planner interface every expert implements (iCEM, random shooting; CEM-GD and MPPI
follow): construct with a task, a config dataclass, rollouts, a policy and a seed;
`reset()` at the start of an episode; `plan(state)` once per control step."""
import dataclasses

import numpy as np

from ..deploy.policy import as_policy
from ..learning.value import as_terminal_value


@dataclasses.dataclass
class PlanResult:
    action: np.ndarray          # (nu,) the action to execute now
    sequence: np.ndarray        # (H, nu) the best action sequence found
    cost: float                 # its total cost f = J + sum_j lambda_j C_j
    main_cost: float            # its main cost J (negative horizon return)
    info: dict                  # planner-specific diagnostics (lambdas, samples, timings)


class Planner:
    name = ''
    Config = None
    terminal_value = None   # optional value.TerminalValue: reward-to-go at the horizon end

    def __init__(self, task, config, rollouts, policy=None, seed: int = 0):
        self.task = task
        self.cfg = config
        self.rollouts = rollouts
        self.policy = None
        self.set_policy(policy)
        self.seed = seed
        if getattr(config, 'value_model', ''):   # an exported value ensemble (POLO)
            self.set_terminal_value(config.value_model)
        self.reset(seed)

    def set_policy(self, policy):
        """Use `policy` (torch module, onnxruntime session/path, callable or None) from now on."""
        self.policy = as_policy(policy, self.task)

    def set_terminal_value(self, value):
        """Use `value` (a value.TerminalValue, an exported value ensemble's path, or None) as
        the reward beyond the horizon from now on (POLO-style; iCEM, MPPI and POLO use it)."""
        self.terminal_value = as_terminal_value(value, self.task)

    def reset(self, seed: int | None = None):
        """Start a new episode: forget step-to-step memory; optionally re-seed."""
        if seed is not None:
            self.seed = seed
        self.rng = np.random.default_rng(self.seed)

    def plan(self, state, warmstart=None, mocap=None) -> PlanResult:
        raise NotImplementedError

    def relabel(self, states, warmstarts=None, seed: int | None = None, on_step=None):
        """Expert actions for a sequence of visited states (DAgger): reset with `seed`, then
        plan along the sequence, keeping the step-to-step memory as MPC would."""
        self.reset(seed)
        has_ws = warmstarts is not None and len(warmstarts) > 0
        labels = np.empty((len(states), self.task.nu))
        for t, state in enumerate(states):
            labels[t] = self.plan(state, warmstarts[t] if has_ws else None).action
            if on_step is not None:
                on_step(t + 1)
        return labels

    @property
    def samples_per_step(self) -> int:
        raise NotImplementedError

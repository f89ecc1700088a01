"""The planner skeleton every expert shares: the base owns the control step's loop, a planner
writes only what makes it different (as hydrax's init_params / sample_knots / update_params,
and judo's optimizer = sample + update).

Per control step, Planner.plan(state):
  nominal (H, nu) <- first step of an episode: the policy's closed-loop sequence with warm
                     start, else Task.nominal_action(state) repeated (the middle of the
                     action bounds, or hold for position targets); later steps: the previous
                     nominal shifted left, its last action from the policy at the predicted
                     horizon end (a planner that records `nominal_end`, iCEM_pi) or repeated;
  search           = begin(nominal, policy sequence, first step)   planner-specific state
  for i, N_i in enumerate(populations(search)):
      samples      = sample(i, N_i, search)                        (N_i, H, nu)
      update(i, search, samples, evaluate(samples))                evaluate.py, for all
  result           = act(start, search); the next step's nominal is search.mean.

Configs: PlannerConfig holds what every planner has (horizon, budget, the APEX auxiliary-cost
weights, the terminal value) with its checks; SamplingConfig adds the Gaussian sampling
around the nominal (sigma, beta). Planners extend them with their own fields only.

Ablations are capabilities: `Planner.ablations` maps each APEX ablation a planner supports to
the config change it means; `with_ablation` applies one or refuses it by name.
"""
import dataclasses
import time
from pathlib import Path

import numpy as np

from ..config import require
from ..deploy.policy import as_policy
from ..errors import ConfigError
from ..learning.value import as_terminal_value
from ..sim.rollout import closed_loop_rollout
from .evaluate import Evaluation, evaluate_sequences, lambdas


@dataclasses.dataclass
class PlannerConfig:
    """Settings every planner has: the objective f = J + sum_j lambda_j C_j with
    J = -return - value_weight discount^H V(s_H) (evaluate.py) over `horizon` steps, `budget`
    sampled sequences per step."""
    horizon: int = 30
    budget: int = 100
    lambda_mode: str = 'adaptive'  # 'adaptive' (APEX Eq. 4) or 'fixed' (ablation)
    guidance_c: float = 0.025    # c_j of the guidance cost (adaptive mode; needs a policy)
    action_norm_c: float = 0.0   # c_j of the action-norm cost (adaptive mode)
    guidance_lambda: float = 1.0     # lambda_j in fixed mode
    action_norm_lambda: float = 0.0  # lambda_j in fixed mode
    epsilon: float = 1e-6        # of Eq. 4's denominator
    value_model: str = ''        # exported value ensemble (.onnx): terminal value; '' = none
    #                              until one is set (set_terminal_value, the POLO loop)
    value_weight: float = 1.0    # weight of the terminal value in the objective, when one is set

    def validate(self, where='planner'):
        for key in ('horizon', 'budget'):
            require(getattr(self, key) >= 1, f'{where}.{key}',
                    f'must be >= 1, got {getattr(self, key)}')
        require(self.lambda_mode in ('adaptive', 'fixed'), f'{where}.lambda_mode',
                f"must be 'adaptive' or 'fixed', got {self.lambda_mode!r}")
        for key in ('guidance_c', 'action_norm_c', 'guidance_lambda', 'action_norm_lambda',
                    'value_weight'):
            require(getattr(self, key) >= 0, f'{where}.{key}',
                    f'must be >= 0, got {getattr(self, key)}')
        require(self.epsilon > 0, f'{where}.epsilon', 'must be > 0')
        require(not self.value_model or Path(self.value_model).is_file(),
                f'{where}.value_model', f'file not found: {self.value_model}')


@dataclasses.dataclass
class SamplingConfig(PlannerConfig):
    """Planners that sample Gaussian perturbations of the nominal, correlated in time."""
    sigma: float = 0.5           # std of the perturbations (initial std for CEM)
    sigma_relative: bool = False  # sigma in units of half each action's range (as the iCEM
    #                               code's init_std), else in action units
    beta: float = 0.0            # colored-noise exponent; 0 = white noise

    def validate(self, where='planner'):
        super().validate(where)
        require(self.sigma >= 0, f'{where}.sigma', f'must be >= 0, got {self.sigma}')
        require(self.beta >= 0, f'{where}.beta', f'must be >= 0, got {self.beta}')


def perturbation_std(cfg: SamplingConfig, task):
    """The perturbations' std: sigma, or (nu,) sigma x half each action's range."""
    if cfg.sigma_relative:
        return cfg.sigma * (task.action_high - task.action_low) / 2
    return cfg.sigma


@dataclasses.dataclass
class PlanResult:
    action: np.ndarray          # (nu,) the action to execute now
    sequence: np.ndarray        # (H, nu) the best action sequence found
    cost: float                 # its total cost f = J + sum_j lambda_j C_j
    main_cost: float            # its main cost J (negative horizon return)
    info: dict                  # planner-specific diagnostics (lambdas, samples, timings)


@dataclasses.dataclass
class Start:
    """Where a plan starts: the task's state (nstate,), qacc_warmstart (nv,) or None."""
    state: np.ndarray
    warmstart: np.ndarray | None


@dataclasses.dataclass
class Search:
    """One control step's search; planners subclass it with their own state."""
    mean: np.ndarray                      # (H, nu) the nominal; shifted into the next step
    policy_sequence: np.ndarray | None    # (H, nu) the policy's closed-loop actions, if drawn
    first_step: bool                      # the first plan() since reset()


class Planner:
    name = ''
    Config = PlannerConfig
    ablations = {'fixed_lambda': {'lambda_mode': 'fixed'}}   # APEX ablation -> config change
    terminal_value = None   # optional value.TerminalValue: reward-to-go at the horizon end

    def __init__(self, task, config, rollouts, policy=None, seed: int = 0):
        self.task = task
        self.cfg = config
        self.rollouts = rollouts
        self.policy = None
        self.set_policy(policy)
        self.seed = seed
        if config.value_model:
            self.set_terminal_value(config.value_model)
        self.reset(seed)

    # -- capabilities ---------------------------------------------------------------------
    @classmethod
    def with_ablation(cls, cfg, ablation: str, where: str = 'apex'):
        """`cfg` changed as APEX ablation `ablation` means for this planner, re-validated."""
        if ablation not in cls.ablations:
            raise ConfigError(f'{where}: planner {cls.name} does not support ablation '
                              f'{ablation!r} (supports: {", ".join(cls.ablations)})')
        changed = dataclasses.replace(cfg, **cls.ablations[ablation])
        changed.validate(where)
        return changed

    @classmethod
    def with_action_norm(cls, cfg, c: float, where: str = 'apex'):
        """`cfg` with the APEX action-norm cost's c_j (adaptive mode) set to `c`."""
        changed = dataclasses.replace(cfg, action_norm_c=c)
        changed.validate(where)
        return changed

    @property
    def warm_start(self) -> bool:
        """The first step's nominal is the policy's closed-loop sequence."""
        return False

    @property
    def policy_samples(self) -> bool:
        """The policy's closed-loop sequence is drawn at every step (as a sample)."""
        return False

    @property
    def samples_per_step(self) -> int:
        raise NotImplementedError

    # -- state ----------------------------------------------------------------------------
    def set_policy(self, policy):
        """Use `policy` (torch module, onnxruntime session/path, callable or None) from now on."""
        self.policy = as_policy(policy, self.task)

    def set_terminal_value(self, value):
        """Use `value` (a value.TerminalValue, an exported value ensemble's path, or None) as
        the reward beyond the horizon from now on (POLO-style)."""
        self.terminal_value = as_terminal_value(value, self.task)

    def reset(self, seed: int | None = None):
        """Start a new episode: forget step-to-step memory; optionally re-seed."""
        if seed is not None:
            self.seed = seed
        self.rng = np.random.default_rng(self.seed)
        self.mean = None          # (H, nu) nominal shifted between steps; None: first step
        self.nominal_end = None   # predicted state at the nominal's horizon end, if recorded

    # -- the loop -------------------------------------------------------------------------
    def plan(self, state, warmstart=None) -> PlanResult:
        sim_before = self.rollouts.sim_seconds
        t_start = time.perf_counter()
        state = self.task.check_states(np.asarray(state, dtype=np.float64), 'plan start state')
        start = Start(state, warmstart)
        first_step = self.mean is None
        policy_sequence = None
        if self.policy_samples or (self.warm_start and first_step):
            policy_sequence = closed_loop_rollout(self.task, self.policy, state,
                                                  self.cfg.horizon, warmstart)[1][0]
        search = self.begin(self._nominal(state, policy_sequence), policy_sequence,
                            first_step)
        for i, n_i in enumerate(self.populations(search)):
            samples = self.sample(i, n_i, search)
            self.update(i, search, samples, self.evaluate(start, samples))
        result = self.act(start, search)
        self.mean = search.mean
        result.info.update(sim_seconds=self.rollouts.sim_seconds - sim_before,
                           plan_seconds=time.perf_counter() - t_start)
        return result

    def _nominal(self, state, policy_sequence):
        task = self.task
        if self.mean is None:
            if self.warm_start:
                return policy_sequence.copy()
            return np.tile(task.nominal_action(state), (self.cfg.horizon, 1))
        mean = np.empty_like(self.mean)
        mean[:-1] = self.mean[1:]
        if self.warm_start and self.nominal_end is not None:
            obs = task.observe(self.nominal_end[None])
            mean[-1] = np.clip(self.policy(obs)[0], task.action_low, task.action_high)
        else:
            mean[-1] = self.mean[-1]
        return mean

    def evaluate(self, start: Start, actions) -> Evaluation:
        """Rollouts and costs of `actions` (B, H, nu) from `start` (evaluate.py)."""
        return evaluate_sequences(self.task, self.rollouts, start, actions, self.cfg,
                                  self.policy, self.terminal_value)

    def lambdas(self, J, C, k: int) -> np.ndarray:
        """lambda_j of the auxiliary costs: APEX Eq. 4 over the `k` best by J, or fixed."""
        return lambdas(self.cfg, J, C, k, self.policy is not None)

    # -- what a planner supplies ----------------------------------------------------------
    def begin(self, mean, policy_sequence, first_step: bool) -> Search:
        """This step's search state, from the nominal (H, nu)."""
        return Search(mean, policy_sequence, first_step)

    def populations(self, search) -> list:
        """Samples per iteration: the loop runs once per entry."""
        raise NotImplementedError

    def sample(self, i: int, n: int, search) -> np.ndarray:
        """Iteration i's action sequences (>= n, H, nu), within the action bounds."""
        raise NotImplementedError

    def update(self, i: int, search, samples, evaluation: Evaluation):
        """Fold iteration i's evaluated samples into `search`."""
        raise NotImplementedError

    def act(self, start: Start, search) -> PlanResult:
        """The step's result (timings are added by plan); leaves the next nominal in
        search.mean."""
        raise NotImplementedError

    # -- DAgger ---------------------------------------------------------------------------
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

"""The `apex:` section of a run config, the paper's ablations, and the episode seeds.

Imports no torch: the config loader reads ApexConfig from here."""
import dataclasses

from ...config import require

ABLATIONS = ('none', 'bc_only', 'unguided', 'fixed_lambda', 'no_warm_start',
             'no_policy_samples')


@dataclasses.dataclass
class ApexConfig:
    iterations: int = 10
    expert_rollouts: int = 1     # n per iteration (paper: 1 for HalfCheetah/Humanoid)
    dagger_rollouts: int = 1
    window: int = 50             # latest rollouts used for training (paper: 50 HalfCheetah)
    dagger: bool = True          # False = BC only
    dagger_until_failure: bool = False  # relabel a policy rollout only up to its first state
    #                                     the task calls failed (the states after it would
    #                                     teach the student to stay there;
    #                                     experiments/halfcheetah/NOTES.md)
    expert_action_noise: float = 0.0  # std of Gaussian noise added to the actions the expert
    #                                   executes; its labels stay the planner's actions (DART,
    #                                   Laskey et al. 2017): data on recovering from the
    #                                   student's kind of errors
    guided: bool = True          # False = the expert never sees the policy (plain iCEM)
    action_norm_c: float = 0.025  # c of the action-norm auxiliary cost of the APEX expert: it
    #                               replaces the planner's own action_norm_c (default 0, plain
    #                               MPC) wherever the planner is APEX's expert (apex_settings)
    eval_episodes: int = 3
    ablation: str = 'none'       # shortcut for the paper's Appendix B ablations

    def validate(self, where='apex'):
        require(self.iterations >= 1, f'{where}.iterations', 'must be >= 1')
        require(self.expert_rollouts >= 0 and self.dagger_rollouts >= 0,
                f'{where}.expert_rollouts/dagger_rollouts', 'must be >= 0')
        require(self.expert_rollouts + self.dagger_rollouts >= 1, f'{where}.expert_rollouts',
                'at least one expert or DAgger rollout per iteration is needed')
        require(self.window >= 1, f'{where}.window', 'must be >= 1')
        require(self.eval_episodes >= 1, f'{where}.eval_episodes', 'must be >= 1')
        require(self.action_norm_c >= 0, f'{where}.action_norm_c', 'must be >= 0')
        require(self.expert_action_noise >= 0, f'{where}.expert_action_noise', 'must be >= 0')
        require(self.ablation in ABLATIONS, f'{where}.ablation',
                f'must be one of {", ".join(ABLATIONS)}, got {self.ablation!r}')


def apply_ablation(apex: ApexConfig, planner_name: str, planner_cfg, where='apex'):
    """The paper's Appendix B variants: bc_only and unguided are settings of the loop; the
    others are capabilities the expert planner declares (Planner.ablations), refused by name
    where it has none. The APEX action-norm weight applies to every expert."""
    from ...planners import planner_class
    planner = planner_class(planner_name)
    planner_cfg = planner.with_action_norm(planner_cfg, apex.action_norm_c, where)
    if apex.ablation == 'bc_only':
        apex = dataclasses.replace(apex, dagger=False)
    elif apex.ablation == 'unguided':
        apex = dataclasses.replace(apex, guided=False)
    elif apex.ablation != 'none':
        planner_cfg = planner.with_ablation(planner_cfg, apex.ablation,
                                            f'{where}.ablation {apex.ablation}')
    return apex, planner_cfg


def apex_settings(run_cfg):
    """(ApexConfig, planner config of the APEX expert): the run's `apex:` section and its
    planner with the action-norm cost and the ablation applied."""
    return apply_ablation(run_cfg.apex, run_cfg.planner_name, run_cfg.planner,
                          f'{run_cfg.path}: apex')


def episode_seed(run_seed: int, iteration: int, kind: int, j: int) -> int:
    """Seed of the j-th episode of `kind` (1 expert, 2 DAgger, 3 evaluation; 4 and 5 seed the
    trainings) in 0-based APEX iteration `iteration` of a run seeded with `run_seed`."""
    return run_seed + 100_003 * iteration + 1_000 * kind + j

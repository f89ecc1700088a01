"""APEX (Pinneri et al. 2021, Alg. 2): guided iCEM_pi expert + DAgger + MLP distillation.

Each iteration has four phases; after each one the whole training state (dataset, policy,
optimizer, RNG, iteration/phase counter, metrics) is written atomically to
RUN_DIR/checkpoint.pt, so a killed run resumes losing at most the phase in progress:
  expert        n rollouts of iCEM_pi guided by the current policy -> dataset
  train_expert  train the policy on the latest `window` rollouts
  dagger        roll out the policy; relabel every visited state with the same guided expert,
                one planner carried along the trajectory (its step-to-step memory kept)
  train_dagger  train again; export the iteration's bundle; evaluate the policy
"""
import dataclasses
import io
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from ..config import require
from ..deploy.bundle import PolicyBundle
from ..deploy.export import bundle_bytes
from ..errors import ApexError, ConfigError
from ..files import atomic_write_bytes, atomic_write_text
from ..progress import Progress
from ..sim.episodes import planner_actor, policy_actor, run_episode
from ..tasks.base import Task
from .dataset import Dataset, LabeledRollout
from .plot import plot_learning_curve
from .student import MLPPolicy, make_optimizer, train_policy

PHASES = ('expert', 'train_expert', 'dagger', 'train_dagger')
ABLATIONS = ('none', 'bc_only', 'unguided', 'fixed_lambda', 'no_warm_start',
             'no_policy_samples')
CHECKPOINT = 'checkpoint.pt'


@dataclasses.dataclass
class ApexConfig:
    iterations: int = 10
    expert_rollouts: int = 1     # n per iteration (paper: 1 for HalfCheetah/Humanoid)
    dagger_rollouts: int = 1
    window: int = 50             # latest rollouts used for training (paper: 50 HalfCheetah)
    dagger: bool = True          # False = BC only
    dagger_until_failure: bool = False  # relabel a policy rollout only up to its first state
    #                                     the task calls failed (the states after it would
    #                                     teach the student to stay there, benchmarks/README.md)
    expert_action_noise: float = 0.0  # std of Gaussian noise added to the actions the expert
    #                                   executes; its labels stay the planner's actions (DART,
    #                                   Laskey et al. 2017): data on recovering from the
    #                                   student's kind of errors (benchmarks/README.md)
    guided: bool = True          # False = the expert never sees the policy (plain iCEM)
    action_norm_c: float = 0.025  # c of the action-norm auxiliary cost in the APEX expert
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


def apply_ablation(apex: ApexConfig, planner_cfg, where='apex'):
    """The paper's Appendix B variants, as settings of the loop and the expert."""
    def planner_with(**changes):
        missing = [k for k in changes if not hasattr(planner_cfg, k)]
        if missing:
            raise ConfigError(f'{where}.ablation {apex.ablation}: the planner has no '
                              f'{", ".join(missing)} setting ({type(planner_cfg).__name__})')
        return dataclasses.replace(planner_cfg, **changes)

    if hasattr(planner_cfg, 'action_norm_c'):
        planner_cfg = dataclasses.replace(planner_cfg, action_norm_c=apex.action_norm_c)
    a = apex.ablation
    if a == 'bc_only':
        apex = dataclasses.replace(apex, dagger=False)
    elif a == 'unguided':
        apex = dataclasses.replace(apex, guided=False)
    elif a == 'fixed_lambda':
        planner_cfg = planner_with(lambda_mode='fixed')
    elif a == 'no_warm_start':
        planner_cfg = planner_with(warm_start=False)
    elif a == 'no_policy_samples':
        planner_cfg = planner_with(policy_samples=False)
    return apex, planner_cfg


def apex_settings(run_cfg):
    """(ApexConfig, planner config of the APEX expert): the run's `apex:` section and its
    planner with the action-norm cost and the ablation applied."""
    return apply_ablation(run_cfg.apex, run_cfg.planner, f'{run_cfg.path}: apex')


def episode_seed(run_seed: int, iteration: int, kind: int, j: int) -> int:
    """Seed of the j-th episode of `kind` (1 expert, 2 DAgger, 3 evaluation; 4 and 5 seed the
    trainings) in 0-based APEX iteration `iteration` of a run seeded with `run_seed`."""
    return run_seed + 100_003 * iteration + 1_000 * kind + j


def check_output_dir(out: Path):
    """Fail before any work if `out` cannot be created or written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f'.write-test-{os.getpid()}'
        probe.write_bytes(b'ok')
        probe.unlink()
    except OSError as e:
        raise ApexError(f'output directory {out} is not writable: {e.strerror}') from None


class ApexTrainer:
    adds_expert_action_noise = True   # False where something else executes the expert's action

    def __init__(self, run_cfg, out_dir, resume: bool = False, shards=(), progress: bool = True,
                 log=print, allow_config_change: bool = False):
        self.run_cfg = run_cfg
        self.allow_config_change = allow_config_change   # the --resume check: APEX helper
        self.out = Path(out_dir)
        self.log = log
        self.show_progress = progress
        where = f'{run_cfg.path}: '
        self.apex, self.planner_cfg = apex_settings(run_cfg)
        self.train_cfg = run_cfg.train
        self.task = run_cfg.make_task()
        if self.apex.dagger_until_failure and type(self.task).failed is Task.failed:
            raise ConfigError(f'{where}apex.dagger_until_failure: task {self.task.name} does not '
                              'define failed states (Task.failed)')
        if self.apex.expert_action_noise and not self.adds_expert_action_noise:
            raise ConfigError(f'{where}apex.expert_action_noise: not available across the ROS '
                              'graph, where the planner node commands the simulation itself; '
                              'train in-process (apex-ros train) or set it to 0')
        check_output_dir(self.out)
        (self.out / 'bundles').mkdir(exist_ok=True)
        self.seed = run_cfg.seed
        torch.manual_seed(self.seed)
        self.model = MLPPolicy(self.task.obs_dim, self.task.nu, self.train_cfg.hidden)
        self.optimizer = make_optimizer(self.model, self.train_cfg)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.dataset = Dataset(self.apex.window)
        self.iteration, self.phase, self.record, self.metrics = 0, PHASES[0], {}, []
        ckpt = self.out / CHECKPOINT
        if resume:
            if not ckpt.exists():
                raise ApexError(f'--resume: no {CHECKPOINT} in {self.out}')
            self._load_checkpoint(ckpt)
        elif ckpt.exists():
            raise ApexError(f'{self.out} already holds a run ({CHECKPOINT}); pass --resume to '
                            'continue it or choose another --out')
        for shard in shards:
            self._add_shard(shard)
        from ..planners import make_planner
        self.planner = make_planner(self.task, run_cfg.planner_name, self.planner_cfg,
                                    threads=run_cfg.rollout.threads, seed=self.seed)
        self._refresh_policy(self.iteration + (self.phase in ('dagger', 'train_dagger')))

    # --- policy handed to the expert and used for rollouts: the exported ONNX graph -------
    def _refresh_policy(self, version: int):
        """`version`: the APEX iteration the weights come from (0 = untrained)."""
        self.policy_bytes = bundle_bytes(self.model, self.task, version)
        self.policy = PolicyBundle(self.policy_bytes)
        self.planner.set_policy(self.policy if self.apex.guided else None)

    def _add_shard(self, path):
        path = str(Path(path).resolve())
        if any(r.info.get('shard') == path for r in self.dataset.rollouts):
            return  # already in the dataset restored from the checkpoint (--resume)
        shard = Dataset.load(path)
        for r in shard.rollouts:
            if r.obs.shape[1] != self.task.obs_dim or r.actions.shape[1] != self.task.nu:
                raise ApexError(f'{path}: shard data has obs {r.obs.shape[1]} / actions '
                                f'{r.actions.shape[1]}, task {self.task.name} needs '
                                f'{self.task.obs_dim} / {self.task.nu}')
            self.dataset.add(dataclasses.replace(r, kind='shard', info={**r.info, 'shard': path}))

    # --- persistence ------------------------------------------------------------------------
    def _save_checkpoint(self):
        state = {'format': 1, 'task': self.task.name, 'iteration': self.iteration,
                 'phase': self.phase, 'record': self.record, 'metrics': self.metrics,
                 'model': self.model.state_dict(), 'optimizer': self.optimizer.state_dict(),
                 'generator': self.generator.get_state(), 'dataset': self.dataset.to_bytes()}
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write_bytes(self.out / CHECKPOINT, buf.getvalue())

    def _load_checkpoint(self, path):
        try:
            state = torch.load(path, weights_only=False)
        except Exception as e:  # torch raises several types for damaged files
            raise ApexError(f'{path}: cannot read checkpoint: {e}') from None
        if state.get('task') != self.task.name:
            raise ApexError(f'{path}: checkpoint is for task {state.get("task")!r}, '
                            f'not {self.task.name!r}')
        self.model.load_state_dict(state['model'])
        self.optimizer.load_state_dict(state['optimizer'])
        self.generator.set_state(state['generator'])
        self.dataset = Dataset.from_bytes(state['dataset'], str(path))
        self.dataset.window = self.apex.window
        self.iteration, self.phase = state['iteration'], state['phase']
        self.record, self.metrics = state['record'], state['metrics']
        self.log(f'resuming {self.out} at iteration {self.iteration + 1}, phase {self.phase} '
                 f'({len(self.dataset)} rollouts in the dataset)')

    # --- phases -----------------------------------------------------------------------------
    def _seed(self, kind: int, j: int) -> int:
        return episode_seed(self.seed, self.iteration, kind, j)

    def _bar(self, label):
        return f'iter {self.iteration + 1}/{self.apex.iterations} {label}' if self.show_progress \
            else None

    # --- where rollouts come from: in-process here; GraphApexTrainer drives the ROS graph ----
    def expert_rollout(self, seed: int, label: str | None):
        """One episode driven by the guided expert -> mpc.Episode whose actions are the
        planner's (the labels), also where noise was added to what it executed."""
        act = planner_actor(self.planner, seed)
        noise = self.apex.expert_action_noise
        if noise == 0:
            return run_episode(self.task, act, seed, progress=label)
        rng = np.random.default_rng(seed)
        labels = []

        def act_noisy(sim):
            action, result = act(sim)
            labels.append(np.clip(action, self.task.action_low, self.task.action_high))
            return action + noise * rng.standard_normal(action.shape), result
        ep = run_episode(self.task, act_noisy, seed, progress=label)
        return dataclasses.replace(ep, actions=np.array(labels))

    def policy_rollout(self, seed: int):
        """One episode driven by the current policy -> (mpc.Episode, warmstarts per step)."""
        warmstarts = []
        act = policy_actor(self.task, self.policy)

        def act_recording(sim):
            warmstarts.append(sim.warmstart())
            return act(sim)
        return run_episode(self.task, act_recording, seed), warmstarts

    def relabel(self, states, warmstarts, seed, progress=None):
        """Expert actions for a sequence of visited states, one planner along the sequence
        (its step-to-step memory kept, as in the paper)."""
        bar = Progress(progress or '', len(states), enabled=progress is not None)
        labels = self.planner.relabel(states, warmstarts, seed, on_step=bar.update)
        bar.close()
        return labels

    # --- phases -----------------------------------------------------------------------------
    def phase_expert(self):
        returns = []
        for j in range(self.apex.expert_rollouts):
            seed = self._seed(1, j)
            label = self._bar(f'expert {j + 1}/{self.apex.expert_rollouts}')
            ep = self.expert_rollout(seed, label)
            self.dataset.add(LabeledRollout(self.task.observe(ep.states[:-1]),
                                            ep.actions.astype(np.float32), 'expert',
                                            self.iteration, {'return': ep.ret, 'seed': seed}))
            returns.append(ep.ret)
        self.record['expert_return'] = float(np.mean(returns)) if returns else float('nan')
        self.record['expert_returns'] = returns

    def phase_train(self, key):
        obs, act = self.dataset.arrays()
        if self.train_cfg.reinit:
            torch.manual_seed(self._seed(4 + PHASES.index(key), 0))
            self.model = MLPPolicy(self.task.obs_dim, self.task.nu, self.train_cfg.hidden)
            self.optimizer = make_optimizer(self.model, self.train_cfg)
        bar = Progress(f'iter {self.iteration + 1}/{self.apex.iterations} {key}',
                       self.train_cfg.steps, enabled=self.show_progress)
        loss = train_policy(self.model, self.optimizer, obs, act, self.train_cfg, self.generator,
                            progress=lambda n, mse: bar.update(n, f'mse {mse:.4f}'))
        bar.close()
        self.record[f'{key}_loss'] = loss
        self.record['dataset_samples'] = len(obs)
        self._refresh_policy(self.iteration + 1)

    def phase_dagger(self):
        returns, relabelled = [], []
        for j in range(self.apex.dagger_rollouts):
            seed = self._seed(2, j)
            ep, warmstarts = self.policy_rollout(seed)
            returns.append(ep.ret)
            states = ep.states[:-1]
            if self.apex.dagger_until_failure:
                failed = np.flatnonzero(self.task.failed(states))
                if failed.size:   # keep the first failed state: where correction matters
                    states, warmstarts = states[:failed[0] + 1], warmstarts[:failed[0] + 1]
            relabelled.append(len(states))
            labels = self.relabel(states, warmstarts, seed,
                                  self._bar(f'dagger relabel {j + 1}/{self.apex.dagger_rollouts}'))
            self.dataset.add(LabeledRollout(self.task.observe(states),
                                            labels.astype(np.float32), 'dagger', self.iteration,
                                            {'policy_return': ep.ret, 'seed': seed}))
        self.record['dagger_policy_return'] = float(np.mean(returns))
        self.record['dagger_states'] = relabelled

    def finish_iteration(self):
        it = self.iteration
        data = bundle_bytes(self.model, self.task, it + 1,
                            {'run_dir': str(self.out), 'ablation': self.apex.ablation})
        bundle_path = self.out / 'bundles' / f'iter_{it + 1:03d}.onnx'
        atomic_write_bytes(bundle_path, data)
        atomic_write_bytes(self.out / 'policy.onnx', data)
        returns, successes = [], []
        for e in range(self.apex.eval_episodes):
            ep = run_episode(self.task, policy_actor(self.task, self.policy), self._seed(3, e))
            returns.append(ep.ret)
            successes.append(ep.success)
        rec = dict(self.record)
        # the median too: one catastrophic episode (a rolled cheetah) decides the mean
        rec.update(iteration=it + 1, policy_return=float(np.mean(returns)),
                   policy_return_std=float(np.std(returns)),
                   policy_return_median=float(np.median(returns)), policy_returns=returns,
                   bundle=str(bundle_path), dataset_rollouts=len(self.dataset))
        if successes[0] is not None:
            rec['policy_success_rate'] = float(np.mean(successes))
        self.metrics.append(rec)
        self._write_reports()
        return rec

    def _write_reports(self):
        atomic_write_text(self.out / 'metrics.jsonl',
                          ''.join(json.dumps(m) + '\n' for m in self.metrics))
        if self.metrics:
            plot_learning_curve(self.metrics, self.out / 'learning_curve.png',
                                f'APEX on {self.task.name}')

    # --- the loop ---------------------------------------------------------------------------
    def run(self) -> dict:
        t_run = time.perf_counter()
        while self.iteration < self.apex.iterations:
            start = PHASES.index(self.phase)
            for phase in PHASES[start:]:
                self.phase = phase
                t0 = time.perf_counter()
                if phase == 'expert':
                    self.record = {}
                    self.phase_expert()
                elif phase == 'dagger':
                    if self.apex.dagger:
                        self.phase_dagger()
                else:  # BC-only trains twice too: same gradient steps as DAgger (App. B)
                    self.phase_train(phase)
                self.record[f'{phase}_seconds'] = time.perf_counter() - t0
                if phase == 'train_dagger':
                    rec = self.finish_iteration()
                    self.iteration += 1
                    self.phase = PHASES[0]
                    self._log_iteration(rec)
                else:
                    self.phase = PHASES[PHASES.index(phase) + 1]
                self._save_checkpoint()
        return self.write_summary(time.perf_counter() - t_run)

    def _log_iteration(self, rec):
        secs = ' '.join(f'{p} {rec.get(p + "_seconds", 0):.1f}s' for p in PHASES)
        succ = f' success {rec["policy_success_rate"]:.2f}' if 'policy_success_rate' in rec else ''
        self.log(f'iteration {rec["iteration"]}/{self.apex.iterations}: expert '
                 f'{rec["expert_return"]:.2f} | policy {rec["policy_return"]:.2f} ± '
                 f'{rec["policy_return_std"]:.2f} (median {rec["policy_return_median"]:.2f})'
                 f'{succ} | {secs}')

    def write_summary(self, seconds: float) -> dict:
        last = self.metrics[-1]
        summary = {
            'task': self.task.name, 'iterations': len(self.metrics),
            'ablation': self.apex.ablation,
            'final_policy_return': last['policy_return'],
            'final_policy_return_std': last['policy_return_std'],
            'final_policy_return_median': last.get('policy_return_median'),  # older runs: none
            'final_expert_return': last['expert_return'],
            'best_policy_return': max(m['policy_return'] for m in self.metrics),
            'policy_bundle': str(self.out / 'policy.onnx'),
            'learning_curve': str(self.out / 'learning_curve.png'),
            'metrics': str(self.out / 'metrics.jsonl'),
            'seconds_this_session': seconds,
            'config': str(self.run_cfg.path),
        }
        if 'policy_success_rate' in last:
            summary['final_policy_success_rate'] = last['policy_success_rate']
        atomic_write_text(self.out / 'summary.json', json.dumps(summary, indent=2) + '\n')
        return summary

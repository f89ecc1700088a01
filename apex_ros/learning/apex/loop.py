"""APEX (Pinneri et al. 2021, Alg. 2): guided iCEM_pi expert + DAgger + MLP distillation.

Each iteration has four phases; after each one, and after each rollout of a rollout phase,
the whole training state is written atomically to RUN_DIR/checkpoint.pt (checkpoint.py), so a
killed run resumes losing at most the rollout (or training) in progress:
  expert        n rollouts of iCEM_pi guided by the current policy -> dataset
  train_expert  train the policy on the latest `window` rollouts
  dagger        roll out the policy; relabel every visited state with the same guided expert,
                one planner carried along the trajectory (its step-to-step memory kept)
  train_dagger  train again; export the iteration's bundle; evaluate the policy
Rollouts come from a RolloutSource (sources.py: in-process or on Ray workers as the config's
`workers:` section says; or the ROS graph), a batch of episodes at a time. At the start
of every iteration the run config's schedule may change settings (RunConfig.at_iteration).
"""
import dataclasses
import os
import threading
import time
from pathlib import Path

import numpy as np
import torch

from ...config.diff import config_differences
from ...config.run import as_resolved_now
from ...deploy.bundle import PolicyBundle
from ...deploy.export import bundle_bytes
from ...errors import ApexError, ConfigError
from ...files import atomic_write_bytes
from ...progress import Progress
from ...tasks.base import Task
from ..dataset import Dataset, LabeledRollout
from ..student import MLPPolicy, make_optimizer, train_policy
from ..train_config import TrainConfig
from . import report
from .checkpoint import (
    CHECKPOINT,
    Checkpoint,
    config_json,
    load_checkpoint,
    save_checkpoint,
)
from .config import ApexConfig, apex_settings, episode_seed
from .sources import RolloutSource, make_source

PHASES = ('expert', 'train_expert', 'dagger', 'train_dagger')
BUNDLES = 'bundles'
# settings a resume may change without being told: how far the run goes, how many threads
# run its rollouts (the same numbers on any count) and how many episodes measure its policy
# (evaluation feeds nothing back), not what it does
RESUMABLE_CHANGES = (('apex', 'iterations'), ('rollout', 'threads'), ('apex', 'eval_episodes'))
# ... and sections that say where episodes run, not what they are (same seeds, same data)
RESUMABLE_SECTIONS = ('workers',)


class RunStopped(ApexError):
    """The run was asked to stop (ApexTrainer.stop_requested); it resumes from the
    checkpoint of its last finished phase."""


@dataclasses.dataclass(frozen=True)
class IterationSettings:
    """The settings of one APEX iteration: what a schedule may change."""
    apex: ApexConfig
    planner: object       # the expert's planner config (action-norm cost, ablation applied)
    train: TrainConfig

    @classmethod
    def of(cls, run_cfg):
        apex, planner = apex_settings(run_cfg)
        return cls(apex, planner, run_cfg.train)

    def changes(self, new) -> list[str]:
        """'planner.sigma 0.5 -> 0.2' for each setting `new` holds differently."""
        out = []
        for section in ('planner', 'apex', 'train'):
            old_values = dataclasses.asdict(getattr(self, section))
            for key, value in dataclasses.asdict(getattr(new, section)).items():
                if old_values[key] != value:
                    out.append(f'{section}.{key} {old_values[key]} -> {value}')
        return out


def check_output_dir(out: Path):
    """Fail before any work if `out` cannot be created or written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f'.write-test-{os.getpid()}'
        probe.write_bytes(b'ok')
        probe.unlink()
    except OSError as e:
        raise ApexError(f'output directory {out} is not writable: {e.strerror}') from None


def _without_resumable(config: dict) -> dict:
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    for section, key in RESUMABLE_CHANGES:
        config.get(section, {}).pop(key, None)
    for section in RESUMABLE_SECTIONS:
        config.pop(section, None)
    return config


class ApexTrainer:
    """The APEX loop over a run directory.

    run_cfg: RunConfig (typed sections apex, train; a schedule via at_iteration);
    out_dir: RUN_DIR; resume: continue the run in RUN_DIR (refused if the config differs
    from the checkpoint's, unless allow_config_change); shards: dataset files added to the
    dataset; source: where rollouts come from (default: sources.make_source, in-process or
    on Ray as workers.backend says); stop_requested: an Event that ends run() with
    RunStopped after the current phase; on_phase: called as on_phase(iteration (1-based),
    phase, last metrics record or None) when a phase begins (for monitors, e.g. the trainer
    node's status topic)."""

    def __init__(self, run_cfg, out_dir, resume: bool = False, shards=(), progress: bool = True,
                 log=print, *, source: RolloutSource | None = None,
                 allow_config_change: bool = False,
                 stop_requested: threading.Event | None = None, on_phase=None):
        self.run_cfg = run_cfg
        self.on_phase = on_phase
        self.out = Path(out_dir)
        self.log = log
        self.show_progress = progress
        self.source = source if source is not None else make_source(run_cfg)
        self.stop_requested = stop_requested or threading.Event()
        self.where = f'{run_cfg.path}: '
        self.task = run_cfg.make_task()
        self.iterations = run_cfg.apex.iterations
        self.settings = IterationSettings.of(run_cfg.at_iteration(1))
        self._check_schedule()
        check_output_dir(self.out)
        self.seed = run_cfg.seed
        self.config = config_json(run_cfg.to_dict())
        torch.manual_seed(self.seed)
        self.model = MLPPolicy(self.task.obs_dim, self.task.nu, self.train_cfg.hidden)
        self.optimizer = make_optimizer(self.model, self.train_cfg)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.dataset = Dataset(self.apex.window)
        self.iteration, self.phase, self.record, self.metrics = 0, PHASES[0], {}, []
        self.partial = {}   # the rollout phase in progress's finished rollouts, by index
        ckpt = self.out / CHECKPOINT
        if resume and ckpt.exists():
            self._resume(ckpt, allow_config_change)
        elif resume:
            # the same command starts a run and continues it after an interruption
            self.log(f'{self.out}: no {CHECKPOINT} yet; starting the run')
        elif ckpt.exists():
            raise ApexError(f'{self.out} already holds a run ({CHECKPOINT}); pass --resume to '
                            'continue it or choose another --out')
        current = run_cfg.at_iteration(self.iteration + 1)
        self._use_settings(IterationSettings.of(current), apply_to_source=False)
        self.dataset.set_window(self.apex.window)
        for shard in shards:
            self._add_shard(shard)
        try:
            self.source.open(self.task, current)
            self._refresh_policy(self.iteration + (self.phase in ('dagger', 'train_dagger')))
        except BaseException:
            self.source.close()
            raise

    # --- settings of the current iteration ---------------------------------------------------
    @property
    def apex(self) -> ApexConfig:
        return self.settings.apex

    @property
    def train_cfg(self) -> TrainConfig:
        return self.settings.train

    @property
    def planner(self):
        """The expert planner (the source's; it relabels in-process)."""
        return self.source.planner

    def _check_schedule(self):
        """Refuse, before any work, settings of any iteration the task, the source or the
        loop cannot follow."""
        first = self.settings
        backend = self.run_cfg.workers.backend
        if backend != self.source.workers_backend:
            raise ConfigError(f'{self.where}workers.backend: {backend}, but '
                              f'{type(self.source).__name__} runs its episodes '
                              f'{self.source.workers_backend}; set it to '
                              f'{self.source.workers_backend}')
        for i in range(1, self.iterations + 1):
            s = first if i == 1 else IterationSettings.of(self.run_cfg.at_iteration(i))
            when = '' if i == 1 else f' (schedule, iteration {i})'
            if s.apex.dagger_until_failure and type(self.task).failed is Task.failed:
                raise ConfigError(f'{self.where}apex.dagger_until_failure: task '
                                  f'{self.task.name} does not define failed states '
                                  f'(Task.failed){when}')
            if s.apex.expert_action_noise and not self.source.executes_expert_noise:
                raise ConfigError(f'{self.where}apex.expert_action_noise: not available across '
                                  'the ROS graph, where the planner node commands the '
                                  'simulation itself; train in-process (apex-ros train) or set '
                                  f'it to 0{when}')
            if s.planner != first.planner and not self.source.follows_planner_settings:
                raise ConfigError(f'{self.where}schedule: the planner settings change at '
                                  f'iteration {i}, which {type(self.source).__name__} cannot '
                                  'follow')
            if s.apex.iterations != self.iterations:
                raise ConfigError(f'{self.where}schedule: apex.iterations cannot change '
                                  f'(iteration {i})')
            if s.train.hidden != first.train.hidden:
                raise ConfigError(f'{self.where}schedule: train.hidden (the student\'s layers) '
                                  f'cannot change (iteration {i})')

    def _use_settings(self, new: IterationSettings, apply_to_source: bool = True):
        """Make `new` the settings from now on; log what changed."""
        changes = self.settings.changes(new)
        if not changes:
            return
        self.log(f'iteration {self.iteration + 1}: ' + ', '.join(changes))
        old, self.settings = self.settings, new
        self.dataset.set_window(new.apex.window)
        if apply_to_source:   # else the source opens with them
            if new.planner != old.planner:
                self.source.set_planner_config(new.planner)
            if new.apex.guided != old.apex.guided:
                self.source.set_policy(self.policy, self.policy_bytes, new.apex.guided)

    # --- policy handed to the expert and used for rollouts: the exported ONNX graph -------
    def _refresh_policy(self, version: int):
        """`version`: the APEX iteration the weights come from (0 = untrained)."""
        self.policy_bytes = bundle_bytes(self.model, self.task, version)
        self.policy = PolicyBundle(self.policy_bytes)
        self.source.set_policy(self.policy, self.policy_bytes, self.apex.guided)

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
        save_checkpoint(self.out / CHECKPOINT, Checkpoint(
            task=self.task.name, iteration=self.iteration, phase=self.phase,
            record=self.record, metrics=self.metrics, model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(), generator=self.generator.get_state(),
            dataset=self.dataset, config=self.config, partial=self.partial))

    def _resume(self, path, allow_config_change: bool):
        ckpt = load_checkpoint(path)
        if ckpt.task != self.task.name:
            raise ApexError(f'{path}: checkpoint is for task {ckpt.task!r}, '
                            f'not {self.task.name!r}')
        if ckpt.config is None:
            self.log(f'warning: {path} does not hold the config the run was trained with '
                     f'(an older checkpoint); resuming with {self.run_cfg.path} unchecked')
        else:
            stored = as_resolved_now(ckpt.config, f'{path} (its config)')
            diffs = config_differences(_without_resumable(stored),
                                       _without_resumable(self.config))
            if diffs and not allow_config_change:
                raise ConfigError(f'{self.run_cfg.path}: differs from the config of the run in '
                                  f'{self.out}: {"; ".join(diffs)}; resume with that config, '
                                  'or allow the change (--allow-config-change)')
            if diffs:
                self.log(f'resuming with a changed config: {"; ".join(diffs)}')
        student = ckpt.student()
        if (student.obs_dim, student.act_dim) != (self.task.obs_dim, self.task.nu):
            raise ApexError(
                f'{path}: its student observes {student.obs_dim} terms and acts in '
                f'{student.act_dim}; task {self.task.name} now observes {self.task.obs_dim} '
                f'and acts in {self.task.nu} (the task changed since the run began; its '
                'dataset holds the old observations): start the run in a new directory')
        self.model.load_state_dict(ckpt.model)
        self.optimizer.load_state_dict(ckpt.optimizer)
        self.generator.set_state(ckpt.generator)
        self.dataset = ckpt.dataset   # its window: set with the resumed iteration's settings
        self.iteration, self.phase = ckpt.iteration, ckpt.phase
        self.record, self.metrics = ckpt.record, ckpt.metrics
        self.partial = ckpt.partial
        done = f', {len(self.partial)} of its rollouts done' if self.partial else ''
        self.log(f'resuming {self.out} at iteration {self.iteration + 1}, phase {self.phase}'
                 f'{done} ({len(self.dataset)} rollouts in the dataset)')

    # --- phases -----------------------------------------------------------------------------
    def _seed(self, kind: int, j: int) -> int:
        return episode_seed(self.seed, self.iteration, kind, j)

    def _bar(self, label):
        return f'iter {self.iteration + 1}/{self.iterations} {label}' if self.show_progress \
            else None

    def _rollouts(self, kind: str, seeds: list, run_batch, labeled) -> list[LabeledRollout]:
        """The phase's rollouts, one per seed in their order, added to the dataset.
        run_batch(seeds, on_result) runs a source batch; labeled(seed, result) makes its
        LabeledRollout. Each finished rollout is checkpointed, and those a killed run
        finished (self.partial) are not run again."""
        done = {j: r for j, r in self.partial.items()
                if j < len(seeds) and r.kind == kind and r.info.get('seed') == seeds[j]}
        todo = [j for j in range(len(seeds)) if j not in done]

        def finished(i, result):
            done[todo[i]] = labeled(seeds[todo[i]], result)
            if len(done) < len(seeds):   # else the phase's own checkpoint follows
                self.partial = done
                self._save_checkpoint()
        run_batch([seeds[j] for j in todo], finished)
        self.partial = {}
        rollouts = [done[j] for j in range(len(seeds))]
        for r in rollouts:
            self.dataset.add(r)
        return rollouts

    def phase_expert(self):
        seeds = [self._seed(1, j) for j in range(self.apex.expert_rollouts)]
        rollouts = self._rollouts(
            'expert', seeds,
            lambda todo, on_result: self.source.expert_rollouts(
                todo, self.apex.expert_action_noise, self._bar('expert'), on_result),
            lambda seed, ep: LabeledRollout(
                self.task.observe(ep.states[:-1]), ep.actions.astype(np.float32), 'expert',
                self.iteration, {'return': ep.ret, 'seed': seed, 'success': ep.success}))
        returns = [r.info['return'] for r in rollouts]
        self.record['expert_return'] = float(np.mean(returns)) if returns else float('nan')
        self.record['expert_returns'] = returns
        if rollouts and rollouts[0].info['success'] is not None:
            self.record['expert_success_rate'] = float(np.mean(
                [r.info['success'] for r in rollouts]))

    def phase_train(self, key):
        obs, act = self.dataset.arrays()
        if self.train_cfg.reinit:
            torch.manual_seed(self._seed(4 + PHASES.index(key), 0))
            self.model = MLPPolicy(self.task.obs_dim, self.task.nu, self.train_cfg.hidden)
            self.optimizer = make_optimizer(self.model, self.train_cfg)
        bar = Progress(f'iter {self.iteration + 1}/{self.iterations} {key}',
                       self.train_cfg.steps, enabled=self.show_progress)
        loss = train_policy(self.model, self.optimizer, obs, act, self.train_cfg, self.generator,
                            progress=lambda n, mse: bar.update(n, f'mse {mse:.4f}'),
                            action_bounds=(self.task.action_low, self.task.action_high))
        bar.close()
        self.record[f'{key}_loss'] = loss
        self.record['dataset_samples'] = len(obs)
        self._refresh_policy(self.iteration + 1)

    def phase_dagger(self):
        if not self.apex.dagger:   # BC only: no relabeled data
            return
        seeds = [self._seed(2, j) for j in range(self.apex.dagger_rollouts)]
        rollouts = self._rollouts(
            'dagger', seeds,
            lambda todo, on_result: self.source.policy_rollouts_relabeled(
                todo, self.apex.dagger_until_failure, self._bar('dagger relabel'), on_result),
            lambda seed, r: LabeledRollout(
                self.task.observe(r.states), r.labels.astype(np.float32), 'dagger',
                self.iteration, {'policy_return': r.episode.ret, 'seed': seed}))
        self.record['dagger_policy_return'] = float(np.mean(
            [r.info['policy_return'] for r in rollouts]))
        self.record['dagger_states'] = [len(r.obs) for r in rollouts]

    def finish_iteration(self) -> dict:
        """Write the iteration's bundle, evaluate the policy (on the source), report."""
        it = self.iteration
        data = bundle_bytes(self.model, self.task, it + 1,
                            {'run_dir': str(self.out), 'ablation': self.apex.ablation})
        bundle_path = self.out / BUNDLES / f'iter_{it + 1:03d}.onnx'
        atomic_write_bytes(bundle_path, data)   # creates bundles/ with the first bundle
        atomic_write_bytes(self.out / report.POLICY, data)
        episodes = self.source.evaluate_policy([self._seed(3, e)
                                                for e in range(self.apex.eval_episodes)])
        returns = [ep.ret for ep in episodes]
        successes = [ep.success for ep in episodes]
        rec = dict(self.record)
        # the median too: one catastrophic episode (a rolled cheetah) decides the mean
        rec.update(iteration=it + 1, policy_return=float(np.mean(returns)),
                   policy_return_std=float(np.std(returns)),
                   policy_return_median=float(np.median(returns)), policy_returns=returns,
                   bundle=str(bundle_path), dataset_rollouts=len(self.dataset))
        if successes[0] is not None:
            rec['policy_success_rate'] = float(np.mean(successes))
        self.metrics.append(rec)
        report.write_metrics(self.out, self.metrics, self.task.name)
        return rec

    # --- the loop ---------------------------------------------------------------------------
    # phase -> (its work, the phase after it; None: the iteration is complete). BC-only
    # trains twice too: the same gradient steps as DAgger (App. B).
    STEPS = {
        'expert': (lambda self: self.phase_expert(), 'train_expert'),
        'train_expert': (lambda self: self.phase_train('train_expert'), 'dagger'),
        'dagger': (lambda self: self.phase_dagger(), 'train_dagger'),
        'train_dagger': (lambda self: self.phase_train('train_dagger'), None),
    }

    def run(self) -> dict:
        """Run the remaining phases -> summary (summary.json). RunStopped if stop_requested
        is set: after the phase in progress, once its checkpoint is written."""
        t_run = time.perf_counter()
        while self.iteration < self.iterations:
            if self.phase == PHASES[0]:
                self.record = {}
                self._use_settings(IterationSettings.of(
                    self.run_cfg.at_iteration(self.iteration + 1)))
            work, after = self.STEPS[self.phase]
            if self.on_phase is not None:
                self.on_phase(self.iteration + 1, self.phase,
                              self.metrics[-1] if self.metrics else None)
            t0 = time.perf_counter()
            work(self)
            self.record[f'{self.phase}_seconds'] = time.perf_counter() - t0
            if after is None:
                rec = self.finish_iteration()
                self.iteration += 1
                self.log(report.iteration_line(rec, self.iterations, PHASES))
            self.phase = after or PHASES[0]
            self._save_checkpoint()
            if self.stop_requested.is_set():
                raise RunStopped(f'{self.out}: stopped before iteration {self.iteration + 1} '
                                 f'phase {self.phase}; resume continues from there')
        return report.write_summary(self.out, self.metrics, self.task.name, self.apex.ablation,
                                    time.perf_counter() - t_run, self.run_cfg.path)

    def close(self):
        self.source.close()

"""APEX loop: guidance effect, DAgger relabel cost, dataset window, bundles, persistence."""
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import small_apex_config

from apex_ros.config import ConfigError
from apex_ros.config.run import load_run_config
from apex_ros.deploy.bundle import BundleError, PolicyBundle
from apex_ros.deploy.export import bundle_bytes, export_bundle, task_signature
from apex_ros.errors import ApexError
from apex_ros.files import atomic_write_bytes
from apex_ros.learning.apex import ApexTrainer
from apex_ros.learning.apex.checkpoint import read_checkpoint
from apex_ros.learning.apex.loop import RunStopped
from apex_ros.learning.apex.report import iteration_line
from apex_ros.learning.apex.sources import InProcessSource
from apex_ros.learning.dataset import Dataset, LabeledRollout
from apex_ros.learning.plot import plot_learning_curve, y_range
from apex_ros.learning.student import MLPPolicy, make_optimizer, train_policy
from apex_ros.learning.train_config import TrainConfig, learning_rate
from apex_ros.planners import make_planner
from apex_ros.sim.episodes import planner_actor, policy_actor, run_episode
from apex_ros.sim.simulation import Simulation
from apex_ros.tasks import make_task
from apex_ros.tasks.cartpole import CartpoleSwingup


@pytest.fixture(scope='module')
def cartpole():
    return make_task('cartpole_swingup')


@pytest.mark.slow
def test_guidance_reduces_relabel_variance(cartpole):
    """APEX Fig. 2: relabeling one state sequence repeatedly, the guided iCEM_pi expert's
    actions vary less than the unguided iCEM expert's."""
    task = cartpole
    expert = make_planner(task, 'icem', {'horizon': 20, 'budget': 60}, seed=0)
    demo = run_episode(task, planner_actor(expert, 0), seed=0, steps=60)
    torch.manual_seed(0)
    model = MLPPolicy(task.obs_dim, task.nu)
    cfg = TrainConfig(steps=400, batch_size=60, threads=1)
    train_policy(model, make_optimizer(model, cfg), task.observe(demo.states[:-1]),
                 demo.actions, cfg, torch.Generator().manual_seed(0))
    states = demo.states[:30]

    def relabel_spread(policy):
        planner = make_planner(task, 'icem', {'horizon': 20, 'budget': 60,
                                              'guidance_c': 0.025}, policy=policy)
        labels = []
        for seed in range(6):
            planner.reset(seed + 100)
            labels.append([planner.plan(s).action for s in states])
        return float(np.std(np.array(labels), axis=0).mean())

    unguided = relabel_spread(None)
    guided = relabel_spread(model)
    assert guided < 0.8 * unguided, (guided, unguided)


@pytest.mark.slow
def test_dagger_relabels_with_the_guided_cost(tmp_path):
    trainer = ApexTrainer(load_run_config(None, small_apex_config(tmp_path)), tmp_path / 'run',
                          progress=False, log=lambda *a: None)
    trainer.phase_expert()
    trainer.phase_train('train_expert')
    assert trainer.planner.policy is trainer.policy
    demo = run_episode(trainer.task, planner_actor(trainer.planner, 1), seed=1, steps=25)
    lambdas = []
    orig_plan = trainer.planner.plan

    def spy(*a, **k):
        r = orig_plan(*a, **k)
        lambdas.append(r.info['lambdas'])
        return r
    trainer.planner.plan = spy
    trainer.source.relabel(demo.states[:-1], None, seed=5)
    lambdas = np.array(lambdas)
    assert len(lambdas) == 25
    assert np.any(lambdas[:, 0] > 0), 'guidance weight never active during relabeling'

    unguided = ApexTrainer(load_run_config(None, small_apex_config(
        tmp_path, apex={'ablation': 'unguided'})), tmp_path / 'run2', progress=False,
        log=lambda *a: None)
    assert unguided.planner.policy is None


def test_dataset_keeps_latest_window():
    ds = Dataset(window=3)
    for it in range(5):
        ds.add(LabeledRollout(np.full((4, 2), it, np.float32), np.zeros((4, 1), np.float32),
                              'expert', it))
    assert [r.iteration for r in ds.rollouts] == [2, 3, 4]
    obs, act = ds.arrays()
    assert obs.shape == (12, 2) and set(obs[:, 0]) == {2.0, 3.0, 4.0}
    for compress in (False, True):   # a compressed shard loads the same
        again = Dataset.from_bytes(ds.to_bytes(compress))
        assert [r.iteration for r in again.rollouts] == [2, 3, 4]
        np.testing.assert_array_equal(again.arrays()[0], obs)


@pytest.mark.slow
def test_trainer_window_limits_training_data(tmp_path):
    path = small_apex_config(tmp_path, apex={'iterations': 2, 'window': 3, 'eval_episodes': 3})
    trainer = ApexTrainer(load_run_config(None, path), tmp_path / 'run', progress=False,
                          log=lambda *a: None)
    trainer.run()
    kinds = [(r.kind, r.iteration) for r in trainer.dataset.rollouts]
    assert kinds == [('dagger', 0), ('expert', 1), ('dagger', 1)]
    last = trainer.metrics[-1]
    assert last['dataset_samples'] == 3 * 40
    assert len(last['policy_returns']) == trainer.apex.eval_episodes
    assert last['policy_return'] == pytest.approx(np.mean(last['policy_returns']))
    assert last['policy_return_median'] == pytest.approx(np.median(last['policy_returns']))


def test_dagger_until_failure_relabels_up_to_the_first_failed_state(tmp_path, monkeypatch):
    path = small_apex_config(tmp_path, apex={'iterations': 1, 'dagger_until_failure': True})
    with pytest.raises(ConfigError, match=r'apex\.dagger_until_failure: task cartpole_swingup'):
        ApexTrainer(load_run_config(None, path), tmp_path / 'run', progress=False)
    assert not (tmp_path / 'run').exists()

    def failed_from_step_10(self, states):
        return np.arange(len(states)) >= 10
    monkeypatch.setattr(CartpoleSwingup, 'failed', failed_from_step_10)
    trainer = ApexTrainer(load_run_config(None, path), tmp_path / 'run', progress=False,
                          log=lambda *a: None)
    trainer.run()
    lengths = {r.kind: len(r.obs) for r in trainer.dataset.rollouts}
    assert lengths == {'expert': 40, 'dagger': 11}
    assert trainer.metrics[-1]['dagger_states'] == [11]


def test_expert_action_noise_perturbs_execution_not_labels(tmp_path):
    """DART: the expert executes its action plus noise; the dataset keeps the action."""
    def expert_episode(noise):
        path = small_apex_config(tmp_path, apex={'expert_action_noise': noise})
        trainer = ApexTrainer(load_run_config(None, path), tmp_path / f'run{noise}',
                              progress=False, log=lambda *a: None)
        return trainer.task, trainer.source.expert_rollout(seed=3, label=None,
                                                           action_noise=noise)

    def replay(task, actions, noise):
        sim, rng = Simulation(task), np.random.default_rng(3)
        sim.reset(3)
        return np.array([sim.state()] + [sim.step(a + noise * rng.standard_normal(a.shape))[1]
                                         for a in actions])

    task, clean = expert_episode(0.0)
    np.testing.assert_allclose(replay(task, clean.actions, 0.0), clean.states)
    task, noisy = expert_episode(0.3)
    np.testing.assert_allclose(replay(task, noisy.actions, 0.3), noisy.states)
    assert np.abs(replay(task, noisy.actions, 0.0) - noisy.states).max() > 0.1
    assert noisy.actions.min() >= task.action_low.min()
    assert noisy.actions.max() <= task.action_high.max()


def test_expert_action_noise_is_refused_across_the_graph(tmp_path):
    from apex_ros.ros.nodes.graph_source import GraphRolloutSource
    path = small_apex_config(tmp_path, apex={'expert_action_noise': 0.2})
    with pytest.raises(ConfigError, match=r'apex\.expert_action_noise: not available across'):
        ApexTrainer(load_run_config(None, path), tmp_path / 'run',
                    source=GraphRolloutSource(None, tmp_path / 'run' / 'current_policy.onnx'))
    assert not (tmp_path / 'run').exists()
    with pytest.raises(ConfigError, match=r'apex\.expert_action_noise.*must be >= 0'):
        ApexTrainer(load_run_config(None, small_apex_config(
            tmp_path, apex={'expert_action_noise': -0.1})), tmp_path / 'run')


@pytest.mark.parametrize('reinit', [True, False])
def test_reinit_trains_each_student_from_fresh_weights(tmp_path, reinit):
    path = small_apex_config(tmp_path, train={'reinit': reinit, 'steps': 20})
    trainer = ApexTrainer(load_run_config(None, path), tmp_path / 'run', progress=False,
                          log=lambda *a: None)
    rng = np.random.default_rng(0)
    trainer.dataset.add(LabeledRollout(rng.normal(size=(64, 5)).astype(np.float32),
                                       rng.uniform(-1, 1, (64, 1)).astype(np.float32),
                                       'expert', 0))

    def train_from(weight):
        with torch.no_grad():
            for p in trainer.model.parameters():
                p.fill_(weight)
        trainer.generator.manual_seed(7)
        trainer.phase_train('train_expert')
        return [p.detach().clone() for p in trainer.model.parameters()]

    first, second = train_from(0.5), train_from(-0.5)
    same = all(torch.equal(a, b) for a, b in zip(first, second))
    assert same == reinit  # fresh weights: what the model held before does not matter
    assert trainer.optimizer.state_dict()['state'][0]['step'] == (20 if reinit else 40)


def test_cosine_schedule_settles_the_student_and_restarts_each_training():
    """train.lr_schedule cosine: the second half of a training moves the weights much less
    than at a constant rate (the student is not one noisy minibatch step), and every
    training runs the schedule from the full rate again."""
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(256, 5)).astype(np.float32)
    actions = rng.uniform(-1, 1, (256, 1)).astype(np.float32)

    def weights(model):
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    def train_twice(schedule):
        """-> per training: (weight change over its last 100 of 200 steps, lr at step 100)"""
        torch.manual_seed(0)
        cfg = TrainConfig(hidden=[16, 16], steps=200, batch_size=32, threads=1,
                          lr_schedule=schedule)
        model = MLPPolicy(5, 1, cfg.hidden)
        optimizer = make_optimizer(model, cfg)
        out = []
        for seed in (1, 2):
            halfway = {}

            def at(n, mse):
                if n == 100:
                    halfway.update(w=weights(model), lr=optimizer.param_groups[0]['lr'])
            train_policy(model, optimizer, obs, actions, cfg, torch.Generator().manual_seed(seed),
                         progress=at)
            out.append((float((weights(model) - halfway['w']).norm()), halfway['lr']))
        return out, optimizer.param_groups[0]['lr']

    constant, constant_end_lr = train_twice('constant')
    cosine, cosine_end_lr = train_twice('cosine')
    cfg = TrainConfig(steps=200, lr_schedule='cosine')
    assert constant_end_lr == 5e-4
    assert cosine_end_lr == learning_rate(cfg, 199) < 1e-3 * 5e-4
    for (constant_move, constant_lr), (cosine_move, cosine_lr) in zip(constant, cosine):
        assert cosine_move < 0.5 * constant_move
        assert constant_lr == 5e-4
        assert cosine_lr == learning_rate(cfg, 99) == pytest.approx(0.5 * 5e-4, rel=0.02)


def test_normalized_actions_fit_a_narrow_action_as_well_as_a_wide_one():
    """train.normalize_actions: with actions of ranges 200 and 0.02, the student fits the
    narrow one as closely (relative to its range) as the wide one, where the plain MSE
    leaves it unfit; the bundle outputs actions (not scaled ones); a student saved before
    the scaling existed loads as the identity."""
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(512, 2)).astype(np.float32)
    low, high = np.array([-100.0, -0.01]), np.array([100.0, 0.01])
    actions = (np.tanh(obs) * high).astype(np.float32)

    def relative_errors(normalize):
        torch.manual_seed(0)
        cfg = TrainConfig(hidden=[32, 32], steps=600, batch_size=128, lr=3e-3,
                          normalize_actions=normalize)
        model = MLPPolicy(2, 2, cfg.hidden)
        train_policy(model, make_optimizer(model, cfg), obs, actions, cfg,
                     torch.Generator().manual_seed(0), action_bounds=(low, high))
        with torch.no_grad():
            out = model(torch.as_tensor(obs)).numpy()
        return np.sqrt(np.mean((out - actions) ** 2, axis=0)) / high, model

    plain, _ = relative_errors(False)
    scaled, model = relative_errors(True)
    assert plain[1] > 0.5 and scaled[1] < 0.1 and scaled[0] < 0.1
    cartpole = make_task('cartpole_swingup')
    wide = MLPPolicy(cartpole.obs_dim, cartpole.nu, [8])
    wide.set_action_scale([-30.0], [50.0])
    x = rng.normal(size=(16, cartpole.obs_dim)).astype(np.float32)
    with torch.no_grad():
        expected = wide(torch.as_tensor(x)).numpy()
    assert np.abs(expected).max() > 5
    np.testing.assert_allclose(PolicyBundle(bundle_bytes(wide, cartpole, 1))(x), expected,
                               rtol=1e-5, atol=1e-4)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith('act_')}
    old = MLPPolicy(2, 2, [32, 32])
    old.load_state_dict(state)
    assert torch.equal(old.act_scale, torch.ones(2)) and torch.equal(old.act_mid, torch.zeros(2))
    with pytest.raises(ApexError, match='normalize_actions'):
        train_policy(old, make_optimizer(old, TrainConfig()), obs, actions,
                     TrainConfig(steps=1, normalize_actions=True), torch.Generator())


def test_learning_curve_axis_keeps_the_runs_band_despite_a_rolled_episode(tmp_path):
    expert, medians = [5000.0, 6000.0, 5800.0], [800.0, 4600.0, 4700.0]
    means, lows = [-150000.0, 4500.0, 4650.0], [-300000.0, 4300.0, 4450.0]
    bottom, top = y_range(expert, means, lows, medians)
    assert -1800.0 <= bottom < 800.0 and 6000.0 < top <= 6300.0  # linear, around the band
    assert y_range(expert, means[1:], lows[1:], medians[1:]) is None  # nothing catastrophic
    metrics = [{'iteration': i + 1, 'expert_return': e, 'policy_return': p,
                'policy_return_std': p - lo, 'policy_return_median': m}
               for i, (e, p, lo, m) in enumerate(zip(expert, means, lows, medians))]
    plot_learning_curve(metrics, tmp_path / 'curve.png', 'test')
    assert (tmp_path / 'curve.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_learning_curve_shows_success_rates_where_the_task_defines_success(tmp_path):
    import matplotlib.image
    metrics = [{'iteration': i + 1, 'expert_return': -3.0, 'policy_return': -9.0 + i,
                'policy_return_std': 1.0, 'policy_return_median': -9.0 + i,
                'expert_success_rate': 0.9, 'policy_success_rate': 0.1 * i,
                'expert_seconds': 1.0} for i in range(3)]
    plot_learning_curve(metrics, tmp_path / 'success.png', 'test')
    plot_learning_curve([{k: v for k, v in m.items() if 'success' not in k} for m in metrics],
                        tmp_path / 'returns.png', 'test')
    with_panel = matplotlib.image.imread(tmp_path / 'success.png').shape
    returns_only = matplotlib.image.imread(tmp_path / 'returns.png').shape
    assert with_panel[1] > 1.4 * returns_only[1]   # a second panel beside the returns
    line = iteration_line(metrics[2], 3, ['expert'])
    assert 'expert -3.00 success 0.90 | policy -7.00' in line and 'success 0.20' in line


def test_bundle_parity_and_metadata(tmp_path, cartpole):
    torch.manual_seed(1)
    model = MLPPolicy(cartpole.obs_dim, cartpole.nu)
    model.set_normalization(np.random.default_rng(0).normal(2.0, 3.0, (500, 5)).astype(np.float32))
    bundle = export_bundle(model, cartpole, tmp_path / 'p.onnx', iteration=4)
    x = np.random.default_rng(1).normal(0, 5, (256, 5)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.as_tensor(x)).numpy()
    assert np.max(np.abs(bundle(x) - ref)) <= 1e-5
    assert bundle.meta['apex_iteration'] == 4
    assert bundle.obs_terms == list(cartpole.observation.terms)
    assert bundle.joints == ['slider']
    assert bundle.required_joints() == ['slider', 'hinge']
    assert np.all(bundle.act(np.full(5, 1e6)) <= bundle.action_high)
    bundle.check_signature(task_signature(cartpole))  # fits: no error


@pytest.mark.parametrize('umask,expected', [(0o022, 0o644), (0o077, 0o600)])
def test_atomic_writes_get_plain_file_permissions(tmp_path, umask, expected):
    """Bundles, datasets and checkpoints are readable as a plain open() would leave them
    (a bundle deployed by another user), and a rewrite keeps the file's own mode."""
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / 'policy.onnx', b'one')
        assert stat.S_IMODE((tmp_path / 'policy.onnx').stat().st_mode) == expected
        (tmp_path / 'policy.onnx').chmod(0o640)
        atomic_write_bytes(tmp_path / 'policy.onnx', b'two')
        assert stat.S_IMODE((tmp_path / 'policy.onnx').stat().st_mode) == 0o640
        assert (tmp_path / 'policy.onnx').read_bytes() == b'two'
    finally:
        os.umask(old)


def test_bundle_mismatch_is_refused_with_the_differences(tmp_path, cartpole):
    model = MLPPolicy(cartpole.obs_dim, cartpole.nu)
    bundle = export_bundle(model, cartpole, tmp_path / 'p.onnx', iteration=1)
    with pytest.raises(BundleError) as err:
        bundle.check_signature(task_signature(make_task('halfcheetah_run')))
    msg = str(err.value)
    assert 'task' in msg and 'observation terms' in msg and 'actuated joints' in msg
    narrower = task_signature(cartpole)
    narrower['action']['high'] = [0.5]
    with pytest.raises(BundleError, match='action high'):
        bundle.check_signature(narrower)
    (tmp_path / 'junk.onnx').write_bytes(b'not a model')
    with pytest.raises(BundleError, match='junk.onnx'):
        PolicyBundle(tmp_path / 'junk.onnx')


@pytest.mark.slow
def test_eval_cli_refuses_a_bundle_for_another_task(tmp_path, cartpole):
    export_bundle(MLPPolicy(cartpole.obs_dim, cartpole.nu), cartpole, tmp_path / 'p.onnx', 1)
    out = subprocess.run([sys.executable, '-m', 'apex_ros.cli', 'eval', '--task',
                          'halfcheetah_run', '--policy', str(tmp_path / 'p.onnx')],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert 'does not fit halfcheetah_run' in out.stderr


@pytest.mark.slow
def test_eval_cli_reports_the_policys_episode_returns(tmp_path, cartpole):
    torch.manual_seed(0)
    export_bundle(MLPPolicy(cartpole.obs_dim, cartpole.nu), cartpole, tmp_path / 'p.onnx', 1)
    out = subprocess.run([sys.executable, '-m', 'apex_ros.cli', 'eval', '--task',
                          'cartpole_swingup', '--policy', str(tmp_path / 'p.onnx'),
                          '--episodes', '2', '--quiet'], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    printed = [float(line.split('return ')[1].split(',')[0]) for line in out.stdout.splitlines()
               if line.startswith('episode ')]
    policy = PolicyBundle(tmp_path / 'p.onnx')
    seed = load_run_config('cartpole_swingup').seed
    expected = [run_episode(cartpole, policy_actor(cartpole, policy), seed + 7919 * (e + 1)).ret
                for e in range(2)]
    assert printed == pytest.approx(expected, abs=0.01)
    assert f'return {np.mean(expected):.2f} ± {np.std(expected):.2f}' in out.stdout


@pytest.mark.parametrize('section,values,key', [
    ('apex', {'iterations': 'many'}, 'apex.iterations'),
    ('apex', {'ablation': 'magic'}, 'apex.ablation'),
    ('apex', {'windw': 3}, 'windw'),
    ('train', {'lr': -1.0}, 'train.lr'),
    ('train', {'hidden': 'big'}, 'train.hidden'),
    ('train', {'lr_schedule': 'linear'}, 'train.lr_schedule'),
])
def test_bad_config_key_is_named(tmp_path, section, values, key):
    path = small_apex_config(tmp_path, **{section: values})
    with pytest.raises(ConfigError, match=key.replace('.', r'\.')):
        ApexTrainer(load_run_config(None, path), tmp_path / 'run', progress=False)


def test_missing_task_key_is_named(tmp_path):
    path = tmp_path / 'c.yaml'
    path.write_text(yaml.safe_dump({'task': {'episode_steps': 5}}))
    with pytest.raises(ConfigError, match=r'task\.name: required key is missing'):
        load_run_config(None, path)


def test_unwritable_output_dir_fails_before_work(tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    with pytest.raises(ApexError, match='not writable'):
        ApexTrainer(load_run_config(None, small_apex_config(tmp_path)), blocker / 'run',
                    progress=False)
    assert not (blocker.parent / 'run').exists()


@pytest.mark.slow
def test_existing_run_needs_resume(tmp_path):
    path = small_apex_config(tmp_path, apex={'iterations': 1})
    run = tmp_path / 'run'
    ApexTrainer(load_run_config(None, path), run, progress=False, log=lambda *a: None).run()
    with pytest.raises(ApexError, match='--resume'):
        ApexTrainer(load_run_config(None, path), run, progress=False)


def _all_outputs_readable(run: Path):
    """Every file the run wrote is complete: checkpoint loads, bundles load, JSON parses."""
    names = sorted(p.name for p in run.rglob('*') if p.is_file())
    assert not [n for n in names if n.endswith('.tmp')], names
    if (run / 'checkpoint.pt').exists():
        read_checkpoint(run)   # its dataset included
    for b in run.glob('bundles/*.onnx'):
        PolicyBundle(b)
    if (run / 'metrics.jsonl').exists():
        for line in (run / 'metrics.jsonl').read_text().splitlines():
            json.loads(line)


@pytest.mark.slow
def test_resume_after_sigkill_mid_phase(tmp_path):
    path = small_apex_config(tmp_path, apex={'iterations': 3})
    run = tmp_path / 'run'
    cmd = [sys.executable, '-m', 'apex_ros.cli', 'train', '--config', str(path),
           '--task', 'cartpole_swingup', '--out', str(run), '--quiet']
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ckpt = run / 'checkpoint.pt'
    # Wait until two phases have been checkpointed (the checkpoint changes), then kill in
    # the middle of the third phase.
    deadline = time.monotonic() + 120
    seen = set()
    while len(seen) < 2 and time.monotonic() < deadline and proc.poll() is None:
        if ckpt.exists():
            seen.add(ckpt.stat().st_mtime_ns)
        time.sleep(0.01)
    assert len(seen) >= 2, 'training did not checkpoint in time'
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    _all_outputs_readable(run)
    killed_at = read_checkpoint(run)
    assert (killed_at.iteration, killed_at.phase) < (3, 'expert')
    done = subprocess.run(cmd + ['--resume'], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'resuming' in done.stdout
    _all_outputs_readable(run)
    metrics = [json.loads(line) for line in (run / 'metrics.jsonl').read_text().splitlines()]
    assert [m['iteration'] for m in metrics] == [1, 2, 3]
    summary = json.loads((run / 'summary.json').read_text())
    assert summary['iterations'] == 3
    assert sorted(p.name for p in (run / 'bundles').iterdir()) == [
        'iter_001.onnx', 'iter_002.onnx', 'iter_003.onnx']
    signature = task_signature(make_task('cartpole_swingup'))
    PolicyBundle(run / 'policy.onnx').check_signature(signature)


@pytest.mark.slow
@pytest.mark.parametrize('planner', ['mppi', 'cem_gd'])
def test_any_planner_can_be_the_apex_expert(tmp_path, planner):
    path = small_apex_config(tmp_path, apex={'iterations': 1},
                             planners={'cem_gd': {'initial_budget': 60, 'budget': 30}})
    trainer = ApexTrainer(load_run_config(None, path, planner=planner), tmp_path / 'run',
                          progress=False, log=lambda *a: None)
    assert trainer.planner.name == planner
    assert trainer.planner.policy is trainer.policy   # guided like iCEM_pi
    trainer.run()
    assert PolicyBundle(tmp_path / 'run' / 'policy.onnx').meta['apex_iteration'] == 1


def test_ablation_the_planner_cannot_do_is_refused(tmp_path):
    path = small_apex_config(tmp_path, apex={'ablation': 'no_warm_start'})
    with pytest.raises(ConfigError, match='no_warm_start.*warm_start'):
        ApexTrainer(load_run_config(None, path, planner='mppi'), tmp_path / 'run',
                    progress=False)


# --- schedules, resume, checkpoint format, clean stops ---------------------------------------

@pytest.mark.slow
def test_schedule_changes_settings_at_the_start_of_an_iteration_also_after_a_resume(tmp_path):
    """RunConfig.at_iteration(i) holds iteration i's settings: from iteration 2 on the
    expert plans with another sigma and executes noisy actions, the dataset keeps one
    rollout and the student trains 10 steps at another learning rate."""
    (tmp_path / 'late').mkdir()
    base = load_run_config(None, small_apex_config(tmp_path, apex={'iterations': 2, 'window': 3},
                                                   train={'steps': 20}))
    late = load_run_config(None, small_apex_config(
        tmp_path / 'late', planner={'sigma': 0.2},
        apex={'iterations': 2, 'window': 1, 'expert_action_noise': 0.3},
        train={'steps': 10, 'lr': 1e-4}))
    base.at_iteration = lambda i: late if i >= 2 else base
    stop, lines, noises = threading.Event(), [], []

    def log(line):
        lines.append(line)
        if line.startswith('iteration 1/2:'):
            stop.set()   # stop once iteration 1 is complete; resume for iteration 2

    def trainer(**kwargs):
        t = ApexTrainer(base, tmp_path / 'run', progress=False, log=log, **kwargs)
        rollout = t.source.expert_rollout

        def spy(seed, label, action_noise=0.0):
            noises.append(action_noise)
            return rollout(seed, label, action_noise)
        t.source.expert_rollout = spy
        return t

    first = trainer(stop_requested=stop)
    with pytest.raises(RunStopped, match='before iteration 2 phase expert'):
        first.run()
    first.close()
    assert first.planner.cfg.sigma == 0.5 and first.metrics[0]['dataset_samples'] == 80
    assert not [line for line in lines if line.startswith('iteration 2:')]
    second = trainer(resume=True)
    change = [line for line in lines if line.startswith('iteration 2:')]
    assert len(change) == 1
    for setting in ('planner.sigma 0.5 -> 0.2', 'apex.window 3 -> 1',
                    'apex.expert_action_noise 0.0 -> 0.3', 'train.steps 20 -> 10',
                    'train.lr 0.0005 -> 0.0001'):
        assert setting in change[0]
    assert second.planner.cfg.sigma == 0.2 and second.planner.policy is second.policy
    second.run()
    assert noises == [0.0, 0.3]
    assert [r.kind for r in second.dataset.rollouts] == ['dagger']
    assert second.metrics[1]['dataset_samples'] == 40
    assert second.optimizer.state_dict()['state'][0]['step'] == 20 + 20 + 10 + 10
    assert second.optimizer.param_groups[0]['lr'] == 1e-4


def test_schedule_the_graph_cannot_follow_is_refused_before_work(tmp_path):
    from apex_ros.ros.nodes.graph_source import GraphRolloutSource
    (tmp_path / 'late').mkdir()
    base = load_run_config(None, small_apex_config(tmp_path, apex={'iterations': 3}))
    late = load_run_config(None, small_apex_config(tmp_path / 'late', planner={'sigma': 0.2},
                                                   apex={'iterations': 3}))
    base.at_iteration = lambda i: late if i >= 3 else base
    with pytest.raises(ConfigError, match='planner settings change at iteration 3'):
        ApexTrainer(base, tmp_path / 'run', progress=False,
                    source=GraphRolloutSource(None, tmp_path / 'run' / 'current_policy.onnx'))
    assert not (tmp_path / 'run').exists()


def _finished_run(tmp_path, **changes):
    path = small_apex_config(tmp_path, apex={'iterations': 1}, train={'steps': 20}, **changes)
    run = tmp_path / 'run'
    ApexTrainer(load_run_config(None, path), run, progress=False, log=lambda *a: None).run()
    return path, run


def _config_in(directory, **changes):
    directory.mkdir()
    return load_run_config(None, small_apex_config(directory, **changes))


@pytest.mark.slow
def test_resume_with_a_changed_config_is_refused_unless_allowed(tmp_path):
    _, run = _finished_run(tmp_path)
    longer = _config_in(tmp_path / 'longer', apex={'iterations': 2}, train={'steps': 20})
    ApexTrainer(longer, run, resume=True, progress=False, log=lambda *a: None).close()
    changed = _config_in(tmp_path / 'changed', apex={'iterations': 2},
                         train={'steps': 30}, planner={'budget': 80})
    with pytest.raises(ConfigError) as err:
        ApexTrainer(changed, run, resume=True, progress=False, log=lambda *a: None)
    assert 'train.steps' in str(err.value) and 'planner.budget' in str(err.value)
    assert 'apex.iterations' not in str(err.value)   # running longer is what resume is for
    lines = []
    trainer = ApexTrainer(changed, run, resume=True, progress=False, log=lines.append,
                          allow_config_change=True)
    assert any('changed config' in line and 'train.steps' in line for line in lines)
    trainer.run()
    assert read_checkpoint(run).config['train']['steps'] == 30   # the config it now runs


def test_resume_refuses_a_run_whose_task_observes_differently_now(tmp_path):
    # a task whose observation changed (Door gained its palm and handle) cannot continue a
    # run whose student and dataset hold the old observations: said, not a torch traceback
    path, run = _finished_run(tmp_path)
    ckpt = run / 'checkpoint.pt'
    state = torch.load(ckpt, weights_only=True)
    model = state['model']
    for key in ('obs_mean', 'obs_std'):
        model[key] = torch.cat([model[key], model[key][:1]])
    model['mlp.0.weight'] = torch.cat([model['mlp.0.weight'], model['mlp.0.weight'][:, :1]], 1)
    torch.save(state, ckpt)
    obs_dim = model['obs_mean'].shape[0] - 1
    with pytest.raises(ApexError, match=rf'checkpoint.pt: its student observes {obs_dim + 1} '
                                        rf'terms .* now observes {obs_dim} .* new directory'):
        ApexTrainer(load_run_config(None, path), run, resume=True, progress=False,
                    log=lambda *a: None)


@pytest.mark.slow
def test_resume_on_another_thread_count_continues_the_same_run(tmp_path):
    # a run started on 2 rollout threads and resumed on 1 (a busier machine), evaluating its
    # policy on 3 episodes instead of 1, is accepted without --allow-config-change, and its
    # numbers are those of a run that never changed
    changed, steady = tmp_path / 'changed', tmp_path / 'steady'
    changed.mkdir(), steady.mkdir()
    _, run = _finished_run(changed, rollout={'threads': 2})
    one_thread = _config_in(changed / 'one', apex={'iterations': 2, 'eval_episodes': 3},
                            train={'steps': 20}, rollout={'threads': 1})
    lines = []
    ApexTrainer(one_thread, run, resume=True, progress=False, log=lines.append).run()
    assert not any('changed config' in line for line in lines)
    reference = _config_in(steady / 'cfg', apex={'iterations': 2}, train={'steps': 20},
                           rollout={'threads': 1})
    ApexTrainer(reference, steady / 'run', progress=False, log=lambda *a: None).run()

    def numbers(run_dir):
        return [{'first_policy_return': m['policy_returns'][0],
                 **{k: m[k] for k in ('expert_returns', 'dagger_policy_return')}}
                for m in map(json.loads, (run_dir / 'metrics.jsonl').read_text().splitlines())]
    assert numbers(run) == numbers(steady / 'run')
    evaluated = [len(json.loads(line)['policy_returns'])
                 for line in (run / 'metrics.jsonl').read_text().splitlines()]
    assert evaluated == [1, 3]

class _Dies(Exception):
    pass


class _DyingSource(InProcessSource):
    """Runs episodes in-process, recording the seeds asked for; raises (as a killed process
    would stop) when asked for one more rollout than `lives`."""
    def __init__(self, lives=None):
        super().__init__()
        self.lives, self.asked = lives, []

    def _ask(self, kind, seed):
        if self.lives is not None and len(self.asked) == self.lives:
            raise _Dies()
        self.asked.append((kind, seed))

    def expert_rollout(self, seed, label, action_noise=0.0):
        self._ask('expert', seed)
        return super().expert_rollout(seed, label, action_noise)

    def policy_rollout(self, seed):
        self._ask('dagger', seed)
        return super().policy_rollout(seed)


@pytest.mark.slow
def test_resume_mid_phase_runs_only_the_rollouts_not_yet_finished(tmp_path):
    # 3 expert + 3 DAgger rollouts; killed after the first expert rollout, then after the
    # first DAgger rollout: each resume runs only the rest, and the run's numbers, dataset
    # and student are those of a run never killed
    def config(name):
        return _config_in(tmp_path / name, apex={'iterations': 1, 'expert_rollouts': 3,
                                                 'dagger_rollouts': 3}, train={'steps': 20})

    def trainer(run, source, resume=False):
        return ApexTrainer(config(f'cfg_{len(list(tmp_path.iterdir()))}'), run, resume=resume,
                           progress=False, log=lambda *a: None, source=source)

    steady = _DyingSource()
    reference = trainer(tmp_path / 'steady', steady)
    reference.run()
    reference.close()
    expert_seeds = [seed for kind, seed in steady.asked if kind == 'expert']
    dagger_seeds = [seed for kind, seed in steady.asked if kind == 'dagger']
    assert len(set(expert_seeds)) == len(set(dagger_seeds)) == 3

    run = tmp_path / 'killed'
    for lives, kind in ((1, 'expert'), (3, 'dagger')):
        source = _DyingSource(lives)
        t = trainer(run, source, resume=True)
        with pytest.raises(_Dies):
            t.run()
        t.close()
        ckpt = read_checkpoint(run)
        assert ckpt.phase == kind and sorted(ckpt.partial) == [0]
        assert ckpt.partial[0].info['seed'] == (expert_seeds if kind == 'expert'
                                                else dagger_seeds)[0]
    assert source.asked == [('expert', s) for s in expert_seeds[1:]] + [
        ('dagger', dagger_seeds[0])]
    last = _DyingSource()
    lines = []
    t = ApexTrainer(config('cfg_last'), run, resume=True, progress=False, log=lines.append,
                    source=last)
    t.run()
    t.close()
    assert any('phase dagger, 1 of its rollouts done' in line for line in lines)
    assert last.asked == [('dagger', s) for s in dagger_seeds[1:]]
    assert read_checkpoint(run).partial == {}

    def numbers(run_dir):
        ckpt = read_checkpoint(run_dir)
        return ckpt.metrics[0], ckpt.dataset.arrays(), ckpt.model

    (m1, (o1, a1), w1), (m2, (o2, a2), w2) = numbers(tmp_path / 'steady'), numbers(run)
    keys = ('expert_returns', 'dagger_policy_return', 'dagger_states', 'policy_returns',
            'train_expert_loss', 'train_dagger_loss')
    assert {k: m1[k] for k in keys} == {k: m2[k] for k in keys}
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(a1, a2)
    for name in w1:
        torch.testing.assert_close(w1[name], w2[name], rtol=0, atol=0)


@pytest.mark.slow
def test_resume_accepts_a_setting_added_since_at_its_default(tmp_path):
    # a run started before planner.sigma_relative existed stored no such key
    _, run = _finished_run(tmp_path)
    ckpt = run / 'checkpoint.pt'
    state = torch.load(ckpt, weights_only=True)
    config = json.loads(state['config'])
    del config['planner']['sigma_relative']
    torch.save({**state, 'config': json.dumps(config)}, ckpt)
    longer = _config_in(tmp_path / 'longer', apex={'iterations': 2}, train={'steps': 20})
    ApexTrainer(longer, run, resume=True, progress=False, log=lambda *a: None).close()
    relative = _config_in(tmp_path / 'relative', apex={'iterations': 2}, train={'steps': 20},
                          planner={'sigma_relative': True})
    with pytest.raises(ConfigError, match=r'planner\.sigma_relative: false -> true'):
        ApexTrainer(relative, run, resume=True, progress=False, log=lambda *a: None)


@pytest.mark.slow
def test_checkpoint_format_1_resumes_with_a_warning_and_unknown_formats_are_refused(tmp_path):
    _, run = _finished_run(tmp_path)
    ckpt = run / 'checkpoint.pt'
    state = torch.load(ckpt, weights_only=True)
    assert state['format'] == 2
    del state['config']
    torch.save({**state, 'format': 1}, ckpt)   # as runs before the config was stored
    assert read_checkpoint(run).config is None
    lines = []
    changed = _config_in(tmp_path / 'changed', apex={'iterations': 1}, train={'steps': 30})
    ApexTrainer(changed, run, resume=True, progress=False, log=lines.append).close()
    assert any(line.startswith('warning:') and 'unchecked' in line for line in lines)
    torch.save({**state, 'format': 7}, ckpt)
    with pytest.raises(ApexError, match=r'checkpoint\.pt: checkpoint format 7 is not one'):
        read_checkpoint(run)
    ckpt.write_bytes(b'garbage')
    with pytest.raises(ApexError, match='cannot read checkpoint'):
        read_checkpoint(run)


@pytest.mark.slow
def test_read_checkpoint_gives_a_runs_state_without_internals(tmp_path):
    _, run = _finished_run(tmp_path)
    ckpt = read_checkpoint(run)
    assert (ckpt.format, ckpt.task, ckpt.iteration, ckpt.phase) == (2, 'cartpole_swingup', 1,
                                                                    'expert')
    lines = (run / 'metrics.jsonl').read_text().splitlines()
    assert ckpt.metrics == [json.loads(line) for line in lines]
    assert [r.kind for r in ckpt.dataset.rollouts] == ['expert', 'dagger']
    assert ckpt.config['apex']['iterations'] == 1 and ckpt.config['train']['steps'] == 20
    obs = ckpt.dataset.arrays()[0]
    with torch.no_grad():
        student = ckpt.student()(torch.as_tensor(obs)).numpy()
    np.testing.assert_allclose(student, PolicyBundle(run / 'policy.onnx')(obs), atol=1e-5)


def test_a_failed_run_leaves_no_empty_bundles_directory(tmp_path):
    trainer = ApexTrainer(load_run_config(None, small_apex_config(tmp_path)), tmp_path / 'run',
                          progress=False, log=lambda *a: None)

    def broken(*args, **kwargs):
        raise ApexError('the simulation broke')
    trainer.source.expert_rollout = broken
    with pytest.raises(ApexError, match='broke'):
        trainer.run()
    trainer.close()
    assert not (tmp_path / 'run' / 'bundles').exists()


@pytest.mark.slow
def test_train_refuses_a_file_that_is_not_a_dataset_shard(tmp_path):
    notes = tmp_path / 'notes.txt'
    notes.write_text('not data')
    out = subprocess.run([sys.executable, '-m', 'apex_ros.cli', 'train', '--config',
                          str(small_apex_config(tmp_path)), '--task', 'cartpole_swingup',
                          '--out', str(tmp_path / 'run'), '--dataset', str(notes), '--quiet'],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert f'{notes.resolve()}: not an apex_ros dataset shard (not an .npz archive)' in out.stderr
    assert 'pickle' not in out.stderr.lower()
    torch.save({'format': 2}, tmp_path / 'checkpoint.pt')
    np.save(tmp_path / 'objects.npy', np.array([{'a': 1}], dtype=object), allow_pickle=True)
    for path, why in ((tmp_path / 'checkpoint.pt', 'without the dataset description'),
                      (tmp_path / 'objects.npy', 'not an .npz archive')):
        with pytest.raises(ApexError, match=f'not an apex_ros dataset shard \\(.*{why}'):
            Dataset.load(path)


WRITER = '''
import os, sys, threading
from apex_ros.files import atomic_write_bytes, block_writes
data, wrote = os.urandom(8 << 20), threading.Event()

def write_forever():
    while True:
        atomic_write_bytes(os.path.join(sys.argv[1], 'big.bin'), data)
        wrote.set()
threading.Thread(target=write_forever, daemon=True).start()
wrote.wait()
if sys.argv[2] == 'block':
    assert block_writes(10.0)
'''


def test_block_writes_lets_a_process_exit_without_half_written_files(tmp_path):
    """A daemon thread writing in a loop when the process exits: after block_writes, no
    temp file is left (without it the exit usually catches the thread inside a write)."""
    for _ in range(3):
        out = subprocess.run([sys.executable, '-c', WRITER, str(tmp_path), 'block'],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ['big.bin']
        assert (tmp_path / 'big.bin').stat().st_size == 8 << 20

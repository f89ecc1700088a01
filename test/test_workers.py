"""Episodes on a Ray cluster (workers.backend: ray) against the same episodes in-process.

The cluster is real: a head and a second node started with `ray start` on this machine
(conftest.ray_cluster, once per session). Same seeds must give identical datasets and
metrics with either backend and any worker count, also when a worker process is killed in
the middle of an episode or the trainer is killed and resumed."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from conftest import small_apex_config

from apex_ros.bags.episodes import RecordedEpisode
from apex_ros.bags.relabel import expert_settings, relabel_episodes, relabel_on_ray
from apex_ros.cli import main
from apex_ros.config import ConfigError
from apex_ros.config.run import load_run_config
from apex_ros.deploy.export import bundle_bytes, export_bundle
from apex_ros.errors import ApexError
from apex_ros.learning.apex import ApexTrainer, apex_settings
from apex_ros.learning.student import MLPPolicy
from apex_ros.workers.config import WorkersConfig
from apex_ros.workers.episodes import EpisodeWorker, WorkerSpec

SMALL_RUN = {'apex': {'iterations': 1, 'expert_rollouts': 2, 'dagger_rollouts': 2,
                      'eval_episodes': 2, 'expert_action_noise': 0.1}}


def on_ray(address, workers=2, threads=1):
    return ['workers.backend=ray', f'workers.address={address}',
            f'workers.num_workers={workers}', f'workers.threads_per_worker={threads}']


def run_record(run_dir):
    """What a run produced, without timings and paths: (dataset, metrics)."""
    from apex_ros.learning.apex.checkpoint import read_checkpoint
    ckpt = read_checkpoint(run_dir)
    data = [(r.kind, r.iteration, r.info['seed'], r.obs, r.actions)
            for r in ckpt.dataset.rollouts]
    metrics = [json.loads(line) for line in (run_dir / 'metrics.jsonl').read_text().splitlines()]
    metrics = [{k: v for k, v in m.items() if not k.endswith('_seconds') and k != 'bundle'}
               for m in metrics]
    return data, metrics


def assert_same_run(a, b):
    (data_a, metrics_a), (data_b, metrics_b) = a, b
    assert [d[:3] for d in data_a] == [d[:3] for d in data_b]
    for x, y in zip(data_a, data_b):
        np.testing.assert_array_equal(x[3], y[3])
        np.testing.assert_array_equal(x[4], y[4])
    assert metrics_a == metrics_b


def train(path, out, sets=()):
    trainer = ApexTrainer(load_run_config(None, path, sets=sets), out, progress=False,
                          log=lambda *a: None)
    try:
        trainer.run()
    finally:
        trainer.close()


@pytest.mark.slow
def test_apex_run_is_identical_in_process_and_on_ray_also_after_killing_the_trainer(
        ray_cluster, tmp_path):
    """An iteration of 2 expert (DART noise) + 2 DAgger rollouts and 2 evaluations (the
    student changes twice):
    in-process; on 1 Ray worker; from the CLI on 2 workers, SIGKILLed after its first
    phase and resumed on 1 worker (a changed workers section resumes without being told)."""
    path = small_apex_config(tmp_path, **SMALL_RUN)
    train(path, tmp_path / 'local')
    local = run_record(tmp_path / 'local')
    assert [d[0] for d in local[0]] == ['expert'] * 2 + ['dagger'] * 2

    train(path, tmp_path / 'ray1', on_ray(ray_cluster, workers=1))
    assert_same_run(local, run_record(tmp_path / 'ray1'))

    run = tmp_path / 'ray2'
    cmd = [sys.executable, '-m', 'apex_ros.cli', 'train', '--config', str(path), '--out',
           str(run), '--quiet']
    proc = subprocess.Popen(cmd + [f'--set={s}' for s in on_ray(ray_cluster, workers=2)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, 'PYTHONUNBUFFERED': '1'})
    ckpt = run / 'checkpoint.pt'
    deadline = time.monotonic() + 180
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ckpt.exists(), proc.communicate()[0] if proc.poll() is not None else 'no checkpoint'
    proc.send_signal(signal.SIGKILL)
    out = proc.communicate()[0]
    assert proc.returncode == -signal.SIGKILL
    assert '2 Ray worker(s) on 2 node(s)' in out, out
    done = subprocess.run(cmd + ['--resume'] + [f'--set={s}' for s in on_ray(ray_cluster, 1)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'resuming' in done.stdout
    assert_same_run(local, run_record(run))


def dagger_reference(cfg, data, seeds):
    _, planner_cfg = apex_settings(cfg)
    worker = EpisodeWorker(WorkerSpec(cfg, cfg.planner_name, planner_cfg, 1))
    worker.prepare(planner_cfg, data, True)
    try:
        return [worker.dagger_episode(seed, False) for seed in seeds]
    finally:
        worker.close()


@pytest.mark.slow
def test_a_worker_killed_mid_episode_is_restarted_and_its_episode_retried(ray_cluster,
                                                                          tmp_path):
    from apex_ros.workers.ray_pool import RayPool
    cfg = load_run_config(None, small_apex_config(tmp_path))
    task = cfg.make_task()
    data = bundle_bytes(MLPPolicy(task.obs_dim, task.nu), task, 0)
    seeds = list(range(100, 106))
    expected = dagger_reference(cfg, data, seeds)

    _, planner_cfg = apex_settings(cfg)
    pool = RayPool(WorkerSpec(cfg, cfg.planner_name, planner_cfg, 1),
                   WorkersConfig('ray', ray_cluster, 2, 1))
    try:
        before = pool.workers()
        assert len({node for node, _ in before}) == 2   # one actor on each node
        pool.use(planner_cfg, data, True)
        killed = []

        def kill_the_other_worker(index, result):
            # items go to idle actors in order: item 0 to actor 0, item 1 to actor 1; when
            # the first result arrives, the other actor is still in its first episode
            if not killed:
                victim = before[1 - index][1]
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
        results = pool.map('dagger_episode', [(seed, False) for seed in seeds],
                           on_result=kill_the_other_worker)
        after = pool.workers()
    finally:
        pool.close()
    assert killed and killed[0] not in [pid for _, pid in after]   # restarted: a new process
    assert len(results) == len(seeds)
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got.episode.states, want.episode.states)
        np.testing.assert_array_equal(got.labels, want.labels)
        np.testing.assert_array_equal(got.states, want.states)


@pytest.mark.slow
def test_eval_and_relabel_on_ray_equal_in_process(ray_cluster, tmp_path, capsys):
    path = small_apex_config(tmp_path)
    cfg = load_run_config(None, path)
    task = cfg.make_task()
    policy = tmp_path / 'p.onnx'
    export_bundle(MLPPolicy(task.obs_dim, task.nu), task, policy, 1)
    argv = ['eval', '--config', str(path), '--policy', str(policy), '--episodes', '3',
            '--quiet']
    for extra in ([], ['--expert']):
        assert main(argv + extra) == 0
        local = capsys.readouterr().out.splitlines()
        assert main(argv + extra + [f'--set={s}' for s in on_ray(ray_cluster)]) == 0
        remote = capsys.readouterr().out.splitlines()
        assert remote[0].endswith('on Ray workers')
        assert remote[1:] == local[1:] and len(local) == 5

    settings = expert_settings(cfg, policy)
    worker = EpisodeWorker(settings.spec(1))
    worker.prepare(settings.planner_cfg, settings.policy_bytes, True)
    ep, warmstarts = worker.policy_episode(11)
    worker.close()
    episodes = [RecordedEpisode(ep.states[:25], np.array(warmstarts[:25]), {}),
                RecordedEpisode(ep.states[10:30], None, {})]   # joint states: no warm starts
    seeds = [7, 8]
    local = relabel_episodes(episodes, settings, seeds, workers=1, progress=False)
    ray_cfg = load_run_config(None, path, sets=on_ray(ray_cluster))
    remote, workers = relabel_on_ray(episodes, expert_settings(ray_cfg, policy), seeds,
                                     progress=False)
    assert workers == 2
    for (a, _), (b, _) in zip(local, remote):
        np.testing.assert_array_equal(a, b)


def test_an_unreachable_cluster_fails_naming_the_address_before_any_work(tmp_path):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        address = f'127.0.0.1:{s.getsockname()[1]}'   # nothing listens there
    path = small_apex_config(tmp_path)
    with pytest.raises(ApexError, match=f'workers.address: no Ray cluster reachable at '
                                        f'{address}'):
        ApexTrainer(load_run_config(None, path, sets=on_ray(address)), tmp_path / 'run',
                    progress=False, log=lambda *a: None)
    assert not (tmp_path / 'run' / 'checkpoint.pt').exists()
    with pytest.raises(ConfigError, match=r'workers\.address: expected HOST:PORT'):
        ApexTrainer(load_run_config(None, path, sets=on_ray('no-port-here')),
                    tmp_path / 'run', progress=False, log=lambda *a: None)


@pytest.mark.parametrize('values,message', [
    ({'backend': 'spark'}, r"workers\.backend: must be one of local, ray, got 'spark'"),
    ({'threads_per_worker': 0}, r'workers\.threads_per_worker: must be >= 1'),
    ({'num_workers': -1}, r'workers\.num_workers: must be >= 0'),
    ({'address': ''}, r'workers\.address: must be HOST:PORT, auto, or null'),
    ({'workers': 2}, r'workers: unknown key\(s\) workers'),
])
def test_bad_workers_settings_are_named(tmp_path, values, message):
    path = small_apex_config(tmp_path, workers=values)
    with pytest.raises(ConfigError, match=f'{path}: {message}'):
        load_run_config(None, path)


def test_workers_that_cannot_apply_are_refused_before_work(tmp_path):
    from apex_ros.ros.nodes.graph_source import GraphRolloutSource
    path = small_apex_config(tmp_path, workers={'backend': 'ray'})
    with pytest.raises(ConfigError, match=r'workers\.backend: ray, but GraphRolloutSource runs '
                                          r'its episodes local'):
        ApexTrainer(load_run_config(None, path), tmp_path / 'run',
                    source=GraphRolloutSource(None, tmp_path / 'run' / 'current_policy.onnx'))
    assert not (tmp_path / 'run').exists()
    path = small_apex_config(tmp_path, schedule=[
        {'from_iteration': 2, 'set': {'workers.num_workers': 4}}])
    with pytest.raises(ConfigError, match=r'schedule\[0\]\.set\.workers\.num_workers: only '
                                          r'planner, apex, train settings can change'):
        load_run_config(None, path)


@pytest.mark.slow
def test_the_local_backend_never_imports_ray(tmp_path):
    path = small_apex_config(tmp_path, apex={'iterations': 1})
    assert yaml.safe_load(path.read_text()).get('workers') is None   # the default: local
    script = (
        'import sys\n'
        'from apex_ros.cli import main\n'
        f'assert main(["train", "--config", "{path}", "--out", "{tmp_path / "run"}", '
        '"--quiet"]) == 0\n'
        f'assert main(["eval", "--config", "{path}", "--policy", '
        f'"{tmp_path / "run" / "policy.onnx"}", "--episodes", "1", "--quiet"]) == 0\n'
        'assert "ray" not in sys.modules, "ray was imported"\n')
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

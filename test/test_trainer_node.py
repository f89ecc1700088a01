"""The trainer node stopped mid-run: it exits leaving only complete files, and the run
resumes. Real DDS on loopback (rosutil isolates the session)."""
import signal

import pytest
import rosutil  # noqa: I100 (first: isolates the ROS domain before rclpy.init)
from test_graph import launch, started_pids, tiny_config

from apex_ros.deploy.bundle import PolicyBundle
from apex_ros.learning.apex.checkpoint import read_checkpoint


@pytest.mark.slow
def test_trainer_stopped_mid_iteration_leaves_only_complete_files(tmp_path):
    run, log = tmp_path / 'run', tmp_path / 'stop.log'
    proc = launch(['sim_apex', f'config:={tiny_config(tmp_path)}', f'out_dir:={run}',
                   'iterations:=50'], log)
    # mid-run: an iteration is complete and the next one is writing its checkpoints
    assert rosutil.wait_for(lambda: (run / 'metrics.jsonl').exists(), 120), log.read_text()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 128 + signal.SIGINT
    text = log.read_text()
    assert 'interrupted: the run resumes with resume:=true' in text
    assert 'training failed' not in text
    assert 'trainer' in started_pids(log)
    names = sorted(p.name for p in run.rglob('*') if p.is_file())
    assert not [n for n in names if n.endswith('.tmp')], names
    ckpt = read_checkpoint(run)
    assert len(ckpt.metrics) == ckpt.iteration
    numbers = sorted(int(b.stem[5:]) for b in (run / 'bundles').iterdir())
    assert numbers and numbers[-1] <= ckpt.iteration + 1
    for n in numbers:
        PolicyBundle(run / 'bundles' / f'iter_{n:03d}.onnx')
    # the next launch continues from the checkpoint and completes one more iteration
    until = ckpt.iteration + 1
    proc = launch(['sim_apex', f'config:={tiny_config(tmp_path)}', f'out_dir:={run}',
                   f'iterations:={until}', 'resume:=true'], tmp_path / 'resume.log')
    assert proc.wait(300) == 0, (tmp_path / 'resume.log').read_text()[-3000:]
    assert f'resuming {run} at iteration {ckpt.iteration + 1}' in (
        tmp_path / 'resume.log').read_text()
    assert [m['iteration'] for m in read_checkpoint(run).metrics] == list(range(1, until + 1))

"""What an APEX run reports: RUN_DIR/metrics.jsonl (one JSON line per iteration),
learning_curve.png, summary.json, and the line logged after every iteration."""
import json
from pathlib import Path

from ...files import atomic_write_text
from ..plot import plot_learning_curve

METRICS = 'metrics.jsonl'
LEARNING_CURVE = 'learning_curve.png'
SUMMARY = 'summary.json'
POLICY = 'policy.onnx'


def write_metrics(out: Path, metrics: list, task_name: str):
    """metrics.jsonl and, once there is an iteration, the learning curve."""
    atomic_write_text(out / METRICS, ''.join(json.dumps(m) + '\n' for m in metrics))
    if metrics:
        plot_learning_curve(metrics, out / LEARNING_CURVE, f'APEX on {task_name}')


def iteration_line(rec: dict, iterations: int, phases) -> str:
    """'iteration 3/10: expert 812.4 | policy 640.2 ± 12.1 (median 644.0) | expert 9.1s ...'"""
    secs = ' '.join(f'{p} {rec.get(p + "_seconds", 0):.1f}s' for p in phases)
    expert_succ = (f' success {rec["expert_success_rate"]:.2f}'
                   if 'expert_success_rate' in rec else '')
    succ = f' success {rec["policy_success_rate"]:.2f}' if 'policy_success_rate' in rec else ''
    return (f'iteration {rec["iteration"]}/{iterations}: expert '
            f'{rec["expert_return"]:.2f}{expert_succ} | policy {rec["policy_return"]:.2f} ± '
            f'{rec["policy_return_std"]:.2f} (median {rec["policy_return_median"]:.2f})'
            f'{succ} | {secs}')


def write_summary(out: Path, metrics: list, task_name: str, ablation: str, seconds: float,
                  config_path) -> dict:
    """summary.json: the last iteration's figures, the best policy return, the files."""
    last = metrics[-1]
    summary = {
        'task': task_name, 'iterations': len(metrics),
        'ablation': ablation,
        'final_policy_return': last['policy_return'],
        'final_policy_return_std': last['policy_return_std'],
        'final_policy_return_median': last.get('policy_return_median'),  # older runs: none
        'final_expert_return': last['expert_return'],
        'best_policy_return': max(m['policy_return'] for m in metrics),
        'policy_bundle': str(out / POLICY),
        'learning_curve': str(out / LEARNING_CURVE),
        'metrics': str(out / METRICS),
        'seconds_this_session': seconds,
        'config': str(config_path),
    }
    if 'policy_success_rate' in last:
        summary['final_policy_success_rate'] = last['policy_success_rate']
        summary['best_policy_success_rate'] = max(m.get('policy_success_rate', 0.0)
                                                  for m in metrics)
    atomic_write_text(out / SUMMARY, json.dumps(summary, indent=2) + '\n')
    return summary

"""Learning-curve plot (like APEX Fig. 5): expert and policy return per iteration."""
import io

from .util import atomic_write_bytes


def plot_learning_curve(metrics: list, path, title: str):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    its = [m['iteration'] for m in metrics]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    expert = [m['expert_return'] for m in metrics]
    policy = [m['policy_return'] for m in metrics]
    policy_std = [m.get('policy_return_std', 0.0) for m in metrics]
    ax.plot(its, expert, '--o', color='tab:blue', label='expert (guided iCEM_π)', ms=4)
    ax.plot(its, policy, '-o', color='tab:orange', label='policy (ONNX bundle)', ms=4)
    lo = [p - s for p, s in zip(policy, policy_std)]
    hi = [p + s for p, s in zip(policy, policy_std)]
    ax.fill_between(its, lo, hi, color='tab:orange', alpha=0.2, linewidth=0)
    if all('policy_return_median' in m for m in metrics):
        ax.plot(its, [m['policy_return_median'] for m in metrics], ':x', color='tab:red',
                label='policy median', ms=4)
    scale = max([abs(e) for e in expert if e == e] + [1.0])
    if min(lo + expert) < -2 * scale:
        # a few catastrophic episodes (e.g. a rolling cheetah) would flatten the curve:
        # linear within the expert's scale, logarithmic beyond
        ax.set_yscale('symlog', linthresh=scale)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel('APEX iteration')
    ax.set_ylabel('episode return')
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc='lower right')
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format='png')
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())

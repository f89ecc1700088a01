"""Learning-curve plot (like APEX Fig. 5): expert and policy return per iteration, and their
success rates beside it for tasks that define success (Fetch, Door)."""
import io

from ..files import atomic_write_bytes


def y_range(expert, policy, policy_low, medians):
    """(bottom, top) of the return axis when some returns are catastrophic (below -2x the
    expert's scale), else None: around the expert returns, policy medians and means, but at
    most 0.25x that scale below zero, so the band the runs live in keeps its resolution."""
    finite = [v for v in expert if v == v]
    scale = max([abs(v) for v in finite] + [1.0])
    if min(policy_low + finite, default=0.0) >= -2 * scale:
        return None
    shown = finite + [v for v in medians + policy if v == v]
    bottom = max(min(shown + [0.0]), -0.25 * scale) - 0.05 * scale
    return bottom, max(shown) + 0.05 * scale


def plot_learning_curve(metrics: list, path, title: str):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    its = [m['iteration'] for m in metrics]
    with_success = any('policy_success_rate' in m for m in metrics)
    if with_success:
        fig, (ax, ax_success) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110,
                                             gridspec_kw={'width_ratios': [3, 2]})
    else:
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    expert = [m['expert_return'] for m in metrics]
    policy = [m['policy_return'] for m in metrics]
    policy_std = [m.get('policy_return_std', 0.0) for m in metrics]
    ax.plot(its, expert, '--o', color='tab:blue', label='expert (guided iCEM_π)', ms=4)
    ax.plot(its, policy, '-o', color='tab:orange', label='policy (ONNX bundle)', ms=4)
    lo = [p - s for p, s in zip(policy, policy_std)]
    hi = [p + s for p, s in zip(policy, policy_std)]
    ax.fill_between(its, lo, hi, color='tab:orange', alpha=0.2, linewidth=0)
    medians = [m['policy_return_median'] for m in metrics if 'policy_return_median' in m]
    if len(medians) == len(metrics):
        ax.plot(its, medians, ':x', color='tab:red', label='policy median', ms=4)
    limits = y_range(expert, policy, lo, medians)
    if limits is not None:
        # catastrophic episodes (e.g. a rolled cheetah) would flatten the curve: keep the axis
        # linear around the expert and the medians, and mark means that fall below it
        ax.set_ylim(*limits)
        bottom = limits[0]
        below = [(i, p) for i, p in zip(its, policy) if p < bottom]
        if below:
            ax.plot([i for i, _ in below], [bottom] * len(below), 'v', color='tab:orange',
                    ms=7, clip_on=False, label='policy mean below the axis')
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel('APEX iteration')
    ax.set_ylabel('episode return')
    ax.set_title('return' if with_success else title)
    ax.grid(alpha=0.3)
    ax.legend(loc='best', fontsize='small')
    if with_success:
        _success_panel(ax_success, metrics)
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format='png')
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _success_panel(ax, metrics):
    from matplotlib.ticker import MaxNLocator
    for key, style, color, label in (
            ('expert_success_rate', '--o', 'tab:blue', 'expert'),
            ('policy_success_rate', '-o', 'tab:orange', 'policy')):
        points = [(m['iteration'], m[key]) for m in metrics if key in m]
        if points:
            ax.plot(*zip(*points), style, color=color, label=label, ms=4)
    ax.set_ylim(-0.03, 1.03)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel('APEX iteration')
    ax.set_ylabel('success rate')
    ax.set_title('success')
    ax.grid(alpha=0.3)
    ax.legend(loc='best', fontsize='small')

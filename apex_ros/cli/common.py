"""What the command groups share: the config arguments (--task --config --set ...), loading
the config they name, and argument types that refuse impossible counts."""
import argparse

from ..tasks import DEFAULT_TASK, known_tasks

# shorthand flag -> the --set key it stands for
SHORTHANDS = {'budget': 'planner.budget', 'threads': 'rollout.threads', 'seed': 'seed',
              'iterations': 'apex.iterations'}
SET_HELP = ('set one config value, e.g. --set planner.sigma=0.2 --set train.hidden=[64,64] '
            '--set task.params.control_weight=0.3 (the value is read as YAML; repeatable; '
            'applied after the config file and the shorthand flags)')


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse names the flag in its error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {value}')
    return value


def add_config_args(p, planner=True, shorthands=('budget', 'threads', 'seed'),
                    budget_help='sampled sequences per planning step (= --set planner.budget)'):
    """--task, --config, --set, and optionally --planner and the shorthand flags."""
    p.add_argument('--task', help=f'task name (default: the config\'s, else {DEFAULT_TASK}); '
                   f'known: {", ".join(known_tasks())}')
    p.add_argument('--config', help='YAML config (default: config/<task>.yaml); it may name '
                   'another as `base: file.yaml` and hold only its differences')
    p.add_argument('--set', action='append', default=[], metavar='SECTION.KEY=VALUE',
                   help=SET_HELP)
    if planner:
        p.add_argument('--planner', help='planner to use instead of the config\'s planner.name '
                       '(its settings: planners.<name>; --set planner.* applies to it)')
    if 'budget' in shorthands:
        p.add_argument('--budget', type=positive_int, help=budget_help)
    if 'threads' in shorthands:
        p.add_argument('--threads', type=positive_int,
                       help='rollout threads (= --set rollout.threads)')
    if 'seed' in shorthands:
        p.add_argument('--seed', type=int, help='random seed (= --set seed)')


def config_sets(args) -> list:
    """The --set items of `args`: the shorthand flags first, then --set in order."""
    sets = [f'{key}={getattr(args, flag)}' for flag, key in SHORTHANDS.items()
            if getattr(args, flag, None) is not None]
    return sets + list(getattr(args, 'set', None) or [])


def load_config(args, planner: str | None = None):
    """The RunConfig that args' --task/--config/--planner/--set (and shorthands) name."""
    from ..config.run import load_run_config
    task = args.task or (None if args.config else DEFAULT_TASK)
    return load_run_config(task, args.config, planner=planner or getattr(args, 'planner', None),
                           sets=config_sets(args))

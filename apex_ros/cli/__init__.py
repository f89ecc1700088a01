"""`apex-ros`: the one command-line entry point (subcommands, --help on each).

Command groups: cli/run.py (tasks, mpc, train, eval, polo), cli/ros.py (launch, record,
relabel), cli/bench.py (bench ...); cli/common.py holds the config arguments they share.
"""
import argparse
import sys

from ..errors import ApexError
from . import bench, ros, run


def build_parser():
    parser = argparse.ArgumentParser(
        prog='apex-ros', description='APEX policy extraction from an iCEM_pi MuJoCo planner.')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    run.add_parsers(sub)
    ros.add_parsers(sub)
    bench.add_parser(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except ApexError as e:
        print(f'apex-ros: error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('apex-ros: interrupted', file=sys.stderr)
        return 130

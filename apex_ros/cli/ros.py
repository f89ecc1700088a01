"""Commands around the ROS graph: launch, record, relabel, view."""
import argparse
import threading

from ..errors import ApexError
from .common import add_config_args, load_config, positive_int


def cmd_launch(args):
    from ..ros.graph import GRAPHS
    from ..ros.launcher import Launcher, graph_argvs, parse_launch_arguments
    if args.graph is None or args.graph not in GRAPHS:
        def shown(a):
            return f'{a.name}:=' + ('(required)' if a.default is None else a.default)
        known = ', '.join(f'{g} ({", ".join(shown(a) for a in GRAPHS[g][1])})'
                          for g in sorted(GRAPHS))
        if args.graph is None:
            print(f'graphs: {known}')
            return 0
        raise ApexError(f'unknown graph {args.graph!r}; known graphs: {known}')
    if '--print' in args.arguments:  # REMAINDER swallows flags given after the graph
        args.arguments.remove('--print')
        args.print = True
    values = parse_launch_arguments(args.graph, args.arguments)
    nodes = graph_argvs(args.graph, values)
    if args.print:
        for spec, argv in nodes:
            print(' '.join(argv))
        return 0
    return Launcher(nodes).run()


def name_topic(text: str) -> tuple:
    """'goal=/my_goal' -> ('goal', '/my_goal')."""
    name, sep, topic = text.partition('=')
    if not (sep and name and topic):
        raise argparse.ArgumentTypeError(f'expected NAME=TOPIC, got {text!r}')
    return name, topic


def cmd_record(args):
    from ..ros.nodes.common import spin
    from ..ros.nodes.recorder_node import RecorderNode
    settings = {'topics': args.topics or [''], 'sim': args.sim, 'controller': args.controller,
                'bundle': args.bundle or '',
                'output': args.output or '', 'max_bag_size': args.max_bag_size,
                'max_bag_duration': args.max_bag_duration, 'flush_period': args.flush_period}

    def recorder():
        return RecorderNode(**settings)
    recorder.__name__ = 'apex-ros record'   # how spin() names us in an error
    return spin(recorder, ['apex-ros'])


def cmd_relabel(args):
    from ..bags.relabel import relabel_bags
    cfg = load_config(args)
    summary = relabel_bags(args.bags, cfg, args.policy, args.out, workers=args.workers,
                           source=args.source, full_state_topic=args.full_state_topic,
                           joint_states_topic=args.joint_states_topic,
                           episode_gap=args.episode_gap, ignore_joints=args.ignore_joint or (),
                           input_topics=dict(args.input_topic or ()),
                           threads=args.threads, progress=not args.quiet)
    workers = 'Ray worker(s)' if cfg.workers.backend == 'ray' else 'worker process(es)'
    print(f'relabeled {summary["episodes"]} episode(s), {summary["states"]} states in '
          f'{summary["seconds"]:.1f} s ({summary["states_per_second"]:.1f} states/s on '
          f'{summary["workers"]} {workers}) -> {summary["out"]}\n'
          f'train on it: apex-ros train --task {cfg.task.name} --dataset {summary["out"]} ...')
    return 0


def cmd_view(args):
    from ..tasks import make_task
    task = make_task(args.task)   # an unknown task fails here, before anything starts
    if args.bag is None:
        import os

        from rclpy.experimental import EventsExecutor

        from ..ros.nodes.common import spin
        from ..ros.nodes.viz_node import NICE, VizNode

        def viz_node():
            return VizNode(args.task, args.host, args.port, args.controller)
        viz_node.__name__ = 'apex-ros view'   # how spin() names us in an error
        os.nice(NICE)   # as the viz node: the view yields the CPU to the control loop
        return spin(viz_node, ['apex-ros'], EventsExecutor)
    from ..view.page import ViewPage
    from ..view.replay import Replay, load_frames
    frames = load_frames(args.bag, task)
    page = ViewPage(task, args.host, args.port, title=f'apex_ros replay: {args.bag}')
    replay = Replay(page, frames, bag_name=str(args.bag))
    print(f'view: {page.url} (replay of {args.bag}: {len(frames.times)} frames from '
          f'{frames.topic}, {frames.times[-1]:.2f} s; Ctrl-C stops)', flush=True)
    try:
        threading.Event().wait()
    finally:
        replay.stop()
        page.stop()


def add_parsers(sub):
    p = sub.add_parser('launch', help='start a node graph (same processes and argv as '
                       '`ros2 launch apex_ros GRAPH.launch.py`)')
    p.add_argument('graph', nargs='?', help='sim_apex | policy (omit to list them and their '
                   'arguments)')
    p.add_argument('arguments', nargs=argparse.REMAINDER, metavar='name:=value',
                   help='launch arguments, e.g. sim_apex set:=apex.iterations=3,planner.budget=60')
    p.add_argument('--print', action='store_true', help='print each node\'s argv and exit')
    p.set_defaults(func=cmd_launch)

    p = sub.add_parser('record', help='record topics to a rosbag2 bag (MCAP, metadata.yaml v9), '
                       'like `ros2 bag record`; Ctrl-C closes it')
    p.add_argument('topics', nargs='*', metavar='TOPIC', help='topics (default: '
                   '/joint_states, /<controller>/commands, and with --sim the full-state topic)')
    p.add_argument('-o', '--output', help='bag directory to create (default: '
                   'rosbag2_<date>-<time>)')
    p.add_argument('--sim', action='store_true', help='also record the simulation\'s full '
                   'physics state (exact relabeling)')
    p.add_argument('--controller', default='', help='controller whose commands topic is '
                   'recorded by default (default: the bundle\'s, else effort_controller)')
    p.add_argument('--bundle', metavar='ONNX', help="also record this policy bundle's command "
                   "topics (its controller's, its gripper's) and the inputs it reads (an "
                   "object's pose, a goal: the topics it declares)")
    p.add_argument('--max-bag-size', type=int, default=0, metavar='BYTES',
                   help='start a new file at this size (0: never)')
    p.add_argument('--max-bag-duration', type=float, default=0.0, metavar='SECONDS',
                   help='start a new file after this long (0: never)')
    p.add_argument('--flush-period', type=float, default=1.0, metavar='SECONDS',
                   help='write data out at least this often: the most a hard kill can lose')
    p.set_defaults(func=cmd_record)

    p = sub.add_parser('relabel', help='offline DAgger: label the states in bags with the '
                       'guided expert, write a dataset shard for `train --dataset`')
    p.add_argument('bags', nargs='+', metavar='BAG', help='bag directories or .mcap files')
    add_config_args(p)
    p.add_argument('--policy', required=True, help='the policy that ran (guides the expert)')
    p.add_argument('--out', required=True, help='dataset shard to write (.npz)')
    p.add_argument('--workers', type=positive_int, help='relabeling processes (default: cores '
                   '/ rollout threads); with workers.backend ray: Ray workers (default '
                   'workers.num_workers)')
    p.add_argument('--source', choices=('auto', 'full_state', 'joint_states'), default='auto',
                   help='where states come from (auto: the full-state topic if recorded)')
    p.add_argument('--full-state-topic', default=None, help='default /apex/full_state')
    p.add_argument('--joint-states-topic', default=None, help='default /joint_states')
    p.add_argument('--episode-gap', type=float, default=1.0, metavar='SECONDS',
                   help='/joint_states: a longer gap between stamps starts a new episode')
    p.add_argument('--ignore-joint', action='append', metavar='NAME',
                   help='/joint_states: a joint the model lacks to ignore (repeatable)')
    p.add_argument('--input-topic', action='append', type=name_topic, metavar='NAME=TOPIC',
                   help="/joint_states: the topic an input of the task's was recorded on, if "
                   'remapped (repeatable; default: the declared topic)')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.set_defaults(func=cmd_relabel)

    p = sub.add_parser('view', help='a browser view on localhost: the live graph (scene, '
                       'plan, plots, status), or the replay of a bag with BAG')
    p.add_argument('bag', nargs='?', metavar='BAG', help='bag directory or .mcap file to '
                   'replay (omit for the live view of the running graph)')
    p.add_argument('--task', default='cartpole_swingup', help='task whose model is drawn')
    p.add_argument('--host', default='127.0.0.1', help='address to serve on (default '
                   'localhost only)')
    p.add_argument('--port', type=int, default=8080, help='port to serve on (0: any free one)')
    p.add_argument('--controller', default='', help='live: controller whose commands are '
                   'counted (default: the task\'s command interface\'s)')
    p.set_defaults(func=cmd_view)

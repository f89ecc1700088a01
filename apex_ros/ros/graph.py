"""The node graphs, as plain data (no ROS imports).

One spec drives both launch/*.launch.py (launch_ros Node actions, on a ROS install) and
`apex-ros launch` (the same processes with the same --ros-args argv, where launch_ros is
absent). Launch-argument values are passed through untouched, so the launch files can hand
in substitutions and the runner plain strings.

argv of a node, exactly as launch_ros builds it:
  EXE [arguments] [--ros-args -p k:=v ...] --ros-args -r __node:=NAME
      [--params-file FILE ...] [-r from:=to ...]
Launch arguments travel as `-p` rules before the parameter files; a file never sets them
(rcl lets a later --params-file override an earlier -p). Each argument declares its type,
checked before any node starts (a node would otherwise die on a parameter of the wrong type).
"""
import dataclasses
import re

from ..errors import ApexError
from . import protocol


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    executable: str
    name: str
    params_files: tuple = ()      # files under the package's config/
    params: tuple = ()            # (name, value) pairs from launch arguments
    remappings: tuple = ()        # (from, to)
    arguments: tuple = ()
    ends_launch: bool = False     # its exit ends the launch (status 0 = success)
    package: str = 'apex_ros'


# The spellings rcl's parameter parser reads as each type (a -p value is YAML).
_INT = re.compile(r'^[+-]?[0-9]+$')
_FLOAT = re.compile(r'^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$')
_BOOLS = ('true', 'false', 'True', 'False', 'TRUE', 'FALSE', 'yes', 'no', 'Yes', 'No',
          'YES', 'NO', 'on', 'off', 'On', 'Off', 'ON', 'OFF', 'y', 'n', 'Y', 'N')
_TRUE = _BOOLS[::2]   # the spellings of true (the tuple alternates true, false)
TYPES = ('int', 'float', 'bool', 'str', 'path')


@dataclasses.dataclass(frozen=True)
class LaunchArgument:
    name: str
    type: str               # one of TYPES: what the node's parameter takes
    default: str | None     # None: required
    description: str

    def __post_init__(self):
        if self.type not in TYPES:
            raise ValueError(f'launch argument {self.name}: type {self.type!r} not in {TYPES}')

    def check(self, value: str) -> str:
        """`value` as the node's parameter will read it; ApexError naming the argument and the
        expected type if it does not read as that type. A float written as an integer gets
        '.0' (rcl would read it as an int, which a float parameter refuses)."""
        if self.type == 'float' and _INT.match(value):
            return value + '.0'
        ok = {'int': _INT.match, 'float': _FLOAT.match, 'bool': _BOOLS.__contains__}
        if self.type in ok and not ok[self.type](value):
            raise ApexError(f'launch argument {self.name}:={value}: expected {self.type}'
                            + (' (true or false)' if self.type == 'bool' else '')
                            + f'; {self.name}: {self.description}')
        return value


SIM_APEX_ARGUMENTS = (
    LaunchArgument('task', 'str', 'cartpole_swingup', 'registered task name'),
    LaunchArgument('config', 'path', 'default',
                   "task config YAML ('default': config/<task>.yaml)"),
    LaunchArgument('out_dir', 'path', 'runs/sim_apex', 'run directory for bundles, metrics, plot'),
    LaunchArgument('iterations', 'int', '0', "APEX iterations (0: the config's apex.iterations)"),
    LaunchArgument('resume', 'bool', 'false', 'continue the run in out_dir'),
    LaunchArgument('allow_config_change', 'bool', 'false', 'with resume: continue even if the '
                   'config differs from the one the run was started with'),
    LaunchArgument('set', 'str', "''", "config settings, as --set gives them: "
                   "'apex.iterations=3,planner.budget=60' (',' or ';' between them)"),
    LaunchArgument('record', 'path', "''", "bag directory to record the policy rollouts to "
                   "(rosbag2 MCAP, with the full state, for `apex-ros relabel`); '' (empty): "
                   "none"),
    LaunchArgument('viz', 'bool', 'false', 'also start the browser view (viz node) on '
                   'viz_port'),
    LaunchArgument('viz_port', 'int', '8080', 'with viz: the port the view serves on '
                   '(localhost)'),
)

POLICY_ARGUMENTS = (
    LaunchArgument('params_file', 'path', 'policy_executor.yaml',
                   "the robot's executor parameters (file name under config/, or a path)"),
    LaunchArgument('bundle', 'path', None, 'policy bundle (.onnx) to run; later bundles '
                   f'announced on {protocol.POLICY_BUNDLE} replace it after validation'),
    LaunchArgument('viz', 'bool', 'false', 'also start the browser view (viz node); it runs '
                   'beside the executor, never inside it'),
    LaunchArgument('viz_port', 'int', '8080', 'with viz: the port the view serves on'),
    LaunchArgument('viz_task', 'str', 'cartpole_swingup', 'with viz: the task whose model '
                   'the view draws'),
)


def sim_apex(args: dict) -> list:
    """MuJoCo sim in lockstep + iCEM_pi planner + ONNX executor + APEX trainer."""
    task_params = (('task', args['task']), ('config', args['config']),
                   ('set', args.get('set', "''")))
    nodes = [
        NodeSpec('sim_node', protocol.SIM_NODE, ('sim_apex.yaml',), task_params),
        NodeSpec('planner_node', protocol.PLANNER_NODE, ('sim_apex.yaml',), task_params),
        NodeSpec('policy_executor', protocol.EXECUTOR_NODE, ('sim_apex.yaml',)),
        NodeSpec('trainer_node', protocol.TRAINER_NODE, ('sim_apex.yaml',), task_params + (
            ('out_dir', args['out_dir']), ('iterations', args['iterations']),
            ('resume', args['resume']),
            ('allow_config_change', args.get('allow_config_change', 'false'))),
            ends_launch=True),
    ]
    if args.get('record', "''") not in ('', "''"):
        # starts paused; the trainer records exactly the policy rollouts
        nodes.append(NodeSpec('recorder_node', protocol.RECORDER_NODE, ('sim_apex.yaml',),
                              (('output', args['record']),)))
    return nodes + viz_nodes(args, args['task'])


def viz_nodes(args: dict, task: str) -> list:
    """The viz node when the launch argument viz is true, else nothing."""
    if args.get('viz', 'false') not in _TRUE:
        return []
    return [NodeSpec('viz_node', protocol.VIZ_NODE, (),
                     (('task', task), ('port', args.get('viz_port', '8080'))))]


def policy(args: dict) -> list:
    """Only the executor, with a robot's parameter file: what runs on hardware."""
    return [NodeSpec('policy_executor', protocol.EXECUTOR_NODE, (args['params_file'],),
                     (('bundle', args['bundle']),))] + viz_nodes(
        args, args.get('viz_task', 'cartpole_swingup'))


GRAPHS = {
    'sim_apex': (sim_apex, SIM_APEX_ARGUMENTS),
    'policy': (policy, POLICY_ARGUMENTS),
}


def ros_arguments(spec: NodeSpec) -> list:
    """The `-p name:=value` rules carried by launch_ros's `ros_arguments`."""
    out = []
    for name, value in spec.params:
        out += ['-p', f'{name}:={value}']
    return out


def ros_argv(spec: NodeSpec, executable_path: str, resolve_params_file) -> list:
    """The full argv launch_ros would build for `spec` (plain-string values only)."""
    argv = [executable_path, *spec.arguments]
    if spec.params:
        argv += ['--ros-args', *ros_arguments(spec)]
    argv += ['--ros-args', '-r', f'__node:={spec.name}']
    for f in spec.params_files:
        argv += ['--params-file', str(resolve_params_file(f))]
    for src, dst in spec.remappings:
        argv += ['-r', f'{src}:={dst}']
    return argv

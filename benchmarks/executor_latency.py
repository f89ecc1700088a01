"""The policy executor at robot rates, driven from outside as a robot would drive it.

The executor runs as a subprocess (autostarted) with the halfcheetah bundle. This process is
the robot: it publishes /joint_states for 9 joints at --rate (names shuffled, random values,
RELIABLE depth 1) and listens on the command topic; one-way latency = command received - the
state published just before it (the issue's definition; a command computed from an older state
counts from the newer one, so it is a lower bound when commands lag a period). The command rate
is counted by a separate lean listener process (this one's reception drops a few under load).
Each configuration runs quiet and with one CPU-bound neighbour process (`while True: pass`);
then the stale phase: the stream stops and the time from the last state to the first hold
command (all zeros) is measured against state_timeout (no hold within --stale s: null).

--baseline REF runs the executor of git revision REF (its apex_ros package, extracted to a
temporary directory) in the same run, alternating with this checkout's, so before/after ratios
share the machine's load. --priority N adds this checkout's executor at realtime_priority N
(SCHED_FIFO); --robot-priority N runs this process (the robot's side) at SCHED_FIFO N, so the
state stream keeps its rate on a loaded machine, as a robot's driver would. The machine's
speed is measured first: the physics time of one halfcheetah planning step (`apex-ros bench
planner`, budget 100, 1 thread, --planner-steps steps).

--arm adds the UR5e reach bundle (experiments/ur5e_reach, default) in the same run, alternating
with the halfcheetah one: 6 shuffled arm joints, its goal input as a geometry_msgs/PointStamped
on /goal (frame base_link), the executor on forward_position_controller with the position
interface (its hold: the last measured positions). Twice: `ur5e_reach` publishes the goal with
every state, as the sim node does; `ur5e_reach_goal_1hz` once a second, as a goal source on a
robot would (the executor keeps the latest); `ratios` gives each / halfcheetah per trigger and
load.

    python benchmarks/executor_latency.py benchmarks/executor_latency.json --duration 10 \\
        --baseline 6502e84
    python benchmarks/executor_latency.py benchmarks/executor_latency_arm.json --duration 10 \\
        --arm --neighbour off
"""
import argparse
import dataclasses
import itertools
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 200)))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

import rclpy  # noqa: E402 (after the domain isolation above)
from geometry_msgs.msg import PointStamped  # noqa: E402
from rclpy.experimental import EventsExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402

from apex_ros.cli.bench import environment, write_json  # noqa: E402
from apex_ros.ros import protocol  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / 'experiments/halfcheetah/run_160/policy.onnx'
JOINTS = ['rootx', 'rootz', 'rooty', 'bthigh', 'bshin', 'bfoot', 'fthigh', 'fshin', 'ffoot']
ARM_BUNDLE = ROOT / 'experiments/ur5e_reach/apex_run/policy.onnx'
ARM_JOINTS = ['shoulder_pan_joint', 'shoulder_lift_joint', 'elbow_joint', 'wrist_1_joint',
              'wrist_2_joint', 'wrist_3_joint']
ARM_GOAL = (-0.45, 0.15, 0.3)


@dataclasses.dataclass(frozen=True)
class Setup:
    """A bundle and what the robot side does for it."""
    label: str
    bundle: str
    joints: list              # the robot's joints (published shuffled)
    controller: str
    interface: str            # effort: hold = zeros; position: hold = the measured positions
    goal: tuple = ()          # published on /goal (base_link) when set ...
    goal_period: float = 0.0  # ... this often (s; 0: with every state)

    @property
    def topic(self):
        return protocol.command_topic(self.controller)

    def params(self):
        return {'controller': self.controller, 'command_interface': self.interface}


CHEETAH = Setup('halfcheetah', str(BUNDLE), JOINTS, protocol.DEFAULT_CONTROLLER, 'effort')
LISTENER = '''
import json, signal, sys, time
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import Float64MultiArray
rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
node, times, stop = rclpy.create_node('executor_latency_listener'), [], []
for topic in sys.argv[1].split(','):
    node.create_subscription(Float64MultiArray, topic, lambda m: times.append(time.monotonic()),
                             100)
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
executor = SingleThreadedExecutor()
executor.add_node(node)
while not stop:
    executor.spin_once(timeout_sec=0.05)
with open(sys.argv[2], 'w') as f:
    json.dump(times, f)
'''
NEIGHBOUR = 'while True: pass'
# The floor: a plain rclpy node that answers each state with a constant command (no policy).
ECHO = '''
import sys
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
rclpy.init()
node = rclpy.create_node('bench_echo')
pub = node.create_publisher(Float64MultiArray, sys.argv[1], 1)
command = Float64MultiArray(data=[0.5] * 6)
node.create_subscription(JointState, '/joint_states', lambda m: pub.publish(command),
                         QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
executor = SingleThreadedExecutor()
executor.add_node(node)
while rclpy.ok():
    executor.spin_once(timeout_sec=0.1)
'''


def cpu_model():
    with open('/proc/cpuinfo') as f:
        return next((line.split(':', 1)[1].strip() for line in f
                     if line.startswith('model name')), platform.processor())


def machine_cpu():
    """(busy, total) jiffies of all CPUs since boot."""
    with open('/proc/stat') as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)


def cpu_seconds(pid):
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def physics_ms(steps):
    """sim_ms_median of `apex-ros bench planner` (halfcheetah, budget 100, 1 thread)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, 'planner.json')
        subprocess.run([sys.executable, '-m', 'apex_ros.cli', 'bench', 'planner', '--task',
                        'halfcheetah_run', '--threads', '1', '--steps', str(steps), '--quiet',
                        '--json', out], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        with open(out) as f:
            return json.load(f)['sim_ms_median']


def extract(revision, directory):
    """The apex_ros package of git `revision` under `directory` (a PYTHONPATH entry)."""
    archive = subprocess.run(['git', '-C', str(ROOT), 'archive', revision, 'apex_ros'],
                             check=True, capture_output=True).stdout
    directory.mkdir()
    subprocess.run(['tar', '-x', '-C', str(directory)], input=archive, check=True)
    return str(directory)


class Robot:
    """Publishes shuffled joint states (and the setup's goal) from a timer; times the commands
    that come back."""

    def __init__(self, rate_hz, setups, seed=0):
        self.node = rclpy.create_node('executor_latency_robot')
        reliable = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.pub = self.node.create_publisher(JointState, protocol.JOINT_STATES, reliable)
        self.goal_pub = self.node.create_publisher(PointStamped, '/goal', reliable)
        for topic in {s.topic for s in setups}:
            self.node.create_subscription(Float64MultiArray, topic, self.on_command, 100)
        self.rng = np.random.default_rng(seed)
        self.publishing, self.recording, self.seq, self.last_sent = True, False, 0, None
        self.first_hold = None
        self.use(setups[0])
        self.reset()
        self.node.create_timer(1.0 / rate_hz, self.publish)
        self.executor = EventsExecutor()
        self.executor.add_node(self.node)

    def use(self, setup):
        """Publish `setup`'s joints (shuffled) and goal from now on."""
        self.setup = setup
        order = self.rng.permutation(len(setup.joints))
        self.names = [setup.joints[i] for i in order]
        self.values = self.rng.uniform(-0.5, 0.5, (64, 2, len(setup.joints)))
        # a position hold commands the last state's positions in the bundle's joint order
        self.unshuffle = np.argsort(order)
        self.goal = None
        if setup.goal:
            self.goal = PointStamped()
            self.goal.header.frame_id = 'base_link'
            self.goal.point.x, self.goal.point.y, self.goal.point.z = setup.goal
        self.goal_sent = -math.inf
        self.last_positions = np.zeros(len(setup.joints))

    def reset(self):
        self.latencies, self.states, self.commands, self.holds, self.any_command = [], 0, 0, 0, 0

    def publish(self):
        if not self.publishing:
            return
        pos, vel = self.values[self.seq % len(self.values)]
        self.seq += 1
        msg = JointState(name=self.names, position=pos.tolist(), velocity=vel.tolist())
        self.pub.publish(msg)
        self.last_sent = time.perf_counter()
        if self.goal is not None and self.last_sent - self.goal_sent >= self.setup.goal_period:
            self.goal_pub.publish(self.goal)
            self.goal_sent = self.last_sent
        self.last_positions = pos[self.unshuffle]
        self.states += self.recording

    def on_command(self, msg):
        now = time.perf_counter()
        self.any_command += 1
        if self.setup.interface == 'position':
            hold = np.allclose(msg.data, self.last_positions, rtol=0, atol=1e-9)
        else:
            hold = not any(msg.data)
        if hold and self.first_hold is None:
            self.first_hold = now
        if not self.recording:
            return
        self.commands += 1
        self.holds += hold
        if not hold and self.last_sent is not None:
            self.latencies.append(now - self.last_sent)

    def spin_for(self, seconds, until=None):
        end = time.monotonic() + seconds
        while time.monotonic() < end and not (until and until()):
            self.executor.spin_once(timeout_sec=0.05)
        return until() if until else True

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()


def stop(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_config(robot, code, setup, trigger, neighbour, args, log_dir):
    label, pythonpath, params = code
    robot.use(setup)
    params = {**setup.params(), **params}
    cmd = [sys.executable, '-m', 'apex_ros.ros.nodes.policy_executor', '--ros-args',
           '-r', '__node:=bench_executor', '-p', f'bundle:={setup.bundle}',
           '-p', f'rate_hz:={float(args.rate)}', '-p', f'trigger:={trigger}',
           '-p', f'executor:={args.executor}', '-p', 'autostart:=true']
    for key, value in params.items():
        cmd += ['-p', f'{key}:={value}']
    if label == 'echo':
        cmd = [sys.executable, '-c', ECHO, setup.topic]
    name = (f'{label}_{setup.label}_{trigger}_{"neighbour" if neighbour else "quiet"}'
            .replace(' ', '_'))
    log = open(os.path.join(log_dir, f'executor_{name}.log'), 'wb')
    env = {**os.environ, 'PYTHONPATH': pythonpath}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                            cwd=pythonpath, start_new_session=True)  # cwd: first on sys.path
    other = subprocess.Popen([sys.executable, '-c', NEIGHBOUR]) if neighbour else None
    try:
        robot.publishing, robot.recording, robot.any_command = True, False, 0
        if not robot.spin_for(60, until=lambda: robot.any_command > 0):
            raise RuntimeError(f'no command from the executor; see {log.name}')
        robot.spin_for(args.warmup)
        robot.reset()
        window = [time.monotonic()]
        cpu0, busy0, t0 = cpu_seconds(proc.pid), machine_cpu(), time.perf_counter()
        robot.recording = True
        robot.spin_for(args.duration)
        robot.recording = False
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
        window.append(time.monotonic())
        busy = [b - a for a, b in zip(busy0, machine_cpu())]
        # Stale phase: the stream stops; how long until the hold command arrives?
        robot.first_hold, robot.publishing = None, False
        robot.spin_for(0.01)  # a publish already in the executor's queue goes out first
        last_state = robot.last_sent
        robot.spin_for(args.stale, until=lambda: robot.first_hold is not None)
        hold_ms = None if robot.first_hold is None else (robot.first_hold - last_state) * 1e3
    finally:
        if other is not None:
            stop(other)
        stop(proc)
        log.close()
    lat = np.array(robot.latencies) * 1e3
    timeout_ms = max(3e3 / args.rate, 50.0)  # the executor's auto state_timeout
    return {
        'code': label, 'bundle': setup.label, 'inputs': ['goal'] if setup.goal else [],
        'goal_period_s': setup.goal_period if setup.goal else None,
        'trigger': trigger, 'neighbour': neighbour, 'seconds': elapsed,
        'states_sent': robot.states, 'state_rate_hz': robot.states / elapsed,
        'commands_received': robot.commands, 'hold_commands': robot.holds,
        # nan when no policy command came back (the executor held the whole window)
        'latency_ms': {**{f'p{q:g}': float(np.percentile(lat, q)) if lat.size else math.nan
                          for q in (50, 90, 99, 99.9)},
                       'mean': float(lat.mean()) if lat.size else math.nan,
                       'max': float(lat.max()) if lat.size else math.nan},
        'executor_cpu_percent': 100 * cpu / elapsed,
        'machine_cpu_busy_percent': 100 * busy[0] / busy[1],
        'stale': {'state_timeout_ms': timeout_ms, 'hold_after_last_state_ms': hold_ms,
                  'hold_within_timeout_plus_tick': hold_ms is not None and
                  hold_ms <= 1.25 * timeout_ms + 1000.0 / args.rate},
        'window': window,  # replaced by the listener's count in main
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('out', help='JSON file to write')
    ap.add_argument('--duration', type=float, default=30.0, help='measured seconds per config')
    ap.add_argument('--warmup', type=float, default=1.0)
    ap.add_argument('--stale', type=float, default=1.0, help='s without state in the stale phase')
    ap.add_argument('--rate', type=float, default=500.0, help='state and timer rate (Hz)')
    ap.add_argument('--triggers', default='state,timer')
    ap.add_argument('--neighbour', choices=('both', 'off', 'on'), default='both',
                    help='one CPU-bound process beside the executor')
    ap.add_argument('--executor', choices=('single', 'events'), default='single',
                    help="the executor node's rclpy executor")
    ap.add_argument('--bundle', default=str(BUNDLE), help='the effort bundle (halfcheetah joints)')
    ap.add_argument('--arm', nargs='?', const=str(ARM_BUNDLE), metavar='ONNX',
                    help='also the UR5e reach bundle with its goal input (default: '
                    'experiments/ur5e_reach/apex_run/policy.onnx)')
    ap.add_argument('--baseline', metavar='REF', help='also run the executor of git REF')
    ap.add_argument('--priority', type=int, default=0,
                    help="also run this checkout's executor at this realtime_priority")
    ap.add_argument('--robot-priority', type=int, default=0,
                    help="SCHED_FIFO priority of this process (the robot's side); 0: normal")
    ap.add_argument('--repeats', type=int, default=1, help='alternating repeats of it all')
    ap.add_argument('--floor', action='store_true',
                    help='also a plain rclpy node answering each state (state trigger only)')
    ap.add_argument('--planner-steps', type=int, default=30,
                    help='planning steps of the machine-speed measurement (0: skip)')
    ap.add_argument('--logs', help="keep the executors' logs in this directory")
    args = ap.parse_args(argv)
    env = environment()
    env.update(load_before=os.getloadavg(), rmw=os.environ.get('RMW_IMPLEMENTATION', 'default'),
               ros_domain_id=os.environ['ROS_DOMAIN_ID'], kernel=platform.release(),
               cpu_model=cpu_model(), **{f'{p}_version': metadata.version(p) for p in (
                   'onnxruntime', 'ros-jazzy-rclpy')})
    if args.planner_steps:
        env['physics_ms_per_halfcheetah_planning_step'] = physics_ms(args.planner_steps)
        print(f'machine speed: physics {env["physics_ms_per_halfcheetah_planning_step"]:.1f} ms '
              'per halfcheetah planning step', flush=True)
    rclpy.init()
    env['rmw'] = rclpy.get_rmw_implementation_identifier()
    if args.robot_priority:  # every thread, the DDS ones rclpy.init started included
        for tid in os.listdir('/proc/self/task'):
            os.sched_setscheduler(int(tid), os.SCHED_FIFO, os.sched_param(args.robot_priority))
    results = []
    neighbours = {'both': (False, True), 'off': (False,), 'on': (True,)}[args.neighbour]
    with tempfile.TemporaryDirectory(prefix='executor-latency-') as tmp:
        codes = [('current', str(ROOT), {})]
        if args.baseline:
            codes.append((f'baseline {args.baseline}',
                          extract(args.baseline, Path(tmp) / 'baseline'), {}))
        if args.floor:
            codes.append(('echo', str(ROOT), {}))
        if args.priority:
            codes.append((f'current rt{args.priority}', str(ROOT),
                           {'realtime_priority': args.priority}))
        setups = [dataclasses.replace(CHEETAH, bundle=args.bundle)]
        if args.arm:
            arm = Setup('ur5e_reach', args.arm, ARM_JOINTS, 'forward_position_controller',
                        'position', ARM_GOAL)
            setups += [arm, dataclasses.replace(arm, label='ur5e_reach_goal_1hz',
                                                goal_period=1.0)]
        robot = Robot(args.rate, setups)
        times_path = os.path.join(tmp, 'listener.json')
        topics = sorted({s.topic for s in setups})
        listener = subprocess.Popen([sys.executable, '-c', LISTENER, ','.join(topics),
                                     times_path])
        try:
            if not robot.spin_for(30, until=lambda: all(
                    robot.node.count_subscribers(t) >= 2 for t in topics)):
                raise RuntimeError('the listener did not come up')
            for _, trigger, neighbour, code, setup in itertools.product(
                    range(args.repeats), args.triggers.split(','), neighbours, codes, setups):
                # codes and bundles innermost: alternating, so each sees the same load
                if code[0] == 'echo' and trigger != 'state':
                    continue
                r = run_config(robot, code, setup, trigger, neighbour, args, args.logs or tmp)
                results.append(r)
                print(f'{r["code"]:>16s} {setup.label:>19s} {trigger:5s} '
                      f'{"neighbour" if neighbour else "quiet":9s} '
                      f'p50 {r["latency_ms"]["p50"]:.2f} p99 {r["latency_ms"]["p99"]:.2f} ms '
                      f'hold after {r["stale"]["hold_after_last_state_ms"]} ms', flush=True)
        finally:
            stop(listener)
            robot.close()
            rclpy.try_shutdown()
        with open(times_path) as f:
            times = np.array(json.load(f))
    for r in results:
        start, end = r.pop('window')
        counted = int(np.sum((times >= start) & (times < end)))
        r['command_rate_hz'] = counted / (end - start)
        # Work per command: what decides whether the executor keeps up on a loaded machine.
        r['executor_cpu_us_per_command'] = (r['executor_cpu_percent'] / 100 * r['seconds']
                                            / max(counted, 1) * 1e6)
        lat = r['latency_ms']
        r['targets_met'] = {
            'p99_le_1ms': lat['p99'] <= 1.0,
            'rate': r['command_rate_hz'] >= (0.98 if r['neighbour'] else 0.99) * args.rate,
            'hold_on_stale': r['stale']['hold_within_timeout_plus_tick']}
        print(f'{r["code"]:>16s} {r["bundle"]:>19s} {r["trigger"]:5s} '
              f'{"neighbour" if r["neighbour"] else "quiet":9s} p50 {lat["p50"]:.3f} ms  '
              f'p99 {lat["p99"]:.3f} ms  commands {r["command_rate_hz"]:.1f} Hz  executor CPU '
              f'{r["executor_cpu_percent"]:.0f} % ({r["executor_cpu_us_per_command"]:.0f} us per '
              f'command)  states {r["state_rate_hz"]:.0f} Hz  machine busy '
              f'{r["machine_cpu_busy_percent"]:.0f} %  hold after stop '
              f'{r["stale"]["hold_after_last_state_ms"]} ms', flush=True)
    env['load_after'] = os.getloadavg()
    ratios = arm_ratios(results)
    for r in ratios:
        print(f'{r["arm"]} / halfcheetah ({r["code"]}, {r["trigger"]}, '
              f'{"neighbour" if r["neighbour"] else "quiet"}): p50 x{r["p50"]:.2f}, '
              f'p99 x{r["p99"]:.2f}, command rate x{r["command_rate"]:.3f}', flush=True)
    write_json(args.out, {
        'benchmark': 'executor_latency', 'environment': env,
        'settings': {'rate_hz': args.rate, 'duration_s': args.duration, 'warmup_s': args.warmup,
                     'stale_s': args.stale, 'executor': args.executor, 'bundle': args.bundle,
                     'arm_bundle': args.arm, 'arm_goal': ARM_GOAL if args.arm else None,
                     'priority': args.priority, 'robot_priority': args.robot_priority,
                     'repeats': args.repeats,
                     'joints': JOINTS, 'state_qos': 'reliable, depth 1'},
        'results': results, 'ratios': ratios})
    return 0


def arm_ratios(results) -> list:
    """Each arm setup / halfcheetah of latency p50, p99 and command rate, per code, trigger
    and neighbour, averaged over repeats (measured alternately: the same load)."""
    out = []
    keys = sorted({(r['code'], r['trigger'], r['neighbour'], r['bundle']) for r in results
                   if r['bundle'] != 'halfcheetah'})
    for code, trigger, neighbour, arm in keys:
        pick = {b: [r for r in results if (r['code'], r['trigger'], r['neighbour'], r['bundle'])
                    == (code, trigger, neighbour, b)] for b in (arm, 'halfcheetah')}
        if not all(pick.values()):
            continue
        mean = {b: {'p50': np.mean([r['latency_ms']['p50'] for r in rs]),
                    'p99': np.mean([r['latency_ms']['p99'] for r in rs]),
                    'command_rate': np.mean([r['command_rate_hz'] for r in rs])}
                for b, rs in pick.items()}
        out.append({'arm': arm, 'code': code, 'trigger': trigger, 'neighbour': neighbour,
                    **{k: float(mean[arm][k] / mean['halfcheetah'][k])
                       for k in ('p50', 'p99', 'command_rate')}})
    return out


if __name__ == '__main__':
    sys.exit(main())

"""State-to-command latency and command rate of the policy executor over DDS.

The executor runs as a subprocess (its console script, autostarted) with an echo bundle: a
linear cartpole policy whose action is the slider position. This process publishes
/joint_states at --rate with a sequence code k/1024, k in 1..1023, in the slider position
(exact in float32), so every command is matched to the state it was computed from; 0.0 is the
executor's hold command (counted, not matched). Latency is the round trip
publish(state) -> receive(command) on this side; in timer mode only the first command computed
from a state counts, so it includes the 0..1 period wait for the executor's next tick.
The command rate is counted by a separate listener process (a lean subscriber, as the
controller would be), since this process's own reception drops a few under CPU load.

    python benchmarks/executor_latency.py benchmarks/executor_latency.json --duration 10  # quick
    python benchmarks/executor_latency.py benchmarks/executor_latency.json --duration 30
"""
import argparse
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from importlib import metadata

import numpy as np

os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 200)))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

import rclpy  # noqa: E402 (after the domain isolation above)
import torch  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.experimental import EventsExecutor  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402

from apex_ros.cli.bench import environment, write_json  # noqa: E402
from apex_ros.deploy.export import export_bundle  # noqa: E402
from apex_ros.learning.student import MLPPolicy  # noqa: E402
from apex_ros.ros import protocol  # noqa: E402
from apex_ros.tasks import make_task  # noqa: E402

CODES = 1023  # slider = (seq % CODES + 1) / 1024, in (0, 1): never the 0.0 hold command
LISTENER = '''
import json, signal, sys, time
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import Float64MultiArray
rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
node, times, stop = rclpy.create_node('executor_latency_listener'), [], []
node.create_subscription(Float64MultiArray, sys.argv[1], lambda m: times.append(time.monotonic()),
                         100)
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
executor = SingleThreadedExecutor()
executor.add_node(node)
while not stop:
    executor.spin_once(timeout_sec=0.05)
with open(sys.argv[2], 'w') as f:
    json.dump(times, f)
'''


def cpu_model():
    with open('/proc/cpuinfo') as f:
        return next((line.split(':', 1)[1].strip() for line in f
                     if line.startswith('model name')), platform.processor())


def echo_bundle(path):
    task = make_task('cartpole_swingup')
    model = MLPPolicy(task.obs_dim, task.nu, hidden=())
    with torch.no_grad():
        model.mlp[0].weight.copy_(torch.tensor([[1.0, 0, 0, 0, 0]]))
        model.mlp[0].bias.zero_()
    export_bundle(model, task, path, iteration=0)


def machine_cpu():
    """(busy, total) jiffies of all CPUs since boot."""
    with open('/proc/stat') as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)


def cpu_seconds(pid):
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


class Driver:
    """Publishes coded joint states from a timer and times the echoed commands."""

    def __init__(self, rate_hz, executor_kind):
        self.node = rclpy.create_node('executor_latency_driver')
        self.pub = self.node.create_publisher(JointState, protocol.JOINT_STATES, 10)
        self.node.create_subscription(Float64MultiArray, protocol.command_topic(
            protocol.DEFAULT_CONTROLLER), self.on_command, 100)
        self.sent = {}
        self.seq = 0
        self.recording = False
        self.reset()
        self.node.create_timer(1.0 / rate_hz, self.publish)
        self.executor = EventsExecutor() if executor_kind == 'events' else \
            SingleThreadedExecutor()
        self.executor.add_node(self.node)

    def reset(self):
        self.latencies, self.states, self.commands, self.repeats, self.holds = [], 0, 0, 0, 0
        self.last_code = None

    def publish(self):
        code = self.seq % CODES
        self.seq += 1
        msg = JointState(name=['slider', 'hinge'], position=[(code + 1) / 1024, 0.0],
                         velocity=[0.0, 0.0])
        self.sent[code] = time.perf_counter()
        self.pub.publish(msg)
        self.states += self.recording

    def on_command(self, msg):
        now = time.perf_counter()
        code = int(round(msg.data[0] * 1024)) - 1
        if not self.recording:
            self.last_code = code
            return
        self.commands += 1
        if code < 0:
            self.holds += 1
            return
        if code == self.last_code:
            self.repeats += 1  # timer mode: another tick on the same state
            return
        self.last_code = code
        if code in self.sent:
            self.latencies.append(now - self.sent[code])

    def spin_for(self, seconds, until=None):
        end = time.monotonic() + seconds
        while time.monotonic() < end and not (until and until()):
            self.executor.spin_once(timeout_sec=0.05)
        return until() if until else True

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()


def run_config(driver, bundle, trigger, executor, args, log_dir):
    exe = shutil.which('policy_executor', path=os.path.dirname(sys.executable))
    cmd = ([exe] if exe else [sys.executable, '-m', 'apex_ros.ros.nodes.policy_executor']) + [
        '--ros-args', '-r', '__node:=bench_executor', '-p', f'bundle:={bundle}',
        '-p', f'rate_hz:={float(args.rate)}', '-p', f'trigger:={trigger}',
        '-p', f'executor:={executor}', '-p', 'autostart:=true']
    log = open(os.path.join(log_dir, f'executor_{trigger}_{executor}.log'), 'wb')
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        driver.recording = False
        driver.last_code = None
        if not driver.spin_for(30, until=lambda: driver.last_code is not None):
            raise RuntimeError(f'no command from the executor; see {log.name}')
        driver.spin_for(args.warmup)
        driver.reset()
        window = [time.monotonic()]
        cpu0, busy0, t0 = cpu_seconds(proc.pid), machine_cpu(), time.perf_counter()
        driver.recording = True
        driver.spin_for(args.duration)
        driver.recording = False
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
        window.append(time.monotonic())
        busy = [b - a for a, b in zip(busy0, machine_cpu())]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    lat = np.array(driver.latencies) * 1e3
    pct = {f'p{q:g}': float(np.percentile(lat, q)) for q in (50, 90, 99, 99.9)}
    result = {
        'trigger': trigger, 'executor': executor, 'seconds': elapsed,
        'states_sent': driver.states, 'state_rate_hz': driver.states / elapsed,
        'commands': driver.commands, 'command_rate_hz': driver.commands / elapsed,
        'states_commanded': len(lat), 'repeat_commands': driver.repeats,
        'hold_commands': driver.holds,
        'latency_ms': {**pct, 'mean': float(lat.mean()), 'max': float(lat.max())},
        'executor_cpu_percent': 100 * cpu / elapsed,
        'machine_cpu_busy_percent': 100 * busy[0] / busy[1],  # all processes, all cores
        'executor_exit_code': proc.returncode,
        'window': window,  # time.monotonic(), replaced by the listener's count in main
    }
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('out', help='JSON file to write')
    ap.add_argument('--duration', type=float, default=30.0, help='measured seconds per config')
    ap.add_argument('--warmup', type=float, default=1.0)
    ap.add_argument('--rate', type=float, default=500.0, help='state and timer rate (Hz)')
    ap.add_argument('--triggers', default='state,timer')
    ap.add_argument('--executors', default='single,events')
    ap.add_argument('--driver-executor', choices=('single', 'events'), default='events')
    args = ap.parse_args(argv)
    rclpy.init()
    env = environment()
    env.update(load_before=os.getloadavg(), rmw=rclpy.get_rmw_implementation_identifier(),
               ros_domain_id=os.environ['ROS_DOMAIN_ID'], kernel=platform.release(),
               cpu_model=cpu_model(), **{f'{p}_version': metadata.version(p) for p in (
                   'onnxruntime', 'ros-jazzy-rclpy')})
    results = []
    with tempfile.TemporaryDirectory(prefix='executor-latency-') as tmp:
        bundle = os.path.join(tmp, 'echo.onnx')
        echo_bundle(bundle)
        driver = Driver(args.rate, args.driver_executor)
        times_path = os.path.join(tmp, 'listener.json')
        topic = protocol.command_topic(protocol.DEFAULT_CONTROLLER)
        listener = subprocess.Popen([sys.executable, '-c', LISTENER, topic, times_path])
        try:
            if not driver.spin_for(30, until=lambda: driver.node.count_subscribers(topic) >= 2):
                raise RuntimeError('the listener did not come up')
            for trigger in args.triggers.split(','):
                for executor in args.executors.split(','):
                    results.append(run_config(driver, bundle, trigger, executor, args, tmp))
        finally:
            listener.terminate()
            listener.wait(10)
            driver.close()
            rclpy.try_shutdown()
        with open(times_path) as f:
            times = np.array(json.load(f))
    for r in results:
        start, end = r.pop('window')
        r['listener_command_rate_hz'] = int(np.sum((times >= start) & (times < end))) / (
            end - start)
        lat = r['latency_ms']
        r['targets_met'] = {'p99_le_1ms': lat['p99'] <= 1.0,
                            'rate_ge_495hz': r['listener_command_rate_hz'] >= 0.99 * args.rate}
        print(f'{r["trigger"]:5s} {r["executor"]:6s} p50 {lat["p50"]:.3f} ms  p99 '
              f'{lat["p99"]:.3f} ms  max {lat["max"]:.1f} ms  commands '
              f'{r["listener_command_rate_hz"]:.1f} Hz (listener), '
              f'{r["command_rate_hz"]:.1f} Hz (driver)  executor CPU '
              f'{r["executor_cpu_percent"]:.0f} %  machine CPU busy '
              f'{r["machine_cpu_busy_percent"]:.0f} %', flush=True)
    env['load_after'] = os.getloadavg()
    write_json(args.out, {
        'benchmark': 'executor_latency', 'environment': env,
        'settings': {'rate_hz': args.rate, 'duration_s': args.duration,
                     'warmup_s': args.warmup, 'driver_executor': args.driver_executor,
                     'bundle': 'cartpole_swingup linear echo (action = slider position)'},
        'results': results})
    return 0


if __name__ == '__main__':
    sys.exit(main())

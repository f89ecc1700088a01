"""Recording at 500 Hz: does the recorder node keep every message, and what CPU does it use?
Writes one JSON file.

This process publishes sensor_msgs/JointState (--joints joints, the counter in position[0])
at --rate Hz for --seconds on /joint_states, RELIABLE depth 10 (joint_state_broadcaster's
default), over DDS on loopback in a private domain. The recorder runs as its own process
(`python -m apex_ros.ros.nodes.recorder_node`), is stopped with SIGINT, and its bag is read back:
lost = published - recorded, and the counters must be exactly 0..published-1 in order.
CPU share = the recorder's (user + system) CPU time while publishing / wall time (1.0 = one
core), from /proc/<pid>/stat.

    python benchmarks/record_500hz.py benchmarks/record_500hz.json              # 60 s
    python benchmarks/record_500hz.py benchmarks/record_500hz.json --seconds 10  # quick
"""
import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ['ROS_DOMAIN_ID'] = str(random.SystemRandom().randint(1, 200))
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402

from apex_ros.bags.reader import BagReader  # noqa: E402
from apex_ros.cli.bench import environment, write_json  # noqa: E402

TICKS = os.sysconf('SC_CLK_TCK')


def cpu_seconds(pid) -> float:
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS   # utime, stime


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('json')
    ap.add_argument('--rate', type=float, default=500.0)
    ap.add_argument('--seconds', type=float, default=60.0)
    ap.add_argument('--joints', type=int, default=7)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix='record-bench-') as tmp:
        bag = Path(tmp) / 'bag'
        recorder = subprocess.Popen(
            [sys.executable, '-m', 'apex_ros.ros.nodes.recorder_node', '--ros-args',
             '-p', f'output:={bag}', '-p', 'topics:=[/joint_states]'],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        rclpy.init()
        node = rclpy.create_node('record_bench_publisher')
        pub = node.create_publisher(JointState, '/joint_states', QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE))
        deadline = time.monotonic() + 60
        while pub.get_subscription_count() < 1:
            if time.monotonic() > deadline or recorder.poll() is not None:
                raise SystemExit('the recorder did not subscribe')
            time.sleep(0.01)
        names = [f'joint_{i}' for i in range(args.joints)]
        n = int(args.rate * args.seconds)
        lateness = np.empty(n)
        cpu0, t0 = cpu_seconds(recorder.pid), time.perf_counter()
        for i in range(n):
            due = t0 + i / args.rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            lateness[i] = time.perf_counter() - due
            msg = JointState(name=names, position=[float(i)] + [0.1] * (args.joints - 1),
                             velocity=[0.0] * args.joints, effort=[0.0] * args.joints)
            ns = time.time_ns()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(ns, 1_000_000_000)
            pub.publish(msg)
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(recorder.pid) - cpu0
        time.sleep(1.0)   # the last messages in flight
        recorder.send_signal(signal.SIGINT)
        log, _ = recorder.communicate(timeout=30)
        log = log.replace(tmp, '<temporary dir>')   # the bag is deleted with it
        node.destroy_node()
        rclpy.shutdown()

        reader = BagReader(bag)
        messages = list(reader.messages(['/joint_states'], decode=True))
        counters = [int(m.msg.position[0]) for m in messages]
        arrival = np.diff([m.log_time for m in messages]) * 1e-6 if len(messages) > 1 else []
        size = sum(f.stat().st_size for f in bag.glob('*.mcap'))
    result = {
        'benchmark': 'record_500hz', 'rate_hz': args.rate, 'seconds': args.seconds,
        'joints': args.joints,
        'published': n, 'recorded': len(messages), 'lost': n - len(messages),
        'in_order_no_gaps': counters == list(range(n)),
        'publish_rate_achieved_hz': n / wall,
        'publish_lateness_ms_p99': float(np.percentile(lateness, 99) * 1e3),
        'recorder_cpu_share': cpu / wall,
        'recorder_exit_code': recorder.returncode,
        'receive_gap_ms': {'p50': float(np.percentile(arrival, 50)),
                           'p99': float(np.percentile(arrival, 99)),
                           'max': float(np.max(arrival))} if len(arrival) else None,
        'bag_bytes': size, 'bag_report': reader.report(),
        'load_average': os.getloadavg(),
        'environment': environment(),
        'recorder_log_tail': log.strip().splitlines()[-1:],
    }
    write_json(args.json, result)
    print(f'{args.rate:.0f} Hz for {args.seconds:.0f} s: published {n}, recorded '
          f'{len(messages)}, lost {n - len(messages)}, in order {result["in_order_no_gaps"]}; '
          f'recorder CPU {100 * result["recorder_cpu_share"]:.1f} % of a core -> {args.json}')
    return 0 if result['lost'] == 0 and result['in_order_no_gaps'] else 1


if __name__ == '__main__':
    sys.exit(main())

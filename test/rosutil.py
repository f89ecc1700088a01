"""Helpers for tests of ROS 2 nodes over real DDS on loopback.

Importing this module isolates the test session, before anything calls rclpy.init: one random
ROS_DOMAIN_ID per pytest process (exported, so node subprocesses inherit it) and discovery
limited to localhost. Synchronize on conditions (wait_for and friends), never on sleeps:
discovery alone takes 0.04-2.75 s.
"""
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import rclpy
import rclpy.node

os.environ['ROS_DOMAIN_ID'] = os.environ.setdefault(
    'APEX_ROS_TEST_DOMAIN_ID', str(random.SystemRandom().randint(1, 200)))
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'


def wait_for(predicate, timeout=5.0, spin=None, period=0.01) -> bool:
    """Spin `spin` (an executor or a node) until predicate() is true; -> whether it became true
    within `timeout` seconds. Without `spin`, only polls (something else spins)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if spin is None:
            time.sleep(min(period, left))
        elif isinstance(spin, rclpy.node.Node):
            rclpy.spin_once(spin, executor=None, timeout_sec=min(period, left))
        else:
            spin.spin_once(timeout_sec=min(period, left))
    return True


def wait_for_subscribers(publisher, count=1, timeout=10.0, spin=None) -> bool:
    return wait_for(lambda: publisher.get_subscription_count() >= count, timeout, spin)


def wait_for_publishers(subscription, count=1, timeout=10.0, spin=None) -> bool:
    return wait_for(lambda: subscription.get_publisher_count() >= count, timeout, spin)


def call(client, request, timeout=10.0, spin=None):
    """Call a service (waiting for it to appear); -> the response, or None on timeout."""
    if not wait_for(client.service_is_ready, timeout, spin):
        return None
    future = client.call_async(request)
    wait_for(future.done, timeout, spin)
    return future.result() if future.done() else None


class Collector:
    """A subscription that keeps every message with its arrival time (time.monotonic())."""

    def __init__(self, node, msg_type, topic, qos=100):
        self.items = []
        self.sub = node.create_subscription(
            msg_type, topic, lambda msg: self.items.append((time.monotonic(), msg)), qos)

    @property
    def msgs(self):
        return [m for _, m in self.items]

    def clear(self):
        self.items.clear()

    def since(self, t):
        return [m for s, m in self.items if s >= t]

    def wait(self, count=1, timeout=5.0, spin=None) -> bool:
        """Wait until at least `count` messages arrived in total."""
        return wait_for(lambda: len(self.items) >= count, timeout, spin)


class LogCollector(Collector):
    """/rosout, optionally only one node's records: `.texts()`, `.wait_text(substring)`."""

    def __init__(self, node, logger_name=None):
        from rcl_interfaces.msg import Log
        super().__init__(node, Log, '/rosout', 1000)
        self.logger_name = logger_name

    def texts(self):
        return [m.msg for m in self.msgs if self.logger_name in (None, m.name)]

    def wait_text(self, *parts, timeout=5.0, spin=None) -> bool:
        """Wait for one record containing every one of `parts`."""
        return wait_for(lambda: any(all(p in t for p in parts) for t in self.texts()),
                        timeout, spin)


def ros_arg(value) -> str:
    """A Python value as a `-p name:=value` YAML literal (floats keep their '.0')."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (list, tuple)):
        return '[' + ','.join(ros_arg(v) for v in value) + ']'
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'" if value else "''"
    return repr(value)


def executable(name, module):
    """The console script `name` next to this Python, else `python -m module`."""
    path = shutil.which(name, path=os.path.dirname(sys.executable))
    return [path] if path else [sys.executable, '-m', module]


def start_node(cmd, name, params=None, remaps=None, log_path=None):
    """Start a node process `cmd --ros-args -r __node:=name -p k:=v ... -r from:=to`, in its
    own process group (see stop_node); its output goes to `log_path` (or is discarded)."""
    args = list(cmd) + ['--ros-args', '-r', f'__node:={name}']
    for key, value in (params or {}).items():
        args += ['-p', f'{key}:={ros_arg(value)}']
    for src, dst in (remaps or {}).items():
        args += ['-r', f'{src}:={dst}']
    out = open(log_path, 'wb') if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    finally:
        if log_path:
            out.close()


def stop_node(proc, sig=signal.SIGTERM, timeout=10.0):
    """Signal the node, wait for it; kill its whole process group if it does not exit.
    -> its exit code (None if it had to be killed)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            return proc.wait()
    code = proc.poll()
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group too
    except ProcessLookupError:
        pass
    proc.wait()
    return code


class NodeProcesses:
    """Node subprocesses started by a test, all stopped by stop_all() (at teardown)."""

    def __init__(self):
        self.procs = []

    def start(self, *args, **kwargs):
        proc = start_node(*args, **kwargs)
        self.procs.append(proc)
        return proc

    def stop_all(self):
        for proc in self.procs:
            stop_node(proc)


@contextlib.contextmanager
def probe_node(name):
    """(node, executor, node processes) in a fresh rclpy context, for a test's fixture; the
    processes are stopped and the context shut down on exit."""
    from rclpy.executors import SingleThreadedExecutor
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(name, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    procs = NodeProcesses()
    try:
        yield node, executor, procs
    finally:
        procs.stop_all()
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()

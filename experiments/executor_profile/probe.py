"""Where the executor's time goes per state, in-process: CPU time of the main thread
(time.thread_time: neither a loaded machine's waiting nor the DDS threads are counted) of

  callback   the executor's state callback with the halfcheetah bundle (observation, ONNX
             inference, clamping, publishing), and its parts
  wake-up    one received message handled by: rclpy's SingleThreadedExecutor over the
             lifecycle node (and its control node, where it has one), over a lean node with
             one subscription, and ControlLoop over that lean node

Run it against this checkout and against an older apex_ros (extracted with `git archive`)
to compare the callback:
    PYTHONPATH=$PWD python experiments/executor_profile/probe.py
    mkdir /tmp/old && git archive 6502e84 apex_ros | tar -x -C /tmp/old
    (cd /tmp/old && PYTHONPATH=/tmp/old python $OLDPWD/experiments/executor_profile/probe.py \\
        --bundle $OLDPWD/experiments/halfcheetah/run_160/policy.onnx)
"""
import argparse
import os
import random
import time

import numpy as np

os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 200)))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402

from apex_ros.ros.nodes.policy_executor import PolicyExecutor  # noqa: E402

JOINTS = ['rootx', 'rootz', 'rooty', 'bthigh', 'bshin', 'bfoot', 'fthigh', 'fshin', 'ffoot']


def row(label, us):
    print(f'{label:70s} {us:7.1f} us', flush=True)


def cpu_us(fn, n):
    for _ in range(n // 10):
        fn()
    start = time.thread_time()
    for _ in range(n):
        fn()
    return (time.thread_time() - start) / n * 1e6


def wake_up_us(spin_once, publish, received, n):
    """CPU of spin_once per message received (the publisher's side not counted)."""
    cpu, start = 0.0, len(received)
    while len(received) < start + n:
        publish()
        time.sleep(0.0005)  # let DDS deliver: the spin then finds the message ready
        t = time.thread_time()
        spin_once()
        cpu += time.thread_time() - t
    return cpu / n * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--bundle', default='experiments/halfcheetah/run_160/policy.onnx')
    ap.add_argument('-n', type=int, default=5000)
    args = ap.parse_args()
    rclpy.init()
    node = PolicyExecutor(parameter_overrides=[
        Parameter('bundle', value=args.bundle), Parameter('trigger', value='state'),
        Parameter('rate_hz', value=500.0)])
    node.trigger_configure()
    node.trigger_activate()
    names = random.Random(0).sample(JOINTS, len(JOINTS))
    msg = JointState(name=names, position=list(np.random.rand(9)),
                     velocity=list(np.random.rand(9)))
    policy = node._policy
    obs = policy.obs(msg.name, msg.position, msg.velocity)
    action = policy.bundle.act(obs)
    rows = {'callback (_on_state -> command published)': lambda: node._on_state(msg),
            '  observation': lambda: policy.obs(msg.name, msg.position, msg.velocity),
            '  bundle.act': lambda: policy.bundle.act(obs),
            '  publish': lambda: node._publish(action)}
    for label, fn in rows.items():
        row(label, cpu_us(fn, args.n))

    driver = rclpy.create_node('probe_driver', start_parameter_services=False)
    state_pub = driver.create_publisher(JointState, '/joint_states', 1)
    lean = rclpy.create_node('probe_lean', start_parameter_services=False, enable_rosout=False)
    received = []
    lean.create_subscription(Float64MultiArray, '/probe', lambda m: received.append(1), 1)
    probe_pub = driver.create_publisher(Float64MultiArray, '/probe', 1)
    command = Float64MultiArray(data=[0.0] * 6)
    commands = []
    driver.create_subscription(Float64MultiArray, '/effort_controller/commands',
                               lambda m: commands.append(1), 10)
    full = SingleThreadedExecutor()
    full.add_node(node)
    control = getattr(node, 'control_node', None)
    if control is not None:
        full.add_node(control)
    while state_pub.get_subscription_count() < 1 or probe_pub.get_subscription_count() < 1:
        time.sleep(0.01)
    on_state = []
    node_on_state = node._on_state
    node._on_state = lambda m: (on_state.append(1), node_on_state(m))
    for sub in (control or node).subscriptions:
        if sub.msg_type is JointState:
            sub.callback = node._on_state
    n = args.n // 5
    row('wake-up + callback, SingleThreadedExecutor over the executor node(s)',
        wake_up_us(lambda: full.spin_once(0.01), lambda: state_pub.publish(msg), on_state, n))
    single = SingleThreadedExecutor()
    single.add_node(lean)
    row('wake-up, SingleThreadedExecutor over a one-subscription node',
        wake_up_us(lambda: single.spin_once(0.01), lambda: probe_pub.publish(command),
                   received, n))
    single.remove_node(lean)
    try:
        from apex_ros.ros.nodes.control_loop import ControlLoop
    except ImportError:  # an apex_ros before it
        return
    loop = ControlLoop(lean)
    row('wake-up, ControlLoop over the same node',
        wake_up_us(lambda: loop.spin_once(0.01), lambda: probe_pub.publish(command), received, n))
    full.remove_node(node)
    loop = ControlLoop(control)
    row('wake-up + callback, ControlLoop over the control node',
        wake_up_us(lambda: loop.spin_once(0.01), lambda: state_pub.publish(msg), on_state, n))

if __name__ == '__main__':
    main()

"""Success of the ur5e_reach policy in the deployment loop, through ROS: a sim node in real time
(500 Hz joint states, forward_position_controller) standing in for the arm, the executor from
`apex-ros launch policy` with the position interface reading the goal the sim publishes on
/goal; each episode is a `~/reset` of the sim (a new goal drawn, seed = episode index), judged
by the task's own criterion (UR5eReach.success) on the sim's full states of that episode.
From the repository root:

    python experiments/ur5e_reach/loop_success.py experiments/ur5e_reach/loop_success.json \\
        --episodes 20
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 200)))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from apex_ros.files import atomic_write_text  # noqa: E402
from apex_ros.ros import protocol, qos  # noqa: E402
from apex_ros.tasks import make_task  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / 'experiments/ur5e_reach/apex_run/policy.onnx'
CONTROLLER = 'forward_position_controller'


def spin_until(node, predicate, timeout):
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError
        rclpy.spin_once(node, timeout_sec=0.05)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('out', help='JSON file to write')
    ap.add_argument('--episodes', type=int, default=20)
    ap.add_argument('--bundle', default=str(BUNDLE))
    args = ap.parse_args(argv)
    arm = make_task('ur5e_reach')
    rclpy.init()
    node = rclpy.create_node('loop_success')
    episodes = {}   # episode -> {step: state}

    def on_full_state(msg):
        full = protocol.unpack_full_state(msg.data, arm.layout.size, arm.model.nv)
        episodes.setdefault(full.episode, {})[full.step] = full.state
    node.create_subscription(Float64MultiArray, protocol.FULL_STATE, on_full_state,
                             qos.FULL_STATE)
    commands = []
    node.create_subscription(Float64MultiArray, protocol.command_topic(CONTROLLER),
                             lambda m: commands.append(1), qos.COMMAND)
    reset = node.create_client(Trigger, protocol.service(protocol.SIM_NODE, protocol.RESET))
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            procs.append(subprocess.Popen(
                [sys.executable, '-m', 'apex_ros.ros.nodes.sim_node', '--ros-args', '-r',
                 '__node:=sim', '-p', 'task:=ur5e_reach', '-p', 'mode:=realtime',
                 '-p', 'state_rate:=500.0', '-p', f'controller:={CONTROLLER}'],
                stdout=open(Path(tmp) / 'sim.log', 'wb'), stderr=subprocess.STDOUT))
            procs.append(subprocess.Popen(
                [sys.executable, '-m', 'apex_ros.cli', 'launch', 'policy',
                 'params_file:=policy_executor_ur5e.yaml', f'bundle:={args.bundle}'],
                stdout=open(Path(tmp) / 'executor.log', 'wb'), stderr=subprocess.STDOUT))
            spin_until(node, lambda: len(commands) > 10 and reset.service_is_ready(), 120)
            success, received = [], []
            for episode in range(1, args.episodes + 1):
                future = reset.call_async(Trigger.Request())
                spin_until(node, future.done, 30)
                # the full state is best effort: judged once the last step arrived, on the
                # steps received (all of them, checked below)
                spin_until(node, lambda: arm.episode_steps in episodes.get(episode, {}), 60)
                steps = episodes.pop(episode)
                received.append(len(steps))
                states = np.array([steps[k] for k in sorted(steps)])
                success.append(arm.success(states))
                print(f'episode {episode}: goal distance at the end '
                      f'{arm.goal_distance(states[-1]):.3f} m, success {success[-1]}',
                      flush=True)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(20)
            node.destroy_node()
            rclpy.try_shutdown()
    result = {'experiment': 'ur5e_reach policy in the ROS loop', 'bundle': args.bundle,
              'episodes': args.episodes, 'success_rate': float(np.mean(success)),
              'success': [bool(s) for s in success], 'steps_received': received,
              'steps_per_episode': arm.episode_steps + 1, 'load_average': os.getloadavg()}
    atomic_write_text(args.out, json.dumps(result, indent=1))
    print(f'success {result["success_rate"]:.2f} over {args.episodes} episodes')
    return 0


if __name__ == '__main__':
    sys.exit(main())

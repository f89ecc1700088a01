"""Viz node: serves the browser view (apex_ros.view.page) of the running graph.

It only listens, with subscriptions that cannot push back on anyone: states (full state and
/joint_states) and commands BEST_EFFORT depth 1 (a reliable writer never waits for a
best-effort reader), the planner's /apex/plan (throttled by the planner, and published only
while someone subscribes), the trainer's /apex/status (transient local: the current one on
joining) and /apex/episode_return. It is built to cost the machine little at robot rates
(a state stream of 500 Hz and more): states arrive raw (CDR bytes, no Python message built),
only the arrival time is noted per message, and the latest one is decoded at the page's
refresh rate; it spins rclpy's EventsExecutor (a third of the CPU of the
SingleThreadedExecutor, see the engineering notes) and runs at a lower CPU priority (nice
NICE) than the nodes it watches. The page's own thread pushes to the browsers, so a slow
browser slows nothing here.

Parameters: task (its model is drawn), host, port (0: any free port; the URL is logged),
controller (whose /<controller>/commands is counted).
"""
import os
import sys

from rclpy.experimental import EventsExecutor
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray, String

from ...errors import ApexError
from ...tasks import make_task
from ...view.page import REFRESH_HZ, ViewPage
from .. import protocol, qos
from .common import spin

N_LAMBDAS = 2   # (guidance, action norm): the planners' auxiliary costs
NICE = 10       # the view yields the CPU to the control loop


class VizNode(Node):
    """Arguments given here (the CLI's) override the node's parameters."""

    def __init__(self, task_name=None, host=None, port=None, controller=None):
        super().__init__(protocol.VIZ_NODE)
        p = self.declare_parameter
        name = p('task', task_name or 'cartpole_swingup').value
        self.task = make_task(name)
        self.page = ViewPage(self.task, p('host', host or '127.0.0.1').value,
                             p('port', 8080 if port is None else port).value,
                             title=f'apex_ros: {name}')
        controller = p('controller', controller or protocol.DEFAULT_CONTROLLER).value
        self.nstate, self.nv = self.task.layout.size, self.task.model.nv
        self.nq = self.task.model.nq
        sub = self.create_subscription
        self.latest = {}   # topic -> the latest raw message not yet decoded
        for topic, msg_type in ((protocol.FULL_STATE, Float64MultiArray),
                                (protocol.JOINT_STATES, JointState)):
            sub(msg_type, topic, self.raw_state_callback(topic), qos.STATE, raw=True)
        sub(Float64MultiArray, protocol.command_topic(controller),
            lambda _: self.page.on_command(), qos.STATE, raw=True)
        self.create_timer(1.0 / REFRESH_HZ, self.decode_latest)
        sub(Float64MultiArray, protocol.PLAN, self.on_plan, qos.MONITOR)
        sub(String, protocol.STATUS, self.on_status, qos.STATUS)
        sub(Float64, protocol.EPISODE_RETURN, lambda m: self.page.on_episode_return(m.data),
            qos.EVENT)
        self.page.start()
        self.get_logger().info(f'view of {name}: {self.page.url}')
        print(f'view: {self.page.url} (task {name}; Ctrl-C stops)', flush=True)

    def ignore(self, error):
        self.get_logger().error(f'ignored: {error}', throttle_duration_sec=2.0)

    def raw_state_callback(self, topic):
        def on_state(data: bytes):
            self.latest[topic] = data
            self.page.on_state_arrival()
        return on_state

    def decode_latest(self):
        """Hand the page the latest full state and joint state received since the last call."""
        full = self.latest.pop(protocol.FULL_STATE, None)
        if full is not None:
            msg = deserialize_message(full, Float64MultiArray)
            try:
                state = protocol.unpack_full_state(msg.data, self.nstate, self.nv).state
            except ApexError as e:
                self.ignore(e)
            else:
                self.page.on_full_state(state)
        joints = self.latest.pop(protocol.JOINT_STATES, None)
        if joints is not None:
            msg = deserialize_message(joints, JointState)
            self.page.on_joint_state(msg.name, msg.position, msg.velocity)

    def on_plan(self, msg):
        try:
            self.page.on_plan(protocol.unpack_plan(msg.data, self.nq, N_LAMBDAS))
        except ApexError as e:
            self.ignore(e)

    def on_status(self, msg):
        try:
            self.page.on_status(protocol.unpack_status(msg.data))
        except ApexError as e:
            self.ignore(e)

    def on_shutdown(self):
        self.page.stop()


def main(argv=None):
    os.nice(NICE)
    sys.exit(spin(VizNode, argv, EventsExecutor))


if __name__ == '__main__':
    main()

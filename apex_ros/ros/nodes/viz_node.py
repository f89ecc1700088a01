"""Viz node: serves the browser view (apex_ros.view.page) of the running graph.

It only listens, with subscriptions that cannot push back on anyone: states (full state and
/joint_states) and commands BEST_EFFORT depth 1 (a reliable writer never waits for a
best-effort reader), the planner's /apex/plan (throttled by the planner, and published only
while someone subscribes), the trainer's /apex/status (transient local: the current one on
joining) and /apex/episode_return. Callbacks only store; the page's own thread pushes to the
browsers, so a slow browser slows nothing here.

Parameters: task (its model is drawn), host, port (0: any free port; the URL is logged),
controller (whose /<controller>/commands is counted).
"""
import sys

from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray, String

from ...errors import ApexError
from ...tasks import make_task
from ...view.page import ViewPage
from .. import protocol, qos
from .common import spin

N_LAMBDAS = 2   # (guidance, action norm): the planners' auxiliary costs


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
        sub(Float64MultiArray, protocol.FULL_STATE, self.on_full_state, qos.STATE)
        sub(JointState, protocol.JOINT_STATES, self.on_joint_state, qos.STATE)
        sub(Float64MultiArray, protocol.command_topic(controller),
            lambda _: self.page.on_command(), qos.STATE)
        sub(Float64MultiArray, protocol.PLAN, self.on_plan, qos.MONITOR)
        sub(String, protocol.STATUS, self.on_status, qos.STATUS)
        sub(Float64, protocol.EPISODE_RETURN, lambda m: self.page.on_episode_return(m.data),
            qos.EVENT)
        self.page.start()
        self.get_logger().info(f'view of {name}: {self.page.url}')
        print(f'view: {self.page.url} (task {name}; Ctrl-C stops)', flush=True)

    def ignore(self, error):
        self.get_logger().error(f'ignored: {error}', throttle_duration_sec=2.0)

    def on_full_state(self, msg):
        try:
            full = protocol.unpack_full_state(msg.data, self.nstate, self.nv)
        except ApexError as e:
            return self.ignore(e)
        self.page.on_full_state(full.state)

    def on_joint_state(self, msg):
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
    sys.exit(spin(VizNode, argv))


if __name__ == '__main__':
    main()

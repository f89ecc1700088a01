"""Viz node: serves the browser view (apex_ros.view.page) of the running graph.

It only listens, with subscriptions that cannot push back on anyone: states (full state and
/joint_states) and commands BEST_EFFORT depth 1 (a reliable writer never waits for a
best-effort reader), the planner's /apex/plan (throttled by the planner, and published only
while someone subscribes), the trainer's /apex/status (transient local: the current one on
joining) and /apex/episode_return. It is built to cost the machine little at robot rates
(states and commands at 500 Hz and more): the fast streams (states, commands) are not
delivered to Python message by message. Their subscriptions live on a helper node that no
executor spins; DDS keeps the latest message of each (depth 1) and a timer takes it at the
page's refresh rate, raw (CDR bytes), decoding only what is shown. The publisher's sequence
number and source timestamp of what is taken give the rates and the state-to-command
latency (the latest command minus the latest state before it, both stamped by their
publishers). It spins rclpy's EventsExecutor and runs at a lower CPU priority (nice NICE)
than the nodes it watches. The page's own thread pushes to the browsers, so a slow browser
slows nothing here.

Parameters: task (its model is drawn), host, port (0: any free port; the URL is logged),
controller (whose /<controller>/commands is counted; default: the task's command interface's,
with its message type: Float64MultiArray for joints, TwistStamped or PoseStamped for a
Cartesian controller).
"""
import os
import sys

import rclpy
from rclpy.experimental import EventsExecutor
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray, String

from ...deploy.task_command import command_interface
from ...errors import ApexError
from ...tasks import make_task
from ...view.page import REFRESH_HZ, ViewPage
from .. import protocol, qos
from .cartesian import MESSAGES
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
        interface = command_interface(self.task)
        controller = p('controller', controller or interface.controller).value
        command_type = MESSAGES.get(interface.message, Float64MultiArray)
        self.nstate, self.nv = self.task.layout.size, self.task.model.nv
        self.nq = self.task.model.nq
        # fast streams: polled (take_latest), never spun
        self.streams = rclpy.create_node(f'{protocol.VIZ_NODE}_streams',
                                         context=self.context)
        polled = self.streams.create_subscription
        self.full_state_sub = polled(Float64MultiArray, protocol.FULL_STATE, lambda _: None,
                                     qos.STATE, raw=True)
        self.joint_state_sub = polled(JointState, protocol.JOINT_STATES, lambda _: None,
                                      qos.STATE, raw=True)
        self.command_sub = polled(command_type, protocol.command_topic(controller),
                                  lambda _: None, qos.STATE, raw=True)
        self.create_timer(1.0 / REFRESH_HZ, self.take_latest)
        sub = self.create_subscription
        sub(Float64MultiArray, protocol.PLAN, self.on_plan, qos.PLAN)
        sub(String, protocol.STATUS, self.on_status, qos.STATUS)
        sub(Float64, protocol.EPISODE_RETURN, lambda m: self.page.on_episode_return(m.data),
            qos.EVENT)
        self.page.start()
        self.get_logger().info(f'view of {name}: {self.page.url}')
        print(f'view: {self.page.url} (task {name}; Ctrl-C stops)', flush=True)

    def ignore(self, error):
        self.get_logger().error(f'ignored: {error}', throttle_duration_sec=2.0)

    @staticmethod
    def take(subscription):
        """The latest message DDS holds for `subscription`: (CDR bytes, info) or None."""
        with subscription.handle:
            return subscription.handle.take_message(subscription.msg_type, True)

    def take_latest(self):
        """Hand the page the latest full state, joint state and command since the last call."""
        full = self.take(self.full_state_sub)
        if full is not None:
            msg = deserialize_message(full[0], Float64MultiArray)
            try:
                state = protocol.unpack_full_state(msg.data, self.nstate, self.nv).state
            except ApexError as e:
                self.ignore(e)
            else:
                self.page.on_full_state(state)
        joints = self.take(self.joint_state_sub)
        if joints is not None:
            msg = deserialize_message(joints[0], JointState)
            self.page.on_joint_state(msg.name, msg.position, msg.velocity)
        state_stamp = None   # source timestamp (ns) of the latest state taken now
        for taken, topic in ((full, protocol.FULL_STATE), (joints, protocol.JOINT_STATES)):
            if taken is not None:
                self.page.on_states(topic, taken[1]['publication_sequence_number'])
                state_stamp = taken[1]['source_timestamp']
                break
        command = self.take(self.command_sub)
        if command is not None:
            stamp = command[1]['source_timestamp']
            latency = (None if state_stamp is None or stamp < state_stamp
                       else (stamp - state_stamp) * 1e-6)
            self.page.on_commands(command[1]['publication_sequence_number'], stamp * 1e-9,
                                  latency)

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
        self.streams.destroy_node()


def main(argv=None):
    os.nice(NICE)
    sys.exit(spin(VizNode, argv, EventsExecutor))


if __name__ == '__main__':
    main()

"""iCEM_pi planner node: the expert, planning on its own MuJoCo replica.

State in: the full physics state (simulation, apex_ros.ros.protocol.FULL_STATE) or /joint_states
(on a robot: positions/velocities by joint name, plus the task's declared inputs (Task.inputs:
an object's pose, a goal; each on parameter inputs.<name>.topic, default the declared topic),
the rest of the state at its defaults; it does not plan, and logs why, while an input is
missing, stale, in another frame or non-finite). When active (~/set_active, std_srvs/SetBool)
it publishes a command for each new state; it always publishes its (observation, action)
demonstrations when it plans. The policy that guides it (warm start, policy samples, guidance
cost) is the bundle named by the `policy` parameter, settable at runtime (validated before
use), or announced on /apex/policy_bundle. For viewers it publishes, at most `plan_rate` times
a second (0: never), its best sequence's predicted positions, planning time and lambda_j on
/apex/plan, the last one kept for late viewers (one extra batch-1 rollout, after the command is
out: a small fraction of a plan's budget x iterations rollouts).
Relabeling (DAgger) is not a service of this node: the trainer runs its own planner of the
same config and seed in-process, which gives the same labels.
"""
import functools
import os
import sys
import time

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import SetBool

from ...config.layers import split_sets
from ...config.run import load_run_config
from ...deploy.bundle import BundleError, PolicyBundle
from ...deploy.command import declared_cartesian
from ...deploy.export import task_signature
from ...deploy.inputs import InputObservation, check_inputs, received
from ...errors import ApexError
from ...learning.apex.config import apex_settings
from ...planners import make_planner
from ...sim.observation import JointStates, Observation
from .. import protocol, qos
from .cartesian import CartesianCodec
from .common import float64_array, spin


class PlannerNode(Node):
    def __init__(self):
        super().__init__(protocol.PLANNER_NODE)
        p = self.declare_parameter
        task_name = p('task', 'cartpole_swingup').value
        config = p('config', 'default').value
        planner_name = p('planner', '').value
        threads = p('threads', 0).value
        self.seed = p('seed', 0).value
        controller = p('controller', protocol.DEFAULT_CONTROLLER).value
        self.active = p('active', False).value
        source = p('state_source', 'full_state').value
        self.guided = p('guided', True).value
        apex_expert = p('apex_expert', False).value
        plan_rate = p('plan_rate', 5.0).value
        self.plan_period = 1.0 / plan_rate if plan_rate > 0 else None
        self.plan_published = -float('inf')   # monotonic time of the last PLAN message
        p('policy', '')
        self.policy_source = None
        if source not in ('full_state', 'joint_states'):
            raise ValueError("parameter state_source: 'full_state' or 'joint_states', "
                             f'got {source!r}')

        self.cfg = load_run_config(task_name, None if config in ('', 'default') else config,
                                   planner=planner_name or None,
                                   sets=split_sets(p('set', '').value))
        self.task = self.cfg.make_task()
        planner_cfg = apex_settings(self.cfg)[1] if apex_expert else self.cfg.planner
        self.planner = make_planner(self.task, self.cfg.planner_name, planner_cfg,
                                    threads=threads or self.cfg.rollout.threads, seed=self.seed)
        self.signature = task_signature(self.task)
        self.nstate, self.nv = self.task.layout.size, self.task.model.nv
        self.joints = JointStates.of(self.task)
        self.inputs, self.latest_inputs = None, {}   # joint_states: the task's inputs
        self.answered = None     # (episode, step) last planned for: answer each state once
        self.episode = None

        self.send = self._command_sender(controller)
        self.pub_demo = self.create_publisher(Float64MultiArray, protocol.DEMONSTRATIONS,
                                              qos.DEMONSTRATIONS)
        self.pub_plan = self.create_publisher(Float64MultiArray, protocol.PLAN, qos.PLAN)
        if source == 'full_state':
            self.create_subscription(Float64MultiArray, protocol.FULL_STATE, self.on_full_state,
                                     qos.STATE)
        else:
            self.create_subscription(JointState, protocol.JOINT_STATES, self.on_joint_state,
                                     qos.STATE)
            self._subscribe_inputs()
        self.create_subscription(String, protocol.POLICY_BUNDLE, self.on_bundle, qos.BUNDLE)
        self.create_service(SetBool, protocol.SET_ACTIVE, self.on_set_active)
        self.add_on_set_parameters_callback(self.on_parameters)
        self.get_logger().info(
            f'{self.cfg.planner_name} on {self.task.name}: {self.planner.samples_per_step} '
            f'samples/step, {self.planner.rollouts.threads} thread(s), state from {source}, '
            f'{"active" if self.active else "inactive"}')

    # --- policy -----------------------------------------------------------------------------
    def load_policy(self, path: str):
        """Load and validate a bundle; raises BundleError (the old policy stays)."""
        if not path:
            self.planner.set_policy(None)
            self.policy_source = None
            return
        source = (path, os.stat(path).st_mtime_ns) if os.path.exists(path) else None
        if source is not None and source == self.policy_source:
            return  # announced after being set as a parameter: already loaded
        bundle = PolicyBundle(path)
        bundle.check_signature(self.signature)
        self.planner.set_policy(bundle if self.guided else None)
        self.policy_source = source
        self.get_logger().info(f'policy {path} (APEX iteration {bundle.meta["apex_iteration"]})')

    def on_parameters(self, params):
        for param in params:
            if param.name == 'policy':
                try:
                    self.load_policy(param.value)
                except BundleError as e:
                    return SetParametersResult(successful=False, reason=str(e))
        return SetParametersResult(successful=True)

    def on_bundle(self, msg):
        try:
            self.load_policy(protocol.unpack_bundle_announcement(msg.data))
        except ApexError as e:
            self.get_logger().error(f'refused announced bundle: {e}')

    # --- planning ---------------------------------------------------------------------------
    def on_set_active(self, request, response):
        self.active = request.data
        self.answered = None
        response.success = True
        response.message = 'active' if self.active else 'inactive'
        return response

    def _command_sender(self, controller):
        """-> a function publishing an action: as the controls (Float64MultiArray) on
        /<controller>/commands, or, for a task whose action `actuate` maps, through the
        Cartesian interface it declares (the message on /<controller>/commands, the gripper
        on its own topic), as its bundles command it."""
        topic = protocol.command_topic(controller)
        interface = declared_cartesian(self.task)
        if interface is None:
            pub = self.create_publisher(Float64MultiArray, topic, qos.COMMAND)
            return lambda action: pub.publish(float64_array(protocol.pack_command(action)))
        codec = CartesianCodec(interface, 1.0 / self.task.dt)
        pub = self.create_publisher(codec.message_type, topic, qos.COMMAND)
        gripper_pub = None if interface.gripper is None else self.create_publisher(
            Float64MultiArray, protocol.command_topic(interface.gripper_controller), qos.COMMAND)

        def send(action):
            msg, gripper = codec.to_messages(np.asarray(action, float),
                                             self.get_clock().now().to_msg())
            pub.publish(msg)
            if gripper is not None:
                gripper_pub.publish(gripper)
        return send

    def on_full_state(self, msg):
        try:
            full = protocol.unpack_full_state(msg.data, self.nstate, self.nv)
        except protocol.ProtocolError as e:
            self.get_logger().error(f'ignored full state: {e}', throttle_duration_sec=2.0)
            return
        self.plan_for(full.episode, full.step, full.state, full.warmstart)

    def _subscribe_inputs(self):
        """The task's inputs that carry state coordinates, latest message of each kept; their
        values go to the state columns their observation terms name. (Inputs carrying site
        positions are functions of the state: a planner has no use for them.)"""
        specs = [spec for spec in check_inputs(list(self.task.inputs()),
                                               f'task {self.task.name}: inputs')
                 if spec.fills_state]
        topics = {}
        for spec in specs:
            topics[spec.name] = self.declare_parameter(f'inputs.{spec.name}.topic',
                                                       spec.topic).value
            msg_type = protocol.message_class(spec.type)
            self.create_subscription(
                msg_type, topics[spec.name], functools.partial(self.on_input, spec),
                qos.INPUT_STREAM if spec.max_age > 0 else qos.INPUT_ONESHOT)
        # the checks of an observation made of the inputs' terms alone (age, frame, finite)
        self.inputs = (InputObservation([t for s in specs for t in s.fills], specs, topics)
                       if specs else None)
        self.input_columns = {spec.name: Observation(self.task.model, spec.fills,
                                                     self.task.layout).columns
                              for spec in specs}

    def on_input(self, spec, msg):
        self.latest_inputs[spec.name] = received(spec, time.monotonic(), msg)

    def on_joint_state(self, msg):
        """A robot: qpos/qvel of the named 1-dof joints, the inputs' state coordinates, the
        rest at defaults."""
        state = self.joints.to_state(msg.name, msg.position, msg.velocity)
        if self.inputs is not None:
            problem = self.inputs.problem(self.latest_inputs, time.monotonic())
            if problem is not None:
                self.get_logger().warning(f'not planning: {problem.describe()}',
                                          throttle_duration_sec=2.0)
                return
            for name, columns in self.input_columns.items():
                state[columns] = self.latest_inputs[name][1]
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        self.plan_for(0, stamp, state, None)

    def plan_for(self, episode, step, state, warmstart):
        if not self.active or (episode, step) == self.answered:
            return
        if step >= self.task.episode_steps:
            return  # the terminal state of an episode needs no command
        if episode != self.episode:
            self.episode = episode
            self.planner.reset(self.seed + episode)
        result = self.planner.plan(state, warmstart)
        self.answered = (episode, step)
        self.send(result.action)
        obs = self.task.observe(state[None])[0]
        self.pub_demo.publish(float64_array(protocol.pack_demonstration(
            protocol.Demonstration(episode, step, obs, result.action))))
        self.publish_plan(episode, step, state, warmstart, result)

    def publish_plan(self, episode, step, state, warmstart, result):
        """The best sequence's predicted positions on PLAN, throttled to plan_rate: one
        batch-1 rollout, after the command went out."""
        now = time.monotonic()
        if self.plan_period is None or now - self.plan_published < self.plan_period:
            return
        self.plan_published = now
        states, _ = self.planner.rollouts.run(state, result.sequence[None], warmstart)
        qpos = self.task.qpos(states[0])
        self.pub_plan.publish(float64_array(protocol.pack_plan(protocol.Plan(
            episode, step, result.info['plan_seconds'], np.asarray(result.info['lambdas']),
            qpos))))


def main(argv=None):
    sys.exit(spin(PlannerNode, argv))


if __name__ == '__main__':
    main()

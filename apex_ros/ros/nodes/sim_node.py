"""MuJoCo simulation node, behaving like a ros2_control robot.

Publishes /joint_states (names, positions, velocities, efforts of the model's 1-dof joints)
and the full physics state (apex_ros.ros.protocol.FULL_STATE), subscribes the forward controller's
command topic /<controller>/commands (Float64MultiArray in actuator order). A task whose action
is mapped by its `actuate` (Fetch: end-effector displacements) is commanded through the
Cartesian interface it declares (Task.command_interface, apex_ros.deploy.command), as its
bundles command it: the TwistStamped/PoseStamped on /<controller>/commands and, with a gripper
axis, the gripper value (Float64MultiArray) on /<gripper_controller>/commands; displacement /
scale and the gripper value are the action. In lockstep one control step follows each
complete command (both messages).
  mode=lockstep: one control step per received command, as fast as the commander runs;
                 /clock carries the simulation time.
  mode=realtime: runs in real time, holding the last command; before the first command and
                 after command_timeout without one it applies the hold of the task's command
                 interface (deploy.task_command): position servos keep the joint positions
                 measured when the hold began (a forward_position_controller's hold), effort
                 and Cartesian interfaces get zeros. state_rate (Hz, 0: the
                 control rate) is how often it publishes /joint_states, with the physics
                 stepped in between and a command applied from the next tick on, as a
                 robot's driver does (e.g. 500 Hz under a 50 Hz policy); it must divide the
                 task's physics rate into whole substeps of a control step. The full state
                 and the reward come once per control step.
The task's inputs besides joint states (Task.inputs: an object's pose, a goal, a site's
position) are published with every joint state from the simulated state, standing in for
perception, motion capture or a robot's forward kinematics:
same types, topics (parameter inputs.<name>.topic) and frames as declared, stamped with the
simulation time. An input that is task state the simulation cannot measure (it fills only
extra:* terms: a goal) is also taken on protocol.sim_input_topic(topic) ('/sim/goal'): a
message in the declared frame sets that state (Simulation.set_extra).
~/reset (std_srvs/Trigger) starts a new episode (seed = seed + episode index) and replies
with its id and seed (apex_ros.ros.protocol.pack_reset_reply). Rewards and
the episode return are published for monitoring. A command of the wrong length or with
non-finite values is rejected with a logged reason and nothing is applied.
"""
import functools
import sys

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray
from std_srvs.srv import Trigger

from ...config.layers import split_sets
from ...config.run import load_run_config
from ...deploy.command import declared_cartesian
from ...deploy.inputs import check_inputs, fill_message, message_values
from ...deploy.observation import parse_term
from ...deploy.task_command import command_interface
from ...errors import ApexError
from ...sim.observation import JointStates, Observation
from ...sim.simulation import Simulation
from .. import protocol, qos
from .cartesian import CartesianCodec
from .common import float64_array, spin


def stamp(seconds: float) -> Time:
    sec = int(seconds)
    return Time(sec=sec, nanosec=int(round((seconds - sec) * 1e9)))


class SimNode(Node):
    def __init__(self):
        super().__init__(protocol.SIM_NODE)
        p = self.declare_parameter
        self.task_name = p('task', 'cartpole_swingup').value
        config = p('config', 'default').value
        self.mode = p('mode', 'lockstep').value
        controller = p('controller', protocol.DEFAULT_CONTROLLER).value
        self.command_timeout = p('command_timeout', 0.5).value
        self.seed = p('seed', 0).value
        self.auto_reset = p('auto_reset', False).value
        self.republish_period = p('state_republish', 1.0).value
        state_rate = p('state_rate', 0.0).value
        if self.mode not in ('lockstep', 'realtime'):
            raise ValueError(f"parameter mode: 'lockstep' or 'realtime', got {self.mode!r}")

        cfg = load_run_config(self.task_name, None if config in ('', 'default') else config,
                              sets=split_sets(p('set', '').value))
        self.task = cfg.make_task()
        self.sim = Simulation(self.task)
        self.joints = JointStates.of(self.task)
        self.interface = self._interface()
        self.hold = None             # the hold command while no fresh command arrives
        self.ticks_per_step = self._ticks_per_step(state_rate)

        self.pub_joints = self.create_publisher(JointState, protocol.JOINT_STATES, qos.STATE_PUB)
        self.pub_full = self.create_publisher(Float64MultiArray, protocol.FULL_STATE,
                                              qos.FULL_STATE)
        self.pub_reward = self.create_publisher(Float64, protocol.REWARD, qos.EVENT)
        self.pub_return = self.create_publisher(Float64, protocol.EPISODE_RETURN, qos.EVENT)
        self.pub_clock = self.create_publisher(Clock, protocol.CLOCK, qos.COMMAND)
        self.command_topic = protocol.command_topic(controller)
        self.cartesian = None
        if self.task.drives_targets:
            self._subscribe_cartesian()
        else:
            self.actuated = self.task.actuated_joints()
            self.commanded = f'joints {self.actuated}'
            self.create_subscription(Float64MultiArray, self.command_topic, self.on_command,
                                     qos.COMMAND)
        self.create_service(Trigger, protocol.RESET, self.on_reset)
        self.inputs = self._make_inputs()

        self.episode = -1
        self.last_command, self.last_command_time = None, None
        self._reset()
        if self.mode == 'realtime':
            self.create_timer(self.task.dt / self.ticks_per_step, self.on_tick)
        elif self.republish_period > 0:
            self.create_timer(self.republish_period, self.on_idle)
        self.get_logger().info(
            f'{self.task_name}: {self.mode} at {1 / self.task.dt:.1f} Hz'
            + (f' (joint states at {self.ticks_per_step / self.task.dt:g} Hz)'
               if self.ticks_per_step > 1 else '')
            + f', commands on {self.command_topic} for {self.commanded}'
            + ''.join(f', {spec.name} on {pub.topic_name}' for spec, _, pub in self.inputs))

    def _interface(self):
        """The task's command interface; None when it declares none a bundle could use (a
        task mapping its action by actuate without one): its hold is then the zero action."""
        try:
            return command_interface(self.task)
        except ApexError as e:
            self.get_logger().info(f'hold = zero action ({e})')
            return None

    def hold_command(self) -> np.ndarray:
        """(nu,) what the robot does without a policy: a position servo's target = gear x the
        current joint position, within the command limits; else zeros."""
        if self.interface is None or self.interface.interface != 'position':
            return np.zeros(self.task.nu)
        m, d = self.task.model, self.sim.data
        joints = m.actuator_trnid[:, 0]
        return self.interface.clamp(m.actuator_gear[:, 0] * d.qpos[m.jnt_qposadr[joints]])

    def _subscribe_cartesian(self):
        """The Cartesian interface the task declares: its message on the command topic, the
        gripper's on /<gripper_controller>/commands."""
        task = self.task
        interface = declared_cartesian(task)
        if interface is None:
            raise ApexError(f'task {task.name}: its action is mapped by actuate and it declares '
                            'no cartesian command_interface: the sim node cannot command it')
        self.cartesian = CartesianCodec(interface, 1.0 / task.dt)
        self.parts = {'motion': None, 'gripper': None}   # the latest of each message
        self.create_subscription(self.cartesian.message_type, self.command_topic,
                                 functools.partial(self.on_cartesian, 'motion'), qos.COMMAND)
        self.commanded = f'axes {list(interface.axes)} ({interface.message})'
        if interface.gripper is not None:
            self.gripper_topic = protocol.command_topic(interface.gripper_controller)
            self.create_subscription(Float64MultiArray, self.gripper_topic,
                                     functools.partial(self.on_cartesian, 'gripper'),
                                     qos.COMMAND)
            self.commanded += f', gripper on {self.gripper_topic}'

    def _ticks_per_step(self, state_rate) -> int:
        """State publications per control step for parameter state_rate."""
        task = self.task
        if state_rate <= 0 or self.mode == 'lockstep':
            return 1
        ticks = round(state_rate * task.dt)
        rates = [f'{k / task.dt:g}' for k in range(1, task.frame_skip + 1)
                 if task.frame_skip % k == 0]
        if ticks < 1 or abs(ticks - state_rate * task.dt) > 1e-6 or task.frame_skip % ticks:
            raise ValueError(f'parameter state_rate: {state_rate:g} Hz does not split a '
                             f'control step of {task.name} ({task.frame_skip} physics '
                             f'substeps) evenly; possible: {", ".join(rates)} Hz')
        if ticks > 1 and task.drives_targets:
            raise ValueError(f'parameter state_rate: task {task.name} integrates its action '
                             'per control step (actuate); state_rate must be its control rate')
        return ticks

    # --- inputs besides joint states ------------------------------------------------------
    def _make_inputs(self):
        """[(spec, its values from a state, publisher)]; subscribes the set topics of goal-like
        inputs."""
        task, out = self.task, []
        for spec in check_inputs(list(task.inputs()), f'task {task.name}: inputs'):
            msg_type = protocol.message_class(spec.type)
            topic = self.declare_parameter(f'inputs.{spec.name}.topic', spec.topic).value
            values = Observation(task.model, spec.fills, task.layout, task.prepare).values
            out.append((spec, values, self.create_publisher(msg_type, topic, qos.INPUT_PUB)))
            if all(parse_term(t).kind == 'extra' for t in spec.fills):
                self.create_subscription(msg_type, protocol.sim_input_topic(topic),
                                         functools.partial(self.on_set_input, spec),
                                         qos.COMMAND)
        return out

    def on_set_input(self, spec, msg):
        """A new value of a goal-like input: its extra-state coordinates set in the sim."""
        values = message_values(spec, msg)
        if msg.header.frame_id != spec.frame or not np.all(np.isfinite(values)):
            self.get_logger().warning(
                f'rejected {spec.name}: frame_id {msg.header.frame_id!r} (expected '
                f'{spec.frame!r}), values {values.tolist()}')
            return
        state, layout = self.sim.state(), self.task.layout
        blocks = {}
        for term, value in zip(spec.fills, values):
            parsed = parse_term(term)
            block = blocks.setdefault(parsed.joint, state[layout.extra[parsed.joint]].copy())
            block[parsed.index or 0] = value
        for name, block in blocks.items():
            self.sim.set_extra(name, block)
        self.get_logger().info(f'{spec.name} set to {values.tolist()}')

    # --- episode ----------------------------------------------------------------------------
    def _reset(self):
        self.episode += 1
        self.sim.reset(self.seed + self.episode)
        self.ret, self.substeps = 0.0, 0
        self.last_command, self.last_activity = None, self.get_clock().now()
        self.hold = None
        if self.cartesian is not None:   # no half command carried into the new episode
            self.parts = dict.fromkeys(self.parts)
        self.publish_state()

    def on_reset(self, request, response):
        self._reset()
        response.success = True
        response.message = protocol.pack_reset_reply(
            protocol.ResetReply(self.episode, self.seed + self.episode))
        return response

    # --- commands ---------------------------------------------------------------------------
    def on_command(self, msg):
        try:
            command = protocol.unpack_command(msg.data, self.actuated, self.command_topic)
        except protocol.ProtocolError as e:
            self.get_logger().warning(f'rejected command: {e}')
            return
        self.apply(command)

    def on_cartesian(self, part, msg):
        """One message of the Cartesian interface; a command is complete when every part of
        the interface has arrived (lockstep: since the last step; realtime: ever, each part
        the latest)."""
        codec = self.cartesian
        topic = self.command_topic if part == 'motion' else self.gripper_topic
        try:
            if part == 'motion':
                value = codec.motion(msg)
            else:
                value = codec.action(np.zeros(len(codec.index)), msg.data)[codec.gripper]
            if not np.all(np.isfinite(value)):
                raise ValueError(f'non-finite values {np.atleast_1d(value).tolist()}')
        except ValueError as e:
            self.get_logger().warning(f'rejected command on {topic}: {e}')
            return
        self.parts[part] = value
        wanted = ('motion',) if codec.gripper is None else ('motion', 'gripper')
        if any(self.parts[p] is None for p in wanted):
            return
        command = codec.action(self.parts['motion'], [self.parts['gripper']])
        if self.mode == 'lockstep':
            self.parts = dict.fromkeys(self.parts)
        self.apply(command)

    def apply(self, command):
        """A complete command (the task's action, or its controls in actuator order)."""
        if self.mode == 'realtime':
            self.last_command, self.last_command_time = command, self.get_clock().now()
            return
        if self.sim.done:
            # state-triggered commanders answer the terminal state too: expected, not an error
            self.get_logger().debug('episode is over; command ignored until ~/reset')
            return
        self.step(command)

    def on_tick(self):
        if self.sim.done:
            if not self.auto_reset:
                return
            self._reset()
        fresh = (self.last_command is not None and
                 (self.get_clock().now() - self.last_command_time).nanoseconds * 1e-9
                 <= self.command_timeout)
        if self.last_command is not None and not fresh:
            self.get_logger().warning('command timeout: applying the hold command',
                                      throttle_duration_sec=2.0)
        if fresh:
            command, self.hold = self.last_command, None
        else:
            if self.hold is None:
                self.hold = self.hold_command()
            command = self.hold
        if self.ticks_per_step == 1:
            self.step(command)
            return
        if self.substeps == 0:
            self.step_start = self.sim.state()
        self.sim.substep(command, self.task.frame_skip // self.ticks_per_step)
        self.substeps += 1
        if self.substeps < self.ticks_per_step:
            self.publish_joints()
            return
        self.substeps = 0
        self.end_step(self.sim.reward(self.step_start, self.sim.state(), command))

    def on_idle(self):
        """Lockstep: if no command came for a while, re-send the state (a best-effort state
        message may have been lost); commanders answer each (episode, step) once."""
        idle = (self.get_clock().now() - self.last_activity).nanoseconds * 1e-9
        if not self.sim.done and idle >= self.republish_period:
            self.publish_state()

    def step(self, command):
        reward, _ = self.sim.step(command)
        self.end_step(reward)

    def end_step(self, reward):
        self.ret += reward
        self.last_activity = self.get_clock().now()
        self.pub_reward.publish(Float64(data=reward))
        self.publish_state()
        if self.sim.done:
            self.pub_return.publish(Float64(data=self.ret))
            self.get_logger().info(f'episode {self.episode} return {self.ret:.2f}')

    # --- state out --------------------------------------------------------------------------
    def publish_joints(self):
        """/joint_states and the inputs besides them, stamped with the simulation time."""
        d = self.sim.data
        t = stamp(d.time)
        if self.mode == 'lockstep':
            self.pub_clock.publish(Clock(clock=t))
        positions, velocities, efforts = self.joints.read(d)
        js = JointState(name=self.joints.names, position=positions.tolist(),
                        velocity=velocities.tolist(), effort=efforts.tolist())
        js.header.stamp = t
        self.pub_joints.publish(js)
        if self.inputs:
            state = self.sim.state()
            for spec, values, pub in self.inputs:
                msg = fill_message(spec, pub.msg_type(), values(state))
                msg.header.stamp = t
                pub.publish(msg)

    def publish_state(self):
        """The joint states, inputs and the full state."""
        self.publish_joints()
        self.pub_full.publish(float64_array(protocol.pack_full_state(protocol.FullState(
            self.episode, self.sim.steps, self.sim.state(), self.sim.warmstart()))))


def main(argv=None):
    sys.exit(spin(SimNode, argv))


if __name__ == '__main__':
    main()

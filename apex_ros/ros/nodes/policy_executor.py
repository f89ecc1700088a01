"""Robot-side policy executor: runs an ONNX policy bundle on /joint_states and commands the
bundle's command interface (apex_ros.deploy.command): effort or joint positions to a
ros2_control forward controller (std_msgs/Float64MultiArray on /<controller>/commands), or
end-effector displacements to a Cartesian controller (geometry_msgs/TwistStamped or
PoseStamped on /<controller>/commands; remap the topic to the controller's own name), with
the gripper component, if the bundle has one, as std_msgs/Float64MultiArray on
/<gripper_controller>/commands (the fingers' forward controller).

Imports only numpy, onnxruntime (through apex_ros.deploy.bundle) and rclpy, so it runs on a robot
without torch or mujoco.

Semantics
- Lifecycle: configure loads the bundle and reads every other parameter; activate starts
  commanding; deactivate, shutdown and errors publish the hold command first. The `~/estop`
  service (std_srvs/SetBool) works in every state: true latches a hold that persists (across
  deactivate/activate too) until false clears it.
- Command interface: the bundle declares it; `command_interface` ('' = the bundle's; else
  effort | position | cartesian, what the robot's controller takes) and a bundle that
  declares another one is refused, naming both. `controller` ('' = the bundle's) names the
  topic; `gripper_controller` ('' = the bundle's) the gripper's. Every command published,
  holds included, is clamped to the bundle's command limits (its action bounds and the
  model's joint limits).
- trigger=timer: a steady-clock timer at rate_hz (0 = the bundle's control rate) publishes one
  command per tick. trigger=state: one command per received joint state, and a watchdog
  (steady timer, every state_timeout / 4) that publishes the hold command whenever the state
  is stale, so a stopped stream is answered by a hold at most 1.25 state_timeout after the
  last state in both triggers. state_watchdog=false turns the watchdog off: only for the
  lockstep simulation, where the state source is the clock and a hold would step it (the
  sim_apex graph sets it).
- The policy runs only on fresh, valid state: received (local steady clock) less than
  state_timeout ago (0 = auto: max(3 control periods, 50 ms); 50 ms rides out the 4-8 ms DDS
  stalls seen at 500 Hz), all required joints present by name, names/positions/velocities
  sizes consistent, finite values. A state received before activation counts if it is fresh,
  so after activation the node holds until such a state is there. Otherwise, and when the
  e-stop is latched, no bundle is usable, or the policy's action is not finite, it publishes
  the hold command and logs why (at most once per second per reason).
- Hold command: hold='' -> the interface's own (effort: zero; position: position;
  cartesian: zero displacement and zero gripper command); hold=zero -> zeros;
  hold=position -> the command joints' positions from the last valid joint state, latched
  when the hold begins (nothing is published while no position is known yet). A position
  interface refuses hold=zero, a cartesian one hold=position. A non-finite value is never
  published.
- Diagnostics: every diagnostics_period s a diagnostic_msgs/DiagnosticArray on /diagnostics,
  levels as diagnostic_updater's FrequencyStatus / TimeStampStatus: the command rate against
  the expected one (10 % tolerance), the age of every input against its limit (joint states:
  state_timeout; `_input_ages` lists them), holds (why, how many in the window), the bundle's
  identity, and the command topic's subscribers: after activation, no subscriber for 1 s is
  a warning (logged once, and in the diagnostics until one appears).
- The robot's joints are read from the `robot_joints` parameter (checked at configure) or else
  from the first joint state; a bundle that needs joints the robot lacks is refused, naming them
  (each /joint_states message must carry all the joints, as joint_state_broadcaster's do).
- Inputs besides /joint_states: the node subscribes to exactly the inputs the bundle declares
  (apex_ros.deploy.inputs: an object's pose, a goal; each on parameter `inputs.<name>.topic`,
  default the declared topic) and holds, naming the input and why, while any is missing, older
  than its max_age, in another frame than declared or non-finite: a command is never computed
  from a partial observation. `input_status()` gives each input's age and status.
- Hot-swap: a path on bundle_topic (transient local: the latest announcement, also one latched
  before configure, replaces the configured bundle) or a new `bundle` parameter value is loaded
  and validated (same task, control rate and command joints, robot has its joints, the
  observation is computable, the same inputs (names and types), one trial inference) before a
  single reference assignment swaps it in; a bad bundle is refused with a log and the running
  one keeps going.
- Process (main): the state subscription, the input subscriptions and the control/watchdog
  timer live on a lean node (`control_node`, named <name>_control) waited on by a ControlLoop;
  the lifecycle node is served every SERVICE_PERIOD between control steps (executor=events:
  one EventsExecutor for both). realtime_priority > 0: SCHED_FIFO at that priority for the
  whole process.
"""
import array
import collections
import dataclasses
import functools
import gc
import math
import os
import signal
import sys
import time
import traceback

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor, TimeoutException
from rclpy.lifecycle import Node, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, Header, String
from std_srvs.srv import SetBool

from ...deploy import command as interfaces
from ...deploy.bundle import BundleError, PolicyBundle
from ...deploy.inputs import InputObservation, received
from ...errors import ApexError
from .. import protocol, qos
from . import cartesian
from .cartesian import CartesianCodec
from .control_loop import ControlLoop

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
TRIGGERS, HOLDS, EXECUTORS = ('timer', 'state'), ('', 'zero', 'position'), ('single', 'events')
LOG_PERIOD = 1.0  # s between two logs of the same hold reason
SERVICE_PERIOD = 0.02  # s: main() serves the lifecycle node's own callbacks this often
NO_SUBSCRIBER_GRACE = 1.0  # s after activation before a command topic without reader warns
RATE_TOLERANCE = 0.1  # diagnostic_updater FrequencyStatus's default
OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR
MESSAGES = {interfaces.JOINT_MESSAGE: Float64MultiArray, **cartesian.MESSAGES}
# Which holds are an error in the diagnostics (an e-stop is an operator's decision: WARN).
DELIBERATE_HOLDS = ('estop',)

# What the control callback runs; replaced as a whole by a hot-swap. low/high: the command
# limits in controller order.
Policy = collections.namedtuple('Policy', 'bundle obs order low high')


@dataclasses.dataclass
class Window:
    """What the control loop did since the last diagnostics report."""
    start: float = dataclasses.field(default_factory=time.monotonic)
    published: int = 0      # commands published (policy + hold)
    policy: int = 0         # policy commands
    holds: dict = dataclasses.field(default_factory=dict)  # {reason key: count}


def logged(transition):
    """rclpy turns an exception in a transition callback into ERROR without a word: log it."""
    @functools.wraps(transition)
    def wrapper(self, state):
        try:
            return transition(self, state)
        except Exception:
            self.get_logger().error(f'{transition.__name__} failed:\n{traceback.format_exc()}')
            raise
    return wrapper


class PolicyExecutor(Node):
    def __init__(self, node_name=protocol.EXECUTOR_NODE, **kwargs):
        super().__init__(node_name, **kwargs)
        # The control loop's entities (the state subscription, the control timer or the
        # watchdog) live on this lean node, so the wait that wakes the loop holds only them:
        # rclpy's SingleThreadedExecutor walks the lifecycle node's 12 services, parameter
        # events and timers at every wake-up (experiments/executor_profile). main() waits on
        # this node with a ControlLoop and serves the lifecycle node every
        # SERVICE_PERIOD; whoever spins this node in-process spins both. No global arguments:
        # a `__node:=` remap would rename it too; the lifecycle node resolves (remaps) topics.
        self.control_node = rclpy.create_node(
            f'{self.get_name()}_control', namespace=self.get_namespace(), context=self.context,
            use_global_arguments=False, start_parameter_services=False, enable_rosout=False)
        self._estop = False  # latched: survives deactivate/cleanup until cleared
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._reset()
        self.declare_parameters('', [
            ('bundle', ''),
            ('controller', ''),
            ('gripper_controller', ''),
            ('command_interface', ''),
            ('joint_states_topic', protocol.JOINT_STATES),
            ('bundle_topic', protocol.POLICY_BUNDLE),
            ('rate_hz', 0.0),
            ('state_timeout', 0.0),
            ('trigger', 'timer'),
            ('state_watchdog', True),
            ('hold', ''),
            ('diagnostics_period', 1.0),
            ('command_joints', Parameter.Type.STRING_ARRAY),
            ('robot_joints', Parameter.Type.STRING_ARRAY),
            ('executor', 'single'),
            ('realtime_priority', 0),
            ('autostart', False),
        ])
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_service(SetBool, protocol.ESTOP, self._on_estop)

    def _reset(self):
        self._configured = self._active = False
        self._policy = self._state = self._timer = self._pub = self._interface = None
        self._gripper_pub = None  # the gripper's command publisher, if the bundle has one
        self._diag_pub = self._diag_timer = self._limits = None
        self._subs, self._inputs, self._latest_inputs = [], {}, {}
        self._cmd_joints = self._robot_joints = self._positions = None
        self._position_index = (None, None)  # (names, indices of the command joints)
        self._holding, self._hold_cmd, self._hold_reason, self._last_log = False, None, None, {}
        self._window = Window()

    def _param(self, name):
        return self.get_parameter_or(name).value  # None for an unset string array

    # Lifecycle -------------------------------------------------------------------------------

    @logged
    def on_configure(self, state):
        p = {name: self._param(name) for name in (
            'bundle', 'controller', 'gripper_controller', 'command_interface',
            'joint_states_topic', 'bundle_topic', 'rate_hz', 'state_timeout', 'trigger',
            'state_watchdog', 'hold', 'diagnostics_period', 'command_joints', 'robot_joints')}
        log = self.get_logger()
        kinds = ('',) + interfaces.INTERFACES
        if (p['trigger'] not in TRIGGERS or p['hold'] not in HOLDS
                or p['command_interface'] not in kinds):
            log.error(f'trigger must be one of {TRIGGERS}, hold one of {HOLDS} and '
                      f'command_interface one of {kinds}, got {p["trigger"]!r}, {p["hold"]!r} '
                      f'and {p["command_interface"]!r}')
            return FAILURE
        if not p['bundle']:
            log.error('parameter bundle (path of an .onnx policy bundle) is not set')
            return FAILURE
        if p['diagnostics_period'] <= 0:
            log.error(f'diagnostics_period must be > 0 s, got {p["diagnostics_period"]}')
            return FAILURE
        self._wanted_interface, self._controller = p['command_interface'], p['controller']
        self._cmd_joints = list(p['command_joints'] or []) or None
        self._robot_joints = set(p['robot_joints']) if p['robot_joints'] else None
        try:
            policy = self._load(p['bundle'])
        except ApexError as e:
            log.error(f'cannot configure: {e}')
            self._reset()
            return FAILURE
        bundle = policy.bundle
        interface = self._interface = bundle.command
        hold = p['hold'] or interfaces.NATURAL_HOLD[interface.interface]
        if (interface.interface, hold) in (('position', 'zero'), ('cartesian', 'position')):
            log.error(f'cannot configure: hold={hold} does not fit the bundle\'s '
                      f'{interface.describe()} interface (use hold:=\'\' for its own: '
                      f'{interfaces.NATURAL_HOLD[interface.interface]})')
            self._reset()
            return FAILURE
        self._cmd_joints = self._cmd_joints or bundle.joints
        self._rate_from_bundle = p['rate_hz'] <= 0.0
        rate = bundle.meta['control']['rate_hz'] if self._rate_from_bundle else p['rate_hz']
        self._period = 1.0 / rate
        self._timeout = p['state_timeout'] if p['state_timeout'] > 0 else max(
            3 * self._period, 0.05)
        self._trigger, self._hold_mode = p['trigger'], hold
        self._watchdog = p['trigger'] == 'state' and p['state_watchdog']
        self._state_topic = p['joint_states_topic']
        self._policy, self._limits = policy, (policy.low, policy.high)
        self._to_msg = self._message_builder(interface, bundle.meta['control']['rate_hz'])
        self._pub = self.create_lifecycle_publisher(
            MESSAGES[interface.message],
            protocol.command_topic(p['controller'] or interface.controller), qos.COMMAND)
        if interface.gripper is not None:
            self._gripper_pub = self.create_lifecycle_publisher(
                Float64MultiArray, protocol.command_topic(
                    p['gripper_controller'] or interface.gripper_controller), qos.COMMAND)
        self._subs = [
            self.control_node.create_subscription(
                JointState, self.resolve_topic_name(p['joint_states_topic']), self._on_state,
                qos.STATE),
            self.create_subscription(String, p['bundle_topic'], self._on_bundle, qos.BUNDLE)]
        self._subscribe_inputs(policy)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._diag_timer = self.create_timer(p['diagnostics_period'], self._publish_diagnostics,
                                             clock=self._steady)
        self._configured = True
        watchdog = ('' if p['trigger'] == 'timer' else
                    ', state watchdog' if self._watchdog else ', NO state watchdog (lockstep)')
        inputs = ', '.join(f'{name} on {topic}' for name, topic in policy.obs.topics.items())
        log.info(f'configured: {self._describe(bundle)}, {p["trigger"]} trigger at '
                 f'{rate:g} Hz{watchdog}, state_timeout {self._timeout * 1e3:g} ms, '
                 f'hold={hold}, {interface.describe()}: commands {self._cmd_joints} on '
                 f'{self._pub.topic_name}'
                 + (f', gripper on {self._gripper_pub.topic_name}' if self._gripper_pub else '')
                 + (f', inputs {inputs}' if inputs else ''))
        return SUCCESS

    @logged
    def on_activate(self, state):
        self._active, self._holding, self._hold_cmd = True, False, None
        self._activated_at, self._no_subscriber_logged = time.monotonic(), False
        self._window = Window()  # the rate is judged from activation on
        if self._trigger == 'timer':
            self._timer = self.control_node.create_timer(self._period, self._step,
                                                         clock=self._steady)
        elif self._watchdog:
            self._timer = self.control_node.create_timer(self._timeout / 4, self._check_stale,
                                                         clock=self._steady)
        return super().on_activate(state)

    @logged
    def on_deactivate(self, state):
        self._send_hold('deactivating')
        self._stop()
        return super().on_deactivate(state)

    @logged
    def on_cleanup(self, state):
        self._teardown()
        return super().on_cleanup(state)

    @logged
    def on_shutdown(self, state):
        if self._active:
            self._send_hold('shutting down')
            for pub in (self._pub, self._gripper_pub):
                if pub is not None:
                    pub.wait_for_all_acked(Duration(seconds=0.5))
        self._teardown()
        return super().on_shutdown(state)

    @logged
    def on_error(self, state):
        if self._active:
            self._send_hold('error')
        self._teardown()
        return super().on_error(state)

    def _stop(self):
        self._active = False
        if self._timer is not None:
            self.control_node.destroy_timer(self._timer)
            self._timer = None

    def _teardown(self):
        self._stop()
        control_subs = list(self.control_node.subscriptions)
        for sub in self._subs:
            (self.control_node if sub in control_subs else self).destroy_subscription(sub)
        for pub in (self._pub, self._gripper_pub):
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self.destroy_publisher(self._diag_pub)
        self._reset()

    # Inputs ----------------------------------------------------------------------------------

    def _input_topic(self, spec) -> str:
        """The topic of a declared input: parameter inputs.<name>.topic (declared on first use,
        default the bundle's topic)."""
        name = f'inputs.{spec.name}.topic'
        if not self.has_parameter(name):
            self.declare_parameter(name, spec.topic)
        return self.get_parameter(name).value

    def _subscribe_inputs(self, policy):
        for spec in policy.bundle.inputs:
            msg_type = protocol.message_class(spec.type)
            profile = qos.INPUT_STREAM if spec.max_age > 0 else qos.INPUT_ONESHOT
            self._subs.append(self.control_node.create_subscription(
                msg_type, policy.obs.topics[spec.name], functools.partial(self._on_input, spec),
                profile))
            self._inputs[spec.name] = spec.type

    def _on_input(self, spec, msg):
        self._latest_inputs[spec.name] = received(spec, time.monotonic(), msg)

    def input_status(self) -> list:
        """[apex_ros.deploy.inputs.InputStatus (name, topic, age s, limit s, status, why)] of
        the running bundle's inputs; [] without inputs or bundle."""
        policy = self._policy
        if policy is None:
            return []
        return policy.obs.status(self._latest_inputs, time.monotonic())

    # Bundles ---------------------------------------------------------------------------------

    @staticmethod
    def _describe(bundle):
        return (f'bundle {bundle.path} (task {bundle.task}, '
                f'APEX iteration {bundle.meta.get("apex_iteration")})')

    def _interface_problem(self, interface):
        """Why `interface` (a bundle's) does not fit this node's configuration, or None."""
        wanted = self._wanted_interface
        if wanted and interface.interface != wanted:
            topic = protocol.command_topic(self._controller or
                                           interfaces.DEFAULT_CONTROLLERS[wanted])
            return (f'it commands {interface.describe()}, this executor is configured for '
                    f'{wanted} on {topic} (command_interface parameter)')
        running = self._interface
        if running is not None and not interface.same_as(running):
            return f'it commands {interface.describe()}, running {running.describe()}'
        return None

    def _load(self, path) -> Policy:
        """Load `path` and check it fits this node's configuration and the running bundle;
        raises ApexError saying every reason it does not."""
        bundle = PolicyBundle(path)
        joints, problems = bundle.joints, []
        try:
            obs = InputObservation(bundle.obs_terms, bundle.inputs,
                                   {spec.name: self._input_topic(spec) for spec in bundle.inputs})
        except ApexError as e:
            problems.append(str(e))
        declared = {spec.name: spec.type for spec in bundle.inputs}
        if self._configured and declared != self._inputs:
            problems.append(f'it reads inputs {declared}, this node subscribes {self._inputs}')
        mismatch = self._interface_problem(bundle.command)
        if mismatch:
            problems.append(mismatch)
        if (bundle.command.joint_space and self._cmd_joints is not None
                and sorted(joints) != sorted(self._cmd_joints)):
            problems.append(f'it commands joints {joints}, the controller takes '
                            f'{self._cmd_joints}')
        if self._robot_joints is not None:
            missing = [j for j in bundle.required_joints() if j not in self._robot_joints]
            if missing:
                problems.append(f'the robot lacks joints {missing}')
        current = self._policy
        if current is not None:
            if bundle.task != current.bundle.task:
                problems.append(f'task {bundle.task!r}, running {current.bundle.task!r}')
            new, old = (b.meta['control']['rate_hz'] for b in (bundle, current.bundle))
            # a cartesian displacement is per control step of the bundle
            if (self._rate_from_bundle or not bundle.command.joint_space) and \
                    not math.isclose(new, old):
                problems.append(f'control rate {new:g} Hz, running at {old:g} Hz')
        if problems:
            raise BundleError(f'{bundle.path}: ' + '; '.join(problems))
        try:
            action = bundle.act(np.zeros(bundle.obs_dim))
        except Exception as e:  # onnxruntime raises several types
            raise BundleError(f'{bundle.path}: trial inference failed: {e}') from None
        if action.shape != (len(joints),):
            raise BundleError(f'{bundle.path}: trial inference gave shape {action.shape}')
        targets = self._cmd_joints if bundle.command.joint_space and self._cmd_joints else joints
        order = np.array([joints.index(j) for j in targets])
        return Policy(bundle, obs, order, bundle.command.low[order], bundle.command.high[order])

    def _swap(self, path):
        """Load and validate `path`, then swap it in; -> None, or why it was refused."""
        running = self._policy
        try:
            policy = self._load(path)
        except ApexError as e:
            keeping = f'keeping {running.bundle.path}' if running else 'no bundle is running'
            self.get_logger().error(f'refused bundle: {e} ({keeping})')
            return str(e)
        self._policy = policy  # the control callback reads this reference once per step
        self._limits = (policy.low, policy.high)
        self.get_logger().info(f'now running {self._describe(policy.bundle)}')
        return None

    def _on_bundle(self, msg):
        try:
            path = protocol.unpack_bundle_announcement(msg.data)
        except ApexError as e:
            self.get_logger().error(f'refused bundle: {e}')
            return
        self._swap(path)

    def _on_set_parameters(self, params):
        for p in params:
            if p.name == 'bundle' and self._configured:
                reason = self._swap(p.value)
                if reason:
                    return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    # Control ---------------------------------------------------------------------------------

    def _on_state(self, msg):
        self._state = (time.monotonic(), msg)
        if self._robot_joints is None:
            self._learn_robot_joints(msg.name)
        if self._hold_mode == 'position':
            self._remember_positions(msg)
        if self._trigger == 'state' and self._active:
            self._step()

    def _learn_robot_joints(self, names):
        self._robot_joints = set(names)
        policy = self._policy
        if policy is None:
            return
        missing = [j for j in policy.bundle.required_joints() if j not in self._robot_joints]
        if missing:
            self._policy = None
            self.get_logger().error(
                f'refused bundle {policy.bundle.path}: the robot lacks joints {missing} '
                f'(/joint_states has {list(names)}); holding until a fitting bundle arrives')

    def _remember_positions(self, msg):
        names, index = self._position_index
        if msg.name != names:  # the index of the command joints, cached per name list
            lookup = {n: i for i, n in enumerate(msg.name)}
            if not all(j in lookup for j in self._cmd_joints):
                return
            index = np.array([lookup[j] for j in self._cmd_joints])
            self._position_index = names, index = list(msg.name), index
        if len(msg.position) != len(names):
            return
        positions = np.asarray(msg.position)[index]
        if np.all(np.isfinite(positions)):
            self._positions = positions

    def _check_stale(self):
        """State-trigger watchdog: hold when the stream has stopped (_step says why)."""
        state = self._state
        if state is None or time.monotonic() - state[0] > self._timeout:
            self._step()

    def _step(self):
        try:
            command, reason = self._policy_command()
        except Exception as e:  # an exception here would stop the loop: hold instead
            command, reason = None, ('error', f'policy evaluation failed: {e!r}')
        if command is None:
            self._hold(*reason)
        else:
            if self._holding:
                self.get_logger().info('fresh valid state: resuming policy commands')
            self._holding, self._hold_cmd, self._hold_reason = False, None, None
            self._window.policy += 1
            self._publish(command)

    def _policy_command(self):
        """-> (command in controller order, None) or (None, (reason key, why))."""
        policy, state = self._policy, self._state
        if self._estop:
            return None, ('estop', 'e-stop engaged')
        if policy is None:
            return None, ('no_policy', 'no usable bundle')
        if state is None:
            return None, ('no_state', f'no joint state received on {self._state_topic}')
        stamp, msg = state
        now = time.monotonic()
        age = now - stamp
        if age > self._timeout:
            return None, ('stale', f'joint state is {age * 1e3:.0f} ms old '
                                   f'(state_timeout {self._timeout * 1e3:g} ms)')
        n, npos, nvel = len(msg.name), len(msg.position), len(msg.velocity)
        if npos != n or nvel not in (0, n):
            return None, ('invalid_state', f'joint state has {n} names, {npos} positions, '
                                           f'{nvel} velocities')
        if policy.bundle.inputs:
            problem = policy.obs.problem(self._latest_inputs, now)
            if problem is not None:
                return None, (f'input_{problem.status}:{problem.name}', problem.describe())
        try:
            obs = policy.obs(msg.name, msg.position, msg.velocity, self._latest_inputs, now)
        except ValueError as e:
            return None, ('invalid_state', f'invalid joint state: {e}')
        action = policy.bundle.act(obs)
        if not np.all(np.isfinite(action)):
            return None, ('bad_action', f'policy output is not finite: {action.tolist()}')
        return action[policy.order], None

    def _hold(self, key, why):
        now = time.monotonic()
        if now - self._last_log.get(key, -math.inf) >= LOG_PERIOD:
            self._last_log[key] = now
            self.get_logger().warning(f'holding: {why}')
        if not self._holding or self._hold_cmd is None:
            self._hold_cmd = self._hold_command()
        self._holding, self._hold_reason = True, (key, why)
        self._window.holds[key] = self._window.holds.get(key, 0) + 1
        if self._hold_cmd is not None:
            self._publish(self._hold_cmd)

    def _hold_command(self):
        if self._hold_mode == 'zero':
            return np.zeros(len(self._cmd_joints))
        return None if self._positions is None else self._positions.copy()

    def _send_hold(self, why):
        """Publish the hold command now (outside the control loop)."""
        command = self._hold_cmd if self._hold_cmd is not None else self._hold_command()
        if command is None:
            self.get_logger().warning(f'{why}: no joint position known, no hold command sent')
            return
        self.get_logger().info(f'{why}: sent hold command {command.tolist()}')
        self._publish(command)

    def _publish(self, command):
        """Clamp `command` (controller order) to the limits and publish it if it is finite."""
        low, high = self._limits
        command = np.minimum(np.maximum(command, low), high)
        if np.isfinite(command).all():  # never let a non-finite value reach the controller
            msg, gripper = self._to_msg(command)
            self._pub.publish(msg)
            if gripper is not None:
                self._gripper_pub.publish(gripper)
            self._window.published += 1

    def _message_builder(self, interface, control_rate):
        """-> a function: command (controller order, clamped) -> (the interface's message,
        the gripper's Float64MultiArray or None). A cartesian command is a displacement per
        control step of the bundle (`control_rate`)."""
        if interface.joint_space:
            msg = Float64MultiArray()  # one message, refilled: publish() serializes it at once

            def joint_message(command):
                msg.data = array.array('d', command.tobytes())  # no per-element type checks
                return msg, None
            return joint_message
        codec = CartesianCodec(interface, control_rate)
        return lambda command: codec.to_messages(command, self.get_clock().now().to_msg())

    # Diagnostics -----------------------------------------------------------------------------

    def _input_ages(self) -> list:
        """[(name, age in s or None when never received, limit in s)] of every input the
        policy needs; the diagnostics report one status per entry."""
        state = self._state
        age = None if state is None else time.monotonic() - state[0]
        inputs = [(f'{s.name} ({s.topic})', None if math.isinf(s.age) else s.age,
                   s.limit or math.inf) for s in self.input_status()]
        return [(f'joint states ({self._state_topic})', age, self._timeout), *inputs]

    def _publish_diagnostics(self):
        window, self._window = self._window, Window()
        name = self.get_name()
        statuses = [self._rate_status(window), *(
            self._age_status(*entry) for entry in self._input_ages()),
            self._hold_status(window), self._bundle_status(), self._subscriber_status()]
        for status in statuses:
            status.name, status.hardware_id = f'{name}: {status.name}', name
        self._diag_pub.publish(DiagnosticArray(
            header=Header(stamp=self.get_clock().now().to_msg()), status=statuses))

    @staticmethod
    def _status(name, level, message, **values):
        return DiagnosticStatus(level=level, name=name, message=message, values=[
            KeyValue(key=k.replace('_', ' '), value=str(v)) for k, v in values.items()])

    def _rate_status(self, window):
        """diagnostic_updater FrequencyStatus: events in the window against the target."""
        seconds = time.monotonic() - window.start
        rate, target = window.published / seconds, 1.0 / self._period
        values = dict(events_in_window=window.published, policy_commands=window.policy,
                      hold_commands=sum(window.holds.values()),
                      duration_of_window_s=f'{seconds:.3f}', actual_frequency_Hz=f'{rate:.1f}',
                      target_frequency_Hz=f'{target:g}', tolerance=RATE_TOLERANCE)
        if not self._active:
            return self._status('command rate', OK, 'inactive: not commanding', **values)
        if self._trigger == 'state' and not self._watchdog:
            return self._status('command rate', OK, 'state source sets the rate (lockstep)',
                                **values)
        if window.published == 0:
            return self._status('command rate', ERROR, 'No events recorded', **values)
        if rate < (1 - RATE_TOLERANCE) * target:
            return self._status('command rate', WARN, 'Frequency too low', **values)
        if rate > (1 + RATE_TOLERANCE) * target:
            return self._status('command rate', WARN, 'Frequency too high', **values)
        return self._status('command rate', OK, 'Desired frequency met', **values)

    def _age_status(self, name, age, limit):
        """Like diagnostic_updater TimeStampStatus: ERROR when no data or older than limit."""
        values = dict(age_s='none' if age is None else f'{age:.4f}', limit_s=f'{limit:g}')
        if age is None:
            return self._status(name, ERROR, 'No data received', **values)
        if age > limit:
            return self._status(name, ERROR, f'stale: {age * 1e3:.0f} ms old, limit '
                                             f'{limit * 1e3:g} ms', **values)
        return self._status(name, OK, 'fresh', **values)

    def _hold_status(self, window):
        counts = ', '.join(f'{k} {n}' for k, n in sorted(window.holds.items())) or 'none'
        key, why = self._hold_reason or ('', '')
        values = dict(holding=self._holding, reason=why, holds_in_window=counts,
                      estop=self._estop, hold_mode=self._hold_mode)
        if self._holding and self._active:
            level = WARN if key in DELIBERATE_HOLDS else ERROR
            return self._status('hold', level, f'holding: {why}', **values)
        if window.holds:
            return self._status('hold', WARN, f'held in the last window: {counts}', **values)
        if self._estop:
            return self._status('hold', WARN, 'e-stop engaged', **values)
        return self._status('hold', OK, 'commanding the policy' if self._active else
                            'inactive', **values)

    def _bundle_status(self):
        policy = self._policy
        if policy is None:
            return self._status('bundle', ERROR, 'no usable bundle')
        b = policy.bundle
        return self._status('bundle', OK, f'{b.task}, APEX iteration '
                                          f'{b.meta.get("apex_iteration")}',
                            path=b.path, task=b.task, apex_iteration=b.meta.get('apex_iteration'),
                            created=b.meta.get('created', ''),
                            format_version=b.meta.get('format_version'),
                            command_interface=b.command.describe())

    def _subscriber_status(self):
        """Warn once when the command topic has no reader NO_SUBSCRIBER_GRACE s after
        activation (discovery takes a moment); the diagnostics say so until one appears."""
        count, topic = self._pub.get_subscription_count(), self._pub.topic_name
        values = dict(topic=topic, subscribers=count)
        if not self._active or time.monotonic() - self._activated_at < NO_SUBSCRIBER_GRACE:
            return self._status('command topic', OK, f'{count} subscriber(s)', **values)
        if count == 0:
            if not self._no_subscriber_logged:
                self._no_subscriber_logged = True
                self.get_logger().warning(
                    f'no subscriber on the command topic {topic} since activation: nothing '
                    'executes these commands (is the controller running, its topic right?)')
            return self._status('command topic', WARN, f'no subscriber on {topic}', **values)
        if self._no_subscriber_logged:
            self._no_subscriber_logged = False
            self.get_logger().info(f'the command topic {topic} has {count} subscriber(s) now')
        return self._status('command topic', OK, f'{count} subscriber(s)', **values)

    def _on_estop(self, request, response):
        self._estop = bool(request.data)
        if self._estop:
            self.get_logger().warning('e-stop engaged: holding until it is cleared')
            if self._active and self._trigger == 'timer':
                self._step()  # hold now rather than at the next tick
        else:
            self.get_logger().info('e-stop cleared')
        response.success = True
        response.message = 'e-stop engaged' if self._estop else 'e-stop cleared'
        return response


    def destroy_node(self):
        self.control_node.destroy_node()
        super().destroy_node()


def set_realtime_priority(priority, log) -> bool:
    """SCHED_FIFO at `priority` (1-99) for every thread of this process, the DDS threads
    that deliver the states included, as ros2_control's controller manager runs its loop: a
    CPU-bound neighbour at normal priority then cannot delay a control step."""
    try:
        for tid in os.listdir('/proc/self/task'):
            os.sched_setscheduler(int(tid), os.SCHED_FIFO, os.sched_param(priority))
    except OSError as e:
        log.warning(f'realtime_priority {priority}: cannot set SCHED_FIFO ({e}); running at '
                    'normal priority (needs CAP_SYS_NICE or an rtprio limit)')
        return False
    log.info(f'running at SCHED_FIFO priority {priority}')
    return True


def serve(executor, limit=100):
    """Run the callbacks that are ready now (at most `limit`), without waiting."""
    for _ in range(limit):
        try:
            handler, _, _ = executor.wait_for_ready_callbacks(timeout_sec=0)
        except TimeoutException:
            return
        handler()
        if handler.exception() is not None:
            raise handler.exception()


def main(argv=None):
    # rclpy's own SIGINT/SIGTERM handlers shut the context down before we could send the hold
    # command, so the node handles both signals itself.
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    node = PolicyExecutor()
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.append(signum))
    kind, priority = (node.get_parameter(p).value for p in ('executor', 'realtime_priority'))
    if kind not in EXECUTORS or not 0 <= priority <= 99:
        node.get_logger().error(f'executor must be one of {EXECUTORS} and realtime_priority '
                                f'0 (off) to 99, got {kind!r} and {priority}')
        node.destroy_node()
        rclpy.try_shutdown()
        return 2
    if priority:
        set_realtime_priority(priority, node.get_logger())
    if kind == 'events':  # one wake-up costs 34 us with every entity in it: one executor
        from rclpy.experimental import EventsExecutor
        control = service = EventsExecutor()
        service.add_node(node.control_node)
    else:
        control, service = ControlLoop(node.control_node), SingleThreadedExecutor()
    service.add_node(node)
    if node.get_parameter('autostart').value and not (
            node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS):
        stop.append('autostart failed')
    # What exists now lives as long as the process: exempt it from the garbage collector's
    # full passes, whose pauses grow with it (milliseconds: a control period at 500 Hz).
    gc.collect()
    gc.freeze()
    try:
        # Spin in short slices so the Python signal handlers run while nothing arrives. The
        # timeout is required: rclpy 7.1.6's EventsExecutor runs no callback at all when spun
        # without one (spin(), spin_once(), spin_until_future_complete(f)). The lifecycle
        # node's callbacks (transitions, e-stop, parameters, bundles, diagnostics) are served
        # within SERVICE_PERIOD, right after a control step: between two states.
        next_service = 0.0
        while not stop and rclpy.ok():
            control.spin_once(timeout_sec=SERVICE_PERIOD)
            if service is not control and time.monotonic() >= next_service:
                serve(service)
                next_service = time.monotonic() + SERVICE_PERIOD
    finally:
        node.trigger_shutdown()  # sends the hold command first when active
        service.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 1 if 'autostart failed' in stop else 0


if __name__ == '__main__':
    sys.exit(main())

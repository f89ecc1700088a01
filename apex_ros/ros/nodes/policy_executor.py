"""Robot-side policy executor: runs an ONNX policy bundle on /joint_states and commands a
ros2_control forward controller (std_msgs/Float64MultiArray on /<controller>/commands).

Imports only numpy, onnxruntime (through apex_ros.deploy.bundle) and rclpy, so it runs on a robot
without torch or mujoco.

Semantics
- Lifecycle: configure loads the bundle and reads every other parameter; activate starts
  commanding; deactivate, shutdown and errors publish the hold command first. The `~/estop`
  service (std_srvs/SetBool) works in every state: true latches a hold that persists (across
  deactivate/activate too) until false clears it.
- trigger=timer: a steady-clock timer at rate_hz (0 = the bundle's control rate) publishes one
  command per tick. trigger=state: one command per received joint state (lockstep
  simulation); no timer, so there is no staleness in this mode: the state source is the clock.
- The policy runs only on fresh, valid state: received (local steady clock) less than
  state_timeout ago (0 = auto: max(3 control periods, 50 ms); 50 ms rides out the 4-8 ms DDS
  stalls seen at 500 Hz), all required joints present by name, names/positions/velocities
  sizes consistent, finite values. A state received before activation counts if it is fresh,
  so after activation the node holds until such a state is there. Otherwise, and when the
  e-stop is latched, no bundle is usable, or the policy's action is not finite, it publishes
  the hold command and logs why (at most once per second per reason).
- Hold command: hold=zero -> zeros (effort control); hold=position -> the command joints'
  positions from the last valid joint state, latched when the hold begins (position control;
  nothing is published while no position is known yet). Actions are clamped to the bundle's
  limits; a non-finite value is never published.
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
"""
import collections
import functools
import importlib
import math
import signal
import sys
import time
import traceback

import numpy as np
import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import Node, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import SetBool

from ...deploy.bundle import BundleError, PolicyBundle
from ...deploy.inputs import InputObservation, received
from ...errors import ApexError
from .. import protocol, qos
from .common import float64_array

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
TRIGGERS, HOLDS, EXECUTORS = ('timer', 'state'), ('zero', 'position'), ('single', 'events')
LOG_PERIOD = 1.0  # s between two logs of the same hold reason

# What the control callback runs; replaced as a whole by a hot-swap.
Policy = collections.namedtuple('Policy', 'bundle obs order')


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
        self._estop = False  # latched: survives deactivate/cleanup until cleared
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._reset()
        self.declare_parameters('', [
            ('bundle', ''),
            ('controller', protocol.DEFAULT_CONTROLLER),
            ('joint_states_topic', protocol.JOINT_STATES),
            ('bundle_topic', protocol.POLICY_BUNDLE),
            ('rate_hz', 0.0),
            ('state_timeout', 0.0),
            ('trigger', 'timer'),
            ('hold', 'zero'),
            ('command_joints', Parameter.Type.STRING_ARRAY),
            ('robot_joints', Parameter.Type.STRING_ARRAY),
            ('executor', 'single'),
            ('autostart', False),
        ])
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_service(SetBool, protocol.ESTOP, self._on_estop)

    def _reset(self):
        self._configured = self._active = False
        self._policy = self._state = self._timer = self._pub = None
        self._subs, self._inputs, self._latest_inputs = [], {}, {}
        self._cmd_joints = self._robot_joints = self._positions = None
        self._holding, self._hold_cmd, self._last_log = False, None, {}

    def _param(self, name):
        return self.get_parameter_or(name).value  # None for an unset string array

    # Lifecycle -------------------------------------------------------------------------------

    @logged
    def on_configure(self, state):
        p = {name: self._param(name) for name in (
            'bundle', 'controller', 'joint_states_topic', 'bundle_topic', 'rate_hz',
            'state_timeout', 'trigger', 'hold', 'command_joints', 'robot_joints')}
        log = self.get_logger()
        if p['trigger'] not in TRIGGERS or p['hold'] not in HOLDS:
            log.error(f'trigger must be one of {TRIGGERS} and hold one of {HOLDS}, '
                      f'got {p["trigger"]!r} and {p["hold"]!r}')
            return FAILURE
        if not p['bundle']:
            log.error('parameter bundle (path of an .onnx policy bundle) is not set')
            return FAILURE
        self._cmd_joints = list(p['command_joints'] or []) or None
        self._robot_joints = set(p['robot_joints']) if p['robot_joints'] else None
        try:
            policy = self._load(p['bundle'])
        except ApexError as e:
            log.error(f'cannot configure: {e}')
            self._reset()
            return FAILURE
        bundle = policy.bundle
        self._cmd_joints = self._cmd_joints or bundle.joints
        self._rate_from_bundle = p['rate_hz'] <= 0.0
        rate = bundle.meta['control']['rate_hz'] if self._rate_from_bundle else p['rate_hz']
        self._period = 1.0 / rate
        self._timeout = p['state_timeout'] if p['state_timeout'] > 0 else max(
            3 * self._period, 0.05)
        self._trigger, self._hold_mode = p['trigger'], p['hold']
        self._state_topic = p['joint_states_topic']
        self._policy = policy
        self._pub = self.create_lifecycle_publisher(
            Float64MultiArray, protocol.command_topic(p['controller']), qos.COMMAND)
        self._subs = [
            self.create_subscription(JointState, p['joint_states_topic'], self._on_state,
                                     qos.STATE),
            self.create_subscription(String, p['bundle_topic'], self._on_bundle, qos.BUNDLE)]
        self._subscribe_inputs(policy)
        self._configured = True
        inputs = ', '.join(f'{name} on {topic}' for name, topic in policy.obs.topics.items())
        log.info(f'configured: {self._describe(bundle)}, {p["trigger"]} trigger at '
                 f'{rate:g} Hz, state_timeout {self._timeout * 1e3:g} ms, hold={p["hold"]}, '
                 f'commands {self._cmd_joints} on {self._pub.topic_name}'
                 + (f', inputs {inputs}' if inputs else ''))
        return SUCCESS

    @logged
    def on_activate(self, state):
        self._active, self._holding, self._hold_cmd = True, False, None
        if self._trigger == 'timer':
            self._timer = self.create_timer(self._period, self._step, clock=self._steady)
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
            self._pub.wait_for_all_acked(Duration(seconds=0.5))
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
            self.destroy_timer(self._timer)
            self._timer = None

    def _teardown(self):
        self._stop()
        for sub in self._subs:
            self.destroy_subscription(sub)
        if self._pub is not None:
            self.destroy_lifecycle_publisher(self._pub)
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
            package, _, type_name = spec.type.partition('/')
            msg_type = getattr(importlib.import_module(f'{package}.msg'), type_name)
            profile = qos.INPUT_STREAM if spec.max_age > 0 else qos.INPUT_ONESHOT
            self._subs.append(self.create_subscription(
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
        if self._cmd_joints is not None and (sorted(joints) != sorted(self._cmd_joints)):
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
            if self._rate_from_bundle and not math.isclose(new, old):
                problems.append(f'control rate {new:g} Hz, running at {old:g} Hz')
        if problems:
            raise BundleError(f'{bundle.path}: ' + '; '.join(problems))
        try:
            action = bundle.act(np.zeros(bundle.obs_dim))
        except Exception as e:  # onnxruntime raises several types
            raise BundleError(f'{bundle.path}: trial inference failed: {e}') from None
        if action.shape != (len(joints),):
            raise BundleError(f'{bundle.path}: trial inference gave shape {action.shape}')
        order = np.array([joints.index(j) for j in (self._cmd_joints or joints)])
        return Policy(bundle, obs, order)

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
        try:
            positions = np.array([msg.position[msg.name.index(j)] for j in self._cmd_joints])
        except (ValueError, IndexError):
            return
        if np.all(np.isfinite(positions)):
            self._positions = positions

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
            self._holding, self._hold_cmd = False, None
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
        self._holding = True
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
        if np.all(np.isfinite(command)):  # never let a non-finite value reach the controller
            self._pub.publish(float64_array(protocol.pack_command(command)))

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


def main(argv=None):
    # rclpy's own SIGINT/SIGTERM handlers shut the context down before we could send the hold
    # command, so the node handles both signals itself.
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    node = PolicyExecutor()
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.append(signum))
    kind = node.get_parameter('executor').value
    if kind not in EXECUTORS:
        node.get_logger().error(f'executor must be one of {EXECUTORS}, got {kind!r}')
        node.destroy_node()
        rclpy.try_shutdown()
        return 2
    if kind == 'events':
        from rclpy.experimental import EventsExecutor
        executor = EventsExecutor()
    else:
        executor = SingleThreadedExecutor()
    executor.add_node(node)
    if node.get_parameter('autostart').value and not (
            node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS):
        stop.append('autostart failed')
    try:
        # Spin in short slices so the Python signal handlers run while nothing arrives. The
        # timeout is required: rclpy 7.1.6's EventsExecutor runs no callback at all when spun
        # without one (spin(), spin_once(), spin_until_future_complete(f)).
        while not stop and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    finally:
        node.trigger_shutdown()  # sends the hold command first when active
        executor.remove_node(node)
        node.destroy_node()
        rclpy.try_shutdown()
    return 1 if 'autostart failed' in stop else 0


if __name__ == '__main__':
    sys.exit(main())

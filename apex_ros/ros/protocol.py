"""The graph's contract: node, topic and service names, QoS, and every message layout.

Plain data and numpy, no ROS imports, so the graph spec, the nodes, the graph client, the
bag tools and tests share one source of truth (rclpy message objects are built from these
forms by apex_ros.ros.nodes.common). Every layout is packed and unpacked here and nowhere
else. Conventions follow ros2_control: /joint_states from the robot (mapped by joint name,
never by index), std_msgs/Float64MultiArray commands on /<controller>/commands in the
controller's joint order.

Float64MultiArray layouts: `data` is a concatenation of named segments, and `layout.dim`
labels them in order, one MultiArrayDimension per segment (label, size, stride = size):
  FULL_STATE      (simulation only) FullState:
                  'header' 2 [episode, step] | 'state' nstate (FULLPHYSICS) | 'warmstart' nv
  DEMONSTRATIONS  Demonstration: 'header' 2 [episode, step] | 'observation' obs_dim
                  | 'action' nu    (the planner's (observation, action) for that state)
  commands        `data` only: nu values in the controller's joint order, no layout (what
                  ros2_control's forward controllers read; nothing is added on the
                  executor's hot path)
  PLAN            (monitoring, throttled) Plan: 'header' 2 [episode, step] | 'timing' 1
                  [plan seconds] | 'lambdas' n_aux | 'qpos' (H+1)*nq (the best sequence's
                  predicted positions, from the planned state on)
An unpacker checks the sizes and raises ProtocolError naming the topic.

Other messages: REWARD (std_msgs/Float64, one per control step) and EPISODE_RETURN
(std_msgs/Float64, when an episode ends) are monitoring values; POLICY_BUNDLE
(std_msgs/String, transient local) carries the path of a bundle file. STATUS (std_msgs/String,
transient local) is the trainer's JSON {"iteration", "iterations", "phase", "driver",
"expert_return", "policy_return"} (pack_status / unpack_status), for viewers.

Services: the sim's reset is std_srvs/Trigger; its reply's `message` is the JSON object
{"episode": E, "seed": S} (pack_reset_reply / unpack_reset_reply). std_srvs is the only
service package with a ready-made request/response pair in the ros-jazzy wheels apex_ros
runs on; a custom .srv (Reset.srv -> episode, seed) would need a rosidl build of an
interface package, so the reply's structure lives in the JSON text instead. The planner's
set_active is std_srvs/SetBool; the recorder's pause/resume/split_bagfile are Trigger.
"""
import dataclasses
import importlib
import json

import numpy as np

from ..errors import ApexError


def message_class(type_name: str):
    """The message class of a ROS type name, 'package/Name' (an input's declared type) or
    'package/msg/Name' (a bag's topic type): imported when asked, so a node loads only the
    message packages its inputs use."""
    parts = type_name.split('/')
    if len(parts) == 3 and parts[1] == 'msg':
        del parts[1]
    if len(parts) != 2 or not all(parts):
        raise ApexError(f"message type {type_name!r}: expected 'package/Name' or "
                        "'package/msg/Name'")
    package, name = parts
    try:
        return getattr(importlib.import_module(f'{package}.msg'), name)
    except (ImportError, AttributeError) as e:
        raise ApexError(f'message type {type_name!r}: not importable ({e})') from None


# --- names ---------------------------------------------------------------------------------
JOINT_STATES = '/joint_states'
FULL_STATE = '/apex/full_state'
REWARD = '/apex/reward'
EPISODE_RETURN = '/apex/episode_return'
POLICY_BUNDLE = '/apex/policy_bundle'
DEMONSTRATIONS = '/apex/demonstrations'
PLAN = '/apex/plan'          # the planner's best sequence, predicted (monitoring, throttled)
STATUS = '/apex/status'      # the trainer's iteration, phase and driver (monitoring)
CLOCK = '/clock'
DEFAULT_CONTROLLER = 'effort_controller'

# Node names in the graphs (apex_ros.ros.graph) and the graph client's defaults.
SIM_NODE, PLANNER_NODE, EXECUTOR_NODE = 'sim', 'planner', 'policy_executor'
RECORDER_NODE, TRAINER_NODE, VIZ_NODE = 'recorder', 'trainer', 'viz'

# Private services (the node serves '~/name'; others call '/<node>/name', see service()).
RESET = '~/reset'                    # sim: std_srvs/Trigger, reply see pack_reset_reply
SET_ACTIVE = '~/set_active'          # planner: std_srvs/SetBool
ESTOP = '~/estop'                    # policy executor: std_srvs/SetBool
PAUSE, RESUME, SPLIT_BAGFILE = '~/pause', '~/resume', '~/split_bagfile'  # recorder: Trigger


def command_topic(controller: str) -> str:
    return f'/{controller}/commands'


def sim_input_topic(topic: str) -> str:
    """Where the sim node takes a new value of an input that is task state it cannot measure
    (a goal: '/goal' -> '/sim/goal'); it publishes the input itself on `topic`."""
    return '/sim' + topic


def service(node: str, private_name: str) -> str:
    """The absolute name of `node`'s private service: service('sim', RESET) -> '/sim/reset'."""
    return f'/{node}/{private_name.removeprefix("~/")}'


# --- QoS, as plain settings (apex_ros.ros.qos builds the rclpy profiles) --------------------
STATE_QOS = {'reliability': 'best_effort', 'depth': 1}      # state subscriptions
STATE_PUB_QOS = {'reliability': 'reliable', 'depth': 10}    # state publishers (recorders keep up)
# Every full state is training data. A reliable writer only re-sends what is still in its
# history: with depth 10, a trainer busy for a moment lost one state of an episode (a missed
# loopback packet, evicted before the retransmission) and waited out its timeout. Writer and
# reader keep more than a whole episode of the longest task (halfcheetah: 1001 states).
FULL_STATE_QOS = {'reliability': 'reliable', 'depth': 2000}
# Inputs besides /joint_states (apex_ros.deploy.inputs): a stream (max_age > 0: an object's
# pose from perception) is taken best effort, the latest is all that counts; a one-shot input
# (max_age 0: a goal sent once) reliably. Publishers offer reliable, which matches both.
INPUT_STREAM_QOS = {'reliability': 'best_effort', 'depth': 1}
INPUT_ONESHOT_QOS = {'reliability': 'reliable', 'depth': 1}
INPUT_PUB_QOS = {'reliability': 'reliable', 'depth': 10}
COMMAND_QOS = {'reliability': 'reliable', 'depth': 1}       # command publishers
BUNDLE_QOS = {'reliability': 'reliable', 'depth': 1, 'durability': 'transient_local'}
EVENT_QOS = {'reliability': 'reliable', 'depth': 100}       # rewards, returns
# Demonstrations are training labels, published from an episode's first step on: a reader the
# planner's writer has not matched yet (discovery takes up to seconds under load) would miss
# them. Transient local: a late match still receives the history (readers filter episodes).
DEMONSTRATIONS_QOS = {**FULL_STATE_QOS, 'durability': 'transient_local'}
# PLAN: the latest is all that counts, and it is kept for a viewer that opens while the planner
# idles (the executor drives, the trainer relabels): it draws the last plan, not nothing
PLAN_QOS = BUNDLE_QOS
# a late subscriber gets the run's recent statuses in order, ending with the current one
# (a viewer keeping depth 1 sees just that)
STATUS_QOS = {**BUNDLE_QOS, 'depth': 64}


# --- layouts ------------------------------------------------------------------------------
class ProtocolError(ApexError):
    """A message that does not have its topic's or service's layout; names the topic."""


@dataclasses.dataclass(frozen=True)
class MultiArray:
    """A Float64MultiArray's content: data and its labelled segments ((label, size), ...)."""
    data: list
    dims: tuple


def _pack(segments) -> MultiArray:
    """segments: (label, values) pairs -> MultiArray with one dim per segment."""
    arrays = [(label, np.asarray(values, dtype=np.float64).ravel()) for label, values in segments]
    return MultiArray(np.concatenate([a for _, a in arrays]).tolist(),
                      tuple((label, len(a)) for label, a in arrays))


def _split(data, topic: str, sizes: dict) -> dict:
    """data -> {label: float64 array} for the segments `sizes` ({label: size}, in order)."""
    data = np.asarray(data, dtype=np.float64)
    expected = sum(sizes.values())
    if data.shape != (expected,):
        spelled = ' + '.join(f'{n} {label}' for label, n in sizes.items())
        raise ProtocolError(f'{topic}: {data.size} values, expected {expected} '
                            f'({spelled})')
    out, start = {}, 0
    for label, n in sizes.items():
        out[label] = data[start:start + n]
        start += n
    return out


HEADER = 2  # [episode, step] at the front of FULL_STATE and DEMONSTRATIONS


@dataclasses.dataclass(frozen=True)
class FullState:
    episode: int
    step: int
    state: np.ndarray       # (nstate,) mujoco FULLPHYSICS state
    warmstart: np.ndarray   # (nv,) qacc_warmstart


def pack_full_state(s: FullState) -> MultiArray:
    return _pack((('header', (s.episode, s.step)), ('state', s.state),
                  ('warmstart', s.warmstart)))


def unpack_full_state(data, nstate: int, nv: int, topic: str = FULL_STATE) -> FullState:
    parts = _split(data, topic, {'header': HEADER, 'state': nstate, 'warmstart': nv})
    episode, step = parts['header']
    return FullState(int(episode), int(step), parts['state'], parts['warmstart'])


@dataclasses.dataclass(frozen=True)
class Demonstration:
    episode: int
    step: int
    observation: np.ndarray   # (obs_dim,)
    action: np.ndarray        # (nu,) the expert's action for that state


def pack_demonstration(d: Demonstration) -> MultiArray:
    return _pack((('header', (d.episode, d.step)), ('observation', d.observation),
                  ('action', d.action)))


def unpack_demonstration(data, obs_dim: int, nu: int,
                         topic: str = DEMONSTRATIONS) -> Demonstration:
    parts = _split(data, topic, {'header': HEADER, 'observation': obs_dim, 'action': nu})
    episode, step = parts['header']
    return Demonstration(int(episode), int(step), parts['observation'], parts['action'])


def pack_command(values) -> MultiArray:
    return MultiArray(np.asarray(values, dtype=np.float64).tolist(), ())


def unpack_command(data, joints: list, topic: str) -> np.ndarray:
    """-> command (len(joints),); ProtocolError naming the topic if the size is wrong or a
    value is not finite (nothing of such a command may be applied)."""
    data = np.asarray(data, dtype=np.float64)
    if data.shape != (len(joints),):
        raise ProtocolError(f'{topic}: expected {len(joints)} values {list(joints)}, '
                            f'got {data.size}')
    if not np.all(np.isfinite(data)):
        raise ProtocolError(f'{topic}: non-finite values {data.tolist()}')
    return data


# --- the sim's reset reply (std_srvs/Trigger message) ---------------------------------------
@dataclasses.dataclass(frozen=True)
class ResetReply:
    episode: int   # the new episode's id (0, 1, ...; full states carry it)
    seed: int      # the seed its initial state was drawn with


def pack_reset_reply(reply: ResetReply) -> str:
    return json.dumps({'episode': reply.episode, 'seed': reply.seed})


def unpack_reset_reply(message: str, service_name: str = service(SIM_NODE, RESET)) -> ResetReply:
    try:
        fields = json.loads(message)
        return ResetReply(int(fields['episode']), int(fields['seed']))
    except (ValueError, TypeError, KeyError):
        raise ProtocolError(f'{service_name}: reply {message!r} is not '
                            '{"episode": E, "seed": S}') from None


# --- bundle announcements (std_msgs/String) -----------------------------------------------
def pack_bundle_announcement(path) -> str:
    return str(path)


def unpack_bundle_announcement(text: str, topic: str = POLICY_BUNDLE) -> str:
    if not text:
        raise ProtocolError(f'{topic}: empty bundle path')
    return text


# --- the planner's predicted plan (Float64MultiArray, monitoring) ---------------------------
@dataclasses.dataclass(frozen=True)
class Plan:
    episode: int
    step: int
    plan_seconds: float     # wall time of the planning step
    lambdas: np.ndarray     # (n_aux,) the auxiliary costs' weights lambda_j used
    qpos: np.ndarray        # (H+1, nq) predicted positions along the best sequence


def pack_plan(p: Plan) -> MultiArray:
    return _pack((('header', (p.episode, p.step)), ('timing', (p.plan_seconds,)),
                  ('lambdas', p.lambdas), ('qpos', p.qpos)))


def unpack_plan(data, nq: int, n_lambdas: int, topic: str = PLAN) -> Plan:
    """The horizon is whatever the size gives: (size - 3 - n_lambdas) / nq rows (>= 1)."""
    data = np.asarray(data, dtype=np.float64)
    rest = data.size - HEADER - 1 - n_lambdas
    if rest < nq or rest % nq:
        raise ProtocolError(f'{topic}: {data.size} values, expected {HEADER} header + 1 timing '
                            f'+ {n_lambdas} lambdas + a multiple of nq={nq} qpos values')
    parts = _split(data, topic, {'header': HEADER, 'timing': 1, 'lambdas': n_lambdas,
                                 'qpos': rest})
    episode, step = parts['header']
    return Plan(int(episode), int(step), float(parts['timing'][0]), parts['lambdas'],
                parts['qpos'].reshape(-1, nq))


# --- the trainer's status (std_msgs/String, JSON) -------------------------------------------
DRIVERS = ('none', 'planner', 'executor')   # who commands the simulation


@dataclasses.dataclass(frozen=True)
class Status:
    iteration: int                   # the APEX iteration in progress (1-based; 0: none yet)
    iterations: int                  # of the run
    phase: str                       # expert | train_expert | dagger | train_dagger | final
    driver: str                      # one of DRIVERS
    expert_return: float | None = None   # the last finished iteration's figures
    policy_return: float | None = None


def pack_status(s: Status) -> str:
    return json.dumps(dataclasses.asdict(s))


def unpack_status(text: str, topic: str = STATUS) -> Status:
    try:
        fields = json.loads(text)
        status = Status(int(fields['iteration']), int(fields['iterations']), str(fields['phase']),
                        str(fields['driver']),
                        *(None if fields.get(k) is None else float(fields[k])
                          for k in ('expert_return', 'policy_return')))
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ProtocolError(f'{topic}: {text!r} is not a status object {{"iteration", '
                            '"iterations", "phase", "driver", ...}') from None
    if status.driver not in DRIVERS:
        raise ProtocolError(f'{topic}: driver {status.driver!r} not in {DRIVERS}')
    return status

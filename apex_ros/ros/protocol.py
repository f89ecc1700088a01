"""The graph's contract: topic and service names, QoS, and message layouts.

Plain data, no ROS imports, so the graph spec, the nodes, the recorder and tests share one
source of truth. Conventions follow ros2_control: /joint_states from the robot (mapped by
joint name, never by index), std_msgs/Float64MultiArray commands on
/<controller>/commands in the controller's joint order.

Full physics state (simulation only), std_msgs/Float64MultiArray on FULL_STATE:
    data = [episode, step, *state (FULLPHYSICS, nstate), *qacc_warmstart (nv)]
    layout.dim labels: 'header' (2), 'state' (nstate), 'warmstart' (nv)
Demonstrations from the planner, Float64MultiArray on DEMONSTRATIONS:
    data = [episode, step, *observation, *action]
"""
JOINT_STATES = '/joint_states'
FULL_STATE = '/apex/full_state'
REWARD = '/apex/reward'                  # std_msgs/Float64 per control step
EPISODE_RETURN = '/apex/episode_return'  # std_msgs/Float64 when an episode ends
POLICY_BUNDLE = '/apex/policy_bundle'    # std_msgs/String path, transient local
DEMONSTRATIONS = '/apex/demonstrations'
CLOCK = '/clock'
RELABEL_REQUEST = '/apex/relabel_request'  # Float64MultiArray, see pack_relabel_request
RELABEL_RESULT = '/apex/relabel_result'
DEFAULT_CONTROLLER = 'effort_controller'


def command_topic(controller: str) -> str:
    return f'/{controller}/commands'


# QoS, as plain settings (nodes build rclpy QoSProfile objects from these).
STATE_QOS = {'reliability': 'best_effort', 'depth': 1}      # state subscriptions
STATE_PUB_QOS = {'reliability': 'reliable', 'depth': 10}    # state publishers (recorders keep up)
# Every full state is training data. A reliable writer only re-sends what is still in its
# history: with depth 10, a trainer busy for a moment lost one state of an episode (a missed
# loopback packet, evicted before the retransmission) and waited out its timeout. Writer and
# reader keep more than a whole episode of the longest task (halfcheetah: 1001 states).
FULL_STATE_QOS = {'reliability': 'reliable', 'depth': 2000}
COMMAND_QOS = {'reliability': 'reliable', 'depth': 1}       # command publishers
BUNDLE_QOS = {'reliability': 'reliable', 'depth': 1, 'durability': 'transient_local'}
EVENT_QOS = {'reliability': 'reliable', 'depth': 100}       # rewards, returns, demonstrations

HEADER = 2  # episode, step at the front of FULL_STATE and DEMONSTRATIONS data


def pack_full_state(episode: int, step: int, state, warmstart) -> list:
    return [float(episode), float(step), *map(float, state), *map(float, warmstart)]


def unpack_full_state(data, nstate: int):
    """-> (episode, step, state, warmstart) from FULL_STATE data (a sequence of floats)."""
    episode, step = int(data[0]), int(data[1])
    return episode, step, data[HEADER:HEADER + nstate], data[HEADER + nstate:]


def pack_relabel_request(request_id: int, seed: int, states, warmstarts) -> list:
    """[id, seed, n, *states (n x nstate), *warmstarts (n x nv, or none)]."""
    import numpy as np
    states = np.asarray(states, dtype=np.float64)
    ws = np.asarray(warmstarts if warmstarts is not None and len(warmstarts) else [],
                    dtype=np.float64)
    return [float(request_id), float(seed), float(len(states)), *states.ravel(), *ws.ravel()]


def unpack_relabel_request(data, nstate: int, nv: int):
    import numpy as np
    data = np.asarray(data, dtype=np.float64)
    request_id, seed, n = int(data[0]), int(data[1]), int(data[2])
    states = data[3:3 + n * nstate].reshape(n, nstate)
    rest = data[3 + n * nstate:]
    warmstarts = rest.reshape(n, nv) if len(rest) == n * nv and n else None
    return request_id, seed, states, warmstarts

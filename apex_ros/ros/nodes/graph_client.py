"""The trainer's handle on the running graph: services and topics of the sim, planner and
executor nodes, callable from a worker thread while the node spins in another.

Exactly one node drives the command topic at a time; every switch is an explicit call here:
planner via ~/set_active, executor via its lifecycle (activate/deactivate).
"""
import threading
import time

import numpy as np
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from std_msgs.msg import Float64, Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger

from ...errors import ApexError
from .. import protocol, qos


class GraphError(ApexError):
    pass


NOT_ARMED = 1 << 30  # an episode id no simulation reaches: nothing is collected


class EpisodeRecorder:
    """Collects the FULL_STATE and DEMONSTRATIONS messages of one episode. Armed before the
    simulation is reset, it keeps messages of any episode id from `first_episode` on (the
    reset state is published before the reset call returns the new id)."""

    def __init__(self, nstate, nv, obs_dim, nu, logger):
        self.sizes = {'nstate': nstate, 'nv': nv}
        self.demo_sizes = {'obs_dim': obs_dim, 'nu': nu}
        self.logger = logger
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.arm(NOT_ARMED)

    def arm(self, first_episode):
        with self.lock:
            self.first_episode, self.states, self.demos, self.ret = first_episode, {}, {}, None
            self.done.clear()

    def on_state(self, msg):
        try:
            full = protocol.unpack_full_state(msg.data, **self.sizes)
        except protocol.ProtocolError as e:
            self.logger.error(f'ignored: {e}', throttle_duration_sec=2.0)
            return
        with self.lock:
            if full.episode >= self.first_episode:
                self.states[full.step] = (full.state, full.warmstart)

    def on_demo(self, msg):
        try:
            demo = protocol.unpack_demonstration(msg.data, **self.demo_sizes)
        except protocol.ProtocolError as e:
            self.logger.error(f'ignored: {e}', throttle_duration_sec=2.0)
            return
        with self.lock:
            if demo.episode >= self.first_episode:
                self.demos[demo.step] = (demo.observation, demo.action)

    def on_return(self, msg):
        with self.lock:
            if self.first_episode < NOT_ARMED:
                self.ret = msg.data
                self.done.set()


class GraphClient:
    def __init__(self, node, task, sim=protocol.SIM_NODE, planner=protocol.PLANNER_NODE,
                 executor=protocol.EXECUTOR_NODE, recorder=protocol.RECORDER_NODE, timeout=300.0):
        self.node, self.task, self.timeout = node, task, timeout
        self.recorder = EpisodeRecorder(task.layout.size, task.model.nv, task.obs_dim, task.nu,
                                        node.get_logger())
        self.last_episode = -1
        cb = node.create_client
        self.reset_client = cb(Trigger, protocol.service(sim, protocol.RESET))
        self.planner_active = cb(SetBool, protocol.service(planner, protocol.SET_ACTIVE))
        self.planner_params = cb(SetParameters, f'/{planner}/set_parameters')
        self.executor_change = cb(ChangeState, f'/{executor}/change_state')
        self.executor_state = cb(GetState, f'/{executor}/get_state')
        self.executor_params = cb(SetParameters, f'/{executor}/set_parameters')
        self.recorder_resume = cb(Trigger, protocol.service(recorder, protocol.RESUME))
        self.recorder_pause = cb(Trigger, protocol.service(recorder, protocol.PAUSE))
        sub = node.create_subscription
        self.sub_state = sub(Float64MultiArray, protocol.FULL_STATE, self.recorder.on_state,
                             qos.FULL_STATE)
        self.sub_demo = sub(Float64MultiArray, protocol.DEMONSTRATIONS, self.recorder.on_demo,
                            qos.DEMONSTRATIONS)
        sub(Float64, protocol.EPISODE_RETURN, self.recorder.on_return, qos.EVENT)
        self.pub_bundle = node.create_publisher(String, protocol.POLICY_BUNDLE, qos.BUNDLE)

    # --- plumbing ---------------------------------------------------------------------------
    def call(self, client, request, what):
        if not client.wait_for_service(timeout_sec=self.timeout):
            raise GraphError(f'{what}: service {client.srv_name} not available')
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _: done.set())
        if not done.wait(self.timeout):
            raise GraphError(f'{what}: no answer from {client.srv_name}')
        return future.result()

    def wait_ready(self):
        """Block until the sim, planner and executor serve their services and the sim's full
        states and the planner's demonstrations reach this node."""
        for client in (self.reset_client, self.planner_active, self.executor_change):
            if not client.wait_for_service(timeout_sec=self.timeout):
                raise GraphError(f'service {client.srv_name} did not appear')
        deadline = time.monotonic() + self.timeout
        for subscription, who in ((self.sub_state, 'sim'), (self.sub_demo, 'planner')):
            while subscription.get_publisher_count() < 1:
                if time.monotonic() > deadline:
                    raise GraphError(f'no {who} publishes {subscription.topic_name}')
                time.sleep(0.01)

    def _set_param(self, client, name, value: str, what):
        req = SetParameters.Request(parameters=[Parameter(name=name, value=ParameterValue(
            type=ParameterType.PARAMETER_STRING, string_value=value))])
        result = self.call(client, req, what).results[0]
        if not result.successful:
            raise GraphError(f'{what}: {result.reason}')

    # --- drivers ----------------------------------------------------------------------------
    def set_planner_active(self, active: bool):
        self.call(self.planner_active, SetBool.Request(data=active), 'planner set_active')

    def set_planner_policy(self, path: str):
        self._set_param(self.planner_params, 'policy', path, 'planner policy')

    def announce_bundle(self, path: str):
        self.pub_bundle.publish(String(data=protocol.pack_bundle_announcement(path)))

    def executor_lifecycle_state(self) -> str:
        answer = self.call(self.executor_state, GetState.Request(), 'executor state')
        return answer.current_state.label

    def executor_transition(self, transition_id, what):
        res = self.call(self.executor_change, ChangeState.Request(
            transition=Transition(id=transition_id)), what)
        if not res.success:
            raise GraphError(f'executor {what} failed (see the executor log)')

    def executor_drive(self, bundle_path: str):
        """(Re)configure the executor with `bundle_path` and activate it."""
        state = self.executor_lifecycle_state()
        if state == 'active':
            self.executor_transition(Transition.TRANSITION_DEACTIVATE, 'deactivate')
            state = 'inactive'
        if state == 'inactive':
            self.executor_transition(Transition.TRANSITION_CLEANUP, 'cleanup')
        self._set_param(self.executor_params, 'bundle', bundle_path, 'executor bundle')
        self.executor_transition(Transition.TRANSITION_CONFIGURE, 'configure')
        self.executor_transition(Transition.TRANSITION_ACTIVATE, 'activate')

    def set_recording(self, on: bool):
        """Resume/pause the recorder, if the graph has one (record:=DIR)."""
        client = self.recorder_resume if on else self.recorder_pause
        if client.service_is_ready():
            self.call(client, Trigger.Request(), 'recorder ' + ('resume' if on else 'pause'))

    def executor_stop(self):
        if self.executor_lifecycle_state() == 'active':
            self.executor_transition(Transition.TRANSITION_DEACTIVATE, 'deactivate')

    # --- episodes ---------------------------------------------------------------------------
    def run_episode(self, demos: bool = False):
        """Reset the simulation and record the episode driven by whoever is active; with
        `demos`, also wait for the planner's demonstration of every step.
        -> (states (T+1, nstate), warmstarts (T+1, nv), demos {step: (obs, action)}, return)"""
        steps = self.task.episode_steps
        rec = self.recorder
        rec.arm(self.last_episode + 1)
        res = self.call(self.reset_client, Trigger.Request(), 'sim reset')
        self.last_episode = protocol.unpack_reset_reply(
            res.message, self.reset_client.srv_name).episode
        deadline = time.monotonic() + self.timeout
        while True:
            rec.done.wait(0.05)   # the episode's return wakes us early; the data decides
            with rec.lock:
                complete = (len(rec.states) >= steps + 1
                            and (not demos or len(rec.demos) >= steps))
            if complete:
                break
            if time.monotonic() > deadline:
                raise GraphError(f'episode {self.last_episode} did not finish within '
                                 f'{self.timeout} s ({len(rec.states)} of {steps + 1} states'
                                 + (f', {len(rec.demos)} of {steps} demonstrations'
                                    if demos else '') + ' received)')
        with rec.lock:
            ordered = [rec.states[t] for t in range(steps + 1)]
            demo_steps, ret = dict(rec.demos), rec.ret
        rec.arm(NOT_ARMED)
        states = np.array([s for s, _ in ordered])
        warmstarts = np.array([w for _, w in ordered])
        return states, warmstarts, demo_steps, ret

"""The ROS graph: simulation node contract, the runner (`apex-ros launch`), and APEX through
the graph end to end. Real DDS on loopback (test.rosutil isolates the session)."""
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy  # noqa: E402
import rosutil  # noqa: I100 (first: isolates the ROS domain before rclpy.init)
import yaml
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import Float64MultiArray, String  # noqa: E402

from apex_ros.bags.reader import BagReader  # noqa: E402
from apex_ros.deploy.bundle import PolicyBundle  # noqa: E402
from apex_ros.ros import protocol, qos  # noqa: E402
from apex_ros.ros.graph import GRAPHS  # noqa: E402
from apex_ros.ros.launcher import graph_argvs, parse_launch_arguments  # noqa: E402
from apex_ros.ros.nodes.common import float64_array  # noqa: E402
from apex_ros.sim.simulation import Simulation  # noqa: E402

TINY = {
    'task': {'name': 'cartpole_swingup', 'episode_steps': 30},
    'planner': {'name': 'icem', 'horizon': 12, 'budget': 60},
    'rollout': {'threads': 1},
    'apex': {'iterations': 1, 'eval_episodes': 1},
    'train': {'steps': 100, 'batch_size': 128, 'threads': 1},
}


@pytest.fixture
def node():
    rclpy.init()
    n = rclpy.create_node('graph_test')
    yield n
    n.destroy_node()
    rclpy.shutdown()


def launch(args, log_path):
    """`apex-ros launch ...` as a subprocess in its own process group."""
    out = open(log_path, 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'apex_ros.cli', 'launch', *args],
                            stdout=out, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    out.close()
    return proc


def started_pids(log_path):
    return {m.group(1): int(m.group(2)) for m in
            re.finditer(r'\[launch\] started (\w+) \(pid (\d+)\)', Path(log_path).read_text())}


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f'/proc/{pid}/stat') as f:   # a zombie is dead, just not yet reaped
        return f.read().split()[2] != 'Z'


def wait_until(predicate, timeout):
    return rosutil.wait_for(predicate, timeout)


def tiny_config(tmp_path):
    path = tmp_path / 'tiny.yaml'
    path.write_text(yaml.safe_dump(TINY))
    return path


# --- the simulation node -------------------------------------------------------------------

@pytest.mark.slow
def test_sim_node_rejects_wrong_size_and_non_finite_commands(node, tmp_path, cartpole):
    def step(msg):
        return protocol.unpack_full_state(msg.data, cartpole.layout.size, cartpole.model.nv).step
    log = tmp_path / 'sim.log'
    procs = rosutil.NodeProcesses()
    procs.start(rosutil.executable('sim_node', 'apex_ros.ros.nodes.sim_node'), 'sim',
                {'mode': 'lockstep', 'state_republish': 0.2}, log_path=log)
    try:
        states = rosutil.Collector(node, Float64MultiArray, protocol.FULL_STATE)
        pub = node.create_publisher(Float64MultiArray, protocol.command_topic('effort_controller'),
                                    10)
        assert rosutil.wait_for_subscribers(pub, spin=node, timeout=20)
        assert states.wait(1, timeout=20, spin=node)            # the reset state (re-sent)
        assert step(states.msgs[-1]) == 0
        # commands are depth 1: wait for each verdict before sending the next
        pub.publish(Float64MultiArray(data=[0.1, 0.2]))          # cartpole has 1 actuator
        assert rosutil.wait_for(lambda: 'expected 1 values' in log.read_text(), 10)
        assert 'got 2' in log.read_text()
        pub.publish(Float64MultiArray(data=[math.nan]))
        assert rosutil.wait_for(lambda: 'non-finite' in log.read_text(), 10)
        pub.publish(Float64MultiArray(data=[0.5]))               # the only valid one
        assert rosutil.wait_for(lambda: any(step(m) >= 1 for m in states.msgs), 10,
                                spin=node)
        steps = {step(m) for m in states.msgs}
        assert max(steps) == 1, 'a rejected command was applied'
    finally:
        procs.stop_all()


def test_planner_publishes_its_plan_throttled(node, tmp_path, cartpole):
    """/apex/plan: at most plan_rate per second whatever the state rate, the predicted
    positions start at the planned state, and a viewer that subscribes late gets the last."""
    procs = rosutil.NodeProcesses()
    procs.start(rosutil.executable('planner_node', 'apex_ros.ros.nodes.planner_node'),
                'planner', {'active': True, 'plan_rate': 2.0, 'threads': 1,
                            'set': 'planner.budget=60,planner.horizon=8'},
                log_path=tmp_path / 'planner.log')
    try:
        states = node.create_publisher(Float64MultiArray, protocol.FULL_STATE, qos.FULL_STATE)
        commands = rosutil.Collector(node, Float64MultiArray,
                                     protocol.command_topic('effort_controller'))
        sim = Simulation(cartpole)
        sim.reset(0)
        sent = {}
        assert rosutil.wait_for_subscribers(states, spin=node, timeout=30)
        assert rosutil.wait_for(lambda: commands.sub.get_publisher_count() > 0, 30, spin=node)

        def drive(steps, first):
            """Send `steps` states, each once its predecessor was answered (a state is re-sent
            until answered, as the sim does: the planner's state subscription is best effort
            and it answers each step once)."""
            for step in range(first, first + steps):
                full = protocol.FullState(0, step, sim.state(), sim.warmstart())
                sent[step] = full.state
                for _ in range(15):
                    states.publish(float64_array(protocol.pack_full_state(full)))
                    if commands.wait(step + 1, timeout=2, spin=node):
                        break
                assert len(commands.msgs) == step + 1, step
                sim.step(protocol.unpack_command(commands.msgs[-1].data, [0], 'commands'))
        drive(10, 0)                 # no subscriber yet
        plans = rosutil.Collector(node, Float64MultiArray, protocol.PLAN, qos.PLAN)
        # the late subscriber still gets the last plan, of a step already planned
        assert rosutil.wait_for(lambda: plans.msgs, 30, spin=node)
        late = protocol.unpack_plan(plans.msgs[0].data, cartpole.model.nq, 2)
        assert late.step < 10
        # drive for three plan periods: a shorter drive may rightly fall inside the period
        # that began with the late plan, and see no fresh one
        t0 = time.monotonic()
        start_step = driven = 10
        while time.monotonic() - t0 < 3 / 2.0:
            drive(10, driven)
            driven += 10
        elapsed = time.monotonic() - t0
        assert rosutil.wait_for(lambda: len(plans.msgs) >= 2, 10, spin=node)
        fresh = [protocol.unpack_plan(m.data, cartpole.model.nq, 2) for m in plans.msgs[1:]]
        assert len(fresh) <= 2.0 * elapsed + 1, (len(fresh), elapsed)
        assert len(fresh) < driven - start_step             # throttled, not one per state
        for plan in (late, fresh[0]):
            assert plan.qpos.shape == (9, cartpole.model.nq)
            np.testing.assert_array_equal(plan.qpos[0], cartpole.qpos(sent[plan.step]))
            assert 0 < plan.plan_seconds < 5
        assert fresh[0].step >= start_step
    finally:
        procs.stop_all()


# --- the runner ----------------------------------------------------------------------------

def _start_graph(tmp_path, name):
    log = tmp_path / f'{name}.log'
    proc = launch(['sim_apex', f'config:={tiny_config(tmp_path)}',
                   f'out_dir:={tmp_path / "run"}', 'iterations:=50'], log)
    ready = wait_until(lambda: len(started_pids(log)) == 4 and
                       'samples/step' in log.read_text(), 60)
    assert ready, log.read_text()
    return proc, log


@pytest.mark.slow
def test_runner_stops_everything_when_a_node_dies(tmp_path):
    proc, log = _start_graph(tmp_path, 'kill')
    pids = started_pids(log)
    os.kill(pids['planner'], signal.SIGKILL)
    assert proc.wait(60) != 0
    assert wait_until(lambda: not any(alive(p) for p in pids.values()), 30), \
        {n: alive(p) for n, p in pids.items()}
    assert 'planner exited with status -9' in log.read_text()


@pytest.mark.slow
def test_runner_forwards_sigint_and_leaves_no_orphans(tmp_path):
    proc, log = _start_graph(tmp_path, 'sigint')
    pids = started_pids(log)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 128 + signal.SIGINT
    assert wait_until(lambda: not any(alive(p) for p in pids.values()), 30)


def test_runner_rejects_unknown_arguments():
    out = subprocess.run([sys.executable, '-m', 'apex_ros.cli', 'launch', 'sim_apex',
                          'tsak:=x'], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown launch argument 'tsak'" in out.stderr


# --- APEX through the graph -----------------------------------------------------------------

@pytest.mark.slow
def test_graph_trains_a_policy_and_the_executor_drives_the_sim(node, tmp_path, cartpole):
    log = tmp_path / 'apex.log'
    run, bag = tmp_path / 'run', tmp_path / 'bag'
    # what a viewer sees: the planner's throttled plans and the trainer's status
    plans = rosutil.Collector(node, Float64MultiArray, protocol.PLAN, qos.PLAN)
    statuses = rosutil.Collector(node, String, protocol.STATUS, QoSProfile(
        depth=100, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL))   # keeps every status, not the last
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        viz_port = s.getsockname()[1]
    proc = launch(['sim_apex', f'config:={tiny_config(tmp_path)}', f'out_dir:={run}',
                   'iterations:=1', f'record:={bag}', 'viz:=true', f'viz_port:={viz_port}'],
                  log)
    assert rosutil.wait_for(lambda: proc.poll() is not None, 300, spin=node)
    status = proc.returncode
    text = log.read_text()
    assert status == 0, text[-4000:]
    m = re.search(r'expert return (\S+) vs policy return (\S+) \(executor driving', text)
    assert m, text[-3000:]
    assert math.isfinite(float(m.group(1))) and math.isfinite(float(m.group(2)))
    metrics = [json.loads(line) for line in (run / 'metrics.jsonl').read_text().splitlines()]
    assert [x['iteration'] for x in metrics] == [1]
    assert metrics[0]['dataset_samples'] == 2 * TINY['task']['episode_steps']
    assert PolicyBundle(run / 'policy.onnx').meta['apex_iteration'] == 1
    # the executor (not the planner) drove the final episode, with that bundle
    assert re.search(r'\[policy_executor\].*(activ|configur)', text)
    pids = started_pids(log)
    assert wait_until(lambda: not any(alive(p) for p in pids.values()), 30)
    # record:=DIR recorded the policy rollouts (the DAgger one and the final drive: sim
    # episodes 2 and 3), not the expert's (episode 1); cleanly closed, so nothing to recover
    reader = BagReader(bag)
    episodes = {protocol.unpack_full_state(m.msg.data, cartpole.layout.size, cartpole.model.nv)
                .episode for m in reader.messages([protocol.FULL_STATE], decode=True)}
    assert episodes == {2, 3}
    assert not reader.damaged
    # the viz node served the view beside the graph and stopped with it
    assert f'view: http://127.0.0.1:{viz_port}/' in text and 'viz' in pids
    plan = protocol.unpack_plan(plans.msgs[-1].data, cartpole.model.nq, 2)
    assert plan.qpos.shape == (TINY['planner']['horizon'] + 1, cartpole.model.nq)
    assert 0 < plan.plan_seconds < 10
    seen = [protocol.unpack_status(m.data) for m in statuses.msgs]
    assert {s.driver for s in seen} == {'none', 'planner', 'executor'}
    assert [s.phase for s in seen if s.driver == 'none'][-1] == 'final'
    assert seen[-1].expert_return == pytest.approx(metrics[0]['expert_return'])


# --- the launch files build the same argv as the runner (needs launch_ros) ----------------

@pytest.mark.parametrize('graph', sorted(GRAPHS))
def test_launch_file_and_runner_build_the_same_argv(graph, tmp_path):
    pytest.importorskip('launch_ros')
    import importlib.util

    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.utilities import perform_substitutions

    from launch import LaunchContext, LaunchDescription
    launch_file = Path(__file__).parent.parent / 'launch' / f'{graph}.launch.py'
    spec = importlib.util.spec_from_file_location('launch_file', launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description: LaunchDescription = module.generate_launch_description()
    context = LaunchContext()
    given = {'bundle': str(tmp_path / 'policy.onnx')} if graph == 'policy' else {}
    context.launch_configurations.update(given)   # as `ros2 launch ... bundle:=...` would
    nodes = []
    for entity in description.entities:
        if isinstance(entity, DeclareLaunchArgument):
            entity.execute(context)
        elif isinstance(entity, OpaqueFunction):
            nodes += entity.execute(context)
    ours = graph_argvs(graph, parse_launch_arguments(graph, [f'{k}:={v}' for k, v in
                                                             given.items()]))
    assert len(nodes) == len(ours)
    for action, (node_spec, argv) in zip(nodes, ours):
        action._perform_substitutions(context)
        cmd = [perform_substitutions(context, part) for part in action.cmd]
        assert Path(cmd[0]).name == Path(argv[0]).name
        assert cmd[1:] == argv[1:]


def test_runner_requires_the_policy_bundle_argument():
    out = subprocess.run([sys.executable, '-m', 'apex_ros.cli', 'launch', 'policy'],
                         capture_output=True, text=True)
    assert out.returncode == 2 and 'needs launch argument(s) bundle' in out.stderr

"""Shared fixtures: the real tasks (built once per session) and a factory for tiny
test-only MuJoCo tasks written to a temporary directory."""
import copy
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from apex_ros.sim.simulation import Simulation
from apex_ros.tasks import make_task
from apex_ros.tasks.base import Task


@pytest.fixture(scope='session', autouse=True)
def _run_in_tmp_dir(tmp_path_factory):
    """MuJoCo appends MUJOCO_LOG.TXT to the working directory whenever a simulation warns
    (several tests provoke instabilities on purpose): keep it out of the source tree."""
    old = os.getcwd()
    os.chdir(tmp_path_factory.mktemp('cwd'))
    yield
    os.chdir(old)


@pytest.fixture(scope='session')
def cartpole():
    return make_task('cartpole_swingup')


@pytest.fixture(scope='session')
def halfcheetah():
    return make_task('halfcheetah_run')


@pytest.fixture(scope='session')
def humanoid():
    return make_task('humanoid_standup')


@pytest.fixture(scope='session')
def tasks(cartpole, halfcheetah, humanoid):
    return {t.name: t for t in (cartpole, halfcheetah, humanoid)}


def _neg_x_squared(self, states, actions):
    return -states[:, 1:, 1] ** 2


@pytest.fixture
def model_task(tmp_path):
    """make(xml, frame_skip=1, reward=None) -> an instance of a Task subclass wrapping the
    MJCF text `xml` (written to tmp_path); default reward -qpos[0]^2 after each step."""
    counter = iter(range(1000))

    def make(xml, frame_skip=1, reward=None, **attrs):
        path = tmp_path / f'model_{next(counter)}.xml'
        path.write_text(xml)
        cls = type('TinyTask', (Task,), {
            'name': 'tiny', 'model_file': str(path), 'frame_skip': frame_skip,
            'episode_steps': 10, 'reward': reward or _neg_x_squared, **attrs})
        return cls()
    return make


@pytest.fixture
def closing():
    """Register OpenLoopRollouts (or planners) to have their thread pools closed."""
    items = []

    def register(obj):
        items.append(obj)
        return obj
    yield register
    for obj in items:
        rollouts = getattr(obj, 'rollouts', obj)
        rollouts.close()


class LinearTanhPolicy:
    """A plain numpy policy: tanh(obs @ W + b). Row-wise reductions only, so a row's output
    does not depend on how many rows are in the batch."""

    def __init__(self, obs_dim, act_dim, seed=0, scale=1.0):
        rng = np.random.default_rng(seed)
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.W = scale * rng.standard_normal((obs_dim, act_dim))
        self.b = 0.1 * rng.standard_normal(act_dim)

    def __call__(self, obs):
        x = np.asarray(obs, dtype=np.float64)
        return np.tanh((x[:, :, None] * self.W[None]).sum(axis=1) + self.b)


@pytest.fixture
def linear_policy():
    return LinearTanhPolicy


def mpc_actions(task, planner, steps, start_seed=0):
    """Closed-loop MPC for `steps` steps; the executed actions (steps, nu)."""
    sim = Simulation(task)
    sim.reset(start_seed)
    actions = []
    for _ in range(steps):
        result = planner.plan(*sim.plan_inputs())
        actions.append(result.action)
        sim.step(result.action)
    return np.array(actions)


SMALL_APEX = {
    'task': {'name': 'cartpole_swingup', 'episode_steps': 40},
    'planner': {'name': 'icem', 'horizon': 15, 'budget': 60, 'beta': 2.0},
    'rollout': {'threads': 1},
    'seed': 3,
    'apex': {'iterations': 2, 'window': 50, 'eval_episodes': 1},
    'train': {'steps': 150, 'batch_size': 256, 'threads': 1},
}


def small_apex_config(directory, **changes):
    """Write a tiny cart-pole APEX run config to directory/apex.yaml; `changes` update whole
    sections, or keys within a section given as a dict."""
    cfg = copy.deepcopy(SMALL_APEX)
    for section, values in changes.items():
        cfg[section] = {**cfg.get(section, {}), **values} if isinstance(values, dict) else values
    path = directory / 'apex.yaml'
    path.write_text(yaml.safe_dump(cfg))
    return path


# --- a real Ray cluster on this machine ---------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _process_tree(pid: int) -> set:
    """`pid` and all its descendants alive now."""
    children = {}
    for entry in Path('/proc').iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / 'stat').read_text().rsplit(')', 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = set(), [pid]
    while todo:
        p = todo.pop()
        tree.add(p)
        todo += children.get(p, [])
    return tree


def _alive(pid: int) -> bool:
    try:
        state = (Path('/proc') / str(pid) / 'stat').read_text().rsplit(')', 1)[1].split()[0]
    except OSError:
        return False
    return state != 'Z'


def _wait_for(condition, timeout: float, what: str, poll: float = 0.1):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f'{what}: not within {timeout:.0f} s')
        time.sleep(poll)


@pytest.fixture(scope='session')
def ray_cluster():
    """A real two-node Ray cluster on this machine -> the head's address 'HOST:PORT'.

    `ray start --head` (1 CPU) and a second node joining it with `ray start --address` (1 CPU),
    each with --block so that it owns its processes, small object stores and no dashboard,
    in a temporary directory, with token authentication and a token of its own (set in this
    process's environment too, for the drivers the tests start; ~/.ray/auth_token is not
    used). At the end both are stopped (SIGTERM, then SIGKILL to whatever of their process
    trees is left), the fixture fails if any of their processes survives, and the directory
    is removed."""
    ray = str(Path(sys.executable).parent / 'ray')
    temp = tempfile.mkdtemp(prefix='ray', dir='/tmp')   # short: Ray's socket paths are limited
    port = _free_port()
    address = f'127.0.0.1:{port}'
    auth = {'RAY_AUTH_MODE': 'token', 'RAY_AUTH_TOKEN': secrets.token_hex(32)}
    saved = {k: os.environ.get(k) for k in auth}
    os.environ.update(auth)
    env = {**os.environ, 'RAY_USAGE_STATS_ENABLED': '0'}
    common = ['--block', '--num-cpus=1', '--object-store-memory=80000000',
              '--disable-usage-stats']
    nodes = []

    def start(args, log):
        nodes.append(subprocess.Popen([ray, 'start', *args, *common], env=env,
                                      stdout=open(Path(temp) / log, 'w'),
                                      stderr=subprocess.STDOUT, start_new_session=True))

    def listening():
        assert nodes[0].poll() is None, (Path(temp) / 'head.log').read_text()
        try:
            socket.create_connection(('127.0.0.1', port), timeout=1).close()
            return True
        except OSError:
            return False
    try:
        start(['--head', '--node-ip-address=127.0.0.1', f'--port={port}',
               '--include-dashboard=false', f'--dashboard-port={_free_port()}',
               f'--temp-dir={temp}'], 'head.log')
        _wait_for(listening, 60, 'Ray head')
        start([f'--address={address}'], 'node.log')
        _wait_for(lambda: 'Ray runtime started' in (Path(temp) / 'node.log').read_text(), 60,
                  'second Ray node')
        yield address
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        trees = set().union(*(_process_tree(n.pid) for n in nodes)) if nodes else set()
        for n in reversed(nodes):
            n.send_signal(signal.SIGTERM)
        for n in nodes:
            try:
                n.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:
            _wait_for(lambda: not any(_alive(p) for p in trees), 15, 'Ray processes ending')
        except TimeoutError:
            left = [p for p in trees if _alive(p)]
            for p in left:
                os.kill(p, signal.SIGKILL)
            raise AssertionError(f'Ray processes left running after ray start --block was '
                                 f'stopped (killed now): {left}') from None
        shutil.rmtree(temp, ignore_errors=True)


def pytest_collection_modifyitems(items):
    """Tests of modules that talk to ROS 2 nodes are marked `ros`, so a quick inner loop can
    leave them out (scripts/test -m "not ros")."""
    for item in items:
        if hasattr(item.module, 'rosutil') or 'rclpy' in vars(item.module):
            item.add_marker(pytest.mark.ros)


@pytest.fixture(scope='module')
def context():
    """One rclpy context per test module (the module imports rosutil first, which isolates
    its ROS domain)."""
    import rclpy
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    ctx.try_shutdown()
